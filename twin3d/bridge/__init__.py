"""The live bridge: WebSocket server, client, recording (see ``streaming/PROTOCOL.md``).

``Bridge`` (server, in-process), ``Client`` / ``SyncClient`` (publish, subscribe, acks) and
``read_recording`` are imported lazily so that ``import twin3d.bridge.adapters`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Bridge", "BridgeConfig", "Client", "SyncClient", "load_config", "read_recording"]

_LAZY = {
    "Bridge": "twin3d.bridge.server",
    "BridgeConfig": "twin3d.bridge.config",
    "load_config": "twin3d.bridge.config",
    "Client": "twin3d.bridge.client",
    "SyncClient": "twin3d.bridge.client",
    "read_recording": "twin3d.bridge.recorder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twin3d.bridge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
