"""Executed notebooks as HTML pages (nbconvert) that open anywhere, offline included."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from cryptolab.reports.files import read_notebook

__all__ = ["notebook_to_html"]

_BOKEH_MARKER: Final = "application/vnd.bokehjs_exec.v0+json"
_LOAD_MARKER: Final = "application/vnd.bokehjs_load.v0+json"


def _inline_bokehjs(body: str) -> str:
    """Put BokehJS inline in the page, so the charts render offline and without a CDN."""
    from bokeh.resources import Resources

    scripts = Resources(mode="inline", components=["bokeh"]).render_js()
    head = body.find("<head>")
    if head < 0:
        return scripts + body
    at = head + len("<head>")
    return body[:at] + "\n" + scripts + "\n" + body[at:]


def _without_bokehjs_loaders(nb: Any) -> Any:
    """A copy of ``nb`` without the outputs that load BokehJS (``output_notebook``'s): the
    page carries BokehJS inline once, in its head, instead of a loader per notebook run
    (which may point at a CDN)."""
    import copy

    out = copy.deepcopy(nb)
    for cell in out.cells:
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if _LOAD_MARKER not in o.get("data", {})]
    return out


def notebook_to_html(
    notebook: Any, path: str | Path, *, self_contained: bool = True, hide_code: bool = False
) -> Path:
    """Render an executed notebook (a ``NotebookNode`` or a path) to HTML with nbconvert.

    With ``self_contained`` (the default), pages with Bokeh charts carry BokehJS
    inline, so they open anywhere, offline included. ``hide_code`` leaves the
    code cells out (outputs, markdown and tracebacks stay): a report.
    """
    from nbconvert import HTMLExporter

    nb = read_notebook(notebook) if isinstance(notebook, str | Path) else notebook
    offline: dict[str, Any] = {}
    if self_contained:
        nb = _without_bokehjs_loaders(nb)
        # no require.js or MathJax from a CDN: the page must open offline (data: URLs fetch nothing)
        offline = {"require_js_url": "data:,", "mathjax_url": "data:,"}
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        exclude_input=hide_code, exclude_input_prompt=hide_code, exclude_output_prompt=hide_code,
        **offline,
    )
    body, _resources = exporter.from_notebook_node(nb)
    if self_contained and any(
        _BOKEH_MARKER in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])
    ):
        body = _inline_bokehjs(body)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out
