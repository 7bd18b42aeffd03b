"""Surviving interruption: stop cleanly on a signal, checkpoint, and resume exactly."""

from mnist_lab.recovery.callbacks import BestAndLastCheckpoint, Recovery
from mnist_lab.recovery.signals import stop_signals

__all__ = ["BestAndLastCheckpoint", "Recovery", "stop_signals"]
