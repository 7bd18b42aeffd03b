"""MLflow tracking: the run logger and the callback that fills a run."""

from mnist_lab.tracking.artifacts import RunArtifacts
from mnist_lab.tracking.logger import RunLogger, resolve_tracking_uri, run_logger
from mnist_lab.tracking.predictions import PredictionsCSV

__all__ = ["PredictionsCSV", "RunArtifacts", "RunLogger", "resolve_tracking_uri", "run_logger"]
