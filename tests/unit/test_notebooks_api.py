"""run_notebook: parameters validated before any kernel starts; failures name the cell; HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

import cryptolab
from cryptolab.errors import NotebookError, ValidationError
from cryptolab.notebooks import (
    NotebookRunError,
    inspect_parameters,
    kernel_config,
    notebook_to_html,
    run_notebook,
    validate_parameters,
)

PARAMS = """\
count = 3  # how many lines
ratio = 0.5
label = "x"
verbose = False
names = ["a", "b"]
start = None  # anything goes
when: str = "now"
"""


def make_notebook(path: Path, *cells: str, params: str = PARAMS) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# fixture"), p,
                *[nbformat.v4.new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_the_public_name_is_this_function() -> None:
    assert cryptolab.run_notebook is run_notebook


def test_parameter_types_are_inferred_from_defaults_and_annotations(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "p.ipynb", "pass")
    params = inspect_parameters(nb)
    assert {k: v.type for k, v in params.items()} == {
        "count": "int", "ratio": "float", "label": "str", "verbose": "bool", "names": "list",
        "start": "None", "when": "str",
    }
    assert params["count"].default == 3 and params["count"].help == "how many lines"


@pytest.mark.parametrize(
    ("given", "field", "why"),
    [
        ({"cuont": 3}, "cuont", "unknown parameter"),
        ({"count": "3"}, "count", "expected int"),
        ({"count": True}, "count", "expected int"),
        ({"count": 2.5}, "count", "expected int"),
        ({"ratio": "high"}, "ratio", "expected float"),
        ({"label": 1}, "label", "expected str"),
        ({"verbose": 1}, "verbose", "expected bool"),
        ({"names": 5}, "names", "expected list"),
        ({"names": "[a"}, "names", "not a JSON/YAML list"),
        ({"when": 5}, "when", "expected str"),
        ({"label": None}, "label", "expected str"),
    ],
)
def test_unknown_or_ill_typed_parameters_are_rejected_before_running(
    tmp_path: Path, given: dict[str, Any], field: str, why: str
) -> None:
    nb = make_notebook(tmp_path / "p.ipynb", "raise SystemExit('must not run')")
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match=why) as info:
        run_notebook(nb, given, output_dir=out)
    assert info.value.field == field
    assert not out.exists() or not any(out.iterdir())  # no kernel ran, nothing written


def test_well_typed_parameters_pass(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "p.ipynb", "pass")
    ok = {"count": 5, "ratio": 2, "label": "y", "verbose": True, "names": ("c",),
          "start": {"any": 1}, "when": "later"}
    assert validate_parameters(nb, ok)["names"] == ["c"]
    assert validate_parameters(nb, {"names": "c,d"})["names"] == ["c", "d"]  # papermill -p style


def test_a_list_parameter_given_as_text_is_injected_as_a_list(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "ok.ipynb", "print(type(names).__name__, names)")
    run = run_notebook(nb, {"names": "z,y"}, output_dir=tmp_path / "out")
    executed = nbformat.read(run.output, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "list ['z', 'y']" in printed


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_run_keeps_the_last_good_outputs(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "r.ipynb", "print(label * count)", "assert count != 3, 'three'")
    out = tmp_path / "out"
    run_notebook(nb, {"count": 4}, output_dir=out, name="r")
    good = _files(out)
    assert set(good) == {"r.ipynb", "r.html"} and b"xxxx" in good["r.html"]
    with pytest.raises(NotebookRunError) as info:
        run_notebook(nb, {"count": 3}, output_dir=out, name="r")
    after = _files(out)
    assert {k: after[k] for k in good} == good  # byte for byte
    assert set(after) == {"r.ipynb", "r.html", "r.failed.ipynb", "r.failed.html"}  # no leftovers
    assert info.value.output == out / "r.failed.ipynb" and info.value.html == out / "r.failed.html"
    assert "AssertionError" in after["r.failed.html"].decode()
    run_notebook(nb, {"count": 5}, output_dir=out, name="r")
    again = _files(out)
    assert set(again) == {"r.ipynb", "r.html"}  # a good run clears the failed one
    assert b"xxxxx" in again["r.html"] and again["r.html"] != good["r.html"]


def test_kernels_run_encrypted_and_silent(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nb = make_notebook(tmp_path / "ok.ipynb", "print('done')")
    run_notebook(nb, {}, output_dir=tmp_path / "out")
    err = capfd.readouterr().err  # the kernel process writes to this process's stderr
    assert "without encryption" not in err
    assert kernel_config().KernelManager.transport_encryption == "auto"


def test_a_run_injects_parameters_and_writes_ipynb_and_html(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "ok.ipynb", "print(label * count, names)")
    run = run_notebook(nb, {"count": 4, "names": ["z"]}, output_dir=tmp_path / "out", name="r1")
    assert run.output == tmp_path / "out" / "r1.ipynb" and run.html == tmp_path / "out" / "r1.html"
    executed = nbformat.read(run.output, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "xxxx ['z']" in printed
    assert "xxxx" in run.html.read_text(encoding="utf-8")
    assert run.parameters == {"count": 4, "names": ["z"]}
    assert "hl-ipython3" in run.html.read_text(encoding="utf-8")  # code cells shown
    report = notebook_to_html(run.output, tmp_path / "report.html", hide_code=True)
    page = report.read_text(encoding="utf-8")
    assert "xxxx" in page and "hl-ipython3" not in page  # outputs only


def test_a_failing_cell_is_named_by_its_index_in_the_source_notebook(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "bad.ipynb", "x = 1", "y = x / (count - 3)", "print('never')")
    with pytest.raises(NotebookRunError) as info:
        run_notebook(nb, {"count": 3}, output_dir=tmp_path / "out")
    err = info.value
    assert isinstance(err, NotebookError)
    assert err.cell == 3  # markdown, parameters, "x = 1", then this one (injection not counted)
    assert err.source == "y = x / (count - 3)"
    assert err.ename == "ZeroDivisionError" and "(cell 3)" in str(err)
    assert err.output is not None and err.output.exists()
    assert err.html is not None and "ZeroDivisionError" in err.html.read_text(encoding="utf-8")


def test_a_cell_over_the_timeout_fails_and_is_named(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "slow.ipynb", "import time", "time.sleep(60)")
    with pytest.raises(NotebookRunError) as info:
        run_notebook(nb, {}, output_dir=tmp_path / "out", timeout=2)
    assert info.value.cell == 3 and info.value.source == "time.sleep(60)"


def test_missing_notebook(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="no notebook"):
        run_notebook(tmp_path / "nope.ipynb", {}, output_dir=tmp_path)


def test_html_with_bokeh_output_carries_bokehjs_inline(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show(p)")
    cell.outputs = [nbformat.v4.new_output(
        "display_data",
        data={"application/javascript": "/* embed */",
              "application/vnd.bokehjs_exec.v0+json": ""},
    )]
    nb.cells = [cell]
    page = notebook_to_html(nb, tmp_path / "a.html").read_text(encoding="utf-8")
    assert "BEGIN bokeh.min.js" in page
    plain = notebook_to_html(nbformat.v4.new_notebook(), tmp_path / "b.html")
    assert "BEGIN bokeh.min.js" not in plain.read_text(encoding="utf-8")
