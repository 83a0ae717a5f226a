"""The consumer's user alert rules: read from the store now and then, evaluated on closed candles.

:class:`RuleEngine` keeps the enabled rules of the store's ``rules`` table, read again every
``CRYPTOLAB_RULES_RELOAD`` (5 s; a clock comparison per commit, one small SELECT when due, on
the consumer's thread, never per tick), evaluates them with
:class:`~cryptolab.anomaly.rules.RuleEvaluator` on the candles that just became final, and
renders the webhook deliveries of the alerts they raise. Those alerts and deliveries go into
the batch's fenced commit like the detectors' alerts (:mod:`~cryptolab.pipeline.committer`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from cryptolab.anomaly.rules import HistoryFn, RuleEvaluator
from cryptolab.config import Settings
from cryptolab.errors import StoreError
from cryptolab.models import Alert, Candle
from cryptolab.models.rules import Rule
from cryptolab.store.records import WebhookDelivery
from cryptolab.webhooks import alert_id, render

__all__ = ["RuleEngine"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")


class RuleEngine:
    """The rules a consumer evaluates, kept in step with the store's ``rules`` table.

    Parameters
    ----------
    table
        Where the rules are (``store.rules``: anything with ``list(enabled=True)``).
    settings
        ``rules_reload_ms`` (how often the table is read again; 0: at start only),
        ``webhook_urls`` and ``webhook_format`` (where every rule alert is POSTed).
    history
        The stream's last final candles before a window (see
        :class:`~cryptolab.anomaly.rules.RuleEvaluator`).

    Examples
    --------
    >>> from cryptolab.store import Store
    >>> store = Store("sqlite://"); store.init()
    >>> _ = store.rules.add(Rule(id="big", kind="move", params={"pct": 5}, symbol="BTC-USD"))
    >>> engine = RuleEngine(store.rules, Settings.from_env({}, webhook_urls="http://127.0.0.1:9/h"))
    >>> engine.rules
    [Rule(kind='move', params={'pct': 5.0, 'candles': 1, 'direction': 'any'}, symbol='BTC-USD', ...)]
    >>> c = Candle(symbol="BTC-USD", interval="1m", window_start=0, window_end=60_000, open=100.0,
    ...            high=107.0, low=100.0, close=106.0, volume=1.0, vwap=None, trades=3, first_ts=0,
    ...            last_ts=0, high_ts=0, low_ts=0, final=True)
    >>> alerts = engine.score([c]); [(a.detector, round(a.score, 2)) for a in alerts]
    [('rule:big', 6.0)]
    >>> [(d.url, d.format) for d in engine.deliveries(alerts)]
    [('http://127.0.0.1:9/h', 'json')]
    """

    def __init__(self, table: Any, settings: Settings, *, history: HistoryFn | None = None) -> None:
        self.table = table
        self.reload_s = settings.rules_reload_ms / 1000
        self.urls = settings.webhook_urls
        self.format = settings.webhook_format
        self.evaluator = RuleEvaluator(history=history)
        self._by_detector: dict[str, Rule] = {}
        self._loaded_at = -math.inf
        self.reload(force=True)

    @property
    def rules(self) -> list[Rule]:
        """The enabled rules being evaluated."""
        return self.evaluator.rules

    def reload(self, *, force: bool = False) -> bool:
        """Read the rules again when due (or ``force``); return whether they were read.

        A store that does not answer keeps the rules as they were (logged).
        """
        now = time.monotonic()
        if not force and (self.reload_s <= 0 or now - self._loaded_at < self.reload_s):
            return False
        self._loaded_at = now
        try:
            rules = list(self.table.list(enabled=True))
        except StoreError as exc:
            log.warning("rules: could not read the rules table, keeping %d rules (%s)", len(self.rules), exc)
            return False
        if rules != self.evaluator.rules:
            self.evaluator.set_rules(rules)
            self._by_detector = {r.detector: r for r in rules}
            log.info("rules: evaluating %d rules", len(rules))
        return True

    def score(self, candles: Sequence[Candle]) -> list[Alert]:
        """The alerts the rules raise on the candles that just became final."""
        self.reload()
        return self.evaluator.score(candles)

    def deliveries(self, alerts: Iterable[Alert]) -> list[WebhookDelivery]:
        """The webhook deliveries of rule alerts: one per configured URL and one to the rule's own."""
        out: list[WebhookDelivery] = []
        for a in alerts:
            rule = self._by_detector.get(a.detector)
            if rule is None:
                continue
            targets = dict.fromkeys(self.urls, self.format)
            if rule.webhook:
                targets[rule.webhook] = rule.webhook_format
            key = alert_id(a)
            for url, fmt in targets.items():
                out.append(WebhookDelivery(
                    alert_id=key, symbol=a.symbol, interval=a.interval, window_start=a.window_start,
                    detector=a.detector, url=url, format=fmt, body=render(a, fmt, description=rule.describe()),
                ))
        return out

    def forget(self) -> None:
        """Drop the per-stream state (partitions revoked, or a scored batch not committed)."""
        self.evaluator.forget()
