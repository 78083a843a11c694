"""The Kit part: a small window to connect the open stage to a twin3d bridge.

Thin on purpose: everything it shows comes from :class:`.follower.Follower`, which the tests
run outside Kit against a real bridge.
"""

from __future__ import annotations

import asyncio
import time

import omni.ext  # type: ignore[import-not-found]
import omni.ui as ui  # type: ignore[import-not-found]
import omni.usd  # type: ignore[import-not-found]

from .follower import Follower

__all__ = ["Twin3DLiveExtension"]


class Twin3DLiveExtension(omni.ext.IExt):  # type: ignore[misc]
    """Window > twin3d live: bridge URL, token, connect/disconnect, what arrives."""

    def on_startup(self, ext_id: str) -> None:
        self._follower: Follower | None = None
        self._window = ui.Window("twin3d live", width=420, height=220)
        with self._window.frame, ui.VStack(spacing=4):
            with ui.HStack(height=22):
                ui.Label("Bridge", width=60)
                self._url = ui.StringField()
                self._url.model.set_value("ws://127.0.0.1:8765")
            with ui.HStack(height=22):
                ui.Label("Token", width=60)
                self._token = ui.StringField(password_mode=True)
            with ui.HStack(height=26):
                ui.Button("Connect", clicked_fn=self._connect)
                ui.Button("Disconnect", clicked_fn=self._disconnect)
            self._status = ui.Label("not connected", word_wrap=True)
            self._counts = ui.Label("")
            self._errors = ui.Label("", word_wrap=True, style={"color": 0xFF5555FF})
        self._refresh_task = asyncio.ensure_future(self._refresh())

    def _connect(self) -> None:
        self._disconnect()
        stage = omni.usd.get_context().get_stage()
        try:
            self._follower = Follower(stage, self._url.model.get_value_as_string().strip(),
                                      self._token.model.get_value_as_string().strip() or None)
        except ValueError as exc:
            self._errors.text = str(exc)
            return
        self._follower.start()

    def _disconnect(self) -> None:
        if self._follower is not None:
            self._stopping = asyncio.ensure_future(self._follower.stop())
            self._follower = None
            self._status.text = "disconnected"

    async def _refresh(self) -> None:
        while True:
            f = self._follower
            if f is not None:
                self._status.text = f.status
                age = "" if f.last_time is None else f", newest value {time.time() - f.last_time:.1f} s old"
                self._counts.text = f"{f.channels} channels, {f.values} values{age}"
                self._errors.text = f.errors[-1] if f.errors else ""
            await asyncio.sleep(0.5)

    def on_shutdown(self) -> None:
        self._disconnect()
        self._refresh_task.cancel()
        self._window.destroy()
        self._window = None
