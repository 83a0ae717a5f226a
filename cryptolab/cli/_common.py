"""Flags shared by several subcommands, and turning them into :class:`Settings`."""

from __future__ import annotations

import argparse
from typing import Any

from cryptolab.config import Settings

__all__ = ["add_service_flags", "settings_from_args"]


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
