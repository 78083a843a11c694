"""Security: every attack gets the documented error, and the bridge keeps serving the others."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import websockets
from bridge_helpers import run
from websockets.exceptions import ConnectionClosed, InvalidStatus

from twin3d.bridge import Bridge, Client
from twin3d.bridge.config import parse_config
from twin3d.errors import AuthError

CONFIG = parse_config({
    "token": [{"name": "plc", "token": "pub-secret", "publish": ["plate/*"]},
              {"name": "hmi", "token": "view-secret", "subscribe": ["*"]}],
    "limits": {"max_frame_bytes": 4096, "max_messages_per_second": 50, "burst": 20},
    "server": {"origins": ["https://hmi.example.com"], "auth_timeout": 0.5},
})
PUB = {"Authorization": "Bearer pub-secret"}


async def recv_json(ws: websockets.ClientConnection, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def everything_until_close(ws: websockets.ClientConnection) -> list[dict]:
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    except ConnectionClosed:
        return out


def attack(body: Callable[[str], Awaitable[None]]) -> None:
    """Run ``body(url)`` against a secured bridge while a legitimate publisher and viewer keep working."""

    async def go() -> None:
        bridge = Bridge(CONFIG)
        await bridge.start()
        async with Client(bridge.url, "view-secret") as viewer, Client(bridge.url, "pub-secret") as pub:
            sub = await viewer.subscribe(["plate/*"])
            await pub.publish("plate/tc1", 1.0)
            await pub.flush(5)
            await body(bridge.url)
            await pub.publish("plate/tc1", 2.0)
            await pub.flush(5)                      # the bridge still serves the others
            seen = []
            while 2.0 not in seen:
                seen += [s.value for s in await asyncio.wait_for(anext(sub), 5)]
        await bridge.stop()

    run(go())


def test_no_token_gets_one_error_and_nothing_else() -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["*"]}))
            frames = await everything_until_close(ws)
            assert [f["code"] for f in frames] == ["auth_required"]
            assert ws.close_code == 1008
        async with websockets.connect(url) as ws:      # says nothing at all
            frames = await everything_until_close(ws)
            assert [f["code"] for f in frames] == ["auth_timeout"] and ws.close_code == 1008

    attack(body)


def test_wrong_token_by_message_and_by_header() -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "pub-secreT"}))
            frames = await everything_until_close(ws)
            assert [f["code"] for f in frames] == ["auth_failed"] and ws.close_code == 1008
        with pytest.raises(InvalidStatus) as exc:
            await websockets.connect(url, additional_headers={"Authorization": "Bearer nope-nope"})
        assert exc.value.response.status_code == 401
        with pytest.raises(AuthError, match="401"):
            await Client(url, "nope-nope").connect()

    attack(body)


def test_auth_message_works_for_clients_without_headers() -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "pub-secret"}))
            assert await recv_json(ws) == {"type": "authenticated", "role": "plc"}
            await ws.send(json.dumps({"type": "sample", "channel": "plate/tc9", "value": 3, "seq": 1}))
            assert await recv_json(ws) == {"type": "ack", "seq": 1}

    attack(body)


def test_publishing_outside_role_is_rejected_but_connection_stays() -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url, additional_headers=PUB) as ws:
            await ws.send(json.dumps({"type": "sample", "channel": "pump/flow", "value": 1, "seq": 1}))
            err = await recv_json(ws)
            assert err["code"] == "forbidden" and "pump/flow" in err["message"]
            await ws.send(json.dumps({"type": "subscribe", "channels": ["plate/*"]}))
            assert (await recv_json(ws))["code"] == "forbidden"   # publish-only token
            await ws.send(json.dumps({"type": "sample", "channel": "plate/x", "value": 1, "seq": 2}))
            assert await recv_json(ws) == {"type": "ack", "seq": 2}

    attack(body)


def test_bad_origin_is_refused_with_403() -> None:
    async def body(url: str) -> None:
        with pytest.raises(InvalidStatus) as exc:
            await websockets.connect(url, origin="https://evil.example.com", additional_headers=PUB)
        assert exc.value.response.status_code == 403
        assert b"not allowed" in exc.value.response.body
        async with websockets.connect(url, origin="https://hmi.example.com", additional_headers=PUB) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv_json(ws))["type"] == "pong"

    attack(body)


def test_oversized_frame_closes_with_1009() -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url, additional_headers=PUB) as ws:
            await ws.send(json.dumps({"type": "sample", "channel": "plate/a", "value": 1,
                                      "pad": "x" * 5000}))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009

    attack(body)


def test_flood_beyond_rate_limit() -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url, additional_headers=PUB) as ws:
            for i in range(100):
                await ws.send(json.dumps({"type": "sample", "channel": "plate/f", "value": i, "seq": i}))
            frames = []
            while not any(f.get("type") == "ack" for f in frames) or len(frames) < 2:
                frames.append(await recv_json(ws))
            await asyncio.sleep(0.3)
            while True:
                try:
                    frames.append(await recv_json(ws, 0.3))
                except TimeoutError:
                    break
            codes = [f.get("code") for f in frames if f["type"] == "error"]
            assert codes and set(codes) == {"rate_limited"} and len(codes) >= 40
            await asyncio.sleep(0.5)                         # bucket refills; still connected
            await ws.send(json.dumps({"type": "sample", "channel": "plate/f", "value": 1, "seq": 500}))
            assert await recv_json(ws) == {"type": "ack", "seq": 500}

    attack(body)


@pytest.mark.parametrize(("text", "code"), [
    ('{"type":"sample","channel":"plate/a","value":NaN}', "bad_value"),
    ('{"type":"sample","channel":"plate/a","value":-Infinity}', "bad_value"),
    ('{"type":"sample","channel":"plate/a","value":"81.5"}', "bad_value"),
    ('{"type":"launch"}', "unknown_type"),
    ('{"type":"sample","channel":"plate/a","va', "bad_json"),
])
def test_bad_values_types_and_truncated_json(text: str, code: str) -> None:
    async def body(url: str) -> None:
        async with websockets.connect(url, additional_headers=PUB) as ws:
            await ws.send(text)
            err = await recv_json(ws)
            assert err["type"] == "error" and err["code"] == code and err["message"]
            await ws.send(json.dumps({"type": "sample", "channel": "plate/a", "value": 1, "seq": 9}))
            assert await recv_json(ws) == {"type": "ack", "seq": 9}

    attack(body)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_round_trip_with_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(cafile=str(cert))

    async def go() -> list[float]:
        bridge = Bridge(CONFIG)
        await bridge.start(certfile=cert, keyfile=key)
        assert bridge.url.startswith("wss://")
        with pytest.raises(ssl.SSLCertVerificationError):   # an untrusting client refuses it
            await websockets.connect(bridge.url, additional_headers=PUB)
        async with Client(bridge.url, "view-secret", ssl=ctx) as viewer, \
                Client(bridge.url, "pub-secret", ssl=ctx) as pub:
            sub = await viewer.subscribe(["plate/*"])
            await pub.publish("plate/tls", 42.0)
            await pub.flush(5)
            got = await asyncio.wait_for(anext(sub), 5)
        await bridge.stop()
        return [s.value for s in got]

    assert run(go()) == [42.0]
