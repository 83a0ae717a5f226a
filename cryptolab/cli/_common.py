"""Flags shared by several subcommands, turning them into :class:`Settings`, and opening the store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptolab.config import Settings
from cryptolab.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from cryptolab.store import Store

__all__ = ["GET_DATA", "add_composite_flag", "add_service_flags", "open_existing_store", "settings_from_args",
           "sqlite_file", "with_composites"]

#: How to put data in the default store, for messages about an empty or missing one.
GET_DATA = "`cryptolab demo` or `cryptolab replay FILE` fills it"


def add_service_flags(parser: argparse.ArgumentParser, *, kafka: bool = True) -> None:
    """Add ``--kafka``, ``--store``, ``--redis``, ``--topic``, ``--group``, ``--intervals``."""
    if kafka:
        parser.add_argument("--kafka", dest="kafka_bootstrap", metavar="BOOTSTRAP",
                            help="Kafka bootstrap servers (env CRYPTOLAB_KAFKA_BOOTSTRAP; default: embedded)")
        parser.add_argument("--topic", help="tick topic (env CRYPTOLAB_TOPIC; default: ticks)")
    parser.add_argument("--store", dest="store_url", metavar="URL",
                        help="SQLAlchemy URL (env CRYPTOLAB_STORE_URL; default: embedded SQLite)")
    parser.add_argument("--redis", dest="redis_url", metavar="URL",
                        help="Redis URL (env CRYPTOLAB_REDIS_URL; default: in-process cache)")


def settings_from_args(args: argparse.Namespace, **more: Any) -> Settings:
    """Settings from the environment, overridden by whichever flags were given."""
    keys = ("kafka_bootstrap", "topic", "store_url", "redis_url", "group", "intervals",
            "partitions", "log_level", "coingecko_url")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    overrides.update({k: v for k, v in more.items() if v is not None})
    return Settings.from_env(**overrides)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store URL (``None`` for other stores and in-memory SQLite).

    The URL must be valid (open it with :class:`~cryptolab.store.Store` first).

    Examples
    --------
    >>> str(sqlite_file("sqlite:///.cryptolab/cryptolab.db")), sqlite_file("sqlite://")
    ('.cryptolab/cryptolab.db', None)
    >>> sqlite_file("postgresql+psycopg://app@db/cryptolab") is None
    True
    """
    import sqlalchemy as sa

    u = sa.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def open_existing_store(settings: Settings) -> Store:
    """Open the store of ``settings`` to read it, creating nothing.

    Raises
    ------
    StoreError
        The URL is not a store URL, or the store does not answer.
    ConfigError
        The SQLite file does not exist, or the store has no cryptolab tables; the
        message names it and says how to fill it.
    """
    from cryptolab.store import Store

    url = settings.resolved_store_url()
    store = Store(url)  # a malformed URL is a StoreError here, before anything is touched
    path = sqlite_file(url)
    if path is not None and not path.exists():
        store.close()
        raise ConfigError(f"no data: no database at {path} (`cryptolab demo` or "
                          "`cryptolab replay FILE` writes one there; or pass --store URL)")
    if store.schema_version() is None:
        store.close()
        raise ConfigError(f"no data: {store.url} has no cryptolab tables ({GET_DATA})")
    return store


def add_composite_flag(parser: argparse.ArgumentParser) -> None:
    """``--composite NAME[=SYMBOL,...]`` (repeatable): a cross-venue series beside the venue series."""
    parser.add_argument(
        "--composite", action="append", metavar="NAME[=SYM,...]",
        help="also build the venue-less series NAME from every venue's trades of the pair NAME "
             "(e.g. BTC-USD: BINANCE:BTC-USD, COINBASE:BTC-USD...), or from the symbols given "
             "after '=' (e.g. BTC-USD=BINANCE:BTC-USDT,COINBASE:BTC-USD); repeatable")


def with_composites(source: Any, args: argparse.Namespace) -> Any:
    """``source`` wrapped for the ``--composite`` flags given (unchanged without any)."""
    specs = getattr(args, "composite", None)
    if not specs:
        return source
    from cryptolab.sources.composite import with_composite

    return with_composite(source, specs)
