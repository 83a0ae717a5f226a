"""BokehJS in the notebook page: loaded from the installed bokeh, once per page, never a CDN.

A Bokeh figure or a ``jupyter_bokeh`` widget draws only when BokehJS is in the
browser page; without it JupyterLab shows ``Failed to create view for
'BokehView' ... reading 'require'`` where the chart should be. Bokeh's own
``output_notebook()`` fetches BokehJS from a CDN by default, which fails
offline and behind many proxies. :func:`output_notebook` publishes BokehJS
inline, from the bokeh package installed next to the kernel, so charts draw
with no network at all.

Every cryptolab chart calls :func:`output_notebook` before it is displayed,
so a user never has to. BokehJS is sent once per *page*: the kernel keeps the
frontend sessions it has served (every Jupyter page, and every reload of it,
talks to the kernel through a session of its own), so a reloaded page or a
second browser tab gets BokehJS again when it shows its first chart, and a
restarted kernel starts afresh. The output that carries BokehJS is saved with
the notebook (when its cell is run again, which clears it, it is sent again),
so a notebook opened later from its saved outputs loads it before the saved
charts.

Only the core BokehJS bundle and its widgets, tables and WebGL extensions are
sent (about 2 MB); MathJax (another 1.8 MB, only for LaTeX labels) is not.

Examples
--------
Outside a Jupyter kernel there is no page to load into, and nothing happens:

>>> output_notebook()
False
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

__all__ = ["COMPONENTS", "SNAPSHOT_CSS", "frontend_session", "output_notebook", "publish_snapshot", "reset"]

log = logging.getLogger(__name__)

#: The BokehJS bundles sent to the page (all but ``bokeh-mathjax``).
COMPONENTS: Final = ("bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables")

_lock = threading.Lock()
#: frontend session -> (cell id, request id) of the output that carried BokehJS to it
_served: dict[str, tuple[str | None, str | None]] = {}


def _kernel_shell() -> Any:
    """The IPython shell when this process is a Jupyter kernel with a frontend, else ``None``."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return None
    shell = get_ipython()  # type: ignore[no-untyped-call]
    if shell is None or getattr(shell, "kernel", None) is None:
        return None  # plain python, or a terminal IPython: no page
    return shell


def frontend_session(shell: Any = None) -> str:
    """The session id of the frontend whose request the kernel is running now.

    Each Jupyter page opens its own session, and a reloaded page a new one.
    ``""`` when there is no request (outside a kernel).

    Examples
    --------
    >>> frontend_session()
    ''
    >>> class Shell:
    ...     parent_header = {"header": {"session": "4f1c"}}
    >>> frontend_session(Shell())
    '4f1c'
    """
    shell = shell if shell is not None else _kernel_shell()
    header = getattr(shell, "parent_header", None) or {}
    inner = header.get("header", header) if isinstance(header, dict) else {}
    session = inner.get("session", "") if isinstance(inner, dict) else ""
    return str(session or "")


def output_notebook(*, force: bool = False) -> bool:
    """Make sure BokehJS is in the page of the notebook being run; return whether it was sent.

    Call it once before your own ``bokeh.io.show(...)`` in a notebook (cryptolab's
    charts call it themselves). It also switches ``bokeh.io.show`` to notebook
    output, like Bokeh's ``output_notebook``, but with BokehJS inline from the
    installed bokeh (works offline).

    Parameters
    ----------
    force
        Send BokehJS even if this page already has it.

    Returns
    -------
    bool
        ``True`` when BokehJS was published to the page now, ``False`` when the
        page already had it or there is no notebook page (a script, papermill
        still publishes: it runs in a kernel).
    """
    shell = _kernel_shell()
    if shell is None:
        return False
    session = frontend_session(shell)
    header = getattr(shell, "parent_header", None) or {}
    cell = (header.get("metadata") or {}).get("cellId")
    msg = (header.get("header") or {}).get("msg_id")
    with _lock:
        carrier = _served.get(session)
        # the page has BokehJS, and the output that carries it is still in the notebook
        # (running its cell again clears it: then it is sent again, to be saved with the cell)
        if carrier is not None and not force and (carrier[0] is None or carrier[0] != cell
                                                  or carrier[1] == msg):
            return False
        _served[session] = (cell, msg)
    from bokeh.io import output_notebook as bokeh_output_notebook
    from bokeh.resources import Resources

    bokeh_output_notebook(resources=Resources(mode="inline", components=list(COMPONENTS)),
                          hide_banner=True)
    log.debug("BokehJS published inline to frontend session %r", session)
    return True


