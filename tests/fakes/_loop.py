"""A test server whose asyncio event loop runs on a background thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class LoopServer:
    """Base of the fake servers: subclasses define ``_main()``, which sets ``self._stop``
    (an ``asyncio.Event``), calls ``self._ready.set()`` once listening, and returns when
    ``_stop`` is set."""

    _what = "server"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    async def _main(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self) -> Self:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self._what} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
