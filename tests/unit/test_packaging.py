"""pyproject.toml builds a wheel with every package and the notebooks and pipelines the commands run;
docker/Dockerfile builds it with the same inputs. (tests/e2e/test_wheel_install.py builds and runs it.)"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path, PurePosixPath

from cryptolab.resources import REPORT

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def shipped_files() -> dict[str, list[str]]:
    """``{source folder: [glob relative to it]}`` of the data packages mapped from the repository."""
    out: dict[str, list[str]] = {}
    for package, folder in SETUPTOOLS.get("package-dir", {}).items():
        out[folder] = SETUPTOOLS["package-data"][package]
    return out


def ships(folder: str, rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, g) for g in shipped_files().get(folder, []))


def test_every_package_of_the_source_tree_is_listed() -> None:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cryptolab").rglob("__init__.py")}
    assert found <= set(SETUPTOOLS["packages"])
    for package, folder in SETUPTOOLS["package-dir"].items():
        assert package in SETUPTOOLS["packages"] and (ROOT / folder).is_dir()


def test_the_wheel_ships_the_notebooks_the_commands_and_pipelines_run() -> None:
    assert ships("notebooks", REPORT)
    pipelines = sorted((ROOT / "pipelines").glob("*.toml"))
    assert pipelines
    for toml in pipelines:
        assert ships("pipelines", toml.name), toml
        notebook = PurePosixPath(tomllib.loads(toml.read_text())["notebook"])
        assert notebook.parts[0] == "notebooks", toml
        assert ships("notebooks", str(notebook.relative_to("notebooks"))), toml


def test_the_docker_image_builds_the_wheel_from_the_same_folders() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text().splitlines()
    copied = {line.split()[1] for line in dockerfile if line.startswith("COPY ")}
    allowed = {line[1:].rstrip("/") for line in
               (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert shipped_files()
    for folder, globs in shipped_files().items():
        for pattern in globs:
            needed = str(PurePosixPath(folder, pattern).parent)
            assert any(needed == c or needed.startswith(c + "/") for c in copied), needed
            assert any(needed == a or needed.startswith(a + "/") for a in allowed), needed


def test_the_benchmarks_stay_in_the_checkout() -> None:
    """benchmarks/ (the suite and its peers: Quix Streams, polars) is not part of the wheel."""
    listed = [*SETUPTOOLS["packages"], *SETUPTOOLS["package-dir"].values()]
    assert not [p for p in listed if p.split(".")[0].split("/")[0] == "benchmarks"]
    assert (ROOT / "benchmarks" / "run.py").is_file()
