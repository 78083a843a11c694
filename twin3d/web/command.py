"""``twin3d web`` and ``Twin.show()``: serve a twin's live view to browsers.

``twin3d web STAGE [--bridge ws://...] [--token T] [--host H] [--port P]`` serves until
interrupted. In a notebook, ``twin.show()`` starts the same server on the kernel's event
loop and returns a :class:`WebPage`, which Jupyter shows as the page in an iframe.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin3d.errors import RenderError, StageError, UsageError

__all__ = ["WebPage", "make_web_view", "run_web", "show_twin"]


def make_web_view(twin: Any, stage: str, *, field: str | None = None,
                  paths: Sequence[str] = (), token: str | None = None) -> Any:
    """A :class:`~twin3d.web.WebView` of ``twin`` showing the stage's field (or ``field``).

    Raises:
        StageError: the stage binds no sensors.
        RenderError: a camera path cannot be read, or the stage has no meshes.
    """
    from twin3d.view.camerapath import load_path
    from twin3d.view.command import shown_field_models
    from twin3d.web.app import WebView

    if not twin.sensors:
        raise StageError(f"{stage} binds no sensors, so there is nothing live to show; bind a "
                         f"sensor map first: twin3d bind {stage} --sensors sensors.toml")
    name, models = shown_field_models(twin, field)
    rng = twin.field_ranges.get(name) if name is not None else None
    cams = {Path(p).stem: load_path(p, stage) for p in paths}
    return WebView(twin, models, field_range=rng, paths=cams, token=token)


def run_web(args: argparse.Namespace) -> int:
    """Run ``twin3d web`` from parsed arguments; return the exit code."""
    from twin3d.twin import Twin

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: give a TCP port, 0..65535")
    if args.bridge and not args.bridge.startswith(("ws://", "wss://")):
        raise UsageError(f"--bridge {args.bridge}: give a ws:// or wss:// URL")
    twin = Twin.open(args.stage)
    web = make_web_view(twin, args.stage, field=args.field, paths=args.path or (),
                        token=args.token)
    feeds = [web.feed_bridge(args.bridge, args.token)] if args.bridge else []

    def ready(**_: Any) -> None:
        source = f"live from {args.bridge}" if args.bridge else "the stage's saved values"
        gate = ", token required" if args.token else ""
        print(f"Serving {args.stage} on http://{args.host}:{web.port}/ ({len(web.channels)} "
              f"sensors, {source}{gate}); Ctrl-C stops", flush=True)

    web.build().controller.on_server_ready.add(ready)
    try:
        web.start(host=args.host, port=args.port, feeds=feeds)
    finally:
        web.view.close()
    return 0


class WebPage:
    """A running browser view, shown by Jupyter as an iframe of the page.

    Attributes:
        url: the page's address.
        web: the :class:`~twin3d.web.WebView` behind it.
    """

    def __init__(self, web: Any, url: str, height: int = 640) -> None:
        self.web, self.url, self.height = web, url, height

    def __repr__(self) -> str:
        return f"WebPage({self.url!r})"

    def close(self) -> None:
        """Stop serving the page (from a script; in a notebook, ``await page.web.stop()``)."""
        self.web.close()

    def _repr_html_(self) -> str:
        return (f'<iframe src="{self.url}" width="100%" height="{self.height}" '
                'style="border:0" title="twin3d live view"></iframe>')


def show_twin(twin: Any, *, bridge: str | None = None, token: str | None = None,
              field: str | None = None, host: str = "127.0.0.1", port: int = 0,
              height: int = 640) -> WebPage:
    """Serve ``twin`` to browsers from this process and return the page (see ``Twin.show``).

    In a running event loop (a Jupyter kernel's) the server runs as a task on it; otherwise
    on a daemon thread with its own loop. Returns once the server listens.
    """
    web = make_web_view(twin, str(getattr(twin, "stage_path", "the stage")), field=field,
                        token=token)
    feeds = [web.feed_bridge(bridge, token)] if bridge else []
    if port == 0:  # the page's address must be known before the kernel's loop runs the server
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
    page = WebPage(web, f"http://{host}:{port}/", height)
    if _loop_running():  # a Jupyter kernel: serve from its loop
        web.start(host=host, port=port, exec_mode="task", feeds=feeds)
        return page
    up = threading.Event()  # a script: serve from a thread with its own loop
    web.build().controller.on_server_ready.add(lambda **_: up.set())

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        web.start(host=host, port=port, feeds=feeds)

    threading.Thread(target=serve, name="twin3d-web", daemon=True).start()
    if not up.wait(60):
        raise RenderError(f"the browser view did not start on {page.url} within 60 s")
    return page


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
