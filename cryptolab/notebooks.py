"""Run notebooks with papermill: validated parameters, failures that name the cell, HTML output.

:func:`run_notebook` is the one entry point. It reads the notebook's cell
tagged ``parameters`` (``papermill.inspect_notebook``), rejects unknown names
and values whose type does not match the default's (``int``, ``float``,
``str``, ``bool``, ``list``, ``dict``; a ``None`` default accepts anything;
a string for a ``list`` parameter is read by
:func:`~cryptolab.parameters.list_parameter`, as papermill's ``-p`` gives it)
*before* starting a kernel, executes the notebook, and writes the executed
``.ipynb`` and an ``.html`` rendering (nbconvert) next to each other, in place
of the previous ones only when the run succeeds. A cell that raises becomes a
:class:`NotebookRunError` (a :class:`~cryptolab.errors.NotebookError`) naming
the cell's index in the source notebook and its source; its outputs are
written to ``<name>.failed.ipynb`` and ``<name>.failed.html``, so the failure
can be read in the HTML. Kernels run with CurveZMQ-encrypted channels
(:func:`kernel_config`).

:func:`render_report` runs the market report (``reports/market_report.ipynb``, found by
:func:`cryptolab.resources.find_notebook`) on a store.

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
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptolab.errors import NotebookError, ValidationError
from cryptolab.parameters import list_parameter
from cryptolab.resources import REPORT, find_notebook, shipped_dir

__all__ = [
    "FAILED_SUFFIX",
    "NOTEBOOKS_DIR",
    "REPORT_NOTEBOOK",
    "NotebookRun",
    "NotebookRunError",
    "Parameter",
    "inspect_parameters",
    "kernel_config",
    "notebook_to_html",
    "redact_parameters",
    "render_report",
    "report_parameters",
    "run_notebook",
    "validate_parameters",
]

log = logging.getLogger(__name__)

#: The notebooks shipped with cryptolab (``<repo>/notebooks`` in a checkout).
NOTEBOOKS_DIR: Final = shipped_dir("notebooks")
#: The shipped market report (:func:`render_report` runs the one :func:`find_notebook` finds).
REPORT_NOTEBOOK: Final = NOTEBOOKS_DIR / REPORT
#: Added to the output stem of a failed run (``market_report.failed.html``).
FAILED_SUFFIX: Final = ".failed"

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


@dataclass(frozen=True, slots=True)
class NotebookRun:
    """A finished notebook run."""

    notebook: Path
    output: Path
    html: Path | None
    parameters: dict[str, Any]
    started_ms: int
    duration_s: float
    kernel: str = "python3"
    cells: int = 0


class NotebookRunError(NotebookError):
    """A notebook run failed; ``output``/``html`` hold what was executed, when written.

    Attributes
    ----------
    cell
        Index of the failing cell in the source notebook (0-based).
    source
        The failing cell's source.
    ename, evalue
        The exception raised in the kernel.
    """

    def __init__(
        self,
        message: str,
        *,
        cell: int | None = None,
        source: str | None = None,
        ename: str | None = None,
        evalue: str | None = None,
        output: Path | None = None,
        html: Path | None = None,
        duration_s: float | None = None,
    ) -> None:
        super().__init__(message, cell=cell, source=source)
        self.ename = ename
        self.evalue = evalue
        self.output = output
        self.html = html
        self.duration_s = duration_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for run logs)."""
        return {
            "message": str(self), "cell": self.cell, "source": self.source,
            "ename": self.ename, "evalue": self.evalue,
        }


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
        nb = _read(p)
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


def _secrets(raw: Mapping[str, Any], shown: Mapping[str, Any]) -> dict[str, str]:
    """``{secret text: its redacted form}`` for every parameter value redaction changed."""
    found: dict[str, str] = {}
    for name, value in raw.items():
        values = value if isinstance(value, list | tuple) else [value]
        hidden = shown[name] if isinstance(value, list | tuple) else [shown[name]]
        for v, h in zip(values, hidden, strict=True):
            if isinstance(v, str) and v and v != h:
                found[v] = str(h)
    return found


