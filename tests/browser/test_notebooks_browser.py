"""Every notebook in a real JupyterLab, in headless Chromium, offline: what a person sees.

Each test opens a notebook of ``notebooks/`` in JupyterLab (a server of its own, on a copy
of the notebooks), runs all cells from the Run menu, and looks at the page: no widget or
JavaScript error, no traceback, a drawn chart (a canvas with ink on it) wherever the
notebook shows one, and for the live notebook a chart that keeps changing with the kernel
idle. The pages may reach loopback only, so BokehJS must come from the installed bokeh.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import ARTIFACTS, OFFLINE_BLOCKED
from jupyter import (
    BARS,
    TITLE,
    Lab,
    drawn_canvases,
    problems,
    run_all,
    run_menu,
    show_every_cell,
    visible,
    wait_kernel_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.notebooks, pytest.mark.slow]

#: Charts each notebook draws, in canvases with ink (price and volume panels are one each).
CHARTS = {"00_quickstart.ipynb": 2, "10_live_dashboard.ipynb": 2, "20_anomaly_models.ipynb": 3}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A JupyterLab server per test: no kernel, session or workspace of another test around."""
    server = Lab(tmp_path / "jupyterlab")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def page(context: Any, lab: Lab) -> Iterator[Any]:
    pg = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text[:300]}"))
    pg.page_errors = errors
    pg.console_lines = console
    yield pg
    pg.close()
    lab.shutdown_kernels()


def open_notebook(page: Any, lab: Lab, name: str, app: str = "lab") -> None:
    """Open ``name`` in JupyterLab (or Notebook 7) and wait for its kernel."""
    if app == "lab":
        path = f"lab/tree/{name}"
    else:
        path = f"notebooks/{name}"
    page.goto(lab.url(path), wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=120_000)
    wait_kernel_idle(page, lab)


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_looks_right(page: Any, name: str, charts: int, limit_s: float = 90.0) -> None:
    """No error in sight, and ``charts`` panels drawn (waiting for them as a reader would)."""
    deadline = time.monotonic() + limit_s
    while True:
        show_every_cell(page)
        drawn = drawn_canvases(page)
        if drawn >= charts or time.monotonic() > deadline:
            break
        page.wait_for_timeout(1000)
    seen = problems(page)
    if seen or drawn < charts:
        slug = re.sub(r"[^\w.-]+", "-", name)
        shoot(page, f"failed-{slug}")
        (ARTIFACTS / f"failed-{slug}.console.txt").write_text("\n".join(page.console_lines))
    assert seen == [], f"{name}: {seen}"
    assert drawn >= charts, f"{name}: {drawn} drawn chart panels, expected {charts}"
    # (Notebook 7's shell logs errors of its own; what matters is the charts' and widgets')
    ours = [e for e in page.page_errors if re.search(r"bokeh|widget|require|cryptolab", e, re.I)]
    assert ours == [], ours
    assert OFFLINE_BLOCKED == [], f"{name} tried to reach beyond loopback: {OFFLINE_BLOCKED[:3]}"


@pytest.mark.parametrize("name", ["00_quickstart.ipynb", "20_anomaly_models.ipynb"])
def test_notebook_runs_in_jupyterlab_with_every_chart_drawn(page: Any, lab: Lab, name: str) -> None:
    open_notebook(page, lab, name)
    prompts = run_all(page, lab)
    assert prompts and all(p.startswith("[") for p in prompts)
    assert_looks_right(page, name, CHARTS[name])
    # a live widget hides its static snapshot: every chart shows once
    assert visible(page.locator(".cl-snapshot")) == 0
    shoot(page, f"jupyterlab-{name.removesuffix('.ipynb')}")


def test_live_notebook_keeps_updating_after_run_all(page: Any, lab: Lab) -> None:
    name = "10_live_dashboard.ipynb"
    open_notebook(page, lab, name)
    run_all(page, lab)
    assert_looks_right(page, name, CHARTS[name])
    chart = page.locator(".cl-chart-controls").first
    chart.scroll_into_view_if_needed()
    # Run All leaves it live; the kernel is idle now, and new candles keep arriving.
    first = page.evaluate(BARS)
    assert first > 0
    before = chart.screenshot()
    try:
        page.wait_for_function(f"({BARS})() > {first}", timeout=60_000)
    except Exception:
        shoot(page, "failed-live-updates")
        status = chart.locator(".widget-html").last.inner_text()
        raise AssertionError(f"no new bar in 60 s (bars {first} -> {page.evaluate(BARS)}); "
                             f"status line: {status!r}; problems: {problems(page)}") from None
    page.wait_for_timeout(10_000)
    after = chart.screenshot()
    assert page.evaluate(BARS) > first
    assert before != after, "the chart looks the same after ten seconds"
    (ARTIFACTS / "jupyterlab-live-before.png").write_bytes(before)
    (ARTIFACTS / "jupyterlab-live-after.png").write_bytes(after)
    # The status line tells the truth, and the pickers show the series the chart shows
    # (the notebook switched it from code with chart.set_series).
    status = chart.locator(".widget-html").last.inner_text()
    assert status.startswith("●") and " live · " in f" {status.split('●', 1)[1].strip()} ", status
    title = page.evaluate(TITLE)
    picked = chart.locator("select").first.input_value()
    assert title is not None and title.startswith(f"{picked} · "), (title, picked)
    # the session's health() as a panel: every service up, the lag table
    panel = page.locator(".cryptolab-health").first
    panel.scroll_into_view_if_needed()
    assert "ok" in panel.locator("b").nth(1).inner_text()
    rows = [r.split("\t") for r in panel.locator("tr").all_inner_texts()]
    states = {r[0].strip(): r[1].strip() for r in rows if len(r) > 1}
    assert {states.get(name) for name in ("kafka", "store", "cache")} == {"up"}, rows
    assert any(r[0].strip() == "partition" for r in rows), rows
    panel.screenshot(path=str(ARTIFACTS / "jupyterlab-health.png"))
    assert problems(page) == []


def test_chart_survives_reload_restart_and_reopening_without_kernel(page: Any, lab: Lab) -> None:
    name = "00_quickstart.ipynb"
    open_notebook(page, lab, name)
    run_all(page, lab)
    assert_looks_right(page, name, CHARTS[name])
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    # A page reload: a new page, the same kernel; BokehJS comes back from the saved output.
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=120_000)
    wait_kernel_idle(page, lab)
    assert_looks_right(page, f"{name} reloaded", CHARTS[name])
    # A kernel restart, then Run All again.
    run_menu(page, "Kernel", "Restart Kernel and Run All Cells")
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_timeout(2000)
    wait_kernel_idle(page, lab, 300_000)
    run_all(page, lab)
    assert_looks_right(page, f"{name} after a kernel restart", CHARTS[name])
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    # Reopened later, its kernel gone: the saved chart draws from the notebook's own outputs.
    run_menu(page, "Kernel", "Shut Down Kernel")
    page.wait_for_timeout(2000)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=120_000)
    page.wait_for_timeout(3000)
    assert_looks_right(page, f"{name} reopened without its kernel", CHARTS[name])
    assert visible(page.locator(".cl-snapshot")) >= 1
    shoot(page, "jupyterlab-reopened-without-kernel")


def test_notebook7_shows_the_chart(page: Any, lab: Lab) -> None:
    name = "00_quickstart.ipynb"
    open_notebook(page, lab, name, app="notebook7")
    run_all(page, lab)
    assert_looks_right(page, f"{name} in Notebook 7", CHARTS[name])
    shoot(page, "notebook7-00_quickstart")
