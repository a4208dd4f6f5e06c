"""One exception family for everything edgetune reports to its user.

`EdgetuneError` is the root. Subclasses of `UserInputError` mean "what you gave
me is wrong, here is how to fix it"; `InternalError` means edgetune itself broke.
This module imports nothing heavy: the device-side runner uses it too.
"""


class EdgetuneError(Exception):
    """Root of every error edgetune raises on purpose."""


class UserInputError(EdgetuneError):
    """The caller's input is wrong; the message names the value and the fix."""


class ConfigError(UserInputError):
    """An adapter plan, selector or option does not fit the model."""


class ArtifactError(UserInputError):
    """An artifact directory is missing files, malformed, or mixed up with another one."""


class StateError(UserInputError):
    """A state file is missing, corrupt, or does not belong to the artifact."""


class BatchError(UserInputError):
    """A batch has the wrong shape, dtype or values for the program."""


class DataError(UserInputError):
    """A data file cannot be read as text,label examples."""


class NonFiniteLossError(EdgetuneError):
    """A step produced NaN/Inf; the previous state was kept."""


class InternalError(EdgetuneError):
    """edgetune broke its own contract (for example an exporter changed the step's numbers)."""
