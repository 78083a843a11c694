"""OPC UA adapter against a real asyncua server started by the test on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bridge_helpers import Collector, bridge_subscriber, receive_samples

from twin3d.bridge.adapters import build_adapters
from twin3d.bridge.adapters.opcua import OpcUaAdapter
from twin3d.errors import AdapterError

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UaServer:
    """An asyncua server on its own event loop in a thread (its address space takes ~2 s to build,
    so the module shares one)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/twin3d/"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._init())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    async def _init(self) -> None:
        self.server = asyncua.Server()
        await self.server.init()
        self.server.set_endpoint(self.url)
        idx = await self.server.register_namespace("urn:twin3d:test")
        press = await self.server.nodes.objects.add_object(idx, "Press")
        self.temp = await press.add_variable(ua.NodeId("Press.Temp", idx), "Temp", 20.0)
        self.force = await press.add_variable(ua.NodeId(1001, idx), "Force", ua.Variant(0, ua.VariantType.Int32))
        self.on = await press.add_variable(ua.NodeId("Press.On", idx), "On", False)
        self.mode = await press.add_variable(ua.NodeId("Press.Mode", idx), "Mode", "auto")
        await self.server.start()

    async def _write(self, node: Any, value: Any, vtype: Any, stamp: datetime | None,
                     status: Any = None) -> None:
        dv = ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=stamp,
                          StatusCode=status if status is not None else ua.StatusCode(ua.StatusCodes.Good))
        await node.write_value(dv)

    def write(self, node: Any, value: Any, vtype: Any = None, stamp: datetime | None = None,
              status: Any = None) -> None:
        self.call(self._write(node, value, vtype or ua.VariantType.Double, stamp, status))

    def stop(self) -> None:
        self.call(self.server.stop())

    def start(self) -> None:
        self.call(self.server.start())

    async def _shutdown(self) -> None:
        await self.server.stop()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]  # sessions' loops
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def close(self) -> None:
        self.call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[UaServer]:
    s = UaServer()
    yield s
    s.close()



@pytest.mark.parametrize(("table", "needle"), [
    ({"nodes": {"ns=2;i=1": "a"}}, "missing key 'url': add url = \"opc.tcp://"),
    ({"url": "http://x", "nodes": {"ns=2;i=1": "a"}}, "write an opc.tcp:// URL"),
    ({"url": "opc.tcp://h:4840", "nodes": {}}, "nodes is empty"),
    ({"url": "opc.tcp://h:4840", "nodes": {"ns=2;x=1": "a"}}, "is not an OPC UA node id"),
    ({"url": "opc.tcp://h:4840", "nodes": [{"node": "ns=2;i=1"}]}, "missing key 'channel'"),
    ({"url": "opc.tcp://h:4840", "nodes": [{"node": "ns=2;i=1", "channel": "a"},
                                           {"node": "ns=2;i=1", "channel": "b"}]}, "listed twice"),
    ({"url": "opc.tcp://h:4840", "nodes": {"ns=2;i=1": "a"}, "period": 5}, "unknown key 'period'"),
])
def test_bad_tables_are_one_line_errors(table: dict[str, Any], needle: str) -> None:
    with pytest.raises(AdapterError) as err:
        build_adapters({"opcua": [{"name": "press", **table}]}, Collector())
    assert needle in str(err.value) and str(err.value).startswith("[[opcua]] #1 (press)")
    assert "\n" not in str(err.value)


# --- against the asyncua server -------------------------------------------------------------------

async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_data_changes_arrive_with_source_timestamps(server: UaServer) -> None:
    now = datetime.now(UTC)
    server.write(server.temp, 20.0, stamp=now)            # known starting values, whatever ran before
    server.write(server.force, 0, ua.VariantType.Int32, stamp=now)
    server.write(server.on, False, ua.VariantType.Boolean, stamp=now)
    server.write(server.mode, "auto", ua.VariantType.String, stamp=now)

    async def main() -> None:
        ingest = Collector()
        adapter = OpcUaAdapter({
            "name": "press", "url": server.url, "period_ms": 20,
            "nodes": [{"node": server.temp.nodeid.to_string(), "channel": "press/temp"},
                      {"node": server.force.nodeid.to_string(), "channel": "press/force"},
                      {"node": server.on.nodeid.to_string(), "channel": "press/on"},
                      {"node": server.mode.nodeid.to_string(), "channel": "press/mode"}]}, ingest)
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.connected.wait(), 10)
        # initial values come first; then the changes, each with the source time the server sent
        await ingest.wait_for(lambda s: len(s) >= 3)
        base = datetime(2025, 11, 22, 8, 0, 0, tzinfo=UTC)
        for i in range(1, 4):
            server.write(server.temp, 20.0 + i, stamp=base.replace(second=i))
            await asyncio.sleep(0.06)
        server.write(server.force, 1500, ua.VariantType.Int32, stamp=base)
        server.write(server.on, True, ua.VariantType.Boolean, stamp=base)
        server.write(server.mode, "manual", ua.VariantType.String, stamp=base)           # not a number
        server.write(server.temp, 99.0, stamp=base.replace(second=9),
                     status=ua.StatusCode(ua.StatusCodes.BadSensorFailure))              # bad status
        samples = await ingest.wait_for(lambda s: any(x.channel == "press/on" and x.value == 1.0 for x in s)
                                        and adapter.bad_values >= 2)
        await _stop(task)
        temps = [s for s in samples if s.channel == "press/temp"]
        assert [s.value for s in temps] == [20.0, 21.0, 22.0, 23.0]
        assert [s.time for s in temps[1:]] == [base.timestamp() + i for i in range(1, 4)]
        assert abs(temps[0].time - time.time()) < 60         # initial value: the server's time of writing
        assert [s.value for s in samples if s.channel == "press/force"] == [0.0, 1500.0]
        assert [s.value for s in samples if s.channel == "press/on"] == [0.0, 1.0]
        assert not any(s.channel == "press/mode" for s in samples)
        assert adapter.bad_values == 3     # "auto" and "manual" (strings), the BadSensorFailure value
        assert {src for _, src in ingest.batches} == {"opcua:press"}

    asyncio.run(main())


