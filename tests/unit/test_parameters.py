"""List-typed notebook parameters in every form papermill's CLI and Python callers give them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from cryptolab.errors import ValidationError
from cryptolab.notebooks import report_parameters, validate_parameters
from cryptolab.parameters import list_parameter


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["BTC", "ETH"], ["BTC", "ETH"]),
        (("BTC",), ["BTC"]),
        ("BTC", ["BTC"]),  # papermill -p symbols BTC
        ("BTC,ETH", ["BTC", "ETH"]),  # -p symbols BTC,ETH
        (" BTC , ETH ,", ["BTC", "ETH"]),
        ('["BTC"]', ["BTC"]),  # -p symbols '["BTC"]'
        ('["BTC", "ETH-USD"]', ["BTC", "ETH-USD"]),
        ("[BTC, ETH]", ["BTC", "ETH"]),  # a YAML flow list
        ("[NO, 1.10]", ["NO", "1.10"]),  # YAML scalars stay text (no NO -> False)
        ([" BTC", 5], ["BTC", "5"]),
        ("", []),
        ("[]", []),
        (None, None),
    ],
)
def test_every_form_becomes_a_list_of_strings(given: Any, expected: list[str] | None) -> None:
    assert list_parameter(given, "symbols") == expected


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ({"BTC": 1}, "expected a list"),
        ("[BTC", "is not a JSON/YAML list"),
        ([["BTC"]], "items must be plain values"),
        ([True], "items must be plain values"),
        ("[[BTC]]", "items must be plain values"),
    ],
)
def test_what_is_not_a_list_is_refused_naming_the_parameter(given: Any, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as info:
        list_parameter(given, "symbols")
    assert info.value.field == "symbols"


def _notebook(path: Path, params: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("raise SystemExit('must not run')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("declared", [
    "names = []  # a default list",
    "names: list = []  # an annotation",
    "names = None  # type: Optional[list]  a type comment, None allowed",
])
def test_run_notebook_reads_a_string_for_a_list_parameter_before_any_kernel(
        declared: str, tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "p.ipynb", declared)
    assert validate_parameters(nb, {"names": "BTC,ETH"}) == {"names": ["BTC", "ETH"]}
    assert validate_parameters(nb, {"names": '["BTC"]'}) == {"names": ["BTC"]}
    assert validate_parameters(nb, {"names": ("BTC",)}) == {"names": ["BTC"]}
    with pytest.raises(ValidationError, match="expected list"):
        validate_parameters(nb, {"names": 5})
    with pytest.raises(ValidationError, match="JSON/YAML list"):
        validate_parameters(nb, {"names": "[BTC"})


def test_a_string_parameter_is_left_alone(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "p.ipynb", 'label = "x"')
    assert validate_parameters(nb, {"label": "a,b"}) == {"label": "a,b"}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"start": "notadate"}, "start"),
        ({"end": "2013-13-45"}, "end"),
        ({"interval": "7m"}, "interval"),
        ({"symbols": "BTC,ETH;DROP"}, "symbol"),
        ({"start": "2013-01-02", "end": "2013-01-01"}, "end"),
        ({"start": "2013-01-01", "end": "2013-01-01"}, "end"),
    ],
)
def test_report_arguments_are_checked(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        report_parameters(**given)
    assert info.value.field == field


def test_report_arguments_are_normalised_for_the_notebook() -> None:
    got = report_parameters(symbols='["BTC", "ETH"]', interval="5m", start="2013-01-01",
                            end="2013-01-01T12:00:00+02:00")
    assert got == {"symbols": ["BTC", "ETH"], "interval": "5m",
                   "start": "2013-01-01T00:00:00Z", "end": "2013-01-01T10:00:00Z"}
    assert report_parameters(symbols="")["symbols"] is None  # every symbol
