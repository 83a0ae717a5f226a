"""The live market: exchange history backfilled into the store, and live sessions.

``backfill`` fetches an exchange's candles (or trades, rebuilt by cryptolab's own
aggregator) over REST into the store; ``session`` runs source -> producer -> Kafka ->
windowing consumer -> store and cache in background threads, behind one handle
(:func:`cryptolab.live`).
"""
