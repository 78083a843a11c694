"""Omniverse-side client: show a twin3d bridge's live values on the open USD stage.

Needs only ``pxr`` (every Omniverse Kit app has it) and ``websockets``; it does not import
twin3d. It subscribes to the channels of the sensors bound on the stage (``twin3d bind``: the
``twin:channel`` prims under ``/<defaultPrim>/Sensors``) and, for every value, authors
``twin:value``, ``twin:state`` and the marker's ``displayColor`` (ok / warn / alarm, from the
sensor's ``twin:limits:*``), so the markers change colour in the viewport as values arrive.

In Omniverse (USD Composer, Kit), Window > Script Editor::

    import sys; sys.path.append("/path/to/twin3d/streaming")
    import omniverse_client
    task = omniverse_client.start("ws://127.0.0.1:8765", token="view-secret")  # task.cancel() stops

Edits go to the stage's session layer there (nothing is saved into your files). Outside
Omniverse, on a file (the edits go to the layer you open and are saved at the end)::

    python omniverse_client.py twin3d-demo/plate.live.usdc ws://127.0.0.1:8765 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json

from pxr import Gf, Sdf, Usd, UsdGeom
from websockets.asyncio.client import connect

# the same colours as twin3d.colormap.ALARM_COLORS
COLORS = {"ok": (0.15, 0.68, 0.38), "warn": (1.0, 0.65, 0.0), "alarm": (0.9, 0.1, 0.1)}


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


def apply(prim: Usd.Prim, value: float) -> str:
    """Author one value on a sensor marker; return its state."""
    state = alarm_state(prim, value)
    prim.CreateAttribute("twin:value", Sdf.ValueTypeNames.Double).Set(float(value))
    prim.CreateAttribute("twin:state", Sdf.ValueTypeNames.Token).Set(state)
    UsdGeom.Gprim(prim).CreateDisplayColorAttr().Set([Gf.Vec3f(*COLORS[state])])
    return state


async def follow(stage: Usd.Stage, url: str, token: str | None = None) -> None:
    """Subscribe to the stage's sensor channels and author every value until cancelled."""
    prims = sensor_prims(stage)
    if not prims:
        raise RuntimeError("no sensors bound on this stage: run twin3d bind first")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": sorted(prims)}))
        async for text in ws:
            msg = json.loads(text)
            if msg.get("type") == "error":
                raise RuntimeError(f"bridge error {msg.get('code')}: {msg.get('message')}")
            samples = [msg] if msg.get("type") == "sample" else msg.get("samples", [])
            for s in samples:
                prim = prims.get(s.get("channel"))
                if prim is not None:
                    apply(prim, s["value"])


def start(url: str, token: str | None = None) -> asyncio.Task[None]:
    """In Omniverse Kit: follow the bridge on the open stage (edits in its session layer)."""
    import omni.usd  # type: ignore[import-not-found]  # only inside Omniverse

    stage = omni.usd.get_context().get_stage()
    stage.SetEditTarget(Usd.EditTarget(stage.GetSessionLayer()))
    return asyncio.ensure_future(follow(stage, url, token))


async def _run_file(path: str, url: str, token: str | None, seconds: float) -> None:
    stage = Usd.Stage.Open(path)
    try:
        await asyncio.wait_for(follow(stage, url, token), seconds)
    except asyncio.TimeoutError:
        pass
    stage.GetEditTarget().GetLayer().Save()
    print(f"{path}: saved the latest values of {len(sensor_prims(stage))} sensors")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Author a twin3d bridge's values on a stage.")
    parser.add_argument("stage")
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    try:
        asyncio.run(_run_file(args.stage, args.url, args.token, args.seconds))
    except Exception as exc:  # one line, no traceback
        raise SystemExit(f"omniverse_client: {exc}") from None
