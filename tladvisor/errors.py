"""Errors a user can cause. Each is shown as one line (what, where, how to fix) with a non-zero exit."""


class TLAdvisorError(Exception):
    """Base class of every error tladvisor reports to a user without a traceback."""

    exit_code = 2


class DatasetError(TLAdvisorError):
    """The dataset cannot be analysed (missing, empty, one class, unsafe manifest...)."""


class BackboneError(TLAdvisorError):
    """A backbone is unknown, cannot be built, or its weights are unavailable."""


class WeightsUnavailableError(BackboneError):
    """Pretrained weights are neither in the local cache nor downloadable right now."""


class PluginError(TLAdvisorError):
    """A plugin could not be loaded or is malformed (for example a misspelt hook name)."""


class UnsafeFileError(TLAdvisorError):
    """A file was refused because loading it could execute code or escape its root."""


class OutputError(TLAdvisorError):
    """The output folder cannot be written."""
