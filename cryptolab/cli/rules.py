"""``cryptolab rules add|list|rm|enable|disable|deliveries|deliver``: user alert rules and their webhooks."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cryptolab.cli._common import settings_from_args
from cryptolab.config import redact_webhook as _host
from cryptolab.errors import ValidationError

__all__ = ["register", "run"]

_KIND_HELP = (
    "cross_above|cross_below (--level), move (--pct [--candles N] [--direction up|down|any]), "
    "volume_spike (--factor K [--lookback M])"
)


def _store_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", dest="store_url", metavar="URL",
                   help="SQLAlchemy URL (env CRYPTOLAB_STORE_URL; default: embedded SQLite in the data dir)")


def register(sub: Any) -> None:
    """Add the ``rules`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "rules",
        help="user alert rules (price crosses, moves, volume spikes) and their webhooks",
        description=(
            "Rules are kept in the store; running consumers pick changes up within "
            "CRYPTOLAB_RULES_RELOAD (5s). Each rule raises at most one alert per symbol, interval and "
            "window, detector 'rule:<id>', delivered like the detectors' alerts and POSTed to "
            "CRYPTOLAB_WEBHOOK_URLS and the rule's own --webhook."
        ),
    )
    actions = p.add_subparsers(dest="rules_action", required=True, metavar="ACTION")
    a = actions.add_parser("add", help="add a rule: " + _KIND_HELP)
    a.add_argument("kind", choices=["cross_above", "cross_below", "move", "volume_spike"])
    a.add_argument("--symbol", default="*", help="symbol, e.g. BTC-USD, or * for every symbol (default *)")
    a.add_argument("--interval", default="1m", help="candle interval (default 1m)")
    a.add_argument("--id", dest="rule_id", help="the rule's id (letters, digits, _.-; default: random)")
    a.add_argument("--level", type=float, help="cross_above/cross_below: the price level")
    a.add_argument("--pct", type=float, help="move: more than this many percent")
    a.add_argument("--candles", type=int, help="move: over this many candles (default 1: within one)")
    a.add_argument("--direction", choices=["up", "down", "any"], help="move: which way (default any)")
    a.add_argument("--factor", type=float, help="volume_spike: more than K times the recent mean volume")
    a.add_argument("--lookback", type=int, help="volume_spike: the mean of the previous M candles (default 20)")
    a.add_argument("--severity", choices=["LOW", "MEDIUM", "HIGH"], default="MEDIUM",
                   help="severity of its alerts (default MEDIUM)")
    a.add_argument("--webhook", metavar="URL", help="also POST its alerts to this http(s) URL")
    a.add_argument("--webhook-format", choices=["json", "slack", "discord"], default="json",
                   help="body sent to --webhook (default json)")
    a.add_argument("--disabled", action="store_true", help="store it disabled")
    ls = actions.add_parser("list", help="the rules")
    ls.add_argument("--json", action="store_true", help="print JSON")
    rm = actions.add_parser("rm", help="remove rules (their alerts stay)")
    rm.add_argument("ids", nargs="+", metavar="ID")
    for name in ("enable", "disable"):
        e = actions.add_parser(name, help=f"{name} rules")
        e.add_argument("ids", nargs="+", metavar="ID")
    dl = actions.add_parser("deliveries", help="webhook deliveries and their status")
    dl.add_argument("--status", choices=["pending", "delivered", "failed"])
    dl.add_argument("--limit", type=int, default=50, help="the newest N (default 50)")
    dl.add_argument("--json", action="store_true", help="print JSON")
    dv = actions.add_parser("deliver", help="send the due webhook deliveries now (what a consumer does)")
    dv.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds (default 60)")
    for q in (a, ls, rm, dl, dv, *(actions.choices[n] for n in ("enable", "disable"))):
        _store_flag(q)
    p.set_defaults(func=run)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    names = {"cross_above": ("level",), "cross_below": ("level",),
             "move": ("pct", "candles", "direction"), "volume_spike": ("factor", "lookback")}[args.kind]
    stray = [n for n in ("level", "pct", "candles", "direction", "factor", "lookback")
             if n not in names and getattr(args, n) is not None]
    if stray:
        raise ValidationError("params", f"{args.kind} takes {', '.join('--' + n for n in names)}; "
                              f"not {', '.join('--' + n for n in stray)}")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def run(args: argparse.Namespace) -> int:
    """Run a ``rules`` action; return the exit code."""
    from cryptolab.models.rules import Rule
    from cryptolab.store import Store

    settings = settings_from_args(args)
    action = args.rules_action
    if action == "add":
        rule = Rule(kind=args.kind, params=_params(args), symbol=args.symbol, interval=args.interval,
                    severity=args.severity, webhook=args.webhook, webhook_format=args.webhook_format,
                    enabled=not args.disabled, **({"id": args.rule_id} if args.rule_id else {}))
    with Store.from_settings(settings) as store:
        store.init()
        if action == "add":
            store.rules.add(rule)
            print(f"added rule {rule.id}: {rule.describe()}")
        elif action == "list":
            _print_rules(store.rules.list(), as_json=args.json)
        elif action in ("rm", "enable", "disable"):
            missing = [i for i in args.ids if store.rules.get(i) is None]
            if missing:
                raise ValidationError("id", f"no rule {', '.join(map(repr, missing))} in {store.url}")
            for i in args.ids:
                if action == "rm":
                    store.rules.remove(i)
                else:
                    store.rules.set_enabled(i, action == "enable")
            done = {"rm": "removed", "enable": "enabled", "disable": "disabled"}[action]
            print(f"{done} {len(args.ids)} rule{'s' if len(args.ids) > 1 else ''}")
        elif action == "deliveries":
            _print_deliveries(store, args)
        else:
            return _deliver(store, settings, args.timeout)
    return 0


def _print_rules(rules: list[Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.to_dict() for r in rules], indent=2))
        return
    if not rules:
        print("no rules (`cryptolab rules add KIND ...` adds one)")
        return
    for r in rules:
        hook = f"  webhook {r.webhook_format} {_host(r.webhook)}" if r.webhook else ""
        state = "" if r.enabled else "  (disabled)"
        print(f"{r.id:<14} {r.severity:<6} {r.describe()}{hook}{state}")


def _print_deliveries(store: Any, args: argparse.Namespace) -> None:
    rows = store.webhooks.list(status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([{k: getattr(d, k) for k in ("id", "alert_id", "symbol", "interval", "window_start",
                                                       "detector", "format", "status", "attempts",
                                                       "next_attempt_ms", "last_status", "last_error",
                                                       "created_ms", "delivered_ms")}
                          | {"url": _host(d.url)} for d in rows], indent=2))
        return
    counts = store.webhooks.counts()
    print("deliveries  " + ("  ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"))
    for d in rows:
        why = f"  {d.last_error}" if d.last_error and d.status != "delivered" else ""
        print(f"{d.id:>6} {d.status:<9} {d.attempts:>2} attempts  {d.detector:<20} {d.symbol} {d.interval} "
              f"{d.window_start}  {_host(d.url)}{why}")


def _deliver(store: Any, settings: Any, timeout: float) -> int:
    from cryptolab.pipeline.webhooks import WebhookSender

    sender = WebhookSender(store.webhooks, settings)
    try:
        sender.drain(timeout)
    finally:
        sender.close()
    left = store.webhooks.counts().get("pending", 0)
    print(f"sent {sender.posts} POSTs: {sender.delivered} delivered, {sender.failed} failed for good, "
          f"{left} pending")
    return 0
