"""Scheduled pipelines: TOML validation, templates, the cron loop (fake clock), runs and their log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cryptolab.errors import ConfigError
from cryptolab.reports import scheduler
from cryptolab.schedules import (
    PIPELINES_DIR,
    Pipeline,
    RunRecord,
    Scheduler,
    last_runs,
    load_pipeline,
    load_pipelines,
    run_pipeline,
)

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z, in seconds


def make_project(tmp_path: Path, *cells: str, params: str = 'n = 1\nlabel = "x"') -> Path:
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "nb").mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, *[nbformat.v4.new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nb" / "job.ipynb")
    return tmp_path


def write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / "pipelines" / f"{name}.toml"
    f.write_text(text, encoding="utf-8")
    return f


def test_the_projects_pipelines_are_valid() -> None:
    pipelines = load_pipelines(PIPELINES_DIR, data_dir="/tmp/cryptolab-data")
    names = {p.name for p in pipelines}
    assert "daily_market_report" in names
    daily = next(p for p in pipelines if p.name == "daily_market_report")
    assert daily.notebook == REPO / "notebooks" / "reports" / "market_report.ipynb"
    assert daily.output_dir == Path("/tmp/cryptolab-data/reports/daily_market_report")
    params = daily.render_parameters(1_700_028_000_000)  # 2023-11-15T06:00:00Z
    assert params["start"] == "2023-11-14T06:00:00Z" and params["end"] == "2023-11-15T06:00:00Z"
    assert params["sample"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('cron = "0 6 * * *"\nnotebok = "nb/job.ipynb"\n', "unknown key 'notebok'"),
        ('notebook = "nb/job.ipynb"\n', "'cron' is required"),
        ('cron = "61 * * * *"\nnotebook = "nb/job.ipynb"\n', "invalid cron expression"),
        ('cron = "0 6 * * *"\nnotebook = "nb/none.ipynb"\n', "does not exist"),
        ('cron = "0 6 * * *"\nnotebook = "nb/job.ipynb"\ntimezone = "Mars/Base"\n',
         "unknown timezone"),
        ('cron = "0 6 * * *"\nnotebook = "nb/job.ipynb"\ntimeout = -1\n', "timeout"),
        ('cron = "0 6 * * *"\nnotebook = "nb/job.ipynb"\n[parameters]\nn = "one"\n',
         "parameter 'n': expected int"),
        ('cron = "0 6 * * *"\nnotebook = "nb/job.ipynb"\n[parameters]\nm = 1\n',
         "parameter 'm': unknown parameter"),
        ('cron = "0 6 * * *\nnotebook = "nb/job.ipynb"\n', "pipeline"),
    ],
)
def test_invalid_pipeline_files_are_rejected_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    make_project(tmp_path, "pass")
    f = write(tmp_path, "job", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_pipeline(f)
    assert str(f) in str(info.value)


def test_templates_and_relative_paths(tmp_path: Path) -> None:
    make_project(tmp_path, "pass", params='label = "x"\nn = 1\nwhen = ["a"]')
    f = write(tmp_path, "job", (
        'cron = "*/15 * * * *"\nnotebook = "nb/job.ipynb"\noutput_dir = "out/job"\n'
        '[parameters]\nlabel = "{ scheduled + 90s }"\nwhen = ["{scheduled}", "plain"]\n'
    ))
    p = load_pipeline(f)
    assert p.notebook == tmp_path / "nb" / "job.ipynb" and p.output_dir == tmp_path / "out" / "job"
    assert p.render_parameters(1_700_000_100_000) == {
        "label": "2023-11-14T22:16:30Z", "when": ["2023-11-14T22:15:00Z", "plain"]}
    assert p.next_fire_ms(1_700_000_100_000) == 1_700_000_100_000 + 15 * 60_000
    assert p.next_fire_ms(1_700_000_000_000) == 1_700_000_100_000


def test_cron_is_read_in_the_pipelines_timezone(tmp_path: Path) -> None:
    make_project(tmp_path, "pass")
    f = write(tmp_path, "job", 'cron = "0 6 * * *"\ntimezone = "Asia/Tokyo"\nnotebook = "nb/job.ipynb"\n')
    p = load_pipeline(f)
    assert p.next_fire_ms(T0 * 1000) == 1_700_082_000_000  # 06:00 JST = 21:00 UTC the next day


# ------------------------------------------------------------------ the loop


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def fake_pipeline(name: str, cron: str, tmp_path: Path) -> Pipeline:
    return Pipeline(name=name, path=tmp_path / f"{name}.toml", cron=cron,
                    notebook=tmp_path / "nb.ipynb", output_dir=tmp_path / name)


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, float]]:
    calls: list[tuple[str, int, float]] = []

    def fake_run(p: Pipeline, *, scheduled_ms: int, clock: Any) -> RunRecord:
        calls.append((p.name, scheduled_ms, clock()))
        return RunRecord(pipeline=p.name, run_id=f"{p.name}-{scheduled_ms}", scheduled="",
                         start="", end="", status="ok", duration_s=0.0, params={}, notebook="")

    monkeypatch.setattr(scheduler, "run_pipeline", fake_run)
    return calls


def test_scheduler_fires_each_pipeline_at_its_cron_times(
    tmp_path: Path, fake_runs: list[tuple[str, int, float]]
) -> None:
    t = FakeTime(T0)
    every5 = fake_pipeline("every5", "*/5 * * * *", tmp_path)
    hourly = fake_pipeline("hourly", "0 * * * *", tmp_path)
    off = Pipeline(**{**every5.__dict__, "name": "off", "enabled": False})
    runs = Scheduler([every5, hourly, off], max_runs=12, clock=t.clock, wait=t.wait).run()
    assert len(runs) == 12
    fired = [(name, ms) for name, ms, _ in fake_runs]
    first = 1_700_000_100_000  # 22:15
    assert fired[:3] == [("every5", first), ("every5", first + 300_000), ("every5", first + 600_000)]
    assert ("hourly", 1_700_002_800_000) in fired  # 23:00
    assert all(name != "off" for name, _ in fired)
    assert all(at_s * 1000 >= ms for _, ms, at_s in fake_runs)  # never early
    assert max(t.waits) <= 60.0  # the loop wakes at least every minute


def test_once_runs_everything_due_at_the_first_firing(
    tmp_path: Path, fake_runs: list[tuple[str, int, float]]
) -> None:
    t = FakeTime(T0)
    a = fake_pipeline("a", "*/5 * * * *", tmp_path)
    b = fake_pipeline("b", "15 * * * *", tmp_path)
    c = fake_pipeline("c", "0 * * * *", tmp_path)
    runs = Scheduler([a, b, c], once=True, clock=t.clock, wait=t.wait).run()
    assert [r.pipeline for r in runs] == ["a", "b"]  # both due at 22:15; c waits for 23:00


def test_an_overrunning_run_skips_missed_firings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = FakeTime(T0)
    seen: list[int] = []

    def slow_run(p: Pipeline, *, scheduled_ms: int, clock: Any) -> RunRecord:
        seen.append(scheduled_ms)
        t.now += 11 * 60  # eleven minutes: two five-minute firings pass
        return RunRecord(pipeline=p.name, run_id="x", scheduled="", start="", end="",
                         status="ok", duration_s=660.0, params={}, notebook="")

    monkeypatch.setattr(scheduler, "run_pipeline", slow_run)
    sched = Scheduler([fake_pipeline("a", "*/5 * * * *", tmp_path)], max_runs=2, clock=t.clock,
                      wait=t.wait)
    sched.run()
    assert seen == [1_700_000_100_000, 1_700_000_100_000 + 15 * 60_000]
    assert sched.skipped == 4  # 22:20 and 22:25, then 22:35 and 22:40


def test_stop_ends_the_loop(tmp_path: Path, fake_runs: list[tuple[str, int, float]]) -> None:
    t = FakeTime(T0)
    sched = Scheduler([fake_pipeline("a", "*/5 * * * *", tmp_path)], clock=t.clock, wait=t.wait)

    def stop_after_two(record: RunRecord) -> None:
        if len(sched.records) == 2:
            sched.stop()

    sched._on_run = stop_after_two
    assert len(sched.run()) == 2 and sched.stopping


# ------------------------------------------------------------- real runs


def test_a_run_writes_notebook_html_and_a_json_lines_log(tmp_path: Path) -> None:
    make_project(tmp_path, "print(label * n)")
    f = write(tmp_path, "job", (
        'cron = "0 * * * *"\nnotebook = "nb/job.ipynb"\noutput_dir = "out"\n'
        '[parameters]\nn = 3\nlabel = "{scheduled}"\n'
    ))
    record = run_pipeline(load_pipeline(f), scheduled_ms=1_700_002_800_000)
    assert record.ok, record.error
    assert record.run_id == "job-20231114T230000Z"
    assert Path(record.output or "").is_file() and Path(record.html or "").is_file()
    assert "2023-11-14T23:00:00Z" * 3 in Path(record.html or "").read_text(encoding="utf-8")
    lines = [json.loads(x) for x in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["start", "end"]
    end = lines[1]
    assert end["status"] == "ok" and end["params"] == {"n": 3, "label": "2023-11-14T23:00:00Z"}
    assert end["duration_s"] > 0 and end["error"] is None and end["start"] <= end["end"]
    assert last_runs(load_pipeline(f))["run_id"] == record.run_id  # type: ignore[index]
    again = run_pipeline(load_pipeline(f), scheduled_ms=1_700_002_800_000)
    assert again.run_id == "job-20231114T230000Z-2"  # never overwrites an earlier run


def test_a_failing_run_is_logged_with_the_failing_cell(tmp_path: Path) -> None:
    make_project(tmp_path, "x = 1", "raise ValueError(f'bad label {label}')")
    f = write(tmp_path, "job", 'cron = "0 * * * *"\nnotebook = "nb/job.ipynb"\noutput_dir = "out"\n')
    record = run_pipeline(load_pipeline(f), overrides={"label": "zz"})
    assert not record.ok
    err = record.error or {}
    assert err["cell"] == 2 and err["ename"] == "ValueError" and "bad label zz" in err["evalue"]
    assert err["source"] == "raise ValueError(f'bad label {label}')"
    assert Path(record.html or "").is_file()
    end = json.loads((tmp_path / "out" / "runs.jsonl").read_text().splitlines()[-1])
    assert end["status"] == "failed" and end["error"]["cell"] == 2


def test_ill_typed_override_is_rejected_without_running(tmp_path: Path) -> None:
    make_project(tmp_path, "raise SystemExit('must not run')")
    f = write(tmp_path, "job", 'cron = "0 * * * *"\nnotebook = "nb/job.ipynb"\noutput_dir = "out"\n')
    record = run_pipeline(load_pipeline(f), overrides={"n": "many"})
    assert not record.ok and record.output is None
    assert record.error is not None and record.error["ename"] == "ValidationError"


# ------------------------------------------------------------------- CLI


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    return subprocess.run([sys.executable, "-m", "cryptolab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_list_run_and_schedule(tmp_path: Path) -> None:
    make_project(tmp_path, "print('hello', n)")
    write(tmp_path, "every_second", (
        'cron = "* * * * * *"\nnotebook = "nb/job.ipynb"\noutput_dir = "out"\n[parameters]\nn = 2\n'))
    write(tmp_path, "broken", 'cron = "0 6 * * *"\n')
    d = str(tmp_path / "pipelines")
    ls = cli("pipelines", "--dir", d, "list", "--json", cwd=tmp_path)
    assert ls.returncode == 1  # one invalid file
    listed = json.loads(ls.stdout)
    assert [p["name"] for p in listed["pipelines"]] == ["every_second"]
    assert "'notebook' is required" in listed["invalid"][0]["error"]
    one = cli("pipelines", "--dir", d, "run", "every_second", "-p", "n=5", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "every_second: ok" in one.stdout
    bad = cli("pipelines", "--dir", d, "run", "every_second", "-p", "n=lots", cwd=tmp_path)
    assert bad.returncode == 1 and "expected int" in bad.stdout
    sch = cli("pipelines", "--dir", d, "schedule", "--only", "every_second", "--max-runs", "1",
              cwd=tmp_path)
    assert sch.returncode == 0, sch.stderr
    assert "after 1 run(s), 0 failed" in sch.stderr
    statuses = [json.loads(x)["status"] for x in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()
                if json.loads(x)["event"] == "end"]
    assert statuses == ["ok", "failed", "ok"]


def test_cli_schedule_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    make_project(tmp_path, "pass")
    write(tmp_path, "yearly", 'cron = "0 0 1 1 *"\nnotebook = "nb/job.ipynb"\noutput_dir = "out"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptolab", "pipelines", "--dir", str(tmp_path / "pipelines"),
         "schedule"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the scheduler announces the next run when it is ready
        assert "yearly next at" in line
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "SIGTERM: stopping" in rest and "after 0 run(s)" in rest
