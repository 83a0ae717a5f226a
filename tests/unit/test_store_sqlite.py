"""Store behaviour that needs no server: time parsing, URLs, errors, SQLite specifics, exports."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

import cryptolab
from cryptolab import store as store_mod
from cryptolab.config import Settings
from cryptolab.errors import StoreError, ValidationError
from cryptolab.models import MAX_TS_MS, MIN_TS_MS, Candle, iso_utc
from cryptolab.store import PartitionProgress, Store, dialects, export, to_ms

T0 = 1_700_000_040_000


def candle(i: int, *, symbol: str = "BTC-USD") -> Candle:
    ws = T0 + i * 60_000
    return Candle(symbol=symbol, interval="1m", window_start=ws, window_end=ws + 60_000,
                  open=1.0 + i, high=2.0 + i, low=0.5, close=1.5, volume=1.0, vwap=None,
                  trades=1, first_ts=ws, last_ts=ws, high_ts=ws, low_ts=ws, final=True)


# --------------------------------------------------------------------------- times


@given(st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS - 1))
def test_to_ms_round_trips_iso_utc(ms: int) -> None:
    assert to_ms(iso_utc(ms)) == ms
    assert to_ms(pd.Timestamp(ms, unit="ms", tz="UTC")) == ms
    assert to_ms(np.datetime64(ms, "ms")) == ms


def test_to_ms_forms() -> None:
    assert to_ms(None) is None
    assert to_ms(T0) == T0 and to_ms(np.int64(T0)) == T0 and to_ms(str(T0)) == T0
    assert to_ms("2023-11-14") == 1_699_920_000_000
    assert to_ms(datetime(2023, 11, 14, 22, 14)) == T0  # naive = UTC
    assert to_ms(datetime(2023, 11, 14, 23, 14, tzinfo=timezone(timedelta(hours=1)))) == T0
    assert to_ms(datetime(2023, 11, 14, 22, 14, tzinfo=UTC)) == T0
    for bad in ("tomorrow", True, 1.5, object()):
        with pytest.raises(ValidationError):
            to_ms(bad, "start")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- URLs and errors


def test_urls_are_normalised_and_redacted() -> None:
    s = Store("postgresql://app:s3cret@db.invalid:5432/x")
    assert s.dialect == "postgresql"
    assert repr(s) == "Store('postgresql+psycopg://app:***@db.invalid:5432/x')"
    assert "s3cret" not in s.url
    assert Store("postgres://u@h/x").url.startswith("postgresql+psycopg://")
    assert Store("sqlite://").dialect == "sqlite"


def test_unsupported_or_invalid_urls() -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'"):
        Store("mysql://root@localhost/db")
    with pytest.raises(StoreError, match="invalid store URL"):
        Store("not a url")


@pytest.mark.timeout(60)
def test_unreachable_postgres_raises_store_error_without_the_password() -> None:
    s = Store("postgresql://app:s3cret@127.0.0.1:1/x?connect_timeout=2")
    with pytest.raises(StoreError) as info:
        s.init()
    assert "s3cret" not in str(info.value)
    assert "app:***@127.0.0.1:1" in str(info.value)
    with pytest.raises(StoreError):
        s.history("BTC-USD", "1m")
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with Store(url) as s:
        s.init()
        with s._engine.begin() as conn:
            conn.execute(sa.insert(store_mod.schema_version_table), {"version": 99, "applied_at": 0})
        with pytest.raises(StoreError, match="schema version 99, newer than"):
            s.init()


def test_schema_version_before_init(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'x.db'}") as s:
        assert s.schema_version() is None
        assert s.info() == {"url": s.url, "dialect": "sqlite", "schema_version": None, "timescale": False}
        s.init()
        assert s.schema_version() == store_mod.SCHEMA_VERSION


def test_init_creates_the_directory_of_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    with Store(f"sqlite:///{path}") as s:
        s.init()
    assert path.is_file()


def test_opening_a_current_file_needs_no_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader (a chart, history()) opening a file whose writer holds the write lock
    longer than the busy timeout still opens it: init takes no write lock on a current schema."""
    monkeypatch.setattr(dialects, "_SQLITE_BUSY_TIMEOUT_MS", 300)
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    with Store(url) as writer:
        writer.init()
        writer.commit_batch(group="g", topic="t", candles=[candle(0)])
        with writer._write() as conn:  # the write lock, held for 3x the busy timeout
            conn.execute(sa.text("UPDATE candles SET volume = 2.0"))
            opened: list[BaseException | int] = []

            def open_reader() -> None:
                try:
                    with Store(url) as reader:
                        reader.init()
                        opened.append(len(reader.history("BTC-USD", "1m")))
                except BaseException as exc:
                    opened.append(exc)

            t = threading.Thread(target=open_reader)
            t.start()
            t.join(0.9)
            assert not t.is_alive() and opened == [1], opened
        t.join()


