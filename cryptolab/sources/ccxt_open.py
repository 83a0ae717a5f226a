"""Open a ccxt exchange by id, REST or websocket, with its endpoints optionally moved.

``api_url`` replaces the scheme, host and port of every REST endpoint of the
exchange (``https://api.binance.com/api/v3`` becomes ``http://127.0.0.1:8080/api/v3``)
and ``ws_url`` those of every websocket endpoint: tests point ccxt at local
stand-ins that speak the exchange's API, and users at proxies or mirrors. Paths are
kept, so a stand-in serves the real paths.

Examples
--------
>>> urls = {"public": "https://api.kraken.com/0", "ws": {"public": "wss://ws.kraken.com"}}
>>> rebase_urls(urls, api_url="http://127.0.0.1:9000", ws_url="ws://127.0.0.1:9001")
{'public': 'http://127.0.0.1:9000/0', 'ws': {'public': 'ws://127.0.0.1:9001'}}
>>> rebase_url("wss://stream.binance.com:9443/ws", "ws://localhost:1/prefix")
'ws://localhost:1/prefix/ws'
>>> ex = open_exchange("binance", api_url="http://127.0.0.1:9")
>>> ex.urls["api"]["public"]
'http://127.0.0.1:9/api/v3'
>>> open_exchange("nosuchexchange")
Traceback (most recent call last):
...
cryptolab.errors.ValidationError: invalid 'exchange': unknown exchange 'nosuchexchange'; ccxt knows ... (see ccxt.exchanges)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptolab.errors import ValidationError

__all__ = ["exchange_ids", "open_exchange", "rebase_url", "rebase_urls"]

_WS_SCHEMES = ("ws", "wss")


def exchange_ids(*, websocket: bool = False) -> list[str]:
    """The ccxt exchange ids (those with websocket support when ``websocket``)."""
    if websocket:
        import ccxt.pro

        return sorted(ccxt.pro.exchanges)
    import ccxt

    return sorted(ccxt.exchanges)


def rebase_url(url: str, base: str) -> str:
    """``url`` with the scheme, host and port of ``base`` (its path is prefixed to ``url``'s)."""
    u, b = urlsplit(url), urlsplit(base)
    if not b.scheme or not b.netloc:
        raise ValidationError("url", f"{base!r} is not scheme://host[:port][/path]")
    path = b.path.rstrip("/") + u.path
    return urlunsplit((b.scheme, b.netloc, path, u.query, u.fragment))


def rebase_urls(urls: Any, *, api_url: str | None = None, ws_url: str | None = None) -> Any:
    """A copy of a ccxt ``urls["api"]`` tree with REST and websocket endpoints rebased."""
    if isinstance(urls, dict):
        return {k: rebase_urls(v, api_url=api_url, ws_url=ws_url) for k, v in urls.items()}
    if isinstance(urls, list):
        return [rebase_urls(v, api_url=api_url, ws_url=ws_url) for v in urls]
    if isinstance(urls, str) and "://" in urls:
        is_ws = urlsplit(urls).scheme in _WS_SCHEMES
        target = ws_url if is_ws else api_url
        if target is not None:
            return rebase_url(urls.replace("{hostname}", "localhost"), target)
    return urls


def open_exchange(exchange_id: str, *, api_url: str | None = None, ws_url: str | None = None,
                  pro: bool = False, options: dict[str, Any] | None = None) -> Any:
    """A ccxt exchange instance (``ccxt.pro``'s, async, when ``pro``), endpoints rebased.

    Parameters
    ----------
    exchange_id
        A ccxt id (``binance``, ``coinbaseexchange``, ``kraken``...).
    api_url, ws_url
        Replace the scheme, host and port of every REST / websocket endpoint.
    pro
        The websocket-capable async class from ``ccxt.pro`` (``watch_trades``).
    options
        Extra ccxt constructor options (``enableRateLimit`` is on by default).

    Raises
    ------
    ValidationError
        For an exchange ccxt does not know (or lacks websockets, with ``pro``).
    """
    import ccxt

    if pro:
        import ccxt.pro as module
    else:
        module = ccxt
    known = getattr(module, "exchanges", [])
    if exchange_id not in known:
        kind = "websocket exchange" if pro else "exchange"
        raise ValidationError(
            "exchange", f"unknown {kind} {exchange_id!r}; ccxt knows {len(known)} (see ccxt.exchanges)"
        )
    config: dict[str, Any] = {"enableRateLimit": True}
    config.update(options or {})
    ex = getattr(module, exchange_id)(config)
    if api_url is not None or ws_url is not None:
        ex.urls = dict(ex.urls)
        ex.urls["api"] = rebase_urls(ex.urls.get("api"), api_url=api_url, ws_url=ws_url)
    return ex
