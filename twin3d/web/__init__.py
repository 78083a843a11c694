"""The browser view: the live twin served to browsers, rendered in each browser (vtk.js).

``WebView`` (``app``) serves a :class:`twin3d.view.View`'s scene with trame's client-side
rendering and HTML overlays; ``layout`` places each browser's labels for its camera; ``auth``
is the token gate; ``serializer`` keeps unchanged triangle lists from being hashed on every
update; ``command`` is ``twin3d web`` and ``Twin.show()``.
"""

from __future__ import annotations

from twin3d.web.app import WebView
from twin3d.web.command import WebPage, show_twin

__all__ = ["WebPage", "WebView", "show_twin"]
