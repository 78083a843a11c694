"""Weld a triangle soup: merge equal vertices (to 1e-8) and number them well for ``.usdc``.

STL stores every triangle's three corners; USD wants shared points. ``weld`` groups equal
(rounded) corners by a 64-bit hash and one packed sort, verifies every group exactly, and
numbers the welded points along the mesh's longest extent, which keeps pxr's crate writer
fast and lean on the face indices (measured in ``benchmarks/RESULTS.md``, "Conversion").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["WeldCollision", "packed_argsort", "row_hashes", "weld", "weld_chunks"]

_CHUNK = 1 << 18  # rows per chunk: temporaries stay a few MiB


#: odd 64-bit constants (golden ratio, xxHash's primes): multiply-xor steps spread the bits
_K0, _K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), \
    np.uint64(0x165667B19E3779F9)


def _column(q: npt.NDArray[np.floating[Any]], k: int) -> npt.NDArray[np.uint64]:
    """The bit patterns of column ``k`` of ``q`` as a uint64 array."""
    return q.view(np.uint32 if q.dtype == np.float32 else np.uint64)[:, k].astype(np.uint64)


def row_hashes(v: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint64]:
    """(n,) 64-bit hash of each row of ``v`` rounded to 8 decimals, computed in chunks.

    Multiply-xor steps over the three coordinates' bits (8 array passes a row, 2.5x
    faster than splitmix64's finaliser on each): collisions are never trusted anyway,
    since every group is checked row by row.

    Args:
        v: (n, 3) float32 or float64 points.
    """
    out = np.empty(len(v), dtype=np.uint64)
    for i in range(0, len(v), _CHUNK):
        q = _rounded(v[i:i + _CHUNK])
        h = _column(q, 0)
        h *= _K0
        h ^= _column(q, 1)
        h *= _K1
        h ^= _column(q, 2)
        h *= _K2
        h ^= h >> np.uint64(32)
        out[i:i + _CHUNK] = h
    return out


def _bits(v: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The bit patterns of ``v`` rounded to 8 decimals (equal bits: the same point)."""
    q = _rounded(v)
    return q.view(np.uint32 if q.dtype == np.float32 else np.uint64)


def _hash_groups(v: npt.NDArray[np.floating[Any]], packed: bool) -> tuple[
        npt.NDArray[np.integer[Any]], npt.NDArray[np.integer[Any]]]:
    """Group rows of ``v`` by the hash of their rounded values: (group of each row, first
    row of each group). The hashes live only in here (freed before the group arrays grow).

    ``packed``: sort the hash's top bits with the row index in the low bits, a plain
    ``np.sort`` (SIMD, ~5x faster than ``argsort``); the caller verifies the groups and
    retries unpacked (the full 64-bit hash, ``argsort``) on a collision of the shorter hash.
    Indices are int32 below 2**31 rows (half the memory).
    """
    h = row_hashes(v)
    n = len(h)
    itype = np.int32 if n < 2**31 else np.int64
    if packed:
        bits = np.uint64(max(1, (n - 1).bit_length()))
        h >>= bits
        h <<= bits
        for i in range(0, n, _CHUNK):
            h[i:i + _CHUNK] |= np.arange(i, min(i + _CHUNK, n), dtype=np.uint64)
        h.sort()
        order = np.empty(n, dtype=itype)
        mask = (np.uint64(1) << bits) - np.uint64(1)
        for i in range(0, n, _CHUNK):
            order[i:i + _CHUNK] = h[i:i + _CHUNK] & mask
        h >>= bits
        key = h
    else:
        order = np.argsort(h, kind="stable").astype(itype)
        key = h[order]
    del h
    start = np.empty(n, dtype=bool)
    start[:1] = True
    np.not_equal(key[1:], key[:-1], out=start[1:])
    del key
    group: npt.NDArray[np.integer[Any]] = np.cumsum(start, dtype=itype)
    np.subtract(group, 1, out=group)
    first: npt.NDArray[Any] = order[start]
    del start
    inverse: npt.NDArray[np.integer[Any]] = np.empty(n, dtype=itype)
    inverse[order] = group
    return inverse, first


