"""User-facing errors: the CLI prints these as one clear line and exits non-zero, no traceback."""


class TemplateError(Exception):
    """Base class of the errors a user can fix by changing their command or files."""


class ConfigError(TemplateError, ValueError):
    """A bad choice or value in the configuration (unknown name, out-of-range number)."""


class DataError(TemplateError):
    """Missing, truncated or corrupt dataset files."""
