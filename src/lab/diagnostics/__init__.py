"""Diagnostics that make the textbook visible: gradient flow and signs, saturation, dead units,
symmetry, mode gap."""

from lab.diagnostics.callback import DiagnosticsCallback
from lab.diagnostics.probes import (
    LayerStats,
    activation_stats,
    grad_norms,
    grad_sign_agreement,
    mode_gap,
)

__all__ = [
    "DiagnosticsCallback",
    "LayerStats",
    "activation_stats",
    "grad_norms",
    "grad_sign_agreement",
    "mode_gap",
]