def weld(vertices: npt.NDArray[Any], faces: npt.NDArray[Any] | None, *,
         overwrite_faces: bool = False) -> tuple[
        npt.NDArray[np.floating[Any]], npt.NDArray[np.integer[Any]]]:
    """Merge vertices equal to 8 decimals (trimesh's merge tolerance) and drop unused ones.

    ``faces`` None means a triangle soup: rows 3 j, 3 j + 1, 3 j + 2 are face j's corners.
    Positions only: normals, UVs and colours never keep points apart. Rows are grouped by
    a hash of the rounded coordinates' bits (one ``np.sort`` of n keys, each the hash's top
    bits with the row index below them, instead of a row-wise unique); every row's rounded
    bits must then equal its group's first row's, else (a collision) the full 64-bit hash
    is argsorted, and if that collides too the exact row-wise unique is used.
    Works in the source's precision (float32 STL stays float32), freeing temporaries
    early: peak memory is a few times the vertex array.

    ``overwrite_faces``: relabel ``faces`` in place (integers, contiguous) and return it,
    instead of a new array the size of the faces.

    Returns:
        ((k, 3) welded points, sorted along their longest extent (ties in order of their
        first row), and (m, 3) faces into them, int32 below 2**31 corners).
    """
    v = np.asarray(vertices)
    if v.dtype not in (np.float32, np.float64):
        v = v.astype(np.float64)
    f = None
    if faces is not None:
        f = np.asarray(faces)
        used = np.zeros(len(v), dtype=bool)
        used[f.ravel()] = True
        if not used.all():
            keep = np.flatnonzero(used)
            remap = np.full(len(v), -1, dtype=np.int64)
            remap[keep] = np.arange(len(keep))
            v, f = v[keep], remap[f]
        del used
    inverse, first = _groups(v)
    # number the welded points along their longest extent (ties: first row of the group):
    # every face then uses nearby indices, and the .usdc writer's integer compression (a
    # hash map of index deltas) stays fast and small; numbered by first use it took ~0.6 s
    # for 3.9M indices, and in a scattered order it needed ~6x the index array's memory
    if f is None:
        tri = inverse.reshape(-1, 3)
    elif overwrite_faces and f is faces and f.flags.c_contiguous and f.flags.writeable \
            and f.dtype.kind == "i":
        tri = f
        flat = f.reshape(-1)
        for i in range(0, len(flat), _CHUNK):
            flat[i:i + _CHUNK] = inverse[flat[i:i + _CHUNK]]
    else:
        tri = inverse[f]
    del inverse
    return _along_longest_extent(v[first], tri, first)


