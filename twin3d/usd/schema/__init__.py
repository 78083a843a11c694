"""twin3d's codeless USD schemas (plugInfo.json + generatedSchema.usda): ``Twin3DSensorAPI`` on
sensor markers, and the multiple-apply ``Twin3DBindingAPI`` (one instance per binding, e.g.
``Twin3DBindingAPI:shoulder_pan``) on prims whose properties a channel drives.

:func:`register` makes it known to USD's plugin registry; ``twin3d.usd`` calls it on import,
so it must run before anything builds ``Usd.SchemaRegistry``. A stage written with the
schema opens cleanly without it: its properties then show as plain authored attributes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pxr import Plug

__all__ = ["BINDING_API", "SENSOR_API", "register"]

#: Name of the applied API schema on sensor prims.
SENSOR_API = "Twin3DSensorAPI"
#: Name of the multiple-apply API schema of property bindings (``Twin3DBindingAPI:<name>``).
BINDING_API = "Twin3DBindingAPI"

_HERE = Path(__file__).resolve().parent


def register() -> None:
    """Register the twin3d schema plugin with USD (idempotent).

    USD builds its schema registry once; if a stage was opened before twin3d was imported,
    the schema cannot join it any more: stages still work, with the ``twin:`` properties as
    plain attributes, and a warning says to import twin3d first.
    """
    Plug.Registry().RegisterPlugins(str(_HERE / "plugInfo.json"))
    from pxr import Usd

    if Usd.SchemaRegistry().FindAppliedAPIPrimDefinition(SENSOR_API) is None:
        warnings.warn(f"USD's schema registry was built before twin3d was imported, so "
                      f"{SENSOR_API} is not typed in this process: import twin3d before "
                      "opening stages", RuntimeWarning, stacklevel=2)
