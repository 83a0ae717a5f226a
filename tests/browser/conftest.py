"""Headless Chromium for the browser tests (Debian's ``chromium``, driven by Playwright).

Under ``CI=true`` a missing Playwright or Chromium fails the test instead of skipping it.
Every page a test opens may talk to loopback only: any other request (a CDN, say) is
aborted and recorded in ``browsing.OFFLINE_BLOCKED``, so the tests prove the pages work offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browsing import CHROMIUM, loopback_only, unavailable


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install 'cryptolab[test]'")
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM}: run scripts/ensure_chromium.sh")
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context whose pages reach loopback only."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 950})
    ctx.route("**/*", loopback_only)
    yield ctx
    ctx.close()
