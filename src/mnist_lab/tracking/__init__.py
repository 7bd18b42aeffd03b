"""MLflow tracking: the run logger, the callback that fills a run, and run naming."""

from mnist_lab.tracking.callback import MLflowRunCallback, run_logger
from mnist_lab.tracking.logger import DEFAULT_TRACKING_URI, RunLogger

__all__ = ["DEFAULT_TRACKING_URI", "MLflowRunCallback", "RunLogger", "run_logger"]
