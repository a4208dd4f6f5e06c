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


def shorten(value, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for echoing untrusted values in a message
    (a 100 MB label or name must not be printed whole)."""
    r = repr(value)
    return r if len(r) <= limit else f"{r[:limit]}... ({len(r)} characters)"


def error_line(e: BaseException, limit: int = 1000) -> str:
    """The one ``error: ...`` line a command prints for ``e``: the message of an error of this
    family, or, for any other exception, a line that says it is a bug in edgetune."""
    if isinstance(e, EdgetuneError) and not isinstance(e, InternalError):
        msg = str(e)
    else:
        msg = (f"internal error ({type(e).__name__}: {e}); this is a bug in edgetune, not in your input: "
               "please report it with the command that caused it")
    msg = " ".join(msg.split())
    return "error: " + (msg if len(msg) <= limit else msg[:limit] + "...")
