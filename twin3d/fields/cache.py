"""On-disk cache of built field models, keyed by a hash of the mesh, sensors and model.

A restart of the viewer then skips meshing and solving: loading ``W`` is one ``.npz`` read.
The folder is ``$TWIN3D_CACHE`` if set, else ``~/.cache/twin3d/fields``. Entries are written
to a temporary file and renamed into place, so a crash or a Ctrl-C (during the build or the
write) never leaves a half-written entry, nor the temporary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["cache_dir", "cached", "model_key"]

#: Bump when the numerics or the saved arrays change so old entries are not reused.
CACHE_VERSION = "fields-4"
T = TypeVar("T")


def cache_dir() -> Path:
    """The cache folder (not created)."""
    env = os.environ.get("TWIN3D_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "twin3d" / "fields"


def model_key(kind: str, points: npt.ArrayLike, faces: npt.ArrayLike, meters_per_unit: float,
              sensors: Sequence[Any], config: Mapping[str, Any]) -> str:
    """A hex digest of everything a model depends on."""
    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}|{kind}|{float(meters_per_unit)!r}".encode())
    h.update(np.ascontiguousarray(points, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    for s in sensors:
        h.update(repr((s.channel, s.quantity, s.unit, s.position, s.vertex)).encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def cached(key: str, build: Callable[[], T], save: Callable[[T], Mapping[str, Any]],
           load: Callable[[dict[str, Any]], T], *, directory: Path | None = None,
           enabled: bool = True) -> T:
    """Return ``load(entry)`` for a cached key, else ``build()`` and store ``save(model)``.

    Args:
        key: from :func:`model_key`.
        build: makes the model.
        save: the model as named arrays (e.g. ``type(model).to_arrays``).
        load: the model from those arrays (e.g. ``HeatModel.from_arrays``).
        directory: the cache folder, when not :func:`cache_dir`.
        enabled: False builds every time and stores nothing.
    """
    if not enabled:
        return build()
    folder = directory or cache_dir()
    path = folder / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                return load({k: data[k] for k in data.files})
        except (OSError, ValueError, KeyError):
            pass  # a stale or foreign file: rebuild over it
    model = build()  # a Ctrl-C here leaves nothing behind
    tmp = folder / f".{key}.{os.getpid()}.tmp.npz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **save(model))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the next start its setup time
    finally:  # a failed or interrupted (Ctrl-C) write leaves no temporary file
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return model
