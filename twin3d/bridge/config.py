"""Bridge configuration: ``bridge.toml`` -> :class:`BridgeConfig`. Pure apart from reading the file.

Shape (every table and key optional)::

    [[token]]
    name = "plc-1"                # optional; names the source in the recording
    token = "pub-secret"
    publish = ["plate/*"]         # channel globs (fnmatch; '*' also crosses '/')
    subscribe = []
    alarms = []                   # "raise" (the twin engine), "acknowledge" (operators)

    [limits]
    max_frame_bytes = 1048576     # larger frames: connection closed with code 1009
    max_messages_per_second = 50000
    burst = 100000
    max_channel_length = 128
    max_batch = 100000            # samples in one message
    max_channels = 100000         # distinct channels one connection may publish
    max_client_id_length = 128    # hello's "client"
    max_meta_key_length = 32      # keys of a channel's meta object
    max_meta_bytes = 1024         # one channel's meta object, as JSON
    max_subscribe_patterns = 256  # globs in one subscribe
    max_total_channels = 100000   # channels the whole bridge holds
    max_staleness = 1.0           # s a value may wait for a subscriber before a gap replaces it
    send_timeout = 10.0           # s a peer may take nothing we send before it is dropped

    [server]
    origins = ["https://hmi.example.com"]   # Origin allowlist (absent = any origin)
    compression = false
    auth_timeout = 10.0

``[[mqtt]]``, ``[[opcua]]``, ``[[csv]]`` and ``[[engine]]`` (the twin engine,
:mod:`twin3d.engine.adapter`) tables are kept raw in :attr:`BridgeConfig.adapters`.
"""

from __future__ import annotations

import fnmatch
import hmac
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin3d._types import PathLike
from twin3d.errors import BridgeError

__all__ = ["BridgeConfig", "BridgeLimits", "Role", "load_config", "parse_config"]

ADAPTER_KINDS = ("mqtt", "opcua", "csv", "engine")
#: what a token may do with alarms (``[[token]] alarms = [...]``)
ALARM_RIGHTS = ("raise", "acknowledge")


@dataclass(frozen=True, slots=True)
class Role:
    """What one token may do.

    Args:
        name: shown in logs and used as the recording's source prefix.
        publish: channel globs the holder may publish.
        subscribe: channel globs the holder may subscribe to.
        alarms: what the holder may do with alarms: ``"raise"`` (and clear) them,
            ``"acknowledge"`` them.
    """

    name: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    alarms: tuple[str, ...] = ()

    def may_publish(self, channel: str) -> bool:
        """True if ``channel`` matches one of the publish globs."""
        return any(fnmatch.fnmatchcase(channel, g) for g in self.publish)

    def may_subscribe(self, channel: str) -> bool:
        """True if ``channel`` matches one of the subscribe globs."""
        return any(fnmatch.fnmatchcase(channel, g) for g in self.subscribe)


#: The role of every client when no token is configured (an open bridge).
OPEN_ROLE = Role("anonymous", ("*",), ("*",), ALARM_RIGHTS)


@dataclass(frozen=True, slots=True)
class BridgeLimits:
    """The ``[limits]`` table: what one connection may send (see the module docstring)."""

    max_frame_bytes: int = 1 << 20
    max_messages_per_second: float = 50_000.0
    burst: float = 100_000.0
    max_channel_length: int = 128
    max_batch: int = 100_000
    max_channels: int = 100_000
    max_client_id_length: int = 128
    max_meta_key_length: int = 32
    max_meta_bytes: int = 1024
    max_subscribe_patterns: int = 256
    max_total_channels: int = 100_000
    max_staleness: float = 1.0
    send_timeout: float = 10.0


