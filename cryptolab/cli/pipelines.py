"""``cryptolab pipelines``: list, run and schedule the notebook pipelines of ``pipelines/``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add the ``pipelines`` subcommand and its ``list``, ``run`` and ``schedule`` actions."""
    p: argparse.ArgumentParser = sub.add_parser(
        "pipelines",
        help="list, run or schedule the notebook pipelines (pipelines/*.toml)",
        description=(
            "Scheduled notebook pipelines: each pipelines/<name>.toml names a cron schedule, a "
            "notebook, its parameters and an output folder. Every run writes the executed "
            ".ipynb, an .html rendering and a line in <output_dir>/runs.jsonl."
        ),
    )
    p.add_argument("--dir", type=Path, default=None,
                   help="pipelines folder (default: ./pipelines, else $CRYPTOLAB_PIPELINES_DIR, "
                        "else the pipelines shipped with cryptolab)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = actions.add_parser("list", help="show every pipeline, its next run and last status")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)

    one = actions.add_parser("run", help="run one pipeline now")
    one.add_argument("name", help="pipeline name (the TOML file's stem)")
    one.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter for this run (VALUE is JSON when it parses, "
                          "else a string); repeatable")
    one.add_argument("--at", default=None, metavar="ISO",
                     help="scheduled time the run stands for (fills {scheduled}; default now)")
    one.set_defaults(func=run_one)

    sch = actions.add_parser(
        "schedule", help="run pipelines on their cron schedules until stopped (SIGINT/SIGTERM)",
        description=(
            "Long-running scheduler. The first SIGINT/SIGTERM lets the running notebook finish "
            "and exits 0; a second one aborts at once. Missed firings are skipped, as cron does."
        ),
    )
    sch.add_argument("--only", action="append", default=[], metavar="NAME",
                     help="schedule only these pipelines (repeatable)")
    sch.add_argument("--once", action="store_true", help="exit after the first firing")
    sch.add_argument("--max-runs", type=int, default=None, metavar="N", help="exit after N runs")
    sch.set_defaults(func=run_schedule)


def run(args: argparse.Namespace) -> int:  # pragma: no cover - dispatch is via set_defaults
    """Dispatch to the chosen action."""
    return int(args.func(args))


def _load_all(directory: Path | None) -> tuple[list[Any], list[tuple[Path, str]]]:
    from cryptolab.errors import ConfigError
    from cryptolab.reports.schedules import load_pipeline
    from cryptolab.resources import pipelines_dir

    d = directory or pipelines_dir()
    if not d.is_dir():
        raise ConfigError(f"no pipelines folder at {d}")
    good, bad = [], []
    for f in sorted(d.glob("*.toml")):
        try:
            good.append(load_pipeline(f))
        except ConfigError as exc:
            bad.append((f, str(exc)))
    return good, bad


def run_list(args: argparse.Namespace) -> int:
    """Print the pipelines; exit 1 when a file is invalid."""
    from cryptolab.models import iso_utc
    from cryptolab.reports.runs import last_runs

    good, bad = _load_all(args.dir)
    now = int(time.time() * 1000)
    rows = []
    for p in good:
        last = last_runs(p)
        rows.append({
            "name": p.name, "cron": p.cron, "timezone": p.timezone, "enabled": p.enabled,
            "next_run": iso_utc(p.next_fire_ms(now)) if p.enabled else None,
            "last_status": last.get("status") if last else None,
            "last_run": last.get("start") if last else None,
            "notebook": str(p.notebook), "output_dir": str(p.output_dir),
            "description": p.description,
        })
    if args.json:
        print(json.dumps({"pipelines": rows,
                          "invalid": [{"file": str(f), "error": e} for f, e in bad]}, indent=2))
    else:
        if not rows and not bad:
            print("no pipelines")
        if rows:
            head = f"{'NAME':<24} {'CRON':<16} {'NEXT RUN':<21} {'LAST':<8} {'LAST RUN':<21} OUTPUT"
            print(head)
            for r in rows:
                nxt = r["next_run"] or "(disabled)"
                print(f"{r['name']:<24} {r['cron'] + ('' if r['timezone'] == 'UTC' else ' ' + r['timezone']):<16} "
                      f"{nxt:<21} {r['last_status'] or '-':<8} {r['last_run'] or '-':<21} {r['output_dir']}")
        for f, err in bad:
            print(f"INVALID {f}: {err}", file=sys.stderr)
    return 1 if bad else 0


def _parse_param(text: str) -> tuple[str, Any]:
    from cryptolab.errors import ValidationError

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValidationError("param", f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def run_one(args: argparse.Namespace) -> int:
    """Run one pipeline now; exit 0 when the notebook ran to the end, 1 when it failed."""
    from cryptolab.errors import ConfigError
    from cryptolab.reports.runs import run_pipeline
    from cryptolab.store import to_ms

    good, bad = _load_all(args.dir)
    match = [p for p in good if p.name == args.name]
    if not match:
        broken = [e for f, e in bad if f.stem == args.name]
        if broken:
            raise ConfigError(broken[0])
        names = ", ".join(p.name for p in good) or "none"
        raise ConfigError(f"no pipeline named {args.name!r} (known: {names})")
    overrides = dict(_parse_param(t) for t in args.param)
    at = to_ms(args.at, "at") if args.at else None
    print(f"cryptolab pipelines: running {args.name} ...", file=sys.stderr, flush=True)
    record = run_pipeline(match[0], scheduled_ms=at, overrides=overrides)
    _print_record(record)
    return 0 if record.ok else 1


def _print_record(record: Any) -> None:
    if record.ok:
        print(f"{record.pipeline}: ok in {record.duration_s:.1f}s -> {record.html or record.output}",
              flush=True)
    else:
        err = record.error or {}
        where = f" in cell {err['cell']}" if err.get("cell") is not None else ""
        print(f"{record.pipeline}: FAILED{where} after {record.duration_s:.1f}s: {err.get('message')}",
              flush=True)
        if err.get("source"):
            lines = str(err["source"]).splitlines()
            shown = lines[:12] + ([f"... ({len(lines) - 12} more lines)"] if len(lines) > 12 else [])
            print("  failing cell:\n    " + "\n    ".join(shown), flush=True)
        if record.html or record.output:
            print(f"  see {record.html or record.output}", flush=True)


def run_schedule(args: argparse.Namespace) -> int:
    """Run the scheduler; exit 0 on a clean stop, 1 when a run failed (with --once/--max-runs)."""
    from cryptolab.errors import ConfigError
    from cryptolab.models import iso_utc
    from cryptolab.reports.scheduler import Scheduler

    good, bad = _load_all(args.dir)
    for f, err in bad:
        print(f"cryptolab pipelines: skipping invalid {f}: {err}", file=sys.stderr)
    if args.only:
        unknown = sorted(set(args.only) - {p.name for p in good})
        if unknown:
            raise ConfigError(f"no pipeline named {unknown[0]!r}")
        good = [p for p in good if p.name in args.only]
    scheduler = Scheduler(good, once=args.once, max_runs=args.max_runs, on_run=_print_record)
    if not scheduler.pipelines:
        raise ConfigError("no enabled pipeline to schedule")
    signals = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] == 1:
            print(f"cryptolab pipelines: {signal.Signals(signum).name}: stopping after the "
                  "current run (again to abort)", file=sys.stderr, flush=True)
            scheduler.stop()
        else:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, at in sorted(scheduler.next_fires().items(), key=lambda kv: kv[1]):
            print(f"cryptolab pipelines: {name} next at {iso_utc(at)}", file=sys.stderr, flush=True)
        records = scheduler.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    failed = [r for r in records if not r.ok]
    print(f"cryptolab pipelines: scheduler stopped after {len(records)} run(s), "
          f"{len(failed)} failed", file=sys.stderr, flush=True)
    return 1 if failed and (args.once or args.max_runs) else 0
