"""The built wheel, installed in a fresh virtualenv outside the checkout, run from an empty directory.

This is what a user of ``pip install cryptolab-*.whl[all]`` (and the Docker image) gets: the
commands must find the notebooks and pipelines shipped in the wheel, not the checkout's.

Installing the dependencies from an index would be slow and need the network, so the fresh
virtualenv gets them from the running interpreter's site-packages through a ``.pth`` file (a
``.pth`` line only adds a folder to ``sys.path``: the checkout's editable-install hook there does not
run, and ``import cryptolab`` finds the wheel's copy; a test checks it). ``BLOCK_MODULES=a,b`` makes
``import a`` fail in that virtualenv, as if ``a`` were not installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
#: What building the wheel reads from the checkout (copied, so that the build writes nothing here).
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "cryptolab", "notebooks", "pipelines")

BLOCKER = '''\
"""BLOCK_MODULES=a,b: importing a or b fails as if they were not installed (tests only)."""
import os
import sys


class _Blocker:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


_names = {n for n in os.environ.get("BLOCK_MODULES", "").split(",") if n}
if _names:
    sys.meta_path.insert(0, _Blocker(_names))
'''


@dataclass(frozen=True)
class Venv:
    """A fresh virtualenv with the wheel installed."""

    root: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(self, args: list[str], cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 540) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (``cryptolab`` or ``python`` resolve to this virtualenv) in ``cwd``."""
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("CRYPTOLAB_", "PYTHON", "JUPYTER_", "BLOCK_MODULES"))}
        environ.pop("VIRTUAL_ENV", None)
        environ["PATH"] = f"{self.bin}{os.pathsep}{environ.get('PATH', '')}"
        environ.update(env or {})
        exe = self.bin / args[0]
        return subprocess.run([str(exe), *args[1:]], cwd=cwd, env=environ, capture_output=True,
                              text=True, timeout=timeout)


