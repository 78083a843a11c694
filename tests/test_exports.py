"""The public API: what the top level re-exports is public where it is defined, and every
module's ``__all__`` names exactly the public classes and functions it defines (websockets' way)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import twin3d

_OPTIONAL = ("twin3d.bridge.adapters.mqtt", "twin3d.bridge.adapters.opcua", "twin3d.usd._nvidia_runner")


def _modules() -> list[ModuleType]:
    out = []
    for info in pkgutil.walk_packages(twin3d.__path__, "twin3d."):
        if info.name in _OPTIONAL or info.name.endswith("__main__"):
            continue
        out.append(importlib.import_module(info.name))
    return out


def test_top_level_exports_are_public_where_they_live() -> None:
    assert twin3d.__all__ == sorted(twin3d.__all__)   # written out, in order: the list people read
    assert set(twin3d.__all__) == {n for n in dir(twin3d) if not n.startswith("_") and n != "annotations"
                                   and not isinstance(getattr(twin3d, n), ModuleType)} | {"__version__"}
    for name in twin3d.__all__:
        if name == "__version__":
            continue
        obj = getattr(twin3d, name)
        home = importlib.import_module(obj.__module__)
        assert name in getattr(home, "__all__", ()), f"twin3d.{name} is not in {home.__name__}.__all__"


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_module_all_is_complete_and_resolves(module: ModuleType) -> None:
    exported = set(getattr(module, "__all__", ()))
    defined = {name for name, obj in vars(module).items()
               if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and getattr(obj, "__module__", None) == module.__name__}
    assert defined <= exported, f"{module.__name__}: public but not in __all__: {sorted(defined - exported)}"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{module.__name__}.__all__ names what it lacks: {missing}"
