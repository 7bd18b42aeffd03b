"""The activation study: a grid of tracked runs summarised into reports/activation_study.md."""
