"""twin3d live for Omniverse Kit: a bridge's live values on the open stage.

The Kit part (the window) loads only inside Kit; :mod:`.follower` needs only ``pxr`` and
``websockets`` and is what the tests run against a real bridge.
"""

from __future__ import annotations

try:  # inside Kit
    from .window import Twin3DLiveExtension  # noqa: F401
except ImportError:  # outside Kit: the follower alone
    pass
