"""The SQL store of record: candles, alerts, late ticks and consumer progress.

One :class:`Store` speaks to PostgreSQL (psycopg 3; a TimescaleDB hypertable
when the extension is available) or to SQLite (the embedded default), through
SQLAlchemy Core. Times are stored as ``BIGINT`` epoch milliseconds UTC and
converted to pandas Timestamps only at the edge (:meth:`Store.history`).

Exactly-once effect comes from :meth:`Store.commit_batch`: candles, alerts,
late ticks *and* the consumer's progress (next offset, watermark, windowing
state) are written in ONE transaction, and the progress rows are fenced: a
consumer whose idea of the stored offset is stale (because another member of
the group committed past it after a rebalance) gets :class:`FencedError` and
nothing of its batch is written.

Layout
------
``schema``
    The tables (``candles``, ``alerts``, ``late_ticks``, ``consumer_progress``,
    ``rules``, ``webhook_deliveries``, ``schema_version``), their column layouts,
    creation and migrations.
``dialects``
    One strategy per backend (PostgreSQL, SQLite), chosen once from the URL:
    engines, locking, the batch's candle upsert, TimescaleDB.
``database``
    A store's engines, read and write transactions, error translation.
``commit``
    The fenced :meth:`Store.commit_batch`; ``forget`` deletes what runs wrote.
``rules``, ``outbox``
    The user alert rules (``store.rules``) and the webhook outbox (``store.webhooks``).
``queries``, ``packed``, ``frames``
    The read paths (history, candles, alerts, progress...); PostgreSQL's packed
    history record; the DataFrames (pandas is imported only for them).
``export``
    CSV exports and :meth:`Store.info`.
``facade``
    :class:`Store`, which delegates to the above, and :func:`history`.

Examples
--------
>>> from cryptolab.models import Alert, Candle
>>> store = Store("sqlite://")
>>> store.init()
>>> c = Candle(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000,
...            window_end=1_700_000_100_000, open=100.0, high=101.0, low=99.5, close=100.5,
...            volume=3.0, vwap=100.2, trades=3, first_ts=1_700_000_041_000,
...            last_ts=1_700_000_099_000, high_ts=1_700_000_050_000,
...            low_ts=1_700_000_060_000, final=True)
>>> a = Alert(symbol="BTC-USD", interval="1m", window_start=c.window_start, detector="rule",
...           severity="HIGH", score=4.2, ts_ms=c.window_end, features={"ret": 0.05})
>>> progress = {0: PartitionProgress(partition=0, offset=42, watermark_ms=c.window_end, state=b"")}
>>> inserted = store.commit_batch(group="g", topic="ticks", candles=[c], alerts=[a],
...                               progress=progress, expected_offsets={0: None})
>>> [x.detector for x in inserted]
['rule']
>>> store.commit_batch(group="g", topic="ticks", alerts=[a], progress=progress,
...                    expected_offsets={0: None})
Traceback (most recent call last):
...
cryptolab.errors.FencedError: group 'g' topic 'ticks' partition 0: expected no stored progress, store has offset 42 (another consumer committed; re-read progress)
>>> store.history("BTC-USD", "1m")[["window_start", "open", "close", "final"]]
               window_start   open  close  final
0 2023-11-14 22:14:00+00:00  100.0  100.5   True
>>> store.load_progress("g", "ticks")[0].offset
42
>>> store.close()
"""

from __future__ import annotations

from cryptolab.store.facade import Store, history
from cryptolab.store.records import LateTick, PartitionProgress, WebhookDelivery
from cryptolab.store.schema import (
    ALERT_CSV_COLUMNS,
    CANDLE_CSV_COLUMNS,
    HISTORY_COLUMNS,
    SCHEMA_VERSION,
)
from cryptolab.store.times import TimeLike, to_ms

# Importable from here as before the store was split into modules (explicit re-exports).
from cryptolab.store.facade import _STORES as _STORES  # isort: skip
from cryptolab.store.facade import _shared_store as _shared_store  # isort: skip
from cryptolab.store.packed import _PACKED_DTYPE as _PACKED_DTYPE  # isort: skip
from cryptolab.store.packed import _frame_from_packed as _frame_from_packed  # isort: skip
from cryptolab.store.schema import (  # isort: skip
    _FLOAT_COLS as _FLOAT_COLS,
    _INT_COLS as _INT_COLS,
    ALERT_COLUMNS as ALERT_COLUMNS,
    HYPERTABLE_CHUNK_MS as HYPERTABLE_CHUNK_MS,
    alerts_table as alerts_table,
    candles_table as candles_table,
    late_ticks_table as late_ticks_table,
    progress_table as progress_table,
    rules_table as rules_table,
    schema_version_table as schema_version_table,
    webhook_deliveries_table as webhook_deliveries_table,
)

__all__ = [
    "ALERT_CSV_COLUMNS",
    "CANDLE_CSV_COLUMNS",
    "HISTORY_COLUMNS",
    "SCHEMA_VERSION",
    "LateTick",
    "PartitionProgress",
    "Store",
    "TimeLike",
    "WebhookDelivery",
    "history",
    "to_ms",
]