def _backend_is_installed() -> bool:
    """Whether this interpreter has the build backend pyproject.toml asks for (then the build
    needs no network)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in requires:
        req = Requirement(text)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(version, prereleases=True):
            return False
    return True


def _check(proc: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the checkout's build inputs."""
    src = out / "src"
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out / "dist")]
    if _backend_is_installed():
        cmd.append("--no-build-isolation")
    _check(subprocess.run([*cmd, str(src)], capture_output=True, text=True, timeout=540),
           "building the wheel")
    (wheel,) = (out / "dist").glob("cryptolab-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(base)
    root = base / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True,
                          timeout=300), "creating the virtualenv")
    env = Venv(root=root, wheel=wheel)
    site = Path(_check(env.run(["python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               cwd=base), "python").stdout.strip())
    (site / "_block_modules.py").write_text(BLOCKER)
    (site / "_block_modules.pth").write_text("import _block_modules\n")
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # nbconvert's templates are data files beside its package's environment, not in site-packages
    here = Path(sys.prefix) / "share" / "jupyter" / "nbconvert"
    (root / "share" / "jupyter").mkdir(parents=True)
    (root / "share" / "jupyter" / "nbconvert").symlink_to(here, target_is_directory=True)
    _check(env.run(["python", "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=base),
           "installing the wheel")
    yield env


def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def line(text: str, label: str) -> str:
    """The value of the demo summary's ``label`` line."""
    m = re.search(rf"^{re.escape(label)}\s+(\S+)\s*$", text, re.MULTILINE)
    assert m, f"no {label!r} line in:\n{text}"
    return m.group(1)


def chart_candles(html: Path) -> set[tuple[int, float]]:
    """``(window_start, close)`` of every candle drawn by the Bokeh documents of a page."""
    page = html.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    docs = [decoder.raw_decode(page, m.end())[0] for m in re.finditer(r"const docs_json = ", page)]

    def sources(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("name") == "ColumnDataSource":
                yield node
            for v in node.values():
                yield from sources(v)
        elif isinstance(node, list):
            for v in node:
                yield from sources(v)

    out: set[tuple[int, float]] = set()
    for cds in sources(docs):
        data = dict(cds["attributes"]["data"]["entries"])
        if {"window_start", "open", "high", "low", "close"} <= set(data):
            out |= set(zip(data["window_start"], data["close"], strict=True))
    return out


def store_candles(sqlite_url: str, cwd: Path) -> set[tuple[int, float]]:
    assert sqlite_url.startswith("sqlite:///"), sqlite_url
    path = cwd / sqlite_url[len("sqlite:///"):]
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT window_start, close FROM candles WHERE interval = '1m'").fetchall()
    return {(int(w), float(c)) for w, c in rows}


def assert_report_draws(html: Path, expected: set[tuple[int, float]]) -> None:
    assert html.is_file(), f"no report at {html}"
    page = html.read_text(encoding="utf-8")
    assert "BEGIN bokeh.min.js" in page  # the charts draw offline
    assert expected, "the store holds no 1m candles"
    assert chart_candles(html) == expected


def test_the_wheel_and_not_the_checkout_is_what_runs(venv: Venv, tmp_path: Path) -> None:
    cwd = empty_dir(tmp_path)
    where = _check(venv.run(["python", "-c", "import cryptolab; print(cryptolab.__file__)"], cwd=cwd),
                   "import cryptolab").stdout.strip()
    assert Path(where).is_relative_to(venv.root), where
    version = venv.wheel.name.split("-")[1]
    out = _check(venv.run(["cryptolab", "--version"], cwd=cwd), "cryptolab --version").stdout
    assert out.strip() == f"cryptolab {version}"


def test_demo_report_and_pipelines_run_from_an_empty_directory(venv: Venv, tmp_path: Path) -> None:
    cwd = empty_dir(tmp_path)
    demo = _check(venv.run(["cryptolab", "demo", "--symbols", "2", "--hours", "0.25"], cwd=cwd),
                  "cryptolab demo")
    store = line(demo.stdout, "store")
    candles = store_candles(store, cwd)
    assert_report_draws(cwd / line(demo.stdout, "report"), candles)

    report = _check(venv.run(["cryptolab", "report", "--store", store, "--out", "adhoc"], cwd=cwd),
                    "cryptolab report")
    html = Path(report.stdout.strip().splitlines()[-1])
    assert (cwd / html).resolve() == (cwd / "adhoc" / "market_report.html").resolve()
    assert_report_draws(cwd / html, candles)

    shipped = sorted(p.stem for p in (ROOT / "pipelines").glob("*.toml"))
    assert shipped
    listed = _check(venv.run(["cryptolab", "pipelines", "list"], cwd=cwd), "cryptolab pipelines list")
    names = [row.split()[0] for row in listed.stdout.splitlines()[1:]]
    assert names == shipped
    as_json = json.loads(_check(venv.run(["cryptolab", "pipelines", "list", "--json"], cwd=cwd),
                                "cryptolab pipelines list --json").stdout)
    assert as_json["invalid"] == []
    for row in as_json["pipelines"]:
        assert Path(row["notebook"]).is_relative_to(venv.root), row  # the wheel's own copy
        assert Path(row["notebook"]).is_file(), row


@pytest.mark.parametrize(("command", "blocked"), [
    (["report"], "papermill"),
    (["pipelines", "list"], "croniter"),
])
def test_a_command_without_its_extra_names_the_extra(venv: Venv, tmp_path: Path, command: list[str],
                                                     blocked: str) -> None:
    cwd = empty_dir(tmp_path)
    env = {"BLOCK_MODULES": blocked}
    probe = venv.run(["python", "-c", f"import {blocked}"], cwd=cwd, env=env)
    assert probe.returncode == 1 and "ModuleNotFoundError" in probe.stderr  # the blocker works
    proc = venv.run(["cryptolab", *command], cwd=cwd, env=env)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f'cryptolab {command[0]} needs the "reports" extra: '
                           "pip install 'cryptolab[reports]'\n")
