"""OBJ without trimesh: the text parsed by numpy a block at a time, into a one-mesh :class:`Scene`.

For files of triangles without materials, texture coordinates, vertex colours, points or
lines; anything else is left to trimesh. trimesh's own parser takes about 2.5 s for a
1.3M-triangle file, and VTK's C++ reader was as fast as this one but cost ~140 MiB
(``benchmarks/RESULTS.md``, "Conversion").
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from twin3d.cad.scene import ROOT, Edge, Meshes, Scene, SourceMesh

__all__ = ["BLOCK", "read_obj"]

#: bytes of text per parse step
BLOCK = 1 << 22


def read_obj(path: Path) -> Scene | None:
    """A triangle-only OBJ without materials, UVs or colours, parsed by numpy a block at a time.

    Lines may be ``v x y z``, ``f a b c`` or ``f a//n b//n c//n``, ``vn`` (ignored: normals
    are recomputed), comments, ``o``/``g``/``s`` and blank lines; anything else (``vt``,
    ``usemtl``, vertex colours or ``w``, polygons, relative indices, a comment after a
    value ...) returns None, and trimesh reads the file. The mesh is named as trimesh names
    it: the ``o`` line that opens the face block, else the file name. Memory: the parsed
    arrays and one :data:`BLOCK` of text's temporaries (the whole text is never held); a
    line longer than a block returns None.
    """
    name: str | None = None  # decided by the first o/g/s line, or the first f line
    vertices: list[npt.NDArray[np.float64]] = []
    faces: list[npt.NDArray[np.int32]] = []
    with path.open("rb") as f:
        rest = b""
        while True:
            chunk = f.read(BLOCK)
            text = rest + chunk if chunk else rest + b"\n"  # the last line may lack one
            cut = text.rfind(b"\n") + 1
            if cut == 0 and len(text) > BLOCK:
                return None  # a line longer than a block: not a simple OBJ
            text, rest = text[:cut], text[cut:]
            if text.strip():
                parsed = _parse(text)
                if parsed is None:
                    return None
                vertices.append(parsed.vertices)
                faces.append(parsed.faces)
                if name is None and parsed.opener is not None:
                    label = parsed.opener.decode("utf-8", "replace")
                    name = label[2:].strip() if label[:2] in ("o ", "o\t") else ""
                if name is None and len(parsed.faces):
                    name = ""
            if not chunk:
                break
    points = np.concatenate(vertices)
    del vertices
    if not len(points) or not sum(len(x) for x in faces) or len(points) >= 2**31:
        return None
    tri = np.concatenate(faces)
    del faces
    tri -= 1  # OBJ counts from 1
    if tri.max() >= len(points):
        return None  # missing vertices: trimesh says what is wrong
    name = name or path.name
    return Scene(Meshes([SourceMesh(name, points, tri)]), edges=(Edge(ROOT, name, mesh=0),))


class _Block(NamedTuple):
    vertices: npt.NDArray[np.float64]  # (k, 3), as trimesh reads them
    faces: npt.NDArray[np.int32]  # (j, 3), counted from 1
    opener: bytes | None  # the first o/g/s line before the block's first f line


_SPACE, _TAB, _LF, _CR = 32, 9, 10, 13


def _parse(block: bytes) -> _Block | None:
    """The vertices and triangles of whole OBJ lines; None: not a simple file."""
    a = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(a == _LF)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    first = a[starts]
    second = a[np.minimum(starts + 1, len(a) - 1)]
    blank_after = (second == _SPACE) | (second == _TAB)
    is_v = (first == ord("v")) & blank_after
    is_f = (first == ord("f")) & blank_after
    opens = ((first == ord("o")) | (first == ord("g")) | (first == ord("s"))) & (
        blank_after | (second == _LF) | (second == _CR))
    skip = (first == ord("#")) | (first == _LF) | (first == _CR) | (
        (first == ord("v")) & (second == ord("n"))) | opens
    if not np.all(is_v | is_f | skip):
        return None  # vt, usemtl, l, p, indented lines ...
    # trimesh names the mesh after an o line that opens the face block
    f_lines = np.flatnonzero(is_f)
    o_lines = np.flatnonzero(opens[:f_lines[0] if len(f_lines) else len(opens)])
    opener = block[starts[o_lines[0]]:ends[o_lines[0]]] if len(o_lines) else None
    word = a > _SPACE  # whitespace is space, tab, CR, LF
    starts_word = word.copy()
    starts_word[1:] &= ~word[:-1]
    words = np.add.reduceat(starts_word, starts, dtype=np.int32)
    del word, starts_word
    if np.any(words[is_v] != 4) or np.any(words[is_f] != 4):
        return None  # w or colours, polygons, trailing comments
    lengths = ends - starts + 1
    text_v = a[np.repeat(is_v, lengths)]
    text_f = a[np.repeat(is_f, lengths)]
    text_v[text_v == ord("v")] = _SPACE
    text_f[text_f == ord("f")] = _SPACE
    slash = text_f == ord("/")
    per_corner = 1
    if slash.any():  # only "a//n": the position, then the normal's index
        pairs = slash[:-1] & slash[1:]
        lines_f = int(is_f.sum())
        if int(slash.sum()) != 6 * lines_f or int(pairs.sum()) != 3 * lines_f:
            return None  # texture coordinates (a/t, a/t/n)
        text_f[slash] = _SPACE
        per_corner = 2
    try:
        v = np.fromstring(text_v.tobytes(), dtype=np.float64, sep=" ")
        f = np.fromstring(text_f.tobytes(), dtype=np.int64, sep=" ")
    except ValueError:  # a word that is not a number
        return None
    if len(v) != 3 * int(is_v.sum()) or len(f) != 3 * per_corner * int(is_f.sum()):
        return None
    f = f[::per_corner]
    if len(f) and (f.min() < 1 or f.max() >= 2**31):
        return None  # relative (negative) indices: trimesh resolves them
    return _Block(v.reshape(-1, 3), f.astype(np.int32).reshape(-1, 3), opener)
