"""What the routes share: the settings, the store, the cache and the process's :class:`Hub`.

One :class:`ApiState` per application, on ``app.state.api``; routes reach it through the
:func:`api_state` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from cryptolab.api.fanout import Hub
from cryptolab.cache import Cache
from cryptolab.config import Settings
from cryptolab.store import Store

__all__ = ["ApiState", "State", "api_state"]


@dataclass
class ApiState:
    """The services of one application and whether it opened (and so closes) them."""

    settings: Settings
    store: Store
    cache: Cache
    hub: Hub
    owns_store: bool = False
    owns_cache: bool = False

    def close(self) -> None:
        """Stop the hub; close the store and cache this application opened."""
        self.hub.stop()
        if self.owns_cache:
            self.cache.close()
        if self.owns_store:
            self.store.close()


def api_state(conn: HTTPConnection) -> ApiState:
    """Dependency: the application's :class:`ApiState`."""
    state: ApiState = conn.app.state.api
    return state


async def _api_state(conn: HTTPConnection) -> ApiState:
    # async: FastAPI runs a sync dependency in the thread pool, a hop per request that costs
    # more than the whole of a cached /latest under load
    return api_state(conn)


#: A route parameter receiving the application's :class:`ApiState`.
State = Annotated[ApiState, Depends(_api_state)]
