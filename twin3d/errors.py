"""The one error tree of twin3d.

Every error a user can cause (a bad file, a bad flag, a bad message) is a
:class:`Twin3DError`; its ``str()`` is one line that names the problem and, where
there is one, the fix. The CLI prints it as ``twin3d CMD: error: ...`` and exits 1
(2 for :class:`UsageError`). Anything else escaping is a bug in twin3d.

* Twin3DError
    * UsageError                     # bad flags or arguments (exit code 2)
    * CADImportError(ValueError)     # unreadable, empty or unsupported CAD input
    * OutputError(OSError)           # the output path cannot be written
    * StageError                     # a USD stage is missing, unreadable or not as expected
        * BindingError               # a sensor that cannot be bound to the stage
    * SensorMapError(ValueError)     # malformed sensor map (TOML)
    * ValidationError                # a stage failed one or more validators
    * FieldError                     # a field model cannot be built or updated
    * BridgeError                    # bridge configuration or connection problems
        * ProtocolViolation          # a message that breaks the wire protocol
        * AuthError                  # missing or wrong token, forbidden channel
    * RecordingError                 # a recording that cannot be read or written
        * DiskFullError              # the recording's disk is full (retry when space returns)
    * AdapterError                   # MQTT / OPC UA / CSV sources
    * EngineError                    # the twin engine: virtual sensors, what-if inputs, settings
    * RenderError                    # no OpenGL context, movie export failures
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "AdapterError",
    "AuthError",
    "BindingError",
    "BridgeError",
    "CADImportError",
    "DiskFullError",
    "EngineError",
    "FieldError",
    "OutputError",
    "ProtocolViolation",
    "RecordingError",
    "RenderError",
    "SensorMapError",
    "StageError",
    "Twin3DError",
    "UsageError",
    "ValidationError",
    "reason",
]


class Twin3DError(Exception):
    """Root of every error twin3d raises on purpose."""


class UsageError(Twin3DError):
    """Bad command-line usage or API arguments (CLI exit code 2)."""


class CADImportError(Twin3DError, ValueError):
    """A CAD or mesh file that cannot be converted.

    Args:
        path: the offending file.
        problem: what is wrong with it, and the fix where there is one.
    """

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = str(path), problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class OutputError(Twin3DError, OSError):
    """The output path cannot be written."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = str(path), problem

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.problem}"


class StageError(Twin3DError):
    """A USD stage is missing, unreadable or not what twin3d expects."""


class BindingError(StageError):
    """A sensor that cannot be bound to the stage.

    Args:
        channel: the sensor's channel id.
        problem: what is wrong, and the fix where there is one.
    """

    def __init__(self, channel: str, problem: str) -> None:
        super().__init__(channel, problem)
        self.channel, self.problem = channel, problem

    def __str__(self) -> str:
        return f"sensor {self.channel!r}: {self.problem}"


class SensorMapError(Twin3DError, ValueError):
    """A malformed sensor map file."""


class ValidationError(Twin3DError):
    """A stage failed one or more validators."""


class FieldError(Twin3DError):
    """A field model that cannot be built or updated."""


class BridgeError(Twin3DError):
    """Bridge configuration or connection problems."""


class ProtocolViolation(BridgeError):
    """A message that breaks the wire protocol.

    Args:
        code: the protocol's error code (``bad_json``, ``bad_value`` ...).
        message: a one-line explanation for the remote side.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AuthError(BridgeError):
    """A missing or wrong token, or a channel outside the token's role."""


class RecordingError(Twin3DError):
    """A recording that cannot be read or written.

    ``code`` is the bridge protocol's error code for it.
    """

    code = "recording_failed"


class DiskFullError(RecordingError):
    """The disk of the recording is full: nothing more is stored (or acked) until space returns.

    Args:
        path: the recording.
        detail: free space and what happens meanwhile.
    """

    code = "disk_full"

    def __init__(self, path: object, detail: str) -> None:
        super().__init__(path, detail)
        self.path, self.detail = str(path), detail

    def __str__(self) -> str:
        return f"disk full: cannot write the recording {self.path} ({self.detail})"


class AdapterError(Twin3DError):
    """An MQTT, OPC UA or CSV source that cannot be read."""


class EngineError(Twin3DError):
    """The twin engine cannot do what was asked: a virtual sensor off the part, an unknown
    what-if input, a setting out of range."""


class RenderError(Twin3DError):
    """Rendering failed: no OpenGL context, or a movie that cannot be written."""


_FIXES = {
    errno.ENOSPC: "free some space on that disk",
    errno.EDQUOT: "free some space or raise the quota",
    errno.EACCES: "check the permissions or pick another path",
    errno.EPERM: "check the permissions or pick another path",
    errno.EROFS: "the file system is read-only: pick another path",
    errno.ENOENT: "check that the folder exists",
    errno.EISDIR: "that is a folder: give a file name",
}


def reason(exc: BaseException) -> str:
    """One line saying why ``exc`` happened, from whatever a library raised.

    The one place that reads other libraries' exception text: ``OSError`` gives its
    ``strerror`` plus the fix for the common causes (disk full, permissions, read-only);
    pxr's ``Tf.ErrorException`` ("Error in 'func' at line N in file F : 'why'", possibly
    several) gives the last ``why``; anything else its first non-empty line, or its type name.

    Examples:
        >>> reason(OSError(28, "No space left on device"))
        'No space left on device (free some space on that disk)'
    """
    if isinstance(exc, OSError) and exc.errno is not None and not isinstance(exc, Twin3DError):
        text = exc.strerror or os.strerror(exc.errno)
        fix = _FIXES.get(exc.errno)
        return f"{text} ({fix})" if fix else text
    lines = [" ".join(ln.split()) for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln]
    whys = [ln.split(" : ", 1)[1].strip(" '\"") for ln in lines
            if ln.startswith("Error in ") and " : " in ln]
    if whys:
        return whys[-1]
    return lines[0] if lines else type(exc).__name__
