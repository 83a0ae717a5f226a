"""One store's connections: its engines, read and write transactions, and error translation.

A :class:`Database` is what the store's parts (schema, commit, queries, export) share:
the backend's :class:`~cryptolab.store.dialects.Dialect`, chosen once from the URL, and
the engines it built. Database errors leave it as :class:`~cryptolab.errors.StoreError`.

Examples
--------
>>> db = Database("sqlite://", pool_size=5)
>>> db.dialect.name, db
('sqlite', Store('sqlite://'))
>>> with db.read() as conn:
...     conn.exec_driver_sql("SELECT 1").scalar()
1
>>> db.close()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from cryptolab.config import redact_url
from cryptolab.errors import FencedError, StoreError, ValidationError
from cryptolab.store.dialects import dialect_for, normalise_url

__all__ = ["Database"]


class Database:
    """The engines of one store and the transactions taken on them.

    Parameters
    ----------
    url
        SQLAlchemy URL of a PostgreSQL or SQLite database.
    pool_size
        Connections kept per pool (PostgreSQL).
    """

    def __init__(self, url: str | URL, *, pool_size: int) -> None:
        self.url = normalise_url(url)
        self.url_text = self.url.render_as_string(hide_password=False)
        self.dialect = dialect_for(self.url)
        self.engine, self.read_engine, self._lock = self.dialect.engines(pool_size)

    @property
    def redacted_url(self) -> str:
        """The URL with the password hidden."""
        return redact_url(self.url_text) or ""

    def __repr__(self) -> str:
        # named as the Store it serves: error and log messages name the store
        return f"Store({self.redacted_url!r})"

    def close(self) -> None:
        """Close every pooled connection (an in-memory SQLite database is gone afterwards)."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    @contextlib.contextmanager
    def serial(self) -> Iterator[None]:
        """Hold the lock of a connection shared by every thread, if there is one."""
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE)."""
        with self.serial(), self.engine.connect() as conn:
            self.dialect.begin_write(conn)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection of the read engine (autocommit on PostgreSQL)."""
        with self.serial(), self.read_engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Raise database errors inside as :class:`StoreError` naming ``what`` failed."""
        try:
            yield
        except (FencedError, ValidationError):
            raise
        except StoreError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
            raise StoreError(f"{what} failed on {self!r}: {detail}") from exc

    def run_raw(self, sql: str, params: Mapping[str, Any], *, binary: bool = False) -> list[Any]:
        """Run a compiled SELECT on a raw DBAPI cursor (binary results on PostgreSQL); all rows."""
        dbapi_error = self.read_engine.dialect.loaded_dbapi.Error
        with self.errors("history"), self.serial():
            try:
                raw = self.read_engine.raw_connection()
            except dbapi_error as exc:
                raise self._as_sqlalchemy_error(exc, sql) from exc
            try:
                cur = raw.cursor(binary=True) if binary else raw.cursor()
                try:
                    cur.execute(sql, params)
                    rows: list[Any] = list(cur.fetchall())
                finally:
                    cur.close()
            except dbapi_error as exc:
                if self.dialect.is_disconnect(exc):
                    raw.invalidate()
                raise self._as_sqlalchemy_error(exc, sql) from exc
            finally:
                raw.close()
        return rows

    def _as_sqlalchemy_error(self, exc: Exception, sql: str) -> sa.exc.SQLAlchemyError:
        if isinstance(exc, sa.exc.SQLAlchemyError):
            return exc
        return sa.exc.DBAPIError(sql, None, exc, connection_invalidated=self.dialect.is_disconnect(exc))
