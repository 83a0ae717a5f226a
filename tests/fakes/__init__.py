"""Test doubles shipped with the test suite (importable from any test as ``fakes``).

``fakes.coingecko.FakeCoinGecko``
    A local HTTP server with CoinGecko's ``/simple/price`` response shapes and
    scripted faults (429 with ``Retry-After``, 5xx, HTML pages, malformed JSON, timeouts).
``fakes.exchange.StandInExchange``, ``fakes.tape.Tape``
    The stand-in exchange: one market (a tape of trades, recorded or generated) served
    on one local port over Binance's (or Coinbase Exchange's) REST API -- exchangeInfo,
    klines and aggTrades derived from the same trades, trades, time, ping; scripted
    429/418 with ``Retry-After``, empty and short pages, a failing or short history --
    and its websocket API as ccxt.pro uses it (SUBSCRIBE, network drops, missed and
    repeated trades); requests recorded. ``api_url`` / ``ws_url`` are what ccxt takes.
``fakes.webhook.WebhookReceiver``
    A local webhook endpoint recording every POST, answering 503 to the first N POSTs of
    each idempotency key, or hanging (a dead endpoint).
``fakes.ws.FakeExchange``
    A local websocket server replaying the real exchange captures in
    ``../shared/data/ws/``, with network drops, pings, heartbeats and refusals.
"""