@dataclass(frozen=True)
class BridgeConfig:
    """Everything ``twin3d serve`` reads from bridge.toml.

    Args:
        tokens: token string -> role; empty means an open bridge (anyone may do anything).
        limits: what one connection may send.
        origins: allowed ``Origin`` headers; ``None`` allows any (and clients sending none).
        compression: permessage-deflate (off by default: it costs throughput and latency).
        auth_timeout: seconds an unauthenticated connection may wait before its first message.
        adapters: raw ``[[mqtt]]`` / ``[[opcua]]`` / ``[[csv]]`` / ``[[engine]]`` tables.
        base_dir: folder of bridge.toml (relative paths in adapter tables are resolved against it).
    """

    tokens: dict[str, Role] = field(default_factory=dict)
    limits: BridgeLimits = field(default_factory=BridgeLimits)
    origins: tuple[str, ...] | None = None
    compression: bool = False
    auth_timeout: float = 10.0
    adapters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    base_dir: Path | None = None

    @property
    def auth_required(self) -> bool:
        """True when tokens are configured."""
        return bool(self.tokens)

    def role_for(self, token: str | None) -> Role | None:
        """The role of ``token``; the open role when no tokens are configured; else ``None``."""
        if not self.tokens:
            return OPEN_ROLE
        if token is None:
            return None
        found = None
        for known, role in self.tokens.items():  # constant-time compare: no timing hints
            if hmac.compare_digest(known.encode(), token.encode("utf-8", "surrogatepass")):
                found = role
        return found


def _globs(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BridgeError(f"{where}: '{key}' must be a list of channel globs, e.g. [\"plate/*\"]")
    return tuple(value)


def parse_config(data: dict[str, Any], where: str = "bridge.toml",
                 base_dir: Path | None = None) -> BridgeConfig:
    """Build a :class:`BridgeConfig` from parsed TOML.

    Raises:
        BridgeError: an unknown key, a wrong type or a duplicate token, naming the fix.
    """
    known = {"token", "limits", "server", *ADAPTER_KINDS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BridgeError(f"{where}: unknown table {unknown[0]!r} (known: {', '.join(sorted(known))})")
    tokens: dict[str, Role] = {}
    entries = data.get("token", [])
    if not isinstance(entries, list):
        raise BridgeError(f"{where}: write tokens as [[token]] tables")
    for i, entry in enumerate(entries, 1):
        at = f"{where}: [[token]] #{i}"
        bad = sorted(set(entry) - {"name", "token", "publish", "subscribe", "alarms"})
        if bad:
            raise BridgeError(f"{at}: unknown key {bad[0]!r} (keys: name, token, publish, subscribe, alarms)")
        token = entry.get("token")
        if not isinstance(token, str) or len(token) < 8:
            raise BridgeError(f"{at}: 'token' must be a string of at least 8 characters")
        if token in tokens:
            raise BridgeError(f"{at}: the same token appears twice; give each role its own token")
        name = entry.get("name", f"token{i}")
        if not isinstance(name, str) or not name:
            raise BridgeError(f"{at}: 'name' must be a non-empty string")
        alarms = entry.get("alarms", [])
        if not isinstance(alarms, list) or not set(alarms) <= set(ALARM_RIGHTS):
            raise BridgeError(f"{at}: 'alarms' must be a list of {list(ALARM_RIGHTS)}, got {alarms!r}")
        tokens[token] = Role(name, _globs(entry, "publish", at), _globs(entry, "subscribe", at),
                             tuple(alarms))
    lim = data.get("limits", {})
    defaults = BridgeLimits()
    kwargs: dict[str, Any] = {}
    for key, value in lim.items():
        if not hasattr(defaults, key):
            raise BridgeError(f"{where}: [limits] has no key {key!r} "
                              f"(known: {', '.join(BridgeLimits.__slots__)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BridgeError(f"{where}: [limits] {key} must be a positive number")
        kwargs[key] = type(getattr(defaults, key))(value)
    server = data.get("server", {})
    bad = sorted(set(server) - {"origins", "compression", "auth_timeout"})
    if bad:
        raise BridgeError(f"{where}: [server] has no key {bad[0]!r} (known: origins, compression, auth_timeout)")
    origins = server.get("origins")
    if origins is not None:
        origins = _globs(server, "origins", f"{where}: [server]")
    compression = server.get("compression", False)
    if not isinstance(compression, bool):
        raise BridgeError(f"{where}: [server] compression must be true or false")
    auth_timeout = float(server.get("auth_timeout", 10.0))
    adapters = {kind: list(data[kind]) for kind in ADAPTER_KINDS if kind in data}
    return BridgeConfig(tokens, BridgeLimits(**kwargs), origins, compression, auth_timeout, adapters, base_dir)


def load_config(path: PathLike) -> BridgeConfig:
    """Read ``bridge.toml``.

    Raises:
        BridgeError: the file is missing, not TOML, or has a bad key (one line, with the fix).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BridgeError(f"{p}: no such config file (see streaming/bridge.example.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise BridgeError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, str(p), p.resolve().parent)