def _scrub(node: Any, secrets: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        for secret, shown in secrets.items():
            node = node.replace(secret, shown)
        return node
    if isinstance(node, list):
        return [_scrub(x, secrets) for x in node]
    if isinstance(node, dict):
        return {k: _scrub(v, secrets) for k, v in node.items()}
    return node


class _ScrubFilter(logging.Filter):
    """Hides secret parameter values in papermill's own log records (at DEBUG it logs the
    source of the cell it injects, values included)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _scrub_notebook(path: Path, secrets: Mapping[str, str]) -> None:
    """Replace secret parameter values in an executed notebook (papermill writes the values it
    injects into the notebook's source and metadata) with their redacted form."""
    import nbformat

    if not secrets or not path.exists():
        return
    nb = _read(path)
    clean = nbformat.from_dict(_scrub(nb, secrets))  # type: ignore[no-untyped-call]
    nbformat.write(clean, str(path))  # type: ignore[no-untyped-call]


def _read(path: str | Path) -> Any:
    import nbformat

    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]


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

    nb = _read(notebook) if isinstance(notebook, str | Path) else notebook
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


def _injected_index(nb: Any) -> int | None:
    for i, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            return i
    return None


def run_notebook(
    path: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    output_dir: str | Path,
    kernel: str = "python3",
    timeout: float | None = 600.0,
    name: str | None = None,
    html: bool = True,
    hide_code: bool = False,
    cwd: str | Path | None = None,
) -> NotebookRun:
    """Execute a notebook with papermill after validating its parameters.

    The run writes into a temporary folder inside ``output_dir``; the executed
    ``<name>.ipynb`` and ``<name>.html`` replace the previous ones only when the
    run succeeds. A failed run leaves them alone and writes
    ``<name>.failed.ipynb`` and ``<name>.failed.html`` instead (removed by the
    next successful run).

    Parameters
    ----------
    path
        The notebook.
    parameters
        Values for the notebook's ``parameters`` cell (validated first; a string
        given for a list parameter is read with
        :func:`~cryptolab.parameters.list_parameter`: ``"BTC,ETH"`` is ``["BTC", "ETH"]``).
    output_dir
        Where ``<name>.ipynb`` (executed) and ``<name>.html`` are written.
    kernel
        Jupyter kernel name.
    timeout
        Seconds any one cell may run (``None``: no limit).
    name
        Output file stem (default: the notebook's).
    html
        Also render HTML.
    hide_code
        Leave code cells out of the HTML (a report: outputs and markdown only).
    cwd
        Working directory of the kernel (default: the current one, so relative
        settings such as ``CRYPTOLAB_DATA_DIR=.cryptolab`` mean the same in the
        notebook as in the caller).

    Returns
    -------
    NotebookRun

    Raises
    ------
    ValidationError
        Unknown or ill-typed parameters (nothing was run).
    NotebookRunError
        A cell raised (or timed out); ``cell`` is its index in the source notebook.
    """
    src = Path(path).resolve()
    params = validate_parameters(src, parameters)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or src.stem
    started_ms = int(time.time() * 1000)
    t0 = time.perf_counter()
    shown = redact_parameters(params)
    secrets = _secrets(params, shown)
    log.info("running %s with %s", src, shown)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{stem}.") as tmp:
        work_nb = Path(tmp) / f"{stem}.ipynb"
        failure = _execute(src, work_nb, params, kernel=kernel, timeout=timeout,
                           cwd=Path(cwd) if cwd else Path.cwd(), secrets=secrets)
        duration = time.perf_counter() - t0
        _scrub_notebook(work_nb, secrets)  # before anything reads the output
        work_html: Path | None = None
        if html and work_nb.exists():
            try:
                work_html = notebook_to_html(work_nb, Path(tmp) / f"{stem}.html", hide_code=hide_code)
            except Exception as exc:  # the run's own result matters more
                log.warning("HTML export of %s failed: %s", work_nb, exc)
        final = stem if failure is None else f"{stem}{FAILED_SUFFIX}"
        out_nb = _move_into(work_nb, out_dir / f"{final}.ipynb")
        html_path = _move_into(work_html, out_dir / f"{final}.html")
    if failure is not None:
        failure.output, failure.html, failure.duration_s = out_nb, html_path, duration
        raise failure
    for stale in (out_dir / f"{stem}{FAILED_SUFFIX}.ipynb", out_dir / f"{stem}{FAILED_SUFFIX}.html"):
        stale.unlink(missing_ok=True)
    assert out_nb is not None  # a run without an error wrote its notebook
    cells = len(_read(out_nb).cells)
    return NotebookRun(notebook=src, output=out_nb, html=html_path, parameters=shown,
                       started_ms=started_ms, duration_s=duration, kernel=kernel, cells=cells)


def _move_into(work: Path | None, final: Path) -> Path | None:
    """Put a finished output in its place (an atomic rename within ``output_dir``)."""
    if work is None or not work.exists():
        return None
    os.replace(work, final)
    return final


def kernel_config() -> Any:
    """Kernel manager settings for every run: CurveZMQ encryption of the kernel's sockets.

    ipykernel 7 warns ``Kernel is running over TCP without encryption`` at every
    start unless the kernel manager provisions CurveZMQ keys. jupyter_client's
    ``KernelManager.transport_encryption = "auto"`` does so when the kernelspec
    declares ``curve`` in ``metadata.supported_encryption`` (ipykernel's does):
    the channels are encrypted and the kernel says nothing. With an older
    jupyter_client or a libzmq without CURVE the settings are empty (an older
    ipykernel does not warn; a kernel that cannot encrypt still says so).

    Examples
    --------
    >>> kernel_config().KernelManager.transport_encryption
    'auto'
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return Config()  # pragma: no cover - depends on the installed jupyter_client and libzmq
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def _execute(
    src: Path, out_nb: Path, params: dict[str, Any], *, kernel: str, timeout: float | None,
    cwd: Path, secrets: Mapping[str, str],
) -> NotebookRunError | None:
    """Run ``src`` into ``out_nb`` with papermill; the failure, if any, as a NotebookRunError."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    failure: NotebookRunError | None = None
    scrubber = _ScrubFilter(secrets)
    papermill_log = logging.getLogger("papermill")
    if secrets:
        papermill_log.addFilter(scrubber)
    try:
        papermill.execute_notebook(
            str(src), str(out_nb), parameters=params, kernel_name=kernel,
            execution_timeout=timeout, progress_bar=False, cwd=str(cwd),
            log_output=False, report_mode=False, config=kernel_config(),
        )
    except PapermillExecutionError as exc:
        executed = _read(out_nb) if out_nb.exists() else None
        cell = exc.cell_index
        inj = _injected_index(executed) if executed is not None else None
        if inj is not None and cell > inj:
            cell -= 1
        evalue = _scrub(exc.evalue, secrets)
        failure = NotebookRunError(
            f"{src.name} failed: {exc.ename}: {evalue}", cell=cell, source=_scrub(exc.source, secrets),
            ename=exc.ename, evalue=evalue,
        )
    except Exception as exc:  # kernel died, timeout, missing kernel...
        text = _scrub(str(exc), secrets)
        first = text.strip().splitlines()[0] if text.strip() else ""
        failure = NotebookRunError(f"{src.name} failed: {type(exc).__name__}: {first}",
                                   ename=type(exc).__name__, evalue=text)
        _mark_timeout(failure, out_nb)
    finally:
        papermill_log.removeFilter(scrubber)
    return failure


def _mark_timeout(err: NotebookRunError, out_nb: Path) -> None:
    """Name the cell that was executing when the run stopped (a timeout or a dead kernel)."""
    if not out_nb.exists():
        return
    try:
        nb = _read(out_nb)
    except Exception:
        return
    index = -1  # position in the source notebook: cells papermill tracks, minus the injected one
    found: tuple[int, Any] | None = None
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        pm = meta.get("papermill")
        if pm is None or "injected-parameters" in meta.get("tags", []):
            continue
        index += 1
        if pm.get("start_time"):
            found = (index, cell)
    if found is not None:
        err.cell, cell = found
        err.source = cell.get("source")
        err.args = (f"{err.args[0]} (cell {err.cell})",)


def report_parameters(
    *,
    symbols: list[str] | str | None = None,
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
) -> dict[str, Any]:
    """The market report's parameters, checked (no kernel, no file, no store is touched).

    Parameters
    ----------
    symbols
        A list, ``"BTC"``, ``"BTC,ETH"`` or a JSON list; ``None`` or empty: every
        symbol of ``interval`` in the store.
    interval
        Candle interval.
    start, end
        Window of the report (epoch ms, ISO-8601 text or datetime; ``None``: the
        newest 6 hours of the store).

    Returns
    -------
    dict
        ``symbols``, ``interval``, ``start`` and ``end`` (ISO-8601 UTC) for the notebook.

    Raises
    ------
    ValidationError
        A malformed symbol, interval or time, or ``start`` not before ``end``.

    Examples
    --------
    >>> report_parameters(symbols="BTC,ETH", start="2013-01-01", end=1_357_084_800_000)
    {'symbols': ['BTC', 'ETH'], 'interval': '1m', 'start': '2013-01-01T00:00:00Z', 'end': '2013-01-02T00:00:00Z'}
    >>> report_parameters(start="notadate")
    Traceback (most recent call last):
    ...
    cryptolab.errors.ValidationError: invalid 'start': 'notadate' is not an ISO-8601 time or epoch ms
    """
    from cryptolab.models import iso_utc, parse_interval, validate_symbol
    from cryptolab.store import to_ms

    parse_interval(interval)
    names = [validate_symbol(s) for s in list_parameter(symbols, "symbols") or []]
    first, last = to_ms(start, "start"), to_ms(end, "end")
    if first is not None and last is not None and first >= last:
        raise ValidationError("end", f"must be after start ({iso_utc(first)}), got {iso_utc(last)}")
    return {"symbols": names or None, "interval": interval,
            "start": None if first is None else iso_utc(first),
            "end": None if last is None else iso_utc(last)}


def render_report(
    store_url: str,
    out_dir: str | Path,
    *,
    symbols: list[str] | str | None = None,
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    timeout: float | None = 600.0,
    name: str = "market_report",
) -> Path:
    """Render the market report of a store to HTML; return the HTML path.

    Executes the market report notebook (:func:`~cryptolab.resources.find_notebook`:
    ``./notebooks``, ``CRYPTOLAB_NOTEBOOKS_DIR``, then the shipped copy) with papermill and
    writes ``<out_dir>/market_report.ipynb`` and ``<out_dir>/market_report.html``
    (outputs only, BokehJS inline).

    Parameters
    ----------
    store_url
        SQLAlchemy URL of the store to report on.
    out_dir
        Output folder.
    symbols, interval, start, end
        As :func:`report_parameters` takes them (checked there first).
    timeout
        Seconds any one cell may run.
    name
        Output file stem.

    Raises
    ------
    ValidationError
        A malformed symbol, interval or time, or ``start`` not before ``end``:
        checked before any kernel starts, and nothing is written.
    NotebookRunError
        When the report fails (e.g. no candles in the window); the previous
        report stays, the failed run is in ``<name>.failed.html``.
    """
    params = {"store_url": store_url, "sample": False,
              **report_parameters(symbols=symbols, interval=interval, start=start, end=end)}
    run = run_notebook(find_notebook(REPORT), params, output_dir=out_dir, timeout=timeout, name=name,
                       hide_code=True)
    if run.html is None:  # pragma: no cover - HTML export failed and was logged
        raise NotebookError(f"the report ran but its HTML could not be written ({run.output})")
    return run.html
