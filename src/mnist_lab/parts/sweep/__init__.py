"""Optuna sweeps over the CLI: a sweep file, trials as child MLflow runs, a study in resumable RDB
storage."""
