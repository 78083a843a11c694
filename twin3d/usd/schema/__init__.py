"""twin3d's codeless USD schema: ``Twin3DSensorAPI`` (plugInfo.json + generatedSchema.usda).

:func:`register` makes it known to USD's plugin registry; ``twin3d.usd`` calls it on import,
so it must run before anything builds ``Usd.SchemaRegistry``. A stage written with the
schema opens cleanly without it: its properties then show as plain authored attributes.
"""

from __future__ import annotations

from pathlib import Path

from pxr import Plug

__all__ = ["SENSOR_API", "register"]

#: Name of the applied API schema on sensor prims.
SENSOR_API = "Twin3DSensorAPI"

_HERE = Path(__file__).resolve().parent


def register() -> None:
    """Register the twin3d schema plugin with USD (idempotent)."""
    Plug.Registry().RegisterPlugins(str(_HERE / "plugInfo.json"))