def reset() -> None:
    """Forget which pages have BokehJS (the next chart sends it again)."""
    with _lock:
        _served.clear()


#: CSS shipped with each snapshot: while the live widget after it draws, the snapshot is
#: hidden; when the widget cannot come back (its kernel is gone), its error is hidden instead.
SNAPSHOT_CSS: Final = """<style>
.jp-OutputArea-child:has(.cl-snapshot):has(+ .jp-OutputArea-child .cl-live) { display: none; }
.jp-OutputArea-child:has(.cl-snapshot) + .jp-OutputArea-child:not(:has(.cl-live)) { display: none; }
</style>"""


def publish_snapshot(layout: Any) -> bool:
    """Publish a static copy of a Bokeh ``layout`` just before its live widget.

    A notebook opened later without its kernel cannot bring the live widget back;
    the static copy (the chart as it was when it was displayed) takes its place
    there. While the live widget draws, CSS keeps the copy hidden. Returns
    whether anything was published (only inside a Jupyter kernel).
    """
    if _kernel_shell() is None:
        return False
    import json

    from bokeh.embed import json_item
    from bokeh.util.serialization import make_globally_unique_css_safe_id
    from IPython.display import publish_display_data

    target = make_globally_unique_css_safe_id()
    item = json_item(layout, target)
    _rename_models(item.get("doc"))
    payload = json.dumps(item).replace("</", "<\\/")
    # Bokeh's own embed script gives up after one second without BokehJS, and expects its
    # target in the page at once; a notebook page may attach the output and load BokehJS
    # later than that, so this one waits for both, up to a minute.
    script = (f"<script>(function () {{ const item = {payload}; let tries = 0;"
              "const go = () => { if (window.Bokeh && window.Bokeh.embed &&"
              " document.getElementById(item.target_id)) {"
              "window.Bokeh.embed.embed_item(item); } else if (++tries < 600) {"
              "setTimeout(go, 100); } }; go(); })();</script>")
    html = f'{SNAPSHOT_CSS}<div class="cl-snapshot"><div id="{target}"></div>{script}</div>'
    publish_display_data({"text/html": html})  # type: ignore[no-untyped-call]
    return True


def _rename_models(node: Any) -> None:
    """Prefix every model name in a serialized document with ``snapshot:``.

    The snapshot is a copy: ``doc.get_model_by_name("candles")`` in the page must find
    the live chart's data, not the copy's.
    """
    if isinstance(node, dict):
        attrs = node.get("attributes")
        if isinstance(attrs, dict) and isinstance(attrs.get("name"), str):
            attrs["name"] = "snapshot:" + attrs["name"]
        for value in node.values():
            _rename_models(value)
    elif isinstance(node, list):
        for value in node:
            _rename_models(value)


class SnapshotFirst:
    """Mixin for an ipywidget that shows a Bokeh layout: displaying it publishes the snapshot first.

    Set ``snapshot_of`` to the layout; ``live_widget_class`` builds the widget classes.
    """

    snapshot_of: Any = None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.snapshot_of is not None:
            publish_snapshot(self.snapshot_of)
        return super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]


_classes: dict[type, type] = {}


def live_widget_class(base: type) -> type:
    """``base`` (an ipywidget class) with :class:`SnapshotFirst` mixed in (built once)."""
    with _lock:
        cls = _classes.get(base)
        if cls is None:
            cls = _classes[base] = type(f"Live{base.__name__}", (SnapshotFirst, base), {})
        return cls
