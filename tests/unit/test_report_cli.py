"""``cryptolab report``: arguments checked before any kernel, one line and exit 2 when bad; the
last good report is never overwritten by a run that cannot succeed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptolab.cli import main


@pytest.mark.parametrize(("flags", "field"), [
    (["--start", "notadate"], "'start'"),
    (["--end", "2013-02-30"], "'end'"),
    (["--interval", "7m"], "'interval'"),
    (["--symbols", "BTC,ETH';--"], "'symbol'"),
    (["--symbols", "[BTC"], "'symbols'"),
    (["--start", "2013-01-02", "--end", "2013-01-01"], "'end'"),
])
def test_bad_arguments_fail_in_one_line_and_leave_the_last_report_alone(
        flags: list[str], field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "reports"
    out.mkdir()
    last = {"market_report.html": b"<html>the last good report</html>",
            "market_report.ipynb": b'{"cells": []}'}
    for name, body in last.items():
        (out / name).write_bytes(body)
    store = tmp_path / "store.db"
    code = main(["report", "--store", f"sqlite:///{store}", "--out", str(out), *flags])
    assert code == 2
    captured = capfd.readouterr()  # file descriptors: a kernel would write here too
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryptolab report: error: invalid ")
    assert field in lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == last  # byte for byte, nothing added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # no store, no data folder
