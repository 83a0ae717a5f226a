"""Finding notebooks and pipelines: ./notebooks (./pipelines), then CRYPTOLAB_*_DIR, then the shipped copy."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from cryptolab.config import Settings
from cryptolab.errors import ConfigError, NotebookError
from cryptolab.resources import REPORT, find_notebook, notebook_dirs, pipelines_dir, shipped_dir
from cryptolab.schedules import load_pipeline

REPO = Path(__file__).resolve().parents[2]


def settings(**env: str) -> Settings:
    return Settings.from_env({f"CRYPTOLAB_{k.upper()}": v for k, v in env.items()})


def put(folder: Path, rel: str = REPORT) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_in_a_checkout_the_shipped_copies_are_the_repositorys() -> None:
    assert shipped_dir("notebooks") == REPO / "notebooks"
    assert shipped_dir("pipelines") == REPO / "pipelines"


def test_a_notebook_is_found_in_the_working_directory_then_the_variable_then_shipped(
        tmp_path: Path) -> None:
    cwd, env = tmp_path / "project", tmp_path / "shared"
    cwd.mkdir()
    env.mkdir()
    s = settings(notebooks_dir=str(env))
    assert find_notebook(REPORT, cwd=cwd, settings=s) == shipped_dir("notebooks") / REPORT
    in_env = put(env)
    assert find_notebook(REPORT, cwd=cwd, settings=s) == in_env
    in_cwd = put(cwd / "notebooks")
    assert find_notebook(REPORT, cwd=cwd, settings=s) == in_cwd
    assert find_notebook(f"notebooks/{REPORT}", cwd=cwd, settings=s) == in_cwd
    assert notebook_dirs(cwd=cwd, settings=s) == [cwd / "notebooks", env, shipped_dir("notebooks")]


def test_a_notebooks_folder_without_the_notebook_does_not_hide_the_shipped_one(tmp_path: Path) -> None:
    put(tmp_path / "notebooks", "mine.ipynb")
    assert find_notebook(REPORT, cwd=tmp_path, settings=settings()) == shipped_dir("notebooks") / REPORT


def test_a_missing_notebook_names_every_place_looked_in(tmp_path: Path) -> None:
    with pytest.raises(NotebookError) as info:
        find_notebook("reports/none.ipynb", cwd=tmp_path, settings=settings(notebooks_dir=str(tmp_path)))
    message = str(info.value)
    for where in (tmp_path / "notebooks", tmp_path, shipped_dir("notebooks")):
        assert f"{where / 'reports' / 'none.ipynb'}" in message
    with pytest.raises(NotebookError, match="no notebook at /nonexistent/x.ipynb"):
        find_notebook("/nonexistent/x.ipynb")


def test_a_variable_naming_no_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CRYPTOLAB_NOTEBOOKS_DIR: no folder at .*missing"):
        find_notebook(REPORT, cwd=tmp_path, settings=settings(notebooks_dir=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match=r"CRYPTOLAB_PIPELINES_DIR: no folder at .*missing"):
        pipelines_dir(cwd=tmp_path, settings=settings(pipelines_dir=str(tmp_path / "missing")))


def test_the_pipelines_folder_is_the_working_directorys_then_the_variables_then_shipped(
        tmp_path: Path) -> None:
    cwd, env = tmp_path / "project", tmp_path / "shared"
    cwd.mkdir()
    env.mkdir()
    assert pipelines_dir(cwd=cwd, settings=settings()) == shipped_dir("pipelines")
    assert pipelines_dir(cwd=cwd, settings=settings(pipelines_dir=str(env))) == env
    (cwd / "pipelines").mkdir()
    assert pipelines_dir(cwd=cwd, settings=settings(pipelines_dir=str(env))) == cwd / "pipelines"


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("n = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_a_pipelines_notebook_is_its_projects_else_found_like_every_notebook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (project / "pipelines").mkdir(parents=True)
    toml = project / "pipelines" / "job.toml"
    toml.write_text('cron = "0 6 * * *"\nnotebook = "notebooks/job.ipynb"\n[parameters]\nn = 2\n')
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline(toml, data_dir=tmp_path)
    in_cwd = _notebook(elsewhere / "notebooks" / "job.ipynb")
    assert load_pipeline(toml, data_dir=tmp_path).notebook == in_cwd
    own = _notebook(project / "notebooks" / "job.ipynb")
    assert load_pipeline(toml, data_dir=tmp_path).notebook == own
