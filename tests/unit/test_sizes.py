"""The package stays in rooms a reader can hold in their head, and its imports run one way.

Measured over ``cryptolab/``: no module over 900 lines, no class over 450, no function over 100,
and no import circle between modules (imports under ``TYPE_CHECKING`` aside: they never run).
The layer rule itself is import-linter's (tests/unit/test_layers.py); these are the limits it
does not express.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import cryptolab

PACKAGE = Path(cryptolab.__file__).parent
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 900, 450, 100


def oversized(root: Path) -> Iterator[str]:
    """Every module, class and function under ``root`` over its limit, as ``path: what (lines)``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "m.py").write_text("def f():\\n" + "    x = 1\\n" * 100)
    ...     list(oversized(Path(d)))
    ['m.py: function f (101 lines)']
    """
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(root).as_posix()
        if (n := text.count("\n")) > MAX_MODULE:
            yield f"{name}: module ({n} lines)"
        for node in ast.walk(ast.parse(text, name)):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                if lines > (MAX_CLASS if kind == "class" else MAX_FUNCTION):
                    yield f"{name}: {kind} {node.name} ({lines} lines)"


def circles(package: str) -> list[list[str]]:
    """The import circles between modules of ``package`` (strongly connected components of two
    or more modules; imports under ``TYPE_CHECKING`` left out)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the test extra)")
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if not w.startswith(package):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module.startswith(package) and module not in index:
            visit(module)
    return found


def test_no_module_class_or_function_over_its_limit() -> None:
    assert list(oversized(PACKAGE)) == []


def test_the_limits_are_seen(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_text("class C:\n" + "    x = 1\n" * 450 + "\n" * 450)
    assert list(oversized(tmp_path)) == ["big.py: module (901 lines)", "big.py: class C (451 lines)"]


def test_no_import_circle_inside_the_package() -> None:
    assert circles("cryptolab") == []


def test_a_circle_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "circlepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circlepkg import b, c  # noqa: F401\n")
    (pkg / "b.py").write_text("def f() -> None:\n    from circlepkg import a  # noqa: F401\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                              "    from circlepkg import a  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # b -> a runs when f is called: a circle; c -> a never runs: none
    assert circles("circlepkg") == [["circlepkg.a", "circlepkg.b"]]
