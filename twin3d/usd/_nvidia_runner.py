"""Run NVIDIA's validation engine on one file and print its issues as JSON (stdlib + validator).

Works with either of NVIDIA's packages, which both provide ``omni.asset_validator``:
``usd-validation-nvidia`` (installed beside twin3d, the ``validate`` extra) and
``omniverse-asset-validator`` (which overwrites the same files, so it lives in its own
environment and twin3d runs this file with that environment's Python)::

    python _nvidia_runner.py FILE [--placeable]

This file must not import twin3d: the other environment does not have it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PLACEABLE = "com.nvidia.usd.minimal_placeable_visual"


def _prim(at: Any) -> str:
    if at is None:
        return ""
    if isinstance(at, list):
        return ", ".join(_prim(a) for a in at[:3])
    for chain in (("path",), ("prim_id", "path")):
        obj = at
        for attr in chain:
            obj = getattr(obj, attr, None)
        if obj is not None and str(obj):
            return str(obj)
    if type(at).__name__ == "StageId":
        return "(stage)"
    return str(getattr(at, "identifier", "") or "")


def issues(path: str, placeable: bool = False) -> dict[str, Any]:
    """Return ``{"package": ..., "version": ..., "issues": [{severity, rule, prim, message, fix}]}``."""
    import omni.asset_validator as av

    engine = av.ValidationEngine(init_rules=True)
    if placeable:
        registry = av.FeatureRegistry()  # the newer package prefixes ids with com.nvidia.usd.
        feature = registry.find(PLACEABLE, None) or registry.find(PLACEABLE.rsplit(".", 1)[-1])
        if feature is None:
            raise SystemExit(f"feature {PLACEABLE} not found in this validator")
        engine.enable_feature(feature)
    results = engine.validate(path)
    out = []
    for issue in results.issues():
        rule = issue.rule.__name__ if issue.rule else (getattr(issue, "code", None) or "")
        fix = issue.suggestion.message if issue.suggestion is not None else ""
        out.append({"severity": issue.severity.name, "rule": str(rule), "prim": _prim(issue.at),
                    "message": " ".join(str(issue.message).split()), "fix": str(fix or "")})
    package = "usd-validation-nvidia"
    try:
        from importlib.metadata import version

        try:
            ver = version("usd-validation-nvidia")
        except Exception:
            package, ver = "omniverse-asset-validator", version("omniverse-asset-validator")
    except Exception:
        ver = "?"
    return {"package": package, "version": ver, "issues": out}


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)
    args = sys.argv[1:]
    print(json.dumps(issues(args[0], "--placeable" in args)))
