"""The ``[[engine]]`` table of bridge.toml: the twin engine started in the bridge's process.

``twin3d serve --config bridge.toml`` starts one engine per table, beside the MQTT, OPC UA and
CSV adapters. It is an ordinary authorised client connecting to the bridge's own URL (not an
in-process source): it subscribes and publishes through the same protocol, so its token, acks,
recording and alarms are those of ``twin3d engine`` run anywhere else::

    [[engine]]
    name = "plate"                # optional; names the engine in logs and the recording
    stage = "plate.usda"          # the bound stage, relative to bridge.toml's folder
    token = "engine-secret"       # a [[token]] with publish = ["twin/*"], subscribe on the
                                  # stage's channels, alarms = ["raise"] (none on an open bridge)
    horizon = 600.0               # optional: overrides the stage's [engine] settings
    live_every = 2.0              # optional: keep the twin's live layer current (seconds)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twin3d._types import PathLike
from twin3d.bridge.adapters._base import Table
from twin3d.errors import AdapterError, Twin3DError

__all__ = ["EngineAdapter"]

_KEYS = ("name", "stage", "token", "horizon", "live_every")


class EngineAdapter:
    """One ``[[engine]]`` table (see the module docstring).

    Args:
        table: the raw TOML table.
        url: the bridge's own URL (``Bridge.url``).
        index: the table's position among the ``[[engine]]`` tables.
        base_dir: bridge.toml's folder (a relative ``stage`` is resolved against it).

    Raises:
        AdapterError: a bad key, a missing stage file, or no URL.
    """

    kind = "engine"

    def __init__(self, table: Mapping[str, Any], url: str | None, *, index: int = 0,
                 base_dir: PathLike | None = None) -> None:
        t = Table("engine", index, table, _KEYS)
        self.label = t.label
        name = t.get("name", str, None, example='"plate"')
        self.source = f"engine:{name}" if name else "engine"
        stage = Path(t.get("stage", str, required=True, example='"plate.usda"'))
        if not stage.is_absolute() and base_dir is not None:
            stage = Path(base_dir) / stage
        if not stage.is_file():
            raise t.error(f"stage {str(stage)!r} is not a file: give the bound stage (twin3d bind)")
        self.stage = stage
        self.token: str | None = t.get("token", str, None, example='"engine-secret"')
        self.horizon = t.number("horizon", 1.0, minimum=1e-9) if "horizon" in table else None
        self.live_every = t.number("live_every", 0.0, minimum=1e-9) if "live_every" in table else None
        if url is None:
            raise t.error("the engine needs the bridge's URL: start it from twin3d serve")
        self.url = url
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Build the engine (off the event loop: models may take a while) and run it."""
        from twin3d.engine.core import Engine
        from twin3d.engine.run import run_engine

        loop = asyncio.get_running_loop()
        try:
            engine = await loop.run_in_executor(None, functools.partial(
                Engine, self.stage, live_every=self.live_every, horizon=self.horizon))
            await run_engine(engine, self.url, self.token, client_id=self.source,
                             ready=self.connected)
        except Twin3DError as exc:
            raise AdapterError(f"{self.label}: {exc}") from None
