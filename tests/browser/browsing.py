"""What the browser tests share: where Chromium and the artifacts are, and the loopback-only rule."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI") == "true"
#: Requests to anything but loopback that a page tried (and that were refused).
OFFLINE_BLOCKED: list[str] = []


def unavailable(message: str) -> NoReturn:
    """Skip, or fail under ``CI=true``: in CI the browser tests must run."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the browser test must run)", pytrace=False)
    pytest.skip(message)


def loopback_only(route: Any) -> None:
    """A Playwright route handler: loopback goes through, anything else is aborted and recorded."""
    url = route.request.url
    host = urlsplit(url).hostname or ""
    if url.startswith(("data:", "blob:", "file:")) or host in ("127.0.0.1", "localhost", "::1"):
        route.continue_()
    else:
        OFFLINE_BLOCKED.append(url)
        route.abort()
