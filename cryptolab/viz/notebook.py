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
the notebook, so a notebook opened later from its saved outputs loads it
before the saved charts.

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

__all__ = ["COMPONENTS", "frontend_session", "output_notebook", "reset"]

log = logging.getLogger(__name__)

#: The BokehJS bundles sent to the page (all but ``bokeh-mathjax``).
COMPONENTS: Final = ("bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables")

_lock = threading.Lock()
_served: set[str] = set()


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
    with _lock:
        if session in _served and not force:
            return False
        _served.add(session)
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