def test_from_settings_uses_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({"CRYPTOLAB_DATA_DIR": str(tmp_path / "data")})
    with Store.from_settings(settings) as s:
        s.init()
        assert s.url == f"sqlite:///{(tmp_path / 'data' / 'cryptolab.db').as_posix()}"
    assert (tmp_path / "data" / "cryptolab.db").is_file()


# --------------------------------------------------------------------------- SQLite specifics


def test_in_memory_database_is_shared_by_threads() -> None:
    s = Store("sqlite://")
    s.init()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(20):
                s.commit_batch(group="g", topic="t", candles=[candle(k * 100 + i)])
                s.history("BTC-USD", "1m")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(s.history("BTC-USD", "1m")) == 80
    s.close()


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'x.db'}") as s:
        s.init()
        with s._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_progress_partition_mismatch_is_refused() -> None:
    with Store("sqlite://") as s:
        s.init()
        with pytest.raises(ValueError, match="progress\\[1\\] is for partition 2"):
            s.commit_batch(group="g", topic="t",
                           progress={1: PartitionProgress(partition=2, offset=0, watermark_ms=None)},
                           expected_offsets={1: None})


def test_history_argument_errors() -> None:
    with Store("sqlite://") as s:
        s.init()
        with pytest.raises(ValidationError, match="limit"):
            s.history("BTC-USD", "1m", limit=-1)
        with pytest.raises(ValidationError, match="interval"):
            s.history("BTC-USD", "7m")
        with pytest.raises(ValidationError, match="start"):
            s.history("BTC-USD", "1m", start="the dawn of time")


# --------------------------------------------------------------------------- exports


def test_export_to_a_text_stream() -> None:
    with Store("sqlite://") as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=[candle(0), candle(1)])
        buf = io.StringIO()
        assert s.export_candles(buf, start=T0 + 60_000) == 1
        lines = buf.getvalue().splitlines()
        assert lines[0].split(",")[:3] == ["symbol", "interval", "window_start"]
        assert lines[1].startswith("BTC-USD,1m,2023-11-14T22:15:00Z,2023-11-14T22:16:00Z,2.0,3.0,")


def test_failed_export_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "candles.csv"
    out.write_text("previous\n")
    with Store("sqlite://") as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=[candle(0)])

        def boom(*args: object, **kwargs: object) -> int:
            raise OSError("disk full")

        monkeypatch.setattr(export, "_write_csv", boom)
        with pytest.raises(OSError, match="disk full"):
            s.export_candles(out)
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["candles.csv"]


# --------------------------------------------------------------------------- cryptolab.history


def test_module_history_uses_the_settings_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with Store(url) as s:
        s.init()
        s.commit_batch(group="g", topic="t", candles=[candle(0), candle(1)])
    df = cryptolab.history("BTC-USD", "1m", start=T0 + 60_000, store_url=url)
    assert df.open.tolist() == [2.0]
    monkeypatch.setenv("CRYPTOLAB_STORE_URL", url)
    assert len(cryptolab.history("BTC-USD", "1m")) == 2
    assert store_mod._STORES[url] is store_mod._shared_store(url)  # one Store per URL
    settings = Settings.from_env({"CRYPTOLAB_DATA_DIR": str(tmp_path / "empty")})
    assert cryptolab.history("BTC-USD", "1m", settings=settings).empty


# --------------------------------------------------------------------------- packed rows (PostgreSQL fast path)


def test_packed_rows_decode_in_window_order() -> None:
    n = 50
    rng = np.random.default_rng(3)
    rec = np.zeros(n, dtype=store_mod._PACKED_DTYPE)
    rec["window_start"] = T0 + np.arange(n) * 60_000
    rec["window_end"] = rec["window_start"] + 60_000
    rec["open"] = np.arange(n) + 0.5
    rec["vwap"] = np.where(np.arange(n) % 2 == 0, np.nan, 1.25)
    rec["trades"] = 2**40 + np.arange(n)
    rec["final"] = np.arange(n) < 40
    shuffled = rec[rng.permutation(n)]
    df = store_mod._frame_from_packed("BTC-USD", "1m", n, shuffled.tobytes())
    assert df is not None
    assert df.window_start.is_monotonic_increasing
    assert df.open.tolist() == [i + 0.5 for i in range(n)]
    assert df.trades.tolist() == [2**40 + i for i in range(n)]
    assert df.vwap.isna().tolist() == [i % 2 == 0 for i in range(n)]
    assert df.final.tolist() == [i < 40 for i in range(n)]
    assert df.symbol.unique().tolist() == ["BTC-USD"] and df.interval.unique().tolist() == ["1m"]
    assert store_mod._frame_from_packed("BTC-USD", "1m", n, shuffled.tobytes()[:-1]) is None
    empty = store_mod._frame_from_packed("BTC-USD", "1m", 0, None)
    assert empty is not None and empty.empty and list(empty.columns) == list(store_mod.HISTORY_COLUMNS)
