"""Test doubles shipped with the test suite (importable from any test as ``fakes``).

``fakes.coingecko.FakeCoinGecko``
    A local HTTP server with CoinGecko's ``/simple/price`` response shapes and
    scripted faults (429 with ``Retry-After``, 5xx, HTML pages, malformed JSON, timeouts).
``fakes.exchange_rest.FakeBinanceRest``, ``fakes.exchange_rest.Tape``
    A local HTTP server with Binance's public REST shapes (exchangeInfo, klines,
    aggTrades, trades, time, ping) serving a tape of trades (recorded or generated)
    that klines and trades are both derived from; scripted 429/418 with
    ``Retry-After``, empty pages and short pages; requests recorded.
``fakes.webhook.WebhookReceiver``
    A local webhook endpoint recording every POST, answering 503 to the first N POSTs of
    each idempotency key, or hanging (a dead endpoint).
``fakes.ws.FakeExchange``
    A local websocket server replaying the real exchange captures in
    ``../shared/data/ws/``, with network drops, pings, heartbeats and refusals.
"""
