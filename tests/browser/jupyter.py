"""A JupyterLab server of the test's own, and what a person does in it (open, Run All, save).

:class:`Lab` starts ``jupyter lab`` on a free loopback port with a token, on a copy of
``notebooks/`` (Run All and Save never touch the repository's notebooks), with the
embedded cryptolab defaults (no ``CRYPTOLAB_*`` but a data directory of its own), with
JupyterLab's network checks off, and otherwise JupyterLab's default settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from browsing import ARTIFACTS, REPO

#: JupyterLab user settings of the tests (JupyterLab's defaults: widget state is not saved).
LAB_SETTINGS: dict[str, dict[str, object]] = {}
#: Text a broken widget or output shows instead of the chart.
WIDGET_ERRORS = ("Error displaying widget", "Failed to create view", "Click to show javascript error",
                 "Javascript Error", "BokehJS does not appear to have successfully loaded",
                 "Error rendering output item")
PROMPTS = "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Lab:
    """``jupyter lab`` on loopback for one test module; ``url(path)`` adds the token."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.notebooks = root / "notebooks"
        shutil.copytree(REPO / "notebooks", self.notebooks,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.db"))
        settings = root / "lab-settings"
        for rel, value in LAB_SETTINGS.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        self.token = secrets.token_hex(16)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
        env.update(CRYPTOLAB_DATA_DIR=str(root / "data"), JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(root / "runtime"), PYTHONUNBUFFERED="1")
        self.log = (root / "jupyter.log").open("w")
        env["JUPYTER"] = str(Path(sys.executable).with_name("jupyter"))
        env["LAB_ROOT_DIR"] = str(self.notebooks)
        # the script `make lab` runs (as root here: it must pass --allow-root itself)
        self.proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "lab.sh"), "--no-browser",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def _wait_ready(self, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return
            time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {limit:.0f} s: {self.tail()}")

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=10) as r:
            return json.load(r)

    def sessions(self) -> list[dict[str, Any]]:
        """The server's sessions (notebook path, kernel id, state and connections)."""
        return [{"path": s["path"], "kernel": s["kernel"]["id"][:8],
                 "state": s["kernel"].get("execution_state"),
                 "connections": s["kernel"].get("connections")} for s in self._get("api/sessions")]

    def kernel_ready(self) -> bool:
        """One session, one kernel, idle and connected (a page listens to it)."""
        sessions = self._get("api/sessions")
        kernels = self._get("api/kernels")
        if len(sessions) != 1 or len(kernels) != 1:
            return False
        k = sessions[0]["kernel"]
        return bool(k["id"] == kernels[0]["id"] and k.get("execution_state") == "idle"
                    and (k.get("connections") or 0) >= 1)

    def shutdown_kernels(self) -> None:
        """Shut down every kernel (a test's live demo must not load the next test's machine)."""
        with urllib.request.urlopen(self.url("api/kernels"), timeout=10) as r:
            kernels = json.load(r)
        for k in kernels:
            req = urllib.request.Request(self.url(f"api/kernels/{k['id']}"), method="DELETE")
            with contextlib.suppress(urllib.error.URLError), urllib.request.urlopen(req, timeout=30):
                pass

    def tail(self) -> str:
        self.log.flush()
        return (self.root / "jupyter.log").read_text()[-3000:]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def run_menu(page: Any, menu: str, item: str) -> None:
    """Click ``menu`` in the menu bar, then ``item`` (JupyterLab and Notebook 7 share them)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def accept_kernel_dialog(page: Any) -> None:
    """Answer JupyterLab's "Select Kernel" dialog (shown when a kernel is slow to start) as a
    person would: keep the notebook's own kernel."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()


