"""Run notebooks with papermill: validated parameters, failures that name the cell, HTML output.

:func:`run_notebook` is the one entry point. It checks the parameters against
the notebook's ``parameters`` cell
(:func:`~cryptolab.reports.validation.validate_parameters`) *before* starting a
kernel, executes the notebook, and writes the executed ``.ipynb`` and an
``.html`` rendering (:func:`~cryptolab.reports.html.notebook_to_html`) next to
each other, in place of the previous ones only when the run succeeds. A cell
that raises becomes a :class:`NotebookRunError` (a
:class:`~cryptolab.errors.NotebookError`) naming the cell's index in the source
notebook and its source; its outputs are written to ``<name>.failed.ipynb`` and
``<name>.failed.html``, so the failure can be read in the HTML. Secret parameter
values never reach the outputs or the logs
(:mod:`~cryptolab.reports.redaction`). Kernels run with CurveZMQ-encrypted
channels (:func:`kernel_config`).

Examples
--------
>>> NotebookRunError("x.ipynb failed: ValueError: bad", cell=2, ename="ValueError").to_dict()["cell"]
2
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptolab.errors import NotebookError
from cryptolab.reports.files import move_into, read_notebook
from cryptolab.reports.html import notebook_to_html
from cryptolab.reports.redaction import (
    ScrubFilter,
    find_secrets,
    redact_parameters,
    scrub,
    scrub_notebook,
)
from cryptolab.reports.validation import validate_parameters

__all__ = ["FAILED_SUFFIX", "NotebookRun", "NotebookRunError", "kernel_config", "run_notebook"]

log = logging.getLogger("cryptolab.notebooks")  # the name the runs always logged under

#: Added to the output stem of a failed run (``market_report.failed.html``).
FAILED_SUFFIX: Final = ".failed"


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
    secrets = find_secrets(params, shown)
    log.info("running %s with %s", src, shown)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{stem}.") as tmp:
        work_nb = Path(tmp) / f"{stem}.ipynb"
        failure = _execute(src, work_nb, params, kernel=kernel, timeout=timeout,
                           cwd=Path(cwd) if cwd else Path.cwd(), secrets=secrets)
        duration = time.perf_counter() - t0
        scrub_notebook(work_nb, secrets)  # before anything reads the output
        final = stem if failure is None else f"{stem}{FAILED_SUFFIX}"
        out_nb, html_path = _publish(work_nb, out_dir, final, html=html, hide_code=hide_code)
    if failure is not None:
        failure.output, failure.html, failure.duration_s = out_nb, html_path, duration
        raise failure
    for stale in (out_dir / f"{stem}{FAILED_SUFFIX}.ipynb", out_dir / f"{stem}{FAILED_SUFFIX}.html"):
        stale.unlink(missing_ok=True)
    assert out_nb is not None  # a run without an error wrote its notebook
    cells = len(read_notebook(out_nb).cells)
    return NotebookRun(notebook=src, output=out_nb, html=html_path, parameters=shown,
                       started_ms=started_ms, duration_s=duration, kernel=kernel, cells=cells)


def _publish(
    work_nb: Path, out_dir: Path, final: str, *, html: bool, hide_code: bool
) -> tuple[Path | None, Path | None]:
    """Render the executed ``work_nb`` to HTML next to it (when ``html``), then move both into
    ``out_dir`` as ``<final>.ipynb`` and ``<final>.html``; the paths written, ``None`` if not."""
    work_html: Path | None = None
    if html and work_nb.exists():
        try:
            work_html = notebook_to_html(work_nb, work_nb.parent / f"{work_nb.stem}.html",
                                         hide_code=hide_code)
        except Exception as exc:  # the run's own result matters more
            log.warning("HTML export of %s failed: %s", work_nb, exc)
    out_nb = move_into(work_nb, out_dir / f"{final}.ipynb")
    return out_nb, move_into(work_html, out_dir / f"{final}.html")


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
    scrubber = ScrubFilter(secrets)
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
        executed = read_notebook(out_nb) if out_nb.exists() else None
        cell = exc.cell_index
        inj = _injected_index(executed) if executed is not None else None
        if inj is not None and cell > inj:
            cell -= 1
        evalue = scrub(exc.evalue, secrets)
        failure = NotebookRunError(
            f"{src.name} failed: {exc.ename}: {evalue}", cell=cell, source=scrub(exc.source, secrets),
            ename=exc.ename, evalue=evalue,
        )
    except Exception as exc:  # kernel died, timeout, missing kernel...
        text = scrub(str(exc), secrets)
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
        nb = read_notebook(out_nb)
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