def test_unknown_node_and_unreachable_server_are_adapter_errors(server: UaServer) -> None:
    async def main() -> None:
        missing = OpcUaAdapter({"url": server.url, "nodes": {"ns=2;s=Nope": "x"}}, Collector())
        with pytest.raises(AdapterError, match=r"^\[\[opcua\]\] #1: cannot subscribe to node 'ns=2;s=Nope' "
                                               r"\(BadNodeIdUnknown\): check the node id"):
            await missing.run()
        gone = OpcUaAdapter({"name": "press", "url": f"opc.tcp://127.0.0.1:{_free_port()}/",
                             "timeout": 2, "nodes": {"ns=2;i=1": "x"}}, Collector())
        with pytest.raises(AdapterError) as err:
            await gone.run()
        assert str(err.value).startswith("[[opcua]] #1 (press): cannot connect to OPC UA server opc.tcp://127.0.0.1:")
        assert "start the server" in str(err.value)

    asyncio.run(main())


def test_reconnects_after_server_restart(server: UaServer) -> None:
    async def main() -> None:
        ingest = Collector()
        adapter = OpcUaAdapter({"url": server.url, "period_ms": 20, "watch_s": 0.2, "timeout": 1,
                                "nodes": {server.temp.nodeid.to_string(): "press/temp"}}, ingest)
        task = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.connected.wait(), 10)
        server.write(server.temp, 50.0)
        await ingest.wait_for(lambda s: 50.0 in [x.value for x in s])
        server.stop()
        await asyncio.sleep(0.5)
        server.start()
        deadline = time.monotonic() + 20
        while adapter.connections < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert adapter.connections == 2 and not task.done()
        server.write(server.temp, 51.0)
        samples = await ingest.wait_for(lambda s: 51.0 in [x.value for x in s])
        await _stop(task)
        assert 51.0 in [s.value for s in samples]

    asyncio.run(main())


# --- end to end: asyncua server -> adapter -> Bridge -> WebSocket subscriber + recording ----------

def test_end_to_end_through_a_real_bridge(server: UaServer, tmp_path: Path) -> None:


    from twin3d.bridge import read_recording
    from twin3d.bridge.config import parse_config

    rec = tmp_path / "rec.db"
    config = parse_config({"opcua": [{"name": "press", "url": server.url, "period_ms": 20,
                                      "nodes": {server.force.nodeid.to_string(): "press/force"}}]})
    stamp = datetime(2025, 11, 22, 9, 0, 0, tzinfo=UTC)

    async def main() -> list[dict[str, Any]]:
        async with bridge_subscriber(config, rec, ["press/*"]) as ws:
            # the initial value arrives once the adapter has subscribed; then write a change
            got = await receive_samples(ws, bool, timeout=15)
            await asyncio.to_thread(server.write, server.force, 4321, ua.VariantType.Int32, stamp)
            return await receive_samples(ws, lambda got: got[-1]["value"] == 4321, got)

    got = asyncio.run(main())
    assert got[-1] == {**got[-1], "channel": "press/force", "value": 4321, "time": stamp.timestamp()}
    rows = [s for s in read_recording(rec) if s.value == 4321.0]     # (the recording is in time order)
    assert [(s.channel, s.time, s.source) for s in rows] == [("press/force", stamp.timestamp(), "opcua:press")]


def test_documented_example_config_builds() -> None:
    import tomllib

    example = Path(__file__).parents[2] / "streaming" / "adapters" / "opcua.example.toml"
    [adapter] = build_adapters(tomllib.loads(example.read_text()), Collector())
    assert isinstance(adapter, OpcUaAdapter) and adapter.source == "opcua:press"
    assert sorted(adapter.channels.values()) == ["press/force", "press/temp"]
