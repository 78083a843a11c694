"""Prim names from the names in CAD files: valid, readable, unique among siblings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["prim_name", "unique_names"]

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")


def prim_name(text: str, fallback: str = "Part") -> str:
    """Return a readable, valid ASCII USD prim name for ``text``.

    Accents are transliterated (``Würfel`` -> ``Wurfel``); letters with no ASCII form (CJK,
    Cyrillic ...) are kept as a Unicode identifier (valid prim names since USD 24);
    other illegal characters become ``_``; a leading digit gets a ``_`` prefix; names with
    nothing usable left become ``fallback``.

    Examples:
        >>> prim_name("d8 (1)"), prim_name("Würfel-2"), prim_name("3mf part"), prim_name("部品 1")
        ('d8_1', 'Wurfel_2', '_3mf_part', '部品_1')
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = _NOT_IDENT.sub("_", ascii_text).strip("_")
    lost = sum(ch.isalnum() for ch in text) - sum(ch.isalnum() for ch in ascii_text)
    if lost > 0 and not any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", text)):
        # letters with no ASCII form (CJK, Cyrillic ...): keep a Unicode identifier (USD >= 24)
        uni = "".join(c if ("a" + c).isidentifier() else "_"
                      for c in unicodedata.normalize("NFC", text))
        name = re.sub("_+", "_", uni).strip("_")
    if not name:
        return fallback
    if name[0].isdigit():
        name = "_" + name
    return name


def unique_names(names: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """Make ``names`` unique (and distinct from ``taken``) by appending ``_1``, ``_2`` ...

    Examples:
        >>> unique_names(["Object", "Object", "Object_1"])
        ['Object', 'Object_2', 'Object_1']
    """
    seen = set(taken)
    counts: dict[str, int] = {}
    wanted = set(names)
    out: list[str] = []
    for n in names:
        cand = n
        if cand in seen:
            k = counts.get(n, 0)
            while True:
                k += 1
                cand = f"{n}_{k}"
                if cand not in seen and cand not in wanted:
                    break
            counts[n] = k
        seen.add(cand)
        out.append(cand)
    return out
