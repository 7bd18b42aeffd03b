"""Surviving interruption: stop cleanly on a signal, checkpoint, and resume exactly."""

from mnist_lab.recovery.callbacks import BestAndLastCheckpoint, InterruptCheckpoint, RNGState, StopOnSignal
from mnist_lab.recovery.signals import stop_signals

__all__ = ["BestAndLastCheckpoint", "InterruptCheckpoint", "RNGState", "StopOnSignal", "stop_signals"]