def wait_kernel_idle(page: Any, lab: Lab | None = None, timeout_ms: int = 120_000) -> None:
    """Wait until the notebook's kernel is started, connected to this page, and idle.

    The page's execution indicator says ``idle`` before any kernel exists (its initial
    value), so with ``lab`` the server is asked too: exactly one session, whose kernel is
    idle and has a connection (the page's). A Run All clicked before that starts a second
    kernel beside the one the notebook is starting, and the run is lost between them.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        accept_kernel_dialog(page)
        indicator = page.evaluate(
            "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
            ".jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') ?? null")
        if indicator == "idle" and (lab is None or lab.kernel_ready()):
            return
        if time.monotonic() > deadline:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "failed-kernel.png"))
            sessions = lab.sessions() if lab is not None else "?"
            raise AssertionError(f"the notebook's kernel was not ready in {timeout_ms / 1000:.0f} s: "
                                 f"indicator {indicator!r}, sessions {sessions}")
        page.wait_for_timeout(500)


def run_all(page: Any, lab: Lab | None = None, timeout_ms: int = 300_000) -> list[str]:
    """Run All Cells and wait until every code cell has run; return the prompts.

    The kernel must be ready first (:func:`wait_kernel_idle`). A click on the menu that the
    page did not take (no cell scheduled: no ``[*]`` and no count) is repeated; a click that
    scheduled cells never is, so no cell runs twice.
    """
    # The saved notebook carries execution counts of its own: clear them first, so that
    # "every cell has a count" can only mean this run.
    wait_kernel_idle(page, lab)
    run_menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(f"() => ({PROMPTS})().every(t => t === '[ ]:' || t === '')", timeout=30_000)
    started = f"() => ({PROMPTS})().some(t => t !== '[ ]:' && t !== '')"
    for attempt in range(3):
        run_menu(page, "Run", "Run All Cells")
        try:
            page.wait_for_function(started, timeout=30_000)
            break
        except Exception:
            if attempt == 2:
                raise
    done = re.compile(r"^\[\d+\]:?$")
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        prompts: list[str] = page.evaluate(PROMPTS)
        if prompts and all(done.match(p) for p in prompts):
            break
        stopped = "[*]:" not in prompts and bool(problems(page))  # a cell failed: Run All stopped
        if stopped or time.monotonic() > deadline:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "failed-run-all.png"))
            sessions = lab.sessions() if lab is not None else "?"
            why = "stopped on an error" if stopped else f"did not finish in {timeout_ms / 1000:.0f} s"
            raise AssertionError(f"Run All {why}; prompts: {prompts}; sessions: {sessions}; "
                                 f"errors shown: {problems(page)}")
        page.wait_for_timeout(1000)
    wait_kernel_idle(page, lab, timeout_ms)
    prompts: list[str] = page.evaluate(PROMPTS)
    return prompts


CELLS = "document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')"


def show_every_cell(page: Any) -> None:
    """Scroll through the notebook, as a reader would, so that every output is drawn."""
    n = page.evaluate(f"() => {CELLS}.length")
    for i in range(n):
        page.evaluate(f"i => {CELLS}[i]?.scrollIntoView({{block: 'center'}})", i)
        page.wait_for_timeout(100)


def problems(page: Any) -> list[str]:
    """What a person would see as broken: widget errors, tracebacks, errors in outputs."""
    found = [t for t in WIDGET_ERRORS if visible(page.get_by_text(t, exact=False))]
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    for i in range(errors.count()):
        text = errors.nth(i).text_content() or ""
        if "Traceback" in text or "Error" in text:
            found.append(text[:500])
    return found


def visible(locator: Any) -> int:
    """How many of the elements ``locator`` finds a person can see."""
    return sum(1 for i in range(locator.count()) if locator.nth(i).is_visible())


def drawn_canvases(page: Any,
                   where: str = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea canvas") -> int:
    """Visible canvases (in the notebook's outputs by default) with something drawn on them.

    Playwright's CSS locators pierce the shadow DOM Bokeh draws in.
    """
    canvases = page.locator(where)
    drawn = 0
    for i in range(canvases.count()):
        if not canvases.nth(i).is_visible():
            continue
        inked = canvases.nth(i).evaluate(
            """c => { if (!c.width || !c.height) return 0;
                      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let k = 0; k < d.length; k += 4)
                        if (d[k + 3] > 0 && (d[k] < 235 || d[k + 1] < 235 || d[k + 2] < 235)) n++;
                      return n; }""")
        if inked > 500:
            drawn += 1
    return drawn


#: Bars of the newest live chart in the page (its ``candles`` data source), -1 when none.
BARS = ("() => { const ds = (window.Bokeh?.documents ?? []).map(d => d.get_model_by_name('candles'))"
        ".filter(m => m != null); return ds.length ? ds[ds.length - 1].get_length() ?? 0 : -1; }")
#: Title of the newest chart in the page.
TITLE = ("() => { const ts = (window.Bokeh?.documents ?? []).map(d => d.get_model_by_name('price'))"
         ".filter(m => m != null); return ts.length ? ts[ts.length - 1].title.text : null; }")
