"""Secret parameter values kept out of logs, run logs and executed notebooks.

:func:`redact_parameters` is what a run shows of its parameters; the values it
changed are the run's secrets (:func:`find_secrets`), replaced by their
redacted form in papermill's log records (:class:`ScrubFilter`) and in the
executed notebook (:func:`scrub_notebook`, before anything reads it).

Examples
--------
>>> raw = {"store_url": "postgresql://app:s3cret@db/x", "n": 3}
>>> shown = redact_parameters(raw)
>>> secrets = find_secrets(raw, shown)
>>> scrub("could not connect to postgresql://app:s3cret@db/x", secrets)
'could not connect to postgresql://app:***@db/x'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptolab.reports.files import read_notebook

__all__ = ["ScrubFilter", "find_secrets", "redact_parameters", "scrub", "scrub_notebook"]


def redact_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters with secrets hidden: passwords in URLs, values of secret-looking names.

    Examples
    --------
    >>> redact_parameters({"store_url": "postgresql://app:s3cret@db/x", "api_key": "k", "n": 3})
    {'store_url': 'postgresql://app:***@db/x', 'api_key': '***', 'n': 3}
    """
    from cryptolab.config import redact

    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if isinstance(value, list | tuple):
            out[name] = [redact(name, v) for v in value]
        else:
            out[name] = redact(name, value)
    return out


def find_secrets(raw: Mapping[str, Any], shown: Mapping[str, Any]) -> dict[str, str]:
    """``{secret text: its redacted form}`` for every parameter value redaction changed."""
    found: dict[str, str] = {}
    for name, value in raw.items():
        values = value if isinstance(value, list | tuple) else [value]
        hidden = shown[name] if isinstance(value, list | tuple) else [shown[name]]
        for v, h in zip(values, hidden, strict=True):
            if isinstance(v, str) and v and v != h:
                found[v] = str(h)
    return found


def scrub(node: Any, secrets: Mapping[str, str]) -> Any:
    """``node`` (text, or lists and dicts of it) with every secret replaced by its redacted form."""
    if isinstance(node, str):
        for secret, shown in secrets.items():
            node = node.replace(secret, shown)
        return node
    if isinstance(node, list):
        return [scrub(x, secrets) for x in node]
    if isinstance(node, dict):
        return {k: scrub(v, secrets) for k, v in node.items()}
    return node


class ScrubFilter(logging.Filter):
    """Hides secret parameter values in papermill's own log records (at DEBUG it logs the
    source of the cell it injects, values included)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without the secrets; keep every record."""
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def scrub_notebook(path: Path, secrets: Mapping[str, str]) -> None:
    """Replace secret parameter values in an executed notebook (papermill writes the values it
    injects into the notebook's source and metadata) with their redacted form."""
    import nbformat

    if not secrets or not path.exists():
        return
    nb = read_notebook(path)
    clean = nbformat.from_dict(scrub(nb, secrets))  # type: ignore[no-untyped-call]
    nbformat.write(clean, str(path))  # type: ignore[no-untyped-call]
