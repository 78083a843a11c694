"""The engine on a bridge: subscribe to the twin's channels, publish what it derives, raise alarms.

The engine is an ordinary authorised client of the bridge (its token needs ``publish =
["twin/*"]``, ``subscribe`` on the twin's channels and ``alarms = ["raise"]``): what it publishes
is acknowledged, recorded, subscribable and exported like any sensor. It takes whatever
arrived while it was busy in one feed (so it never falls behind a fast stream: it judges the
newest values), and when nothing arrives for a health period it moves its clock on by the
wall-clock time since the last reading, so a sensor that went quiet is found dead.

Examples:
    >>> asyncio.run(run_engine(Engine("plate.usda"), "ws://127.0.0.1:8765", "engine-secret"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import glob
import logging
import time
from typing import Any

from twin3d.engine.core import Engine, Step
from twin3d.model import Sample

__all__ = ["MAX_PATTERNS", "run_engine"]

log = logging.getLogger("twin3d.engine")
#: Up to this many channels are subscribed by name; more: everything (``*``), filtered here.
MAX_PATTERNS = 200


async def run_engine(engine: Engine, url: str, token: str | None = None, *,
                     client_id: str | None = None, ready: asyncio.Event | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Run ``engine`` on the bridge at ``url`` until ``stop`` is set or the task is cancelled.

    Args:
        engine: the engine.
        url: ``ws://HOST:PORT`` of the bridge.
        token: the engine's token, if the bridge wants one.
        client_id: names the engine in the recording (default ``twin3d-engine``).
        ready: set once the engine is subscribed and its channels are described.
        stop: set it to stop the engine cleanly (everything published is flushed).

    Raises:
        AuthError: the token is wrong or lacks a right (publish ``twin/*``, subscribe, raise).
        BridgeError: the bridge cannot be reached.
    """
    from twin3d.bridge import Client

    stop = stop or asyncio.Event()
    async with Client(url, token, client_id=client_id or "twin3d-engine") as client:
        for channel, meta in engine.describe().items():
            await client.describe(channel, **meta)
        channels = engine.channels
        patterns = [glob.escape(c) for c in channels] if len(channels) <= MAX_PATTERNS else ["*"]
        sub = await client.subscribe(patterns)
        if ready is not None:
            ready.set()
        log.info("engine on %s: %d channels in, %d derived channels", url, len(channels),
                 len(engine.describe()))
        idle_since, idle_base = time.monotonic(), engine.now
        reconciled = False
        waiter: asyncio.Task[list[Sample]] | None = None
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if waiter is None:
                    waiter = asyncio.ensure_future(anext(sub))
                done, _ = await asyncio.wait({waiter, stopper}, timeout=engine.settings.period,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    break
                if waiter in done:
                    batch = list(waiter.result())
                    waiter = None
                    while not sub.queue.empty():       # whatever else came meanwhile
                        batch += sub.queue.get_nowait()
                    step = engine.feed(batch)
                    idle_since, idle_base = time.monotonic(), engine.now
                else:                                   # nothing for a period: the clock runs on
                    step = engine.advance(idle_base + (time.monotonic() - idle_since))
                await _send(client, step)
                if not reconciled and engine.health:
                    await _close_stale(client, engine)
                    reconciled = True
        finally:
            stopper.cancel()
            if waiter is not None:
                waiter.cancel()
            await client.flush(timeout=10)


async def _send(client: Any, step: Step) -> None:
    if step.samples:
        await client.publish_many(step.samples)
    for a in step.alarms:
        await client.raise_alarm(a.channel, a.kind, a.active, value=a.value, limit=a.limit,
                                 message=a.message)


async def _close_stale(client: Any, engine: Engine) -> None:
    """Clear the open alarms of the engine's kinds on its channels that no longer hold (left by
    an earlier run of the engine: the bridge keeps open alarms across restarts)."""
    held = {(a.channel, a.kind) for a in engine.active_alarms}
    mine = set(engine.channels)
    for alarm in list(client.alarms.values()):
        key = (alarm.get("channel"), alarm.get("kind"))
        if alarm.get("state") in ("active", "acknowledged") and key[0] in mine and key not in held:
            await client.raise_alarm(str(key[0]), str(key[1]), False)
