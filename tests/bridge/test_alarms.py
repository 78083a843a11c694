"""Alarms as events: the ISA-18.2 states (pure), and through a real bridge with tokens, a
recording, a restart and the CSV export."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest
import websockets
from bridge_helpers import run, serve_process

from twin3d.bridge import Client
from twin3d.bridge.alarms import AlarmBook
from twin3d.cli import main
from twin3d.errors import AuthError, ProtocolViolation


def test_isa_18_2_transitions() -> None:
    book = AlarmBook()
    a = book.raise_alarm("p/t", "alarm_high", 96.0, 95.0, "", 1.0)
    assert a is not None and (a.id, a.state) == (1, "active")
    assert book.raise_alarm("p/t", "alarm_high", 97.0, 95.0, "", 2.0) is None     # still active: no event
    returned = book.clear("p/t", "alarm_high", 3.0)                               # cleared, not acknowledged
    assert returned is not None and returned.state == "returned" and returned.cleared == 3.0
    again = book.raise_alarm("p/t", "alarm_high", 98.0, 95.0, "", 4.0)           # back before anyone looked
    assert again is not None and (again.id, again.state, again.cleared) == (1, "active", None)
    acked = book.acknowledge(1, "operator", 5.0)
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "operator")
    with pytest.raises(ProtocolViolation, match="acknowledged already"):
        book.acknowledge(1, "operator", 5.5)
    closed = book.clear("p/t", "alarm_high", 6.0)
    assert closed is not None and closed.state == "cleared" and book.open_alarms() == []
    second = book.raise_alarm("p/t", "alarm_high", 99.0, 95.0, "", 7.0)          # a new alarm
    assert second is not None and second.id == 2
    book.clear("p/t", "alarm_high", 8.0)
    assert book.acknowledge(2, "operator", 9.0).state == "cleared"                 # returned -> acked: closed
    with pytest.raises(ProtocolViolation, match="alarm 7 does not exist"):
        book.acknowledge(7, "operator", 9.0)


TOKENS = """
[[token]]
name = "engine"
token = "engine-secret"
publish = ["twin/*"]
subscribe = ["*"]
alarms = ["raise"]

[[token]]
name = "operator"
token = "operator-secret"
subscribe = ["*"]
alarms = ["acknowledge"]

