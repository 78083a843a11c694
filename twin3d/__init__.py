"""twin3d: live 3D visual twins on OpenUSD.

The public API is re-exported here; see ``__all__``. Heavy rooms (USD, fields, view,
bridge) are imported lazily, so ``import twin3d`` stays cheap.
"""

from __future__ import annotations

import os

from twin3d._lazy import lazy_exports as _lazy_exports
from twin3d.errors import Twin3DError
from twin3d.model import Limits, Sample, Sensor

__version__ = "0.1.0"

# twin3d's codeless USD schema (Twin3DSensorAPI): USD reads PXR_PLUGINPATH_NAME when it first
# loads its plugins, so setting it here (no pxr import) registers the schema for any stage
# opened after ``import twin3d``; twin3d.usd also registers it directly.
_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "usd", "schema")
if _SCHEMA_DIR not in os.environ.get("PXR_PLUGINPATH_NAME", "").split(os.pathsep):
    os.environ["PXR_PLUGINPATH_NAME"] = os.pathsep.join(
        p for p in (_SCHEMA_DIR, os.environ.get("PXR_PLUGINPATH_NAME")) if p)

# name -> module that defines it; imported on first access
_LAZY: dict[str, str] = {
    "View": "twin3d.view",
    "Recording": "twin3d.usd.timesamples",
    "SensorMap": "twin3d.sensors",
    "Twin": "twin3d.twin",
    "bind_sensors": "twin3d.usd.bind",
    "load_sensor_map": "twin3d.sensors",
    "record_samples": "twin3d.usd.timesamples",
    "convert": "twin3d.cad.convert",
    "Bridge": "twin3d.bridge.server",
    "Client": "twin3d.bridge.client",
    "Engine": "twin3d.engine.core",
    "SyncClient": "twin3d.bridge.client",
    "start_adapters": "twin3d.bridge.adapters",
    "read_csv": "twin3d.bridge.adapters.csv",
}

__all__ = [
    "Bridge",
    "Client",
    "Engine",
    "Limits",
    "Recording",
    "Sample",
    "Sensor",
    "SensorMap",
    "SyncClient",
    "Twin",
    "Twin3DError",
    "View",
    "__version__",
    "bind_sensors",
    "convert",
    "load_sensor_map",
    "read_csv",
    "record_samples",
    "start_adapters",
]

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