def weld_chunks(chunks: Iterable[npt.NDArray[np.floating[Any]]], n_rows: int) -> tuple[
        npt.NDArray[np.floating[Any]], npt.NDArray[np.integer[Any]]]:
    """:func:`weld` of a triangle soup that arrives in chunks of corner rows (``n_rows`` in
    all), without ever holding the soup: the same points and faces as ``weld(soup, None)``.

    Each chunk is grouped on its own (as :func:`weld` groups the whole soup), and its distinct
    points are looked up by their full 64-bit hash in a sorted table of the points seen so
    far. Memory: the (n_rows / 3, 3) faces, the points, the table (12 bytes a point) and one
    chunk's temporaries. A soup three times the welded mesh's size (a binary STL's) is
    never in memory.

    Raises:
        WeldCollision: two different points share a 64-bit hash (weld the whole soup instead).
    """
    itype = np.int32 if n_rows < 2**31 else np.int64
    ids: npt.NDArray[np.integer[Any]] = np.empty(n_rows, dtype=itype)  # corner row -> point
    keys = np.zeros(0, dtype=np.uint64)  # sorted hashes of the points so far
    key_ids = np.zeros(0, dtype=itype)  # ... and their point numbers
    pts: npt.NDArray[Any] | None = None
    # each point's first corner row: weld()'s ties
    first_row: npt.NDArray[np.integer[Any]] = np.zeros(0, dtype=itype)
    k = at = 0
    for chunk in chunks:
        inverse, first = _groups(chunk)
        rows = chunk[first]  # the chunk's distinct points, one row each
        h = row_hashes(rows)
        pos = np.searchsorted(keys, h)
        hit = np.zeros(len(h), dtype=bool)
        inside = pos < len(keys)
        hit[inside] = keys[pos[inside]] == h[inside]
        point: npt.NDArray[np.integer[Any]] = np.empty(len(h), dtype=itype)
        point[hit] = key_ids[pos[hit]]
        if pts is None:  # a closed mesh has about one point per 6 corners
            pts = np.empty((max(1024, len(rows), n_rows // 5), 3), dtype=chunk.dtype)
            first_row = np.empty(len(pts), dtype=itype)
        if not _same_rounded(rows[hit], np.take(pts, point[hit], axis=0)):
            raise WeldCollision("two different points share a 64-bit hash")
        new = np.flatnonzero(~hit)
        point[new] = np.arange(k, k + len(new), dtype=itype)
        if k + len(new) > len(pts):
            size = max(3 * len(pts) // 2, k + len(new))
            pts = np.concatenate([pts[:k], np.empty((size - k, 3), dtype=pts.dtype)])
            first_row = np.concatenate([first_row[:k], np.empty(size - k, dtype=itype)])
        pts[k:k + len(new)] = rows[new]
        first_row[k:k + len(new)] = first[new] + at
        k += len(new)
        order = np.argsort(h[new], kind="stable")
        hn = h[new][order]
        if np.any(hn[1:] == hn[:-1]):
            raise WeldCollision("two different points share a 64-bit hash")
        where = np.searchsorted(keys, hn)
        keys = np.insert(keys, where, hn)
        key_ids = np.insert(key_ids, where, point[new][order])
        ids[at:at + len(chunk)] = point[inverse]
        at += len(chunk)
    if at != n_rows or n_rows % 3 or pts is None:
        raise ValueError(f"expected {n_rows} corner rows (a multiple of 3), got {at}")
    del keys, key_ids
    return _along_longest_extent(pts[:k], ids.reshape(-1, 3), first_row[:k])


class WeldCollision(Exception):
    """:func:`weld_chunks` met two different points with the same 64-bit hash."""


def _groups(v: npt.NDArray[np.floating[Any]]) -> tuple[
        npt.NDArray[np.integer[Any]], npt.NDArray[np.integer[Any]]]:
    """Exact groups of the rows of ``v`` equal to 8 decimals: (group of each row, first row
    of each group). Hash groups are checked row by row; on a collision of the packed hash
    the full 64-bit hash is argsorted, and if that collides too the row-wise unique is used."""
    for packed in (True, False):
        inverse, first = _hash_groups(v, packed)
        # exact check: every row's rounded bits equal its group's first row's
        if all(_same_rounded(v[i:i + _CHUNK], np.take(v, first[inverse[i:i + _CHUNK]], axis=0))
               for i in range(0, len(v), _CHUNK)):  # np.take: ~4x faster than v[idx]
            return inverse, first
    q = _rounded(v)
    rows = np.ascontiguousarray(q).view(np.dtype((np.void, 3 * q.itemsize))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return inverse.ravel(), first


def _along_longest_extent(pts: npt.NDArray[np.floating[Any]], tri: npt.NDArray[np.integer[Any]],
                          tie: npt.NDArray[np.integer[Any]] | None) -> tuple[
        npt.NDArray[np.floating[Any]], npt.NDArray[np.integer[Any]]]:
    """Renumber points along their longest extent (ties by ``tie``, None: by number);
    ``tri`` is relabelled in place, in chunks."""
    axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
    rank = packed_argsort(_sortable_bits(pts[:, axis]), tie)
    relabel = np.empty(len(rank), dtype=tri.dtype)
    relabel[rank] = np.arange(len(rank), dtype=tri.dtype)
    flat = tri.reshape(-1)
    for i in range(0, len(flat), _CHUNK):
        flat[i:i + _CHUNK] = relabel[flat[i:i + _CHUNK]]
    return pts[rank], tri


def _same_rounded(a: npt.NDArray[np.floating[Any]], b: npt.NDArray[np.floating[Any]]) -> bool:
    """Whether rows of ``a`` and ``b`` are equal to 8 decimals (equal values: no rounding)."""
    return bool(np.array_equal(a, b)) or bool(np.array_equal(_bits(a), _bits(b)))


def _sortable_bits(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint64]:
    """(n,) uint64 keys ordered as the float32 values of ``x`` are (for a packed sort)."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    neg = b >= np.uint64(1 << 31)
    b[neg] = ~b[neg] & np.uint64(0xFFFFFFFF)
    b[~neg] |= np.uint64(1 << 31)
    return b


def packed_argsort(key: npt.NDArray[np.uint64],
                   tie: npt.NDArray[np.integer[Any]] | None = None) -> npt.NDArray[np.int64]:
    """Indices that sort rows by ``key``, then by ``tie`` (distinct non-negative integers;
    None: by row, a stable sort). ``key`` is overwritten (it becomes the result's buffer).

    One ``np.sort`` of ``key`` and ``tie`` packed in a uint64 (SIMD, several times faster
    than a stable ``argsort``); falls back to ``np.lexsort`` when they do not fit in 64 bits.
    """
    n = len(key)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    top = n - 1 if tie is None else int(tie.max())
    tbits = max(1, top.bit_length())
    if tbits + max(1, int(key.max()).bit_length()) > 64:
        return np.lexsort((np.arange(n) if tie is None else tie, key)).astype(np.int64)
    packed = key
    packed <<= np.uint64(tbits)
    for i in range(0, n, _CHUNK):  # the row or tie below the key, a chunk at a time
        packed[i:i + _CHUNK] |= (np.arange(i, min(i + _CHUNK, n), dtype=np.uint64) if tie is None
                                 else tie[i:i + _CHUNK].astype(np.uint64))
    packed.sort()
    packed &= np.uint64((1 << tbits) - 1)
    order = packed.view(np.int64)
    if tie is None:
        return order
    where = np.empty(top + 1, dtype=np.int32 if n < 2**31 else np.int64)
    where[tie] = np.arange(n, dtype=where.dtype)
    order[:] = where[order]
    return order


def _rounded(v: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
    """``v`` rounded to 8 decimals (in units of 1e-8), with -0.0 made 0.0 (equal bits)."""
    q = v * v.dtype.type(1e8)
    np.rint(q, out=q)
    q += 0.0
    return q
