"""BokehJS in the page: once per page, again for a new page, a restarted kernel or a re-run carrier cell."""

from __future__ import annotations

from typing import Any

import pytest

from cryptolab.viz import notebook


class FakeShell:
    kernel = object()

    def __init__(self) -> None:
        self.parent_header: dict[str, Any] = {}

    def request(self, session: str, cell: str | None, msg: str) -> None:
        self.parent_header = {"header": {"session": session, "msg_id": msg},
                              "metadata": {"cellId": cell} if cell else {}}


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeShell, list[Any]]:
    fake = FakeShell()
    published: list[Any] = []
    monkeypatch.setattr(notebook, "_kernel_shell", lambda: fake)
    monkeypatch.setattr("bokeh.io.output_notebook",
                        lambda resources, hide_banner: published.append(resources))
    notebook.reset()
    yield fake, published
    notebook.reset()


def test_once_per_page_inline_from_the_installed_bokeh(shell: tuple[FakeShell, list[Any]]) -> None:
    fake, published = shell
    fake.request("page-1", "cell-a", "m1")
    assert notebook.output_notebook() is True
    assert notebook.output_notebook() is False  # a second chart of the same run
    fake.request("page-1", "cell-b", "m2")
    assert notebook.output_notebook() is False  # another cell of the same page
    assert len(published) == 1
    res = published[0]
    assert res.mode == "inline" and "bokeh-mathjax" not in res.components
    assert set(notebook.COMPONENTS) <= set(res.components)


def test_a_reloaded_page_and_a_rerun_carrier_cell_get_it_again(shell: tuple[FakeShell, list[Any]]) -> None:
    fake, published = shell
    fake.request("page-1", "cell-a", "m1")
    notebook.output_notebook()
    fake.request("page-2", "cell-b", "m2")  # the page was reloaded: a new session
    assert notebook.output_notebook() is True
    fake.request("page-2", "cell-b", "m3")  # its carrier cell runs again (its output is cleared)
    assert notebook.output_notebook() is True
    fake.request("page-2", "cell-c", "m4")
    assert notebook.output_notebook() is False
    notebook.reset()  # what a kernel restart does to the module state
    assert notebook.output_notebook() is True
    assert len(published) == 4
