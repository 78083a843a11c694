"""No reaching into another module's private state: ``x._name`` is only used where ``_name`` is
defined (the same module), and no module imports another's private names (private modules of
the package, such as ``twin3d._io``, are fine: they are shared on purpose)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "twin3d"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _targets(node: ast.expr) -> Iterator[ast.expr]:
    if isinstance(node, ast.Tuple | ast.List):
        for elt in node.elts:
            yield from _targets(elt)
    else:
        yield node


def _defined(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(n.name)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            names |= {a.arg for a in n.args.args + n.args.kwonlyargs}
        if isinstance(n, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for t in n.targets if isinstance(n, ast.Assign) else [n.target]:
                for leaf in _targets(t):
                    if isinstance(leaf, ast.Attribute):
                        names.add(leaf.attr)
                    elif isinstance(leaf, ast.Name):
                        names.add(leaf.id)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and _private(n.value):
            names.add(n.value)   # __slots__ entries
    return names


def offenders() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = _defined(tree)
        rel = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            mine = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in (
                "self", "cls")   # a subclass using its base's protected members is fine
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in defined and not mine:
                found.append(f"{rel}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    module = PACKAGE.parent / (node.module.replace(".", "/") + "/" + alias.name)
                    if _private(alias.name) and not (module.with_suffix(".py").is_file() or module.is_dir()):
                        found.append(f"{rel}:{node.lineno}: imports {alias.name}")
    return found


def test_no_private_access_across_modules() -> None:
    assert offenders() == []
