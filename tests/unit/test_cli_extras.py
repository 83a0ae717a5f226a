"""The command line as installed: ``--version``, and one line naming the extra a command lacks."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import cryptolab
from cryptolab.cli import main
from cryptolab.config import Settings
from cryptolab.demo import run_demo
from cryptolab.extras import extra_for, missing_extra_hint

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    installed = importlib.metadata.version("cryptolab")
    assert capsys.readouterr().out == f"cryptolab {installed}\n"
    assert installed == cryptolab.__version__  # pyproject.toml's version is read from the package


def test_every_optional_package_maps_to_its_first_declared_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    first: dict[str, str] = {}
    for extra, requirements in extras.items():
        for text in requirements:
            name = Requirement(text).name
            if name != "cryptolab":  # `all` lists the other extras
                first.setdefault(name, extra)
    assert first["papermill"] == "reports" and first["psutil"] == "bench"
    for name, extra in first.items():
        assert extra_for(name.replace("-", "_")) == extra, name
    assert extra_for("pandas") is None  # a core dependency
    assert extra_for("no_such_module") is None


@pytest.mark.parametrize(("argv", "blocked"), [
    (["report", "--store", "sqlite:///x.db"], "papermill"),
    (["pipelines", "list"], "croniter"),
])
def test_a_command_whose_extra_is_missing_says_which_to_install(
        argv: list[str], blocked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, blocked, None)  # `import <blocked>` raises ModuleNotFoundError
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f'cryptolab {argv[0]} needs the "reports" extra: '
                            "pip install 'cryptolab[reports]'\n")


def test_a_missing_module_that_no_extra_provides_is_a_bug_and_not_hidden() -> None:
    err = ModuleNotFoundError("No module named 'pandas_typo'", name="pandas_typo")
    assert missing_extra_hint(err, "cryptolab report") is None


def test_the_demo_says_which_extra_its_report_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "papermill", None)
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="cryptolab.demo"):
        result = run_demo(settings=settings, symbols=2, hours=0.05, seed=1, out_dir=tmp_path / "o")
    assert "report" not in result.outputs
    assert ("market report was not rendered: it needs the \"reports\" extra: "
            "pip install 'cryptolab[reports]'") in caplog.text
