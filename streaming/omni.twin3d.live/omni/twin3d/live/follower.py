"""Follow a twin3d bridge on an open USD stage: live values, alarm states and colours.

Needs only ``pxr`` (every Omniverse Kit app has it) and ``websockets``; it does not import
twin3d. It subscribes to the channels of the sensors bound on the stage (``twin3d bind``: the
``twin:channel`` prims under ``/<defaultPrim>/Sensors``) and authors, for every value,
``twin:value``, ``twin:state`` and the marker's ``displayColor`` (ok / warn / alarm from the
sensor's ``twin:limits:*``) into one layer: in Kit the session layer, so nothing is saved into
your files. It reconnects with back-off when the bridge goes away, stops on a refused token,
and keeps what the window shows (:attr:`Follower.status` and friends) up to date.

Outside Kit, on a file (the values go into the layer you open and are saved at the end)::

    python follower.py twin3d-demo/plate.live.usdc ws://127.0.0.1:8765 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from pxr import Gf, Sdf, Usd, UsdGeom
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

__all__ = ["COLORS", "Follower", "alarm_state", "sensor_prims"]

#: marker colours per state, as twin3d authors them: linear RGB, as USD's displayColor is
#: (twin3d.colormap.ALARM_COLORS converted from sRGB; a test checks they agree)
COLORS = {"ok": (0.0196, 0.42, 0.1193), "warn": (1.0, 0.3801, 0.0), "alarm": (0.7874, 0.01, 0.01)}


def sensor_prims(stage: Usd.Stage) -> dict[str, Usd.Prim]:
    """``{channel: marker prim}`` of the sensors bound on ``stage``."""
    root = stage.GetDefaultPrim()
    scope = root.GetChild("Sensors") if root else None
    out = {}
    for prim in scope.GetChildren() if scope else []:
        attr = prim.GetAttribute("twin:channel")
        if attr and attr.Get():
            out[str(attr.Get())] = prim
    return out


def alarm_state(prim: Usd.Prim, value: float) -> str:
    """``ok``, ``warn`` or ``alarm`` from the sensor's ``twin:limits:*`` attributes."""
    def limit(name: str) -> float | None:
        attr = prim.GetAttribute(f"twin:limits:{name}")
        return attr.Get() if attr and attr.HasAuthoredValue() else None

    def beyond(low: str, high: str) -> bool:
        lo, hi = limit(low), limit(high)
        return (lo is not None and value < lo) or (hi is not None and value > hi)

    if value != value or beyond("alarmLow", "alarmHigh"):  # NaN is an alarm
        return "alarm"
    return "warn" if beyond("warnLow", "warnHigh") else "ok"


class Follower:
    """Authors a bridge's live values on ``stage``, reconnecting until stopped.

    Args:
        stage: the open stage (with sensors bound by ``twin3d bind``).
        url: ``ws://host:port`` of the bridge.
        token: a token allowed to subscribe (``None`` for an open bridge).
        layer: where values go (default: the stage's session layer).

    Raises:
        ValueError: no sensors are bound on the stage.
    """

    def __init__(self, stage: Usd.Stage, url: str, token: str | None = None, *,
                 layer: Sdf.Layer | None = None) -> None:
        self.stage, self.url, self.token = stage, url, token
        self.layer = layer if layer is not None else stage.GetSessionLayer()
        self.prims = sensor_prims(stage)
        if not self.prims:
            raise ValueError("no sensors bound on this stage: run twin3d bind first")
        #: what the window shows
        self.status = "not connected"
        self.values = 0
        self.last_time: float | None = None      # source time of the newest value (Unix s)
        self.errors: deque[str] = deque(maxlen=20)
        self._task: asyncio.Task[None] | None = None

    @property
    def channels(self) -> int:
        return len(self.prims)

    def start(self) -> asyncio.Task[None]:
        """Follow in the running event loop (Kit has one); :meth:`stop` ends it."""
        self._task = asyncio.ensure_future(self.run())
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.status = "disconnected"

    def _error(self, text: str) -> None:
        self.errors.append(f"{time.strftime('%H:%M:%S')} {text}")

    async def run(self) -> None:
        """Connect, subscribe, author; on a lost bridge retry with back-off; stop on a refused token."""
        delay = 0.5
        while True:
            try:
                await self._follow()
                delay = 0.5
                self.status = f"disconnected (the bridge closed); retrying in {delay:g} s"
            except PermissionError as exc:     # wrong token: retrying would not help
                self.status = f"refused: {exc}"
                self._error(str(exc))
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidStatus, InvalidURI) as exc:
                self.status = f"disconnected ({type(exc).__name__}); retrying in {delay:g} s"
                self._error(f"bridge {self.url}: {exc}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _follow(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self.status = f"connecting to {self.url}"
        try:
            ws = await connect(self.url, additional_headers=headers, open_timeout=10)
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise PermissionError("the bridge refused the token (HTTP 401)") from None
            raise
        async with ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": sorted(self.prims)}))
            async for text in ws:
                msg = json.loads(text)
                kind = msg.get("type")
                if kind == "subscribed":
                    self.status = f"connected to {self.url}"
                elif kind == "error":
                    if str(msg.get("code", "")).startswith("auth") or msg.get("code") == "forbidden":
                        raise PermissionError(f"{msg.get('code')}: {msg.get('message')}")
                    self._error(f"{msg.get('code')}: {msg.get('message')}")
                elif kind in ("sample", "samples"):
                    self.apply([msg] if kind == "sample" else msg["samples"])

    def apply(self, samples: list[dict[str, Any]]) -> None:
        """Author a batch of samples (one change block)."""
        with Usd.EditContext(self.stage, self.layer), Sdf.ChangeBlock():
            for s in samples:
                prim = self.prims.get(s.get("channel", ""))
                if prim is None:
                    continue
                value = float(s["value"])
                state = alarm_state(prim, value)
                prim.CreateAttribute("twin:value", Sdf.ValueTypeNames.Double).Set(value)
                prim.CreateAttribute("twin:state", Sdf.ValueTypeNames.Token).Set(state)
                UsdGeom.Gprim(prim).CreateDisplayColorAttr().Set([Gf.Vec3f(*COLORS[state])])
                self.values += 1
                t = s.get("time")
                if isinstance(t, int | float) and (self.last_time is None or t > self.last_time):
                    self.last_time = float(t)


async def _run_file(path: str, url: str, token: str | None, seconds: float) -> None:
    stage = Usd.Stage.Open(path)
    follower = Follower(stage, url, token, layer=stage.GetRootLayer())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(follower.run(), seconds)
    stage.GetRootLayer().Save()
    print(f"{path}: saved the latest values of {follower.channels} sensors ({follower.values} values)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Author a twin3d bridge's values on a stage file.")
    parser.add_argument("stage")
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    try:
        asyncio.run(_run_file(args.stage, args.url, args.token, args.seconds))
    except Exception as exc:  # one line, no traceback
        raise SystemExit(f"follower: {exc}") from None
