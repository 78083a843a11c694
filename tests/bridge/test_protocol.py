"""The sans-I/O bridge protocol: strings in, events and frames out. No loop, no socket."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin3d.bridge.config import BridgeConfig, BridgeLimits, Role, parse_config
from twin3d.bridge.protocol import (
    BadMessage,
    BridgeProtocol,
    Fatal,
    Hello,
    Ping,
    Publish,
    Subscribe,
    encode_alias,
    encode_binary,
    encode_gap,
    encode_samples,
)
from twin3d.errors import BridgeError
from twin3d.model import Sample

SECURED = BridgeConfig(tokens={"pub-secret": Role("plc", ("plate/*",), ()),
                               "view-secret": Role("hmi", (), ("*",))})


def frames(p: BridgeProtocol) -> list[dict]:
    return [json.loads(f) for f in p.data_to_send()]


def published(p: BridgeProtocol) -> list[Sample]:
    return [s for e in p.events_received() if isinstance(e, Publish) for s in e.batch.samples()]


def test_sample_shape_from_the_issue() -> None:
    p = BridgeProtocol()
    p.receive_text('{"type": "sample", "channel": "plate/tc3", "value": 81.5, '
                   '"time": 1763800000.25, "seq": 17}', now=5.0)
    assert published(p) == [Sample("plate/tc3", 81.5, 1763800000.25, 17)]
    assert p.data_to_send() == []


def test_missing_time_is_stamped_with_arrival() -> None:
    p = BridgeProtocol()
    p.receive_text('{"type":"sample","channel":"pump/flow","value":3}', now=42.5)
    assert published(p) == [Sample("pump/flow", 3.0, 42.5, None)]


def test_samples_batch_keeps_order_and_seq() -> None:
    p = BridgeProtocol()
    msg = {"type": "samples", "samples": [
        {"channel": "a/x", "value": 1.0, "time": 1.0, "seq": 1},
        {"channel": "b/y", "value": 2.0, "time": 2.0, "seq": 2},
        {"channel": "a/x", "value": 3.0, "time": 3.0}]}
    p.receive_text(json.dumps(msg), now=0.0)
    (ev,) = p.events_received()
    assert isinstance(ev, Publish) and ev.batch.last_seq == 2
    assert ev.batch.samples() == [Sample("a/x", 1.0, 1.0, 1), Sample("b/y", 2.0, 2.0, 2),
                                  Sample("a/x", 3.0, 3.0, None)]


@pytest.mark.parametrize(("text", "code"), [
    ('{"type":"sample","channel":"a","value":NaN}', "bad_value"),
    ('{"type":"sample","channel":"a","value":Infinity}', "bad_value"),
    ('{"type":"sample","channel":"a","value":1e999}', "bad_value"),
    ('{"type":"sample","channel":"a","value":"81.5"}', "bad_value"),
    ('{"type":"sample","channel":"a","value":true}', "bad_value"),
    ('{"type":"sample","channel":"a","value":1,"time":"now"}', "bad_time"),
    ('{"type":"sample","channel":"a","value":1,"seq":-3}', "bad_seq"),
    ('{"type":"sample","channel":"","value":1}', "bad_channel"),
    ('{"type":"sample","channel":"a b","value":1}', "bad_channel"),
    ('{"type":"sample","channel":"a/*","value":1}', "bad_channel"),
    ('{"type":"sample","value":1}', "bad_channel"),
    ('{"type":"teleport"}', "unknown_type"),
    ('{"channel":"a","value":1}', "unknown_type"),
    ('[1,2]', "bad_message"),
    ('{"type":"sample","channel":"a","val', "bad_json"),
    ('{"type":"samples","samples":[]}', "bad_message"),
    ('{"type":"subscribe","channels":"plate/*"}', "bad_message"),
])
def test_bad_messages_are_rejected_and_connection_stays_open(text: str, code: str) -> None:
    p = BridgeProtocol()
    p.receive_text(text, now=0.0)
    (ev,) = p.events_received()
    assert isinstance(ev, BadMessage) and ev.code == code
    (err,) = frames(p)
    assert err["type"] == "error" and err["code"] == code and err["message"]
    assert not p.closed
    p.receive_text('{"type":"sample","channel":"ok","value":1,"time":1}', now=0.0)
    assert published(p) == [Sample("ok", 1.0, 1.0)]


def test_one_bad_sample_rejects_the_whole_message() -> None:
    p = BridgeProtocol()
    p.receive_text('{"type":"samples","samples":[{"channel":"a","value":1},'
                   '{"channel":"a","value":NaN}]}', now=0.0)
    assert [type(e) for e in p.events_received()] == [BadMessage]


def test_channel_length_limit() -> None:
    p = BridgeProtocol(BridgeConfig(limits=BridgeLimits(max_channel_length=8)))
    p.receive_text('{"type":"sample","channel":"abcdefghi","value":1}', now=0.0)
    assert frames(p)[0]["code"] == "bad_channel"


def test_channel_metadata() -> None:
    from twin3d.bridge.protocol import Meta

    p = BridgeProtocol(SECURED, role=SECURED.tokens["pub-secret"])
    p.receive_text('{"type":"meta","channels":{"plate/tc1":{"unit":"degC","lo":-5}}}', now=0.0)
    assert p.events_received() == [Meta({"plate/tc1": {"unit": "degC", "lo": -5}})]
    for bad, code in [('{"plate/tc1":{"unit":["x"]}}', "bad_meta"), ('{"plate/tc1":{"lo":NaN}}', "bad_meta"),
                      ('{"plate/tc1":"degC"}', "bad_meta"), ('{"pump/p":{"unit":"bar"}}', "forbidden"),
                      ('[]', "bad_message")]:
        p.receive_text(f'{{"type":"meta","channels":{bad}}}', now=0.0)
        assert [f["code"] for f in frames(p)] == [code], bad
    p.send_meta({"plate/tc1": {"unit": "degC"}})
    assert frames(p) == [{"type": "meta", "channels": {"plate/tc1": {"unit": "degC"}}}]


def test_lone_surrogates_never_crash_the_parser() -> None:
    p = BridgeProtocol()
    for text in ['{"type":"subscribe","channels":["\\ud800*"]}',
                 '{"type":"meta","channels":{"a":{"unit":"\\udfff"}}}',
                 '{"type":"sample","channel":"\\ud800","value":1}',
                 '{"type":"hello","client":"\\ud800"}']:
        p.receive_text(text, now=0.0)
    assert [type(e).__name__ for e in p.events_received()] == ["Subscribe", "Meta", "BadMessage", "BadMessage"]
    assert all(isinstance(json.loads(f), dict) for f in p.data_to_send())


def test_channel_count_limit_per_connection() -> None:
    p = BridgeProtocol(BridgeConfig(limits=BridgeLimits(max_channels=2)))
    for name in ("a", "b", "c", "a"):
        p.receive_text(json.dumps({"type": "sample", "channel": name, "value": 1}), now=0.0)
    assert [f.get("code") for f in frames(p)] == ["too_many_channels"]
    assert [s.channel for s in published(p)] == ["a", "b", "a"]


def test_unauthenticated_gets_an_error_and_nothing_else() -> None:
    p = BridgeProtocol(SECURED)
    p.receive_text('{"type":"subscribe","channels":["*"]}', now=0.0)
    assert [type(e) for e in p.events_received()] == [Fatal]
    assert [f["code"] for f in frames(p)] == ["auth_required"]
    assert p.closed
    p.receive_text('{"type":"auth","token":"view-secret"}', now=0.0)  # too late
    assert p.events_received() == [] and p.data_to_send() == []


def test_wrong_token_is_fatal_and_right_token_authenticates() -> None:
    p = BridgeProtocol(SECURED)
    p.receive_text('{"type":"auth","token":"guess-guess"}', now=0.0)
    assert [f["code"] for f in frames(p)] == ["auth_failed"] and p.closed
    q = BridgeProtocol(SECURED)
    q.receive_text('{"type":"auth","token":"pub-secret"}', now=0.0)
    assert frames(q) == [{"type": "authenticated", "role": "plc"}]
    q.receive_text('{"type":"sample","channel":"plate/tc1","value":1,"time":1}', now=0.0)
    assert published(q) == [Sample("plate/tc1", 1.0, 1.0)]


def test_binary_before_auth_is_fatal() -> None:
    p = BridgeProtocol(SECURED)
    p.receive_bytes(b"T3\x01\x00" + bytes(12), now=0.0)
    assert p.closed and frames(p)[0]["code"] == "auth_required"


def test_role_globs_for_publish_and_subscribe() -> None:
    p = BridgeProtocol(SECURED, role=SECURED.tokens["pub-secret"])
    p.receive_text('{"type":"sample","channel":"pump/flow","value":1}', now=0.0)
    assert frames(p)[0]["code"] == "forbidden" and not p.closed
    p.events_received()
    p.receive_text('{"type":"subscribe","channels":["plate/*"]}', now=0.0)
    assert frames(p)[0]["code"] == "forbidden"
    v = BridgeProtocol(SECURED, role=SECURED.tokens["view-secret"])
    v.receive_text('{"type":"subscribe","channels":["plate/*","pump/flow"]}', now=0.0)
    assert v.events_received() == [Subscribe(("plate/*", "pump/flow"))]
    assert frames(v) == [{"type": "subscribed", "channels": ["plate/*", "pump/flow"]}]
    v.receive_text('{"type":"sample","channel":"plate/tc1","value":1}', now=0.0)
    assert frames(v)[0]["code"] == "forbidden"


def test_rate_limit_token_bucket() -> None:
    p = BridgeProtocol(BridgeConfig(limits=BridgeLimits(max_messages_per_second=10, burst=5)))
    for _ in range(8):
        p.receive_text('{"type":"ping"}', now=100.0)
    codes = [f.get("code") for f in frames(p)]
    assert codes == ["rate_limited"] * 3 and p.events_received().count(Ping(100.0)) == 5
    p.receive_text('{"type":"ping"}', now=100.5)  # refilled 5 tokens
    assert p.events_received() == [Ping(100.5)]
    p.send_pong(100.5, ack_lag=0.25)
    assert frames(p) == [{"type": "pong", "time": 100.5, "ack_lag": 0.25}]


def test_hello_and_ack_frames() -> None:
    p = BridgeProtocol()
    p.receive_text('{"type":"hello","version":1,"client":"sensor-7"}', now=0.0)
    assert p.events_received() == [Hello("sensor-7", 1)]
    p.send_hello("twin3d test", resume_seq=41)
    p.send_ack(42)
    hello, ack = frames(p)
    assert hello["resume"] == {"seq": 41} and hello["version"] == 1
    assert ack == {"type": "ack", "seq": 42}
    p.receive_text('{"type":"hello","version":99}', now=0.0)
    assert frames(p)[0]["code"] == "bad_version"


def test_binary_batch_with_aliases() -> None:
    p = BridgeProtocol()
    p.receive_text(encode_alias({"plate/tc1": 0, "plate/tc2": 7}), now=0.0)
    assert p.events_received() == [] and p.data_to_send() == []
    frame = encode_binary(np.array([0, 7, 0]), np.array([1.0, 2.0, 3.0]), np.array([10., 20., 30.]), seq=5)
    p.receive_bytes(frame, now=0.0)
    assert published(p) == [Sample("plate/tc1", 10.0, 1.0, 5), Sample("plate/tc2", 20.0, 2.0, 5),
                            Sample("plate/tc1", 30.0, 3.0, 5)]


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda f: f[:-3], "bad_frame"),
    (lambda f: b"XX" + f[2:], "bad_frame"),
    (lambda f: f[:4] + (5).to_bytes(4, "little") + f[8:], "bad_frame"),
    (lambda f: f[:8] + (-7).to_bytes(8, "little", signed=True) + f[16:], "bad_seq"),
    (lambda f: f, None),
])
def test_binary_frame_errors(mutate, code) -> None:  # type: ignore[no-untyped-def]
    p = BridgeProtocol()
    p.receive_text(encode_alias({"a": 0}), now=0.0)
    p.receive_bytes(mutate(encode_binary(np.array([0]), np.array([1.0]), np.array([2.0]))), now=0.0)
    got = [f["code"] for f in frames(p)]
    assert got == ([code] if code else [])


def test_binary_unknown_alias_and_nan() -> None:
    p = BridgeProtocol()
    p.receive_text(encode_alias({"a": 0}), now=0.0)
    p.receive_bytes(encode_binary(np.array([1]), np.array([1.0]), np.array([2.0])), now=0.0)
    p.receive_bytes(encode_binary(np.array([0]), np.array([1.0]), np.array([np.nan])), now=0.0)
    assert [f["code"] for f in frames(p)] == ["unknown_alias", "bad_value"]


def test_alias_for_forbidden_channel_is_rejected() -> None:
    p = BridgeProtocol(SECURED, role=SECURED.tokens["pub-secret"])
    p.receive_text(encode_alias({"pump/flow": 0}), now=0.0)
    assert frames(p)[0]["code"] == "forbidden"


def test_subscriber_frames_and_gap() -> None:
    p = BridgeProtocol()
    p.send_frame(encode_samples([("a", 2.0, 1.0, -1)]))
    p.send_frame(encode_samples([("a", 2.0, 1.0, 4), ("b", 3.0, 2.0, 5)]))
    p.send_frame(encode_gap({"a": 3}, "stale"))
    one, many, gap = frames(p)
    assert one == {"type": "sample", "channel": "a", "value": 2.0, "time": 1.0}
    assert many["samples"][1] == {"channel": "b", "value": 3.0, "time": 2.0, "seq": 5}
    assert gap == {"type": "gap", "channels": {"a": 3}, "skipped": 3, "reason": "stale"}


def test_config_parsing_and_errors() -> None:
    cfg = parse_config({"token": [{"token": "pub-secret", "publish": ["plate/*"]},
                                  {"token": "view-secret", "subscribe": ["*"]}],
                        "limits": {"max_frame_bytes": 1000}, "server": {"origins": ["https://a"]}})
    assert cfg.role_for("pub-secret") == Role("token1", ("plate/*",), ())
    assert cfg.role_for(None) is None and cfg.limits.max_frame_bytes == 1000
    with pytest.raises(BridgeError, match="unknown key 'publsh'"):
        parse_config({"token": [{"token": "pub-secret", "publsh": ["x"]}]})
    with pytest.raises(BridgeError, match="at least 8"):
        parse_config({"token": [{"token": "x"}]})
    with pytest.raises(BridgeError, match="appears twice"):
        parse_config({"token": [{"token": "pub-secret"}, {"token": "pub-secret"}]})
    with pytest.raises(BridgeError, match="positive"):
        parse_config({"limits": {"burst": -1}})


# --- fuzzing: the parser never raises, and every input gets exactly one outcome ----------------

_any_text = st.text(st.characters(exclude_categories=()), max_size=20)   # surrogates included
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["sample", "samples", "subscribe", "auth", "hello", "alias", "ping", "x"])},
    optional={"channel": _any_text | _json_values, "value": _json_values,
              "time": _json_values, "seq": _json_values, "samples": _json_values,
              "channels": _json_values, "token": _json_values, "client": _json_values})


@settings(max_examples=300, deadline=None)
@given(st.one_of(_messages.map(lambda m: json.dumps(m)), st.text(max_size=60)),
       st.booleans())
def test_fuzz_parser_never_raises(text: str, secured: bool) -> None:
    p = BridgeProtocol(SECURED if secured else None)
    p.receive_text(text, now=1.0)
    events = p.events_received()
    out = p.data_to_send()
    assert len(events) <= 1
    for e in events:
        if isinstance(e, BadMessage | Fatal):
            assert json.loads(out[-1])["code"] == e.code
        if isinstance(e, Publish):
            assert np.isfinite(e.batch.value).all() and np.isfinite(e.batch.time).all()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_binary_never_raises(data: bytes) -> None:
    p = BridgeProtocol()
    p.receive_text(encode_alias({"a": 0, "b": 1}), now=0.0)
    p.receive_bytes(data, now=0.0)
    for e in p.events_received():
        assert isinstance(e, Publish | BadMessage)


@pytest.mark.parametrize("name", ["bridge.example.toml", "bridge.tls.example.toml"])
def test_example_configs_load(name: str) -> None:
    from pathlib import Path

    from twin3d.bridge.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "streaming" / name)
    assert cfg.auth_required and all(r.publish or r.subscribe for r in cfg.tokens.values())