[[token]]
name = "viewer"
token = "viewer-secret"
subscribe = ["*"]
"""


def test_raise_acknowledge_clear_record_and_export(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(TOKENS)
    rec = tmp_path / "run.sqlite"

    async def phase1(url: str) -> tuple[dict, dict, str, str]:
        async with Client(url, "engine-secret") as engine, Client(url, "operator-secret") as op, \
                Client(url, "viewer-secret") as viewer:
            await op.subscribe(["plate/*"])
            await viewer.subscribe(["plate/*"])
            await engine.raise_alarm("plate/tc3", "alarm_high", value=96.2, limit=95.0,
                                     message="above the alarm limit")
            raised = await op.wait_alarm(lambda a: a["state"] == "active", 5)
            await viewer.ack_alarm(raised["id"])          # a viewer may look, not acknowledge
            with pytest.raises(AuthError, match="may not acknowledge alarms"):
                await viewer.wait_alarm(lambda a: a["state"] == "acknowledged", 5)
            with pytest.raises(AuthError, match="may not raise alarms"):
                await op.raise_alarm("plate/tc1", "alarm_high")
                await op.wait_alarm(lambda a: a["channel"] == "plate/tc1", 5)
            await op.ack_alarm(raised["id"])
            acked = await viewer.wait_alarm(lambda a: a["state"] == "acknowledged", 5)
            await engine.raise_alarm("plate/tc5", "suspect", message="drifting 0.05 K/s")
            await viewer.wait_alarm(lambda a: a["channel"] == "plate/tc5", 5)
            return raised, acked, op.errors[-1][0] if op.errors else "", viewer.errors[-1][0]

    async def phase2(url: str) -> dict:   # after a restart: the open alarms are still there
        async with Client(url, "viewer-secret") as viewer, Client(url, "engine-secret") as engine:
            await viewer.subscribe(["plate/*"])
            await viewer.wait_alarm(lambda a: a["channel"] == "plate/tc5", 5)
            await engine.raise_alarm("plate/tc3", "alarm_high", active=False)
            return await viewer.wait_alarm(lambda a: a["channel"] == "plate/tc3" and a["state"] == "cleared", 5)

    with serve_process(tmp_path, "--config", str(config), "--record", str(rec), name="first") as (_, url):
        raised, acked, op_error, viewer_error = run(phase1(url))
    with serve_process(tmp_path, "--config", str(config), "--record", str(rec), name="second") as (_, url):
        cleared = run(phase2(url))

    assert raised["channel"] == "plate/tc3" and raised["limit"] == 95.0 and raised["value"] == 96.2
    assert (op_error, viewer_error) == ("forbidden", "forbidden")
    assert acked["acknowledged_by"] == "operator" and acked["acknowledged"] >= raised["raised"]
    assert cleared["id"] == raised["id"] and cleared["cleared"] >= acked["acknowledged"]

    out = tmp_path / "alarms.csv"
    assert main(["export", str(rec), "--alarms", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["id"], r["channel"], r["kind"], r["state"], r["acknowledged_by"]) for r in rows] == [
        ("1", "plate/tc3", "alarm_high", "cleared", "operator"), ("2", "plate/tc5", "suspect", "active", "")]
    assert rows[0]["message"] == "above the alarm limit" and float(rows[0]["limit"]) == 95.0


def test_bad_alarm_messages_are_one_error_each() -> None:
    from twin3d.bridge import Bridge

    async def go() -> list[str]:
        bridge = Bridge()
        await bridge.start()
        codes = []
        async with websockets.connect(bridge.url) as ws:
            for msg in ({"type": "alarm", "channel": "p/x", "kind": "too_hot", "active": True},
                        {"type": "alarm", "channel": "p/x", "kind": "alarm_high", "active": "yes"},
                        {"type": "alarm", "channel": "p x", "kind": "alarm_high", "active": True},
                        {"type": "ack_alarm", "id": "1"}, {"type": "ack_alarm", "id": 99}):
                await ws.send(json.dumps(msg))
                codes.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["code"])
        await bridge.stop()
        return codes

    assert run(go()) == ["bad_message", "bad_message", "bad_channel", "bad_message", "unknown_alarm"]


def test_mcap_export_round_trip(tmp_path: Path) -> None:
    """A recording with metadata and alarms, read back with the mcap library's own reader."""
    from mcap.reader import make_reader

    from twin3d.bridge import Bridge

    rec = tmp_path / "run.sqlite"

    async def record() -> None:
        bridge = Bridge(record=rec)
        await bridge.start()
        async with Client(bridge.url, client_id="plc") as c:
            await c.describe("plate/tc1", unit="degC", quantity="temperature")
            for i in range(300):
                await c.publish(f"plate/tc{1 + i % 3}", 20.0 + i, 1_763_800_000.0 + i * 0.1)
            await c.flush()
            await c.raise_alarm("plate/tc1", "alarm_high", value=99.0, limit=95.0)
            await c.subscribe(["plate/*"])
            raised = await c.wait_alarm(lambda a: a["state"] == "active", 5)
            await c.ack_alarm(raised["id"])
            await c.wait_alarm(lambda a: a["state"] == "acknowledged", 5)
            await c.raise_alarm("plate/tc1", "alarm_high", active=False)
            await c.wait_alarm(lambda a: a["state"] == "cleared", 5)
        await bridge.stop()

    run(record())
    out = tmp_path / "run.mcap"
    assert main(["export", str(rec), "-o", str(out)]) == 0
    with out.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        topics = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        got: dict[str, list[tuple[int, dict]]] = {}
        for _, channel, message in reader.iter_messages():
            got.setdefault(channel.topic, []).append((message.log_time, json.loads(message.data)))
    assert topics == {"plate/tc1": "twin3d.Sample", "plate/tc2": "twin3d.Sample", "plate/tc3": "twin3d.Sample",
                      "twin3d/alarms": "twin3d.AlarmEvent"}
    tc1 = got["plate/tc1"]
    assert len(tc1) == 100 and sum(len(v) for k, v in got.items() if k != "twin3d/alarms") == 300
    assert [v["value"] for _, v in tc1] == [20.0 + i for i in range(0, 300, 3)]
    assert [t for t, _ in tc1] == [int((1_763_800_000.0 + i * 0.1) * 1e9) for i in range(0, 300, 3)]
    assert tc1[0][1] == {"value": 20.0, "unit": "degC", "quantity": "temperature", "state": "ok",
                             "seq": tc1[0][1]["seq"], "source": "plc"}
    events = [(v["event"], v["state"]) for _, v in got["twin3d/alarms"]]
    assert events == [("raised", "active"), ("acknowledged", "acknowledged"), ("cleared", "cleared")]
