"""Run the suite (or some of its sections) and build the result document.

The result is one JSON document with the fixed keys of :data:`~benchmarks.spec.KEYS`
(``null`` when a section was skipped, with the reason under ``"skipped"``), ``targets``
(each key's target and whether it holds), ``checks`` (correctness checks that must hold),
``details`` (every figure of every section), ``machine``, ``versions`` and ``config``.

Examples
--------
The pure sections need no services::

    >>> result = run_suite(only=["batch"], config=BenchConfig.quick_config())  # doctest: +SKIP
    >>> result["batch_vs_polars"] > 0                                          # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from benchmarks.machine import machine_info, settle, versions
from benchmarks.peers.venv import PeerUnavailable
from benchmarks.results import check_targets, rnd, write_json
from benchmarks.sections import (
    api,
    batch,
    consumer,
    flink,
    latency,
    memory,
    nautilus,
    producer,
    scoring,
    sparse,
    store,
)
from benchmarks.services import Services
from benchmarks.spec import KEYS, SECTIONS, TARGETS, BenchConfig, Progress
from cryptolab.config import Settings, redact_url

__all__ = [
    "KEYS",
    "SECTIONS",
    "TARGETS",
    "BenchConfig",
    "check_targets",
    "resolve_sections",
    "run_suite",
    "write_json",
]

log = logging.getLogger(__name__)

Section = Callable[[Services, BenchConfig, Progress], dict[str, Any]]

#: Each section: the function that measures it, and the services it needs.
SECTION_FUNCS: Final[dict[str, tuple[Section, tuple[str, ...]]]] = {
    "producer": (producer.run, ("kafka",)),
    "consumer": (consumer.run, ("kafka", "pg", "redis")),
    "latency": (latency.run, ("kafka", "pg", "redis")),
    "history": (store.run_history, ()),
    "latest": (store.run_latest, ("redis",)),
    "scoring": (scoring.run, ()),
    "batch": (batch.run, ()),
    "memory": (memory.run, ("kafka", "pg", "redis")),
    "sparse": (sparse.run, ()),
    "nautilus": (nautilus.run, ()),
    "flink": (flink.run, ("kafka", "pg", "redis")),
    "api": (api.run, ()),
}


def resolve_sections(only: Sequence[str] | str | None) -> list[str]:
    """Sections to run for ``--only`` (section names or result keys, comma-separated).

    Examples
    --------
    >>> resolve_sections("batch,consumer_vs_quix")
    ['consumer', 'batch']
    >>> resolve_sections(None) == list(SECTIONS)
    True
    """
    if only is None:
        return list(SECTIONS)
    names = [x.strip() for x in (only.split(",") if isinstance(only, str) else only) if x.strip()]
    wanted: set[str] = set()
    for name in names:
        if name in SECTIONS:
            wanted.add(name)
        elif name in KEYS:
            wanted.add(KEYS[name][0])
        else:
            known = ", ".join(SECTIONS)
            raise ValueError(f"unknown benchmark {name!r}: give sections ({known}) or result keys")
    return [s for s in SECTIONS if s in wanted]


def _run_sections(svc: Services, cfg: BenchConfig, sections: list[str], say: Progress,
                  result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Run ``sections`` in order, each after the machine settled, into ``result``; return
    their details, checks and the sections skipped (why)."""
    details: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in sections:
        fn, needs = SECTION_FUNCS[name]
        why = svc.why_not(*needs)
        if why is not None:
            skipped[name] = why
            say(f"{name}: skipped ({why})")
            continue
        waited = settle(cfg.settle_max_s)
        say(f"{name}: running" + (f" (after {waited} s for the machine to settle)" if waited >= 1 else ""))
        started = time.perf_counter()
        try:
            out = fn(svc, cfg, say)
        except PeerUnavailable as exc:  # a peer that cannot be installed here: skipped, with why
            skipped[name] = str(exc)
            say(f"{name}: skipped ({exc})")
            continue
        except Exception as exc:  # a failed section is reported, the others still run
            log.exception("benchmark section %s failed", name)
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"
            continue
        details[name] = {**out.pop("details", {}), "section_seconds": rnd(time.perf_counter() - started, 1),
                         "settle_seconds": waited}
        checks.update(out.pop("checks", {}))
        result.update(out)
    return details, checks, skipped


def run_suite(
    settings: Settings | None = None,
    *,
    config: BenchConfig | None = None,
    only: Sequence[str] | str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the suite (or the sections in ``only``) and return the result document.

    Parameters
    ----------
    settings
        Where the services are (default: ``Settings.from_env()``). Sections whose
        services are not configured are skipped, with the reason under ``"skipped"``.
    config
        Sizes (default: the issue's, :class:`~benchmarks.spec.BenchConfig`).
    only
        Section names or result keys (see :data:`~benchmarks.spec.SECTIONS`,
        :data:`~benchmarks.spec.KEYS`).
    progress
        Called with a line of text as figures come in (the command line prints them).

    Returns
    -------
    dict
        Every key of :data:`~benchmarks.spec.KEYS` (``None`` when not measured), and
        ``targets``, ``checks``, ``skipped``, ``details``, ``machine``, ``versions``, ``config``.
    """
    settings = settings if settings is not None else Settings.from_env()
    cfg = config or BenchConfig()
    say: Progress = progress or (lambda line: log.info("%s", line))
    sections = resolve_sections(only)
    t0 = time.perf_counter()
    result: dict[str, Any] = dict.fromkeys(KEYS)
    result["machine"] = machine_info()
    svc = Services(settings)
    try:
        details, checks, skipped = _run_sections(svc, cfg, sections, say, result)
    finally:
        svc.close()
    result["targets"] = check_targets(result)
    result["checks"] = checks
    result["skipped"] = skipped
    result["details"] = details
    result["versions"] = versions(settings)
    result["config"] = {**dataclasses.asdict(cfg), "sections": sections,
                        "kafka": settings.kafka_bootstrap, "store": redact_url(settings.store_url),
                        "redis": redact_url(svc.redis)}
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result
