"""A notebook's parameters: what its ``parameters`` cell declares, and values checked against it.

:func:`inspect_parameters` reads the notebook's cell tagged ``parameters``
(``papermill.inspect_notebook``); :func:`validate_parameters` rejects unknown
names and values whose type does not match the default's (``int``, ``float``,
``str``, ``bool``, ``list``, ``dict``; a ``None`` default accepts anything; a
string for a ``list`` parameter is read by
:func:`~cryptolab.parameters.list_parameter`, as papermill's ``-p`` gives it),
so a bad run fails before a kernel starts.

Examples
--------
>>> import tempfile, pathlib, nbformat
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> nb = nbformat.v4.new_notebook()
>>> params = nbformat.v4.new_code_cell("n = 3  # how many\\nname = 'x'")
>>> params.metadata["tags"] = ["parameters"]
>>> nb.cells = [params, nbformat.v4.new_code_cell("print(name * n)")]
>>> nbformat.write(nb, d / "demo.ipynb")
>>> inspect_parameters(d / "demo.ipynb")["n"]
Parameter(name='n', type='int', default=3, help='how many')
>>> lists = nbformat.v4.new_code_cell("names: list = []")
>>> lists.metadata["tags"] = ["parameters"]
>>> nb.cells = [lists]
>>> nbformat.write(nb, d / "lists.ipynb")
>>> validate_parameters(d / "lists.ipynb", {"names": "BTC,ETH"})
{'names': ['BTC', 'ETH']}
>>> validate_parameters(d / "demo.ipynb", {"n": "three"})
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'n': expected int (default 3), got str 'three'
>>> validate_parameters(d / "demo.ipynb", {"m": 1})
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'm': unknown parameter; the notebook takes n, name
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptolab.errors import NotebookError, ValidationError
from cryptolab.parameters import list_parameter
from cryptolab.reports.files import read_notebook

__all__ = ["Parameter", "inspect_parameters", "validate_parameters"]

_TYPE_NAMES: Final = {
    int: "int", float: "float", str: "str", bool: "bool", list: "list", tuple: "list",
    dict: "dict", type(None): "None",
}


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a notebook's ``parameters`` cell."""

    name: str
    type: str
    default: Any
    help: str = ""


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _Unparsed(text)


@dataclass(frozen=True, slots=True)
class _Unparsed:
    text: str


def _type_of(value: Any, annotated: str) -> str:
    """``int``, ``float``, ``str``, ``bool``, ``list``, ``dict`` (``?`` = or None), ``None`` or ``any``."""
    ann = annotated.replace(" ", "").replace("None|", "")
    m = re.match(r"(?:Optional\[)?(int|float|str|bool|list|dict)\b", ann)
    if m:
        return m.group(1) + ("?" if ("None" in ann or "Optional" in ann) else "")
    if isinstance(value, _Unparsed):
        return "any"
    return _TYPE_NAMES.get(type(value), "any")


def inspect_parameters(path: str | Path) -> dict[str, Parameter]:
    """The parameters a notebook takes (from its cell tagged ``parameters``), in order.

    Raises
    ------
    NotebookError
        When the notebook cannot be read.
    """
    import papermill

    p = Path(path)
    if not p.is_file():
        raise NotebookError(f"no notebook at {p}")
    try:
        nb = read_notebook(p)
        if nb.metadata.get("kernelspec", {}).get("name"):
            raw = papermill.inspect_notebook(str(p))
        else:  # papermill needs a kernel name to pick its translator
            from papermill.inspection import _infer_parameters
            from papermill.iorw import load_notebook_node

            nb = load_notebook_node(str(p))
            raw = {x.name: x._asdict() for x in _infer_parameters(nb, "python3", "python")}
    except Exception as exc:
        raise NotebookError(f"cannot read the parameters of {p}: {exc}") from exc
    out: dict[str, Parameter] = {}
    for name, info in raw.items():
        default = _literal(str(info.get("default", "None")))
        inferred = str(info.get("inferred_type_name") or "")
        kind = _type_of(default, "" if inferred == "None" else inferred)
        shown = default.text if isinstance(default, _Unparsed) else default
        out[name] = Parameter(name=name, type=kind, default=shown, help=str(info.get("help") or ""))
    return out


def _accepts(kind: str, value: Any) -> bool:
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        return optional or kind in ("None", "any")
    if kind in ("None", "any"):
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list | tuple)
    if kind == "dict":
        return isinstance(value, dict)
    return True


def validate_parameters(path: str | Path, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's parameters cell; return them as a plain dict.

    Raises
    ------
    ValidationError
        Naming the first unknown or ill-typed parameter.
    """
    declared = inspect_parameters(path)
    given = dict(parameters or {})
    for name, value in given.items():
        spec = declared.get(name)
        if spec is None:
            takes = ", ".join(declared) or "no parameters"
            raise ValidationError(name, f"unknown parameter; the notebook takes {takes}")
        if spec.type.rstrip("?") == "list" and isinstance(value, str):
            value = given[name] = list_parameter(value, name)  # "BTC", "BTC,ETH", '["BTC"]'
        if not _accepts(spec.type, value):
            want = spec.type.rstrip("?") + (" or None" if spec.type.endswith("?") else "")
            raise ValidationError(
                name,
                f"expected {want} (default {spec.default!r}), got {type(value).__name__} {value!r}",
            )
        if isinstance(value, tuple):
            given[name] = list(value)
    return given
