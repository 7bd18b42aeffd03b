"""MLflow tracking: the run logger, what a run records, and ``predict``'s CSV."""

from mnist_lab.tracking.logger import RunLogger, run_logger
from mnist_lab.tracking.predictions import PredictionsCSV
from mnist_lab.tracking.record import RunRecord

__all__ = ["PredictionsCSV", "RunLogger", "RunRecord", "run_logger"]
