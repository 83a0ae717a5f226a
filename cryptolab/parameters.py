"""Notebook parameters as they arrive from papermill's command line, made into what they mean.

``papermill nb.ipynb out.ipynb -p symbols BTC`` injects ``symbols = "BTC"``: the
CLI passes ``-p`` values as strings (``-y``/``-f`` YAML gives real lists). Every
list-typed parameter of cryptolab's notebooks goes through :func:`list_parameter`
in the notebook's first code cell after its parameters cell, and
:func:`cryptolab.reports.notebooks.run_notebook` uses the same function before injecting
a string given for a list-typed parameter.
"""

from __future__ import annotations

import json
from typing import Any

from cryptolab.errors import ValidationError

__all__ = ["list_parameter"]


def _parse_list(text: str, name: str) -> Any:
    """A JSON or YAML flow list (``["BTC"]``, ``[BTC, ETH]``); YAML scalars stay strings."""
    try:
        import yaml  # PyYAML comes with papermill; JSON lists work without it
    except ImportError:  # pragma: no cover - depends on the install
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValidationError(name, f"{text!r} is not a JSON list ({exc})") from None
    try:
        # BaseLoader: every scalar is a string (no NO -> False, no 1.10 -> 1.1)
        return yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader builds no objects
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValidationError(name, f"{text!r} is not a JSON/YAML list ({first})") from None


def list_parameter(value: object, name: str = "value") -> list[str] | None:
    """A list-typed notebook parameter as a list of strings, whatever form it was given in.

    Accepts ``None`` (stays ``None``: the notebook's default meaning), a list or
    tuple, one item (``"BTC"``), comma-separated items (``"BTC,ETH"``) and a
    JSON or YAML list in a string (``'["BTC"]'``, ``"[BTC, ETH]"``). Items are
    stripped; empty items are dropped (so ``""`` is ``[]``); numbers become
    their text.

    Parameters
    ----------
    value
        The parameter's value as injected.
    name
        The parameter's name, for the error message.

    Returns
    -------
    list of str or None

    Raises
    ------
    ValidationError
        A value that is not a list of plain items (a mapping, a nested list,
        a malformed JSON/YAML list), naming the parameter.

    Examples
    --------
    >>> list_parameter("BTC"), list_parameter("BTC, ETH"), list_parameter(["BTC"])
    (['BTC'], ['BTC', 'ETH'], ['BTC'])
    >>> list_parameter('["BTC", "ETH"]'), list_parameter("[BTC, NO]"), list_parameter(None)
    (['BTC', 'ETH'], ['BTC', 'NO'], None)
    >>> list_parameter(""), list_parameter(("a", 3))
    ([], ['a', '3'])
    >>> list_parameter("[BTC", "symbols")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'symbols': '[BTC' is not a JSON/YAML list (while parsing a flow sequence)
    >>> list_parameter({"BTC": 1}, "symbols")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'symbols': expected a list, one item or comma-separated items, got dict {'BTC': 1}
    """
    if value is None:
        return None
    items: Any
    if isinstance(value, str):
        text = value.strip()
        items = _parse_list(text, name) if text.startswith("[") else text.split(",")
    else:
        items = value
    if isinstance(items, str | int | float) and not isinstance(items, bool):
        items = [items]
    if not isinstance(items, list | tuple):
        raise ValidationError(
            name,
            "expected a list, one item or comma-separated items, "
            f"got {type(value).__name__} {value!r}",
        )
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ValidationError(name, f"items must be plain values, got {item!r} in {value!r}")
        text = str(item).strip()
        if text:
            out.append(text)
    return out
