"""Open and save USD stages and layers with one-line errors; every save is atomic.

pxr reports failures as multi-line ``Tf.ErrorException`` text (or a ``False`` return): these
functions turn both into :class:`~twin3d.errors.StageError` / :class:`~twin3d.errors.OutputError`
with the reason (:func:`twin3d.errors.reason`), so no caller parses pxr's text.
"""

from __future__ import annotations

from pathlib import Path

from pxr import Sdf, Usd

from twin3d._io import atomic_output
from twin3d._types import PathLike
from twin3d.errors import OutputError, StageError, reason

__all__ = ["open_layer", "open_stage", "save_layer"]


def open_stage(path: PathLike) -> Usd.Stage:
    """Open a USD stage.

    Raises:
        StageError: the file is missing or is not a readable USD stage (one line, with pxr's reason).
    """
    p = Path(path)
    if not p.is_file():
        raise StageError(f"{p}: no such file")
    try:
        stage = Usd.Stage.Open(str(p))
    except Exception as exc:  # pxr's Tf.ErrorException
        raise StageError(f"{p}: cannot open as a USD stage ({reason(exc)})") from None
    if stage is None:
        raise StageError(f"{p}: cannot open as a USD stage")
    return stage


def open_layer(path: PathLike, what: str = "stage", fix: str = "") -> Sdf.Layer:
    """Open (or find, if already open) one USD layer.

    Args:
        path: the layer file.
        what: what the layer is to the user ("stage", "live layer"), for the message.
        fix: appended to the message, e.g. "delete it to start afresh".

    Raises:
        StageError: the file is not a readable USD layer.
    """
    why = ""
    try:
        layer = Sdf.Layer.FindOrOpen(str(path))
    except Exception as exc:  # pxr's Tf.ErrorException
        layer, why = None, f" ({reason(exc)})"
    if layer is None:
        raise StageError(f"{path}: cannot open the {what} as a USD layer{why}"
                         + (f"; {fix}" if fix else ""))
    return layer


def save_layer(layer: Sdf.Layer, path: PathLike, *, crate: bool = False) -> None:
    """Export ``layer`` to ``path`` atomically: readers see the old file or the new one.

    Args:
        layer: the layer to write (it keeps its own identifier).
        path: the output file; its suffix picks the format.
        crate: force the binary ``.usdc`` format (for a ``.usd`` path).

    Raises:
        OutputError: the file cannot be written (with the reason: disk full, permissions...).
    """
    out = Path(path)
    with atomic_output(out) as tmp:
        try:
            ok = layer.Export(str(tmp), args={"format": "usdc"} if crate else {})
        except (OSError, RuntimeError) as exc:  # RuntimeError: pxr's Tf.ErrorException
            raise OutputError(out, reason(exc)) from None
        if not ok:
            raise OutputError(out, "USD could not save the layer (is the disk full?)")
