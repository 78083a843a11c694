"""MQTT adapter against a real mosquitto broker started by the test on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from bridge_helpers import Collector, bridge_subscriber, receive_samples
from conftest import require_binary

from twin3d.bridge.adapters import build_adapters, open_adapters, start_adapters
from twin3d.bridge.adapters._base import Table
from twin3d.bridge.adapters.mqtt import MqttAdapter, compile_topic
from twin3d.errors import AdapterError
from twin3d.model import Sample

pytest.importorskip("gmqtt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto process on 127.0.0.1 with a minimal config in tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.exe = require_binary("mosquitto", "mosquitto")
        self.pub = require_binary("mosquitto_pub", "mosquitto-clients")
        self.port = _free_port()
        self.conf = tmp_path / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "max_queued_messages 0\npersistence false\n")
        self.log = tmp_path / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if os.geteuid() == 0 and "\nuser " not in self.conf.read_text():
            # as root, mosquitto drops to user "mosquitto", who cannot read files in tmp_path
            self.conf.write_text(self.conf.read_text() + "user root\n")
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    async def publish(self, topic: str, lines: Sequence[str], qos: int = 0) -> None:
        """Publish one message per line with mosquitto_pub -l (a separate, independent client)."""
        proc = await asyncio.create_subprocess_exec(
            self.pub, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", str(qos), "-l",
            stdin=asyncio.subprocess.PIPE)
        await proc.communicate(("\n".join(lines) + "\n").encode())
        assert proc.returncode == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()



def _rule(**entry: object):  # type: ignore[no-untyped-def]
    return compile_topic(entry, Table("mqtt", 0, {}, ()))


# --- topic templates (pure) -----------------------------------------------------------------------

def test_topic_templates_map_levels_names_and_rest() -> None:
    assert _rule(topic="plant/+/temp", channel="{1}/temp").match("plant/line1/temp") == ["line1/temp"]
    named = _rule(topic="plant/{line}/{sensor}", channel="{line}.{sensor}")
    assert named.filter == "plant/+/+"
    assert named.match("plant/l2/tc3") == ["l2.tc3"]
    assert named.match("plant/l2") is None and named.match("plant/l2/tc3/x") is None
    rest = _rule(topic="site/#", channel="s/{#}")
    assert rest.filter == "site/#" and rest.match("site/a/b/c") == ["s/a/b/c"]
    assert _rule(topic="a/b").match("a/b") == ["a/b"]          # default channel: the topic itself
    assert _rule(topic="a/b").match("a/c") is None


@pytest.mark.parametrize(("entry", "needle"), [
    ({"topic": "plant/+/temp", "channel": "{3}/temp"}, "uses"),
    ({"topic": "plant/+/temp", "channel": "{line}/temp"}, "'line'"),
    ({"topic": "plant/#/temp", "channel": "x"}, "'#' must be the last"),
    ({"topic": "plant/li+ne/temp", "channel": "x"}, "whole topic level"),
    ({"topic": "plant/{a}/{a}", "channel": "x"}, "named twice"),
    ({"channel": "x"}, "missing key 'topic'"),
    ({"topic": "a/b", "chanel": "x"}, "unknown key 'chanel'"),
    ({"topic": "a/b", "value": "data..x"}, "not a payload path"),
    ({"topic": "a/b", "channel": "x", "values": {"y": "v"}}, "either channel/value or values"),
    ({"topic": "a/+", "channel": "line {1}"}, "has spaces or glob characters"),
    ({"topic": "a/+", "values": {"{1}/*": "v"}}, "has spaces or glob characters"),
])
def test_bad_topic_entries_are_one_line_errors(entry: dict[str, object], needle: str) -> None:
    with pytest.raises(AdapterError) as err:
        build_adapters({"mqtt": [{"name": "plant", "host": "127.0.0.1", "topics": [entry]}]}, Collector())
    message = str(err.value)
    assert needle in message and "\n" not in message and message.startswith("[[mqtt]] #1 (plant)")


@pytest.mark.parametrize(("table", "needle"), [
    ({"topics": [{"topic": "a"}]}, "missing key 'host': add host = \"127.0.0.1\""),
    ({"host": "h", "topics": []}, "topics is empty"),
    ({"host": "h", "topics": [{"topic": "a"}], "qos": 3}, "qos = 3"),
    ({"host": "h", "topics": [{"topic": "a"}], "port": "1883"}, "port = '1883' must be an integer, e.g. port = 1883"),
    ({"host": "h", "topic": "a"}, "unknown key 'topic'"),
])
def test_bad_broker_tables_are_one_line_errors(table: dict[str, object], needle: str) -> None:
    with pytest.raises(AdapterError, match=r"^\[\[mqtt\]\] #1") as err:
        build_adapters({"mqtt": [table]}, Collector())
    assert needle in str(err.value)


# --- against mosquitto ----------------------------------------------------------------------------

async def _run(adapter: MqttAdapter) -> asyncio.Task[None]:
    task = asyncio.create_task(adapter.run())
    await asyncio.wait_for(adapter.connected.wait(), 10)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_json_paths_plain_payloads_and_times(broker: Broker) -> None:
    async def main() -> None:
        ingest = Collector()
        adapter = MqttAdapter({
            "name": "plant", "host": "127.0.0.1", "port": broker.port,
            "topics": [
                {"topic": "plant/{line}/temp", "channel": "{line}/temp", "value": "data.temp",
                 "time": "ts", "time_unit": "ms"},
                {"topic": "plant/+/level", "channel": "{1}/level"},          # plain numeric payload
                {"topic": "pump/+/state", "values": {"{1}/flow": "flow", "{1}/p": "p[1]"}},
            ]}, ingest)
        task = await _run(adapter)
        t0 = time.time()
        await broker.publish("plant/l1/temp", [json.dumps({"data": {"temp": 20.0 + i}, "ts": 1763800000250 + i})
                                               for i in range(5)])
        await broker.publish("plant/l2/level", ["0.5", "7", "oops", "1e3"])
        await broker.publish("pump/p7/state", ['{"flow": 3.5, "p": [0, 2.25]}', '{"flow": true, "p": [1, 4]}'])
        await broker.publish("other/topic", ["1"])                                   # not subscribed
        samples = await ingest.wait_for(12)
        await _stop(task)
        by = {}
        for s in samples:
            by.setdefault(s.channel, []).append(s)
        assert [s.value for s in by["l1/temp"]] == [20.0, 21.0, 22.0, 23.0, 24.0]
        assert [s.time for s in by["l1/temp"]] == pytest.approx([1763800000.25 + i / 1000 for i in range(5)])
        assert [s.value for s in by["l2/level"]] == [0.5, 7.0, 1000.0]   # "oops" dropped, counted
        assert all(t0 - 1 <= s.time <= time.time() + 1 for s in by["l2/level"])  # arrival time
        assert [s.value for s in by["p7/flow"]] == [3.5, 1.0]
        assert [s.value for s in by["p7/p"]] == [2.25, 4.0]
        assert set(by) == {"l1/temp", "l2/level", "p7/flow", "p7/p"}
        assert adapter.bad_messages == 1
        assert {src for _, src in ingest.batches} == {"mqtt:plant"}

    asyncio.run(main())


def test_many_messages_arrive_in_order_and_batched(broker: Broker) -> None:
    n = 20_000

    async def main() -> None:
        ingest = Collector()
        adapter = MqttAdapter({"host": "127.0.0.1", "port": broker.port,
                               "topics": [{"topic": "s/+", "channel": "{1}"}]}, ingest)
        task = await _run(adapter)
        await broker.publish("s/a", [str(i) for i in range(n)])
        samples = await ingest.wait_for(n, timeout=30)
        await _stop(task)
        assert [s.value for s in samples] == [float(i) for i in range(n)]
        assert len(ingest.batches) < n / 10    # batched, not one ingest call per message

    asyncio.run(main())


def test_slow_bridge_pauses_reading_instead_of_buffering_everything(broker: Broker) -> None:
    n = 40_000

    async def main() -> None:
        ingest = Collector(delay=0.03)     # ~33k samples/s in 1,000-sample batches: slower than the stream
        adapter = MqttAdapter({"host": "127.0.0.1", "port": broker.port, "max_batch": 1000,
                               "max_pending": 1000, "topics": [{"topic": "s/+", "value": "v"}]}, ingest)
        task = await _run(adapter)
        pad = "x" * 80
        await broker.publish("s/x", [json.dumps({"v": i, "pad": pad}) for i in range(n)])
        samples = await ingest.wait_for(n, timeout=60)
        await _stop(task)
        assert [s.value for s in samples] == [float(i) for i in range(n)]   # nothing lost
        # the backlog stayed near max_pending plus what asyncio had already read off the socket
        # (~400 KiB); without pausing it grows to most of the stream (~30k of 40k here)
        assert adapter.batcher.peak_pending < n / 4

    asyncio.run(main())


def test_unreachable_broker_is_one_line_adapter_error() -> None:
    async def main() -> None:
        adapter = MqttAdapter({"name": "plant", "host": "127.0.0.1", "port": _free_port(),
                               "topics": [{"topic": "a"}]}, Collector())
        with pytest.raises(AdapterError) as err:
            await adapter.run()
        message = str(err.value)
        assert message.startswith("[[mqtt]] #1 (plant): cannot connect to MQTT broker 127.0.0.1:")
        assert "start the broker" in message and "\n" not in message
        with pytest.raises(AdapterError, match="cannot connect"):
            await open_adapters({"mqtt": [{"host": "127.0.0.1", "port": _free_port(),
                                           "topics": [{"topic": "a"}]}]}, Collector())

    asyncio.run(main())


def test_reconnects_after_broker_restart(broker: Broker) -> None:
    async def main() -> None:
        ingest = Collector()
        [task] = start_adapters({"mqtt": [{"host": "127.0.0.1", "port": broker.port,
                                           "topics": [{"topic": "r/+", "channel": "{1}"}]}]}, ingest)
        await asyncio.sleep(0.3)
        await broker.publish("r/a", ["1"])
        assert [s.value for s in await ingest.wait_for(1)] == [1.0]
        broker.stop()
        await asyncio.sleep(0.5)
        broker.start()
        # the adapter reconnects and subscribes again (the broker kept no session state)
        deadline = time.monotonic() + 15
        while len(ingest.samples) < 2 and time.monotonic() < deadline:
            await broker.publish("r/a", ["2"])
            await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        assert ingest.samples[0].value == 1.0 and 2.0 in [s.value for s in ingest.samples]

    asyncio.run(main())


# --- end to end: mosquitto -> adapter -> Bridge -> WebSocket subscriber + recording ---------------

def test_end_to_end_through_a_real_bridge(broker: Broker, tmp_path: Path) -> None:

    from twin3d.bridge import read_recording
    from twin3d.bridge.config import parse_config

    rec = tmp_path / "rec.db"
    config = parse_config({"mqtt": [{"name": "plant", "host": "127.0.0.1", "port": broker.port, "topics": [
        {"topic": "plant/{line}/temp", "channel": "{line}/temp", "value": "t", "time": "ts"}]}]})

    async def main() -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        async with bridge_subscriber(config, rec, ["line*"]) as ws:
            # the adapter connects in the background: publish until its subscription is live
            deadline = time.monotonic() + 15
            while not got and time.monotonic() < deadline:
                await broker.publish("plant/line1/temp", [json.dumps({"t": 20.5, "ts": 1763800000.0})])
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                got += msg["samples"] if msg["type"] == "samples" else [msg]
            await broker.publish("plant/line2/temp", [json.dumps({"t": 30.0 + i, "ts": 1763800001.0 + i})
                                                      for i in range(3)])
            return await receive_samples(ws, lambda got: sum(g["channel"] == "line2/temp" for g in got) >= 3,
                                         got)

    got = asyncio.run(main())
    assert got[0]["channel"] == "line1/temp" and got[0]["value"] == 20.5 and got[0]["time"] == 1763800000.0
    assert [(g["value"], g["time"]) for g in got if g["channel"] == "line2/temp"] == [
        (30.0, 1763800001.0), (31.0, 1763800002.0), (32.0, 1763800003.0)]
    rows = [s for s in read_recording(rec) if s.channel == "line2/temp"]
    assert [s.value for s in rows] == [30.0, 31.0, 32.0] and {s.source for s in rows} == {"mqtt:plant"}


def test_documented_example_config_works_as_described(broker: Broker) -> None:
    import tomllib

    example = Path(__file__).parents[2] / "streaming" / "adapters" / "mqtt.example.toml"
    table = tomllib.loads(example.read_text())["mqtt"][0] | {"port": broker.port}

    async def main() -> list[Sample]:
        ingest = Collector()
        adapter = MqttAdapter(table, ingest)
        task = await _run(adapter)
        await asyncio.sleep(0.2)
        await broker.publish("plant/line1/temp", ['{"data": {"temp": 81.5}, "ts": 1763800000250}'])
        await broker.publish("press/p2/force", ["81.5"])
        await broker.publish("pump/p7/state", ['{"flow": 3.5, "p": [0.9, 2.25]}'])
        await broker.publish("site/a/b/c", ["1"])
        samples = await ingest.wait_for(5)
        await _stop(task)
        return samples

    samples = asyncio.run(main())
    assert sorted((s.channel, s.value) for s in samples) == [
        ("line1/temp", 81.5), ("press/p2/force", 81.5), ("pump/p7/flow", 3.5), ("pump/p7/pressure", 2.25),
        ("site/a/b/c", 1.0)]
    assert next(s.time for s in samples if s.channel == "line1/temp") == 1763800000.25


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_broker_with_a_private_ca(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    broker = Broker(tmp_path)
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n"
                           f"certfile {cert}\nkeyfile {key}\n")
    broker.start()
    try:
        async def main() -> list[Sample]:
            ingest = Collector()
            adapter = MqttAdapter({"host": "127.0.0.1", "port": broker.port, "ca_file": str(cert),
                                   "topics": [{"topic": "tls/+", "channel": "{1}"}]}, ingest)
            task = await _run(adapter)
            await asyncio.sleep(0.2)
            proc = await asyncio.create_subprocess_exec(
                broker.pub, "-h", "127.0.0.1", "-p", str(broker.port), "--cafile", str(cert),
                "-t", "tls/a", "-m", "42")
            assert await proc.wait() == 0
            samples = await ingest.wait_for(1)
            await _stop(task)
            # without the CA, the broker's certificate is refused: a one-line error
            untrusting = MqttAdapter({"host": "127.0.0.1", "port": broker.port, "tls": True,
                                      "topics": [{"topic": "tls/+"}]}, Collector())
            with pytest.raises(AdapterError, match=r"cannot connect to MQTT broker .*CERTIFICATE_VERIFY_FAILED"):
                await untrusting.run()
            return samples

        assert [(s.channel, s.value) for s in asyncio.run(main())] == [("a", 42.0)]
    finally:
        broker.stop()


def test_qos1_subscription_is_acknowledged_before_connected(broker: Broker) -> None:
    async def main() -> list[Sample]:
        ingest = Collector()
        adapter = MqttAdapter({"host": "127.0.0.1", "port": broker.port, "qos": 1,
                               "topics": [{"topic": "plant/+", "channel": "{1}"}]}, ingest)
        task = await _run(adapter)        # connected = SUBACK received: no sleep needed
        await broker.publish("plant/a", [str(i) for i in range(2000)], qos=1)
        samples = await ingest.wait_for(2000)
        await _stop(task)
        return samples

    assert [s.value for s in asyncio.run(main())] == [float(i) for i in range(2000)]


def test_retry_at_start_waits_for_a_broker_that_starts_later(tmp_path: Path) -> None:
    broker = Broker(tmp_path)                             # configured, not started yet

    async def main() -> list[Sample]:
        ingest = Collector()
        adapter = MqttAdapter({"host": "127.0.0.1", "port": broker.port, "retry_at_start": True,
                               "topics": [{"topic": "late/+", "channel": "{1}"}]}, ingest)
        task = asyncio.create_task(adapter.run())
        await asyncio.sleep(0.8)                          # a few refused attempts
        assert not task.done() and adapter.connections == 0
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(adapter.connected.wait(), 15)
        await broker.publish("late/x", ["5"])
        samples = await ingest.wait_for(1)
        await _stop(task)
        return samples

    try:
        assert [(s.channel, s.value) for s in asyncio.run(main())] == [("x", 5.0)]
    finally:
        broker.stop()


def test_open_adapters_returns_once_subscribed(broker: Broker) -> None:
    async def main() -> list[Sample]:
        ingest = Collector()
        tasks = await open_adapters({"mqtt": [{"host": "127.0.0.1", "port": broker.port,
                                               "topics": [{"topic": "o/+", "channel": "{1}"}]}]}, ingest)
        await broker.publish("o/k", ["3"])               # no sleep: the SUBACK has been received
        samples = await ingest.wait_for(1)
        for task in tasks:
            task.cancel()
        return samples

    assert [(s.channel, s.value) for s in asyncio.run(main())] == [("k", 3.0)]
