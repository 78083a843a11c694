"""The live bridge: WebSocket server, client, recording (see ``streaming/PROTOCOL.md``).

``Bridge`` (server, in-process), ``Client`` / ``SyncClient`` (publish, subscribe, acks) and
``read_recording`` are imported lazily so that ``import twin3d.bridge.adapters`` stays light.
"""

from __future__ import annotations

from twin3d._lazy import lazy_exports as _lazy_exports

__all__ = ["Bridge", "BridgeConfig", "Client", "SyncClient", "load_config", "read_recording"]

_LAZY = {
    "Bridge": "twin3d.bridge.server",
    "BridgeConfig": "twin3d.bridge.config",
    "load_config": "twin3d.bridge.config",
    "Client": "twin3d.bridge.client",
    "SyncClient": "twin3d.bridge.client",
    "read_recording": "twin3d.bridge.recorder",
}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
