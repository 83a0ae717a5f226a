"""Test doubles shipped with the test suite (importable from any test as ``fakes``).

``fakes.coingecko.FakeCoinGecko``
    A local HTTP server with CoinGecko's ``/simple/price`` response shapes and
    scripted faults (429 with ``Retry-After``, 5xx, HTML pages, malformed JSON, timeouts).
``fakes.ws.FakeExchange``
    A local websocket server replaying the real exchange captures in
    ``../shared/data/ws/``, with network drops, pings, heartbeats and refusals.
"""
