"""A small reverse proxy for the tests: serves an upstream under a path prefix (HTTP and
WebSocket), stripping the prefix as nginx's ``location /twin/ { proxy_pass http://up/; }`` does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_KEEP = {"content-type", "location", "set-cookie", "cache-control", "last-modified", "etag"}


@contextmanager
def reverse_proxy(prefix: str, upstream: str) -> Iterator[str]:
    """Serve ``upstream`` (``http://host:port/``) under ``prefix`` on 127.0.0.1; yield its URL."""
    import aiohttp
    from aiohttp import web

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        target = upstream + request.match_info["tail"]
        if request.query_string:
            target += "?" + request.query_string
        if request.headers.get("Upgrade", "").lower() == "websocket":
            front = web.WebSocketResponse(max_msg_size=0)
            await front.prepare(request)
            forward = {k: v for k, v in request.headers.items()
                       if k.lower() in ("cookie", "authorization")}
            async with session.ws_connect("ws" + target[4:], max_msg_size=0,
                                          headers=forward) as back:
                async def pump(src: object, dst: object) -> None:
                    async for msg in src:  # type: ignore[attr-defined]
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await dst.send_str(msg.data)  # type: ignore[attr-defined]
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await dst.send_bytes(msg.data)  # type: ignore[attr-defined]
                        else:
                            break

                tasks = [asyncio.ensure_future(pump(front, back)),
                         asyncio.ensure_future(pump(back, front))]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    t.cancel()
            return front
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with session.request(request.method, target, headers=headers,
                                   data=await request.read(), allow_redirects=False) as resp:
            body = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() in _KEEP}
            return web.Response(status=resp.status, body=body, headers=out)

    async def main() -> None:
        app = web.Application()
        app["session"] = aiohttp.ClientSession(auto_decompress=False)
        app.router.add_route("*", prefix + "{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["port"] = runner.addresses[0][1]
        holder["stop"] = asyncio.Event()
        started.set()
        await holder["stop"].wait()  # type: ignore[attr-defined]
        await app["session"].close()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}{prefix}"
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)
