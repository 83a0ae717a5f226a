"""The main job on embedded defaults, and a live demo market for notebooks.

:func:`run_demo` plays a seeded synthetic market (with a spike injected on
purpose, and a few malformed records) at full speed through the production
path: :class:`~cryptolab.producer.TickProducer` -> Kafka (the in-process mock
cluster unless ``CRYPTOLAB_KAFKA_BOOTSTRAP`` is set) ->
:class:`~cryptolab.pipeline.CandlePipeline` -> the store every command and
:func:`cryptolab.history` read (the embedded SQLite file
``<data_dir>/cryptolab.db`` unless ``CRYPTOLAB_STORE_URL`` is set) and cache,
then summarises what it wrote. Each run first forgets what the demo wrote last
time (its symbols over its span, recorded in ``<data_dir>/demo-runs.json``) and
what it is about to write, so the same arguments give the same store contents.

:class:`LiveDemo` runs the same path in background threads, paced in real
time (times ``speed``), so live charts have something to show.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from confluent_kafka import Producer

from cryptolab.config import Settings, redact_url
from cryptolab.errors import ConfigError
from cryptolab.kafka import producer_config
from cryptolab.market.feeds import live_injections
from cryptolab.models import Alert, iso_utc, parse_interval

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from cryptolab.store import Store

__all__ = ["DemoResult", "LiveDemo", "live_injections", "most_severe_first", "run_demo"]

#: The simulated history a :class:`LiveDemo` starts with (sent at full speed).
LIVE_DEMO_HISTORY_MS: Final = 3 * 3_600_000

log = logging.getLogger(__name__)

_MINUTE = 60_000
#: Where the demo's first tick is: a whole minute, 2023-11-14 22:14 UTC.
DEMO_START_MS: Final = 1_700_000_040_000
#: Alerts the summary lists (the most severe first); it counts the others.
SHOWN_ALERTS: Final = 5
_SEVERITY_RANK: Final = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}
_DETECTOR_RANK: Final = {"rule": 0, "zscore": 1, "hst": 2, "ensemble": 3}


def most_severe_first(alerts: Sequence[Alert]) -> list[Alert]:
    """``alerts`` by severity (HIGH first), then window start, interval, detector and symbol.

    Examples
    --------
    >>> def alert(severity, detector, ws=0, interval="1m"):
    ...     return Alert(symbol="X", interval=interval, window_start=ws, detector=detector,
    ...                  severity=severity, score=1.0, ts_ms=ws + 60_000)
    >>> [(a.severity, a.detector) for a in most_severe_first(
    ...     [alert("MEDIUM", "hst"), alert("HIGH", "zscore", 60_000), alert("HIGH", "rule", 60_000)])]
    [('HIGH', 'rule'), ('HIGH', 'zscore'), ('MEDIUM', 'hst')]
    """
    return sorted(alerts, key=lambda a: (
        _SEVERITY_RANK.get(a.severity, len(_SEVERITY_RANK)), a.window_start, parse_interval(a.interval),
        _DETECTOR_RANK.get(a.detector, len(_DETECTOR_RANK)), a.detector, a.symbol))


def _counted(severities: dict[str, int]) -> str:
    """``{"HIGH": 5, "MEDIUM": 4}`` -> ``"5 HIGH, 4 MEDIUM"`` (HIGH first, zeros left out)."""
    order = sorted(severities, key=lambda s: _SEVERITY_RANK.get(s, len(_SEVERITY_RANK)))
    return ", ".join(f"{severities[s]} {s}" for s in order if severities[s])


@dataclass
class DemoResult:
    """Summary of a :func:`run_demo` run."""

    ticks: int
    dead_letters: int
    candles: dict[str, int]
    #: Alerts raised by the run.
    alerts: int
    #: The most severe of them (:func:`most_severe_first`), at most :data:`SHOWN_ALERTS`.
    alert_examples: list[Alert]
    produce_s: float
    consume_s: float
    elapsed_s: float
    ticks_per_s: float
    store_url: str
    outputs: dict[str, Path] = field(default_factory=dict)
    injected: list[dict[str, Any]] = field(default_factory=list)
    #: Alerts per severity (every alert, not only the examples).
    alert_severities: dict[str, int] = field(default_factory=dict)

    def _alert_lines(self) -> list[str]:
        """The alerts line, the most severe alerts with what their scores mean, and how many more."""
        from cryptolab.anomaly.scores import describe_score
        from cryptolab.models import iso_utc

        shown = self.alert_examples[:SHOWN_ALERTS]
        counts = _counted(self.alert_severities)
        head = f"alerts           {self.alerts}" + (f": {counts}" if counts else "")
        lines = [head + ("; the most severe first:" if shown else "")]
        width = max((len(a.symbol) + len(a.interval) for a in shown), default=0) + 1
        for a in shown:
            where = f"{a.symbol} {a.interval}".ljust(width)
            lines.append(f"                 {a.severity:<6} {a.detector:<9} {where} {iso_utc(a.window_start)}  "
                         f"{describe_score(a.detector, a.score)}")
        more = self.alerts - len(shown)
        if more > 0:
            rest = dict(self.alert_severities)
            for a in shown:
                rest[a.severity] = rest.get(a.severity, 0) - 1
            csv = self.outputs.get("alerts csv")
            lines.append(f"                 and {more} more ({_counted(rest)}): see "
                         + (f"{csv} or " if csv is not None else "")
                         + "`cryptolab export alerts --out -`")
        return lines

    def summary(self) -> str:
        """A short human-readable summary."""
        lines = [
            f"ticks            {self.ticks:,} produced, {self.dead_letters} malformed records sent to the dead-letter topic",
            "candles          " + ", ".join(f"{k}: {v:,}" for k, v in self.candles.items()),
            *self._alert_lines(),
        ]
        for inj in self.injected:
            from cryptolab.models import iso_utc

            lines.append(
                f"injected         {inj['kind']} {inj['magnitude']:+.0%} on {inj['symbol']} at {iso_utc(inj['start_ms'])}"
                if inj["kind"] == "spike"
                else f"injected         {inj['kind']} -{inj['magnitude']:.0%} on {inj['symbol']} at {iso_utc(inj['start_ms'])}"
            )
        lines += [
            f"throughput       produce {self.ticks / self.produce_s:,.0f} ticks/s, consume {self.ticks_per_s:,.0f} ticks/s (total {self.elapsed_s:.1f}s)",
            f"store            {redact_url(self.store_url)}",
        ]
        for name, path in self.outputs.items():
            lines.append(f"{name:<16} {path}")
        return "\n".join(lines)


def _own_topic(s: Settings) -> Settings:
    # a broker (even the embedded one, which lives as long as this process) may hold
    # older runs: use a topic and group of our own
    run = uuid.uuid4().hex[:8]
    return replace(s, topic=f"{s.topic}.demo.{run}", group=f"{s.group}.demo.{run}")


def _forget_last_run(store: Store, base: Settings, symbols: list[str], span: tuple[int, int]) -> None:
    """Forget what the last demo wrote to this store and what this one is about to write.

    The last run's symbols and span are kept in ``<data_dir>/demo-runs.json``, by store
    URL (passwords hidden); its consumer progress goes too (groups ``<group>.demo.*``).
    """
    record = base.data_dir / "demo-runs.json"
    key = store.url
    try:
        runs: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        runs = {}
    last = runs.get(key) if isinstance(runs, dict) else None
    if not isinstance(runs, dict):
        runs = {}
    if isinstance(last, dict):
        store.forget([str(x) for x in last.get("symbols", [])], int(last.get("start_ms", 0)),
                     int(last.get("end_ms", 0)))
    _refuse_foreign_candles(store, base, symbols, span)
    store.forget(symbols, *span, group_prefix=f"{base.group}.demo.")
    runs[key] = {"symbols": symbols, "start_ms": span[0], "end_ms": span[1]}
    base.data_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")


def _refuse_foreign_candles(store: Store, base: Settings, symbols: list[str], span: tuple[int, int]) -> None:
    """Refuse to run where the store holds candles of the demo's symbols and span that no demo
    run wrote (its last run's were just forgotten): the demo would replace them with synthetic ones."""
    for symbol in symbols:
        for interval in base.intervals:
            held = store.history(symbol, interval, span[0], span[1])
            if len(held):
                raise ConfigError(
                    f"the store {store.url} holds {len(held)} {symbol} {interval} candles between "
                    f"{iso_utc(span[0])} and {iso_utc(span[1])} that no demo run wrote; the demo would "
                    "replace them with synthetic ones: run it on another store (CRYPTOLAB_STORE_URL or "
                    "CRYPTOLAB_DATA_DIR)")


def run_demo(
    *,
    settings: Settings | None = None,
    symbols: int = 5,
    hours: float = 2.0,
    seed: int = 7,
    ticks_per_second: float = 25.0,
    report: bool = True,
    progress: bool = False,
    out_dir: str | Path | None = None,
) -> DemoResult:
    """Run the main job on a seeded synthetic market and summarise it.

    Parameters
    ----------
    settings
        Services to use (default: environment, i.e. embedded unless configured).
    symbols, hours, seed, ticks_per_second
        The synthetic market (at least 5 symbols over 2 simulated hours by default).
    report
        Render the market report notebook to HTML at the end.
    progress
        Show progress bars (CLI).
    out_dir
        Where outputs go (default ``<data_dir>/demo``).

    Returns
    -------
    DemoResult
    """
    from cryptolab.cache import MemoryCache, open_cache
    from cryptolab.pipeline import CandlePipeline
    from cryptolab.sources.synthetic import Injection, SyntheticMarket, synthetic_symbols
    from cryptolab.store import Store
    from cryptolab.tally import RunTally

    base = settings or Settings.from_env()
    out = Path(out_dir) if out_dir is not None else base.data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    s = _own_topic(base)
    store_url = s.resolved_store_url()
    start_ms = DEMO_START_MS
    duration_ms = int(hours * 3_600_000)
    spike_at = start_ms + (duration_ms * 2 // 3) // _MINUTE * _MINUTE
    names = synthetic_symbols(symbols)
    market = SyntheticMarket(
        symbols=names, seed=seed, start_ms=start_ms, duration_ms=duration_ms,
        ticks_per_second=ticks_per_second,
        injections=[Injection(symbol=names[0], at_ms=spike_at, kind="spike", magnitude=0.10)],
    )
    market.write_labels(out / "ticks.labels.json")
    # every window a demo tick falls in starts in [first, start + duration)
    span = (min(start_ms // parse_interval(i) * parse_interval(i) for i in s.intervals),
            start_ms + duration_ms)

    store = Store.from_settings(s)
    store.init()
    _forget_last_run(store, base, names, span)
    t0 = time.perf_counter()
    produced = _produce(s, market, progress)
    produce_s = time.perf_counter() - t0

    cache = open_cache(s) if s.redis_url else MemoryCache("default")
    tally = RunTally()
    pipeline = CandlePipeline(s, store=store, cache=cache, on_commit=tally.on_commit)
    t1 = time.perf_counter()
    stats = pipeline.run(stop_at_end=True)
    consume_s = time.perf_counter() - t1

    outputs = _write_outputs(store, store_url, out, names, span, report=report)
    store.close()
    elapsed = time.perf_counter() - t0
    return DemoResult(
        ticks=produced,
        dead_letters=stats.dead_letters,
        candles=tally.candles(s.intervals),
        alerts=len(tally.alerts),
        alert_examples=most_severe_first(tally.alerts)[:SHOWN_ALERTS],
        alert_severities=dict(Counter(a.severity for a in tally.alerts)),
        produce_s=produce_s,
        consume_s=consume_s,
        elapsed_s=elapsed,
        ticks_per_s=stats.ticks / consume_s if consume_s > 0 else 0.0,
        store_url=store_url,
        outputs=outputs,
        injected=market.labels,
    )


def _write_outputs(
    store: Store, store_url: str, out: Path, names: list[str], span: tuple[int, int], *, report: bool
) -> dict[str, Path]:
    """The run's CSV exports (and market report, when ``report``) in ``out``; every output by name.

    A report that cannot be rendered is logged, not raised: the demo's data is still good.
    """
    outputs: dict[str, Path] = {}
    if store_url.startswith("sqlite:///"):
        outputs["database"] = Path(store_url[len("sqlite:///"):])
    outputs["candles csv"] = out / "candles.csv"
    store.export_candles(outputs["candles csv"], start=span[0], end=span[1])
    outputs["alerts csv"] = out / "alerts.csv"
    store.export_alerts(outputs["alerts csv"], start=span[0], end=span[1])
    outputs["labels"] = out / "ticks.labels.json"
    if report:
        try:
            from cryptolab.reports.market import render_report

            outputs["report"] = render_report(store_url, out, symbols=names, interval="1m",
                                              start=span[0], end=span[1])
        except Exception as exc:  # the demo's data is still good
            from cryptolab.extras import missing_extra_hint

            hint = missing_extra_hint(exc, "it") if isinstance(exc, ModuleNotFoundError) else None
            log.warning("market report was not rendered: %s", hint or exc)
    return outputs


def _produce(s: Settings, market: Any, progress: bool) -> int:
    """Send the market's ticks, then three malformed records; return the ticks delivered."""
    from cryptolab.producer import TickProducer

    bad_records = [
        b'{"v":1,"symbol":"BTC-USD","ts":1700000100000,"price":-5.0}',
        b"this is not JSON",
        b'{"v":1,"symbol":"BTC\'; DROP TABLE candles;--","ts":1700000100000,"price":1.0}',
    ]
    with TickProducer(s) as producer:
        ticks_iter: Any = market.iter_ticks()
        if progress:
            from tqdm import tqdm

            ticks_iter = tqdm(ticks_iter, desc="produce", unit=" ticks", unit_scale=True, mininterval=0.5)
        producer.send_many(ticks_iter)
        producer.flush()
        produced = producer.stats.delivered
    raw = Producer(producer_config(s))
    for i, rec in enumerate(bad_records):
        raw.produce(s.topic, key=f"BAD{i}".encode(), value=rec, timestamp=DEMO_START_MS)
    raw.flush(30)
    return produced


class LiveDemo:
    """A synthetic market flowing live through producer, Kafka and pipeline (background threads).

    A :class:`~cryptolab.market.session.LiveSession` on the synthetic source: its last three
    simulated hours at full speed first, then paced at ``speed``; :meth:`start` returns at
    once (the history lands within seconds).

    Parameters
    ----------
    symbols, seed
        The synthetic market.
    speed
        Simulated seconds per wall-clock second (60 = one 1m candle a second).
    ticks_per_second
        Simulated trade rate across all symbols.
    settings
        Services (default: embedded; a fresh SQLite file in ``data_dir/live``).
    spike_every_s
        Inject a spike (alternately a crash) on a random symbol every so many
        simulated seconds (0 = never).

    Examples
    --------
    ::

        with LiveDemo(symbols=5, speed=60) as live:
            chart = CandleChart.live("BTC-USD", "1m", settings=live.settings)
    """

    def __init__(
        self,
        *,
        symbols: int = 5,
        seed: int = 7,
        speed: float = 60.0,
        ticks_per_second: float = 10.0,
        settings: Settings | None = None,
        spike_every_s: float = 900.0,
        cache_name: str = "default",
    ) -> None:
        from cryptolab.market.feeds import open_feed
        from cryptolab.market.session import LiveSession

        feed = open_feed("synthetic", symbols=symbols, backfill_ms=LIVE_DEMO_HISTORY_MS, seed=seed,
                         speed=speed, ticks_per_second=ticks_per_second, spike_every_s=spike_every_s)
        self.session = LiveSession(feed, settings, cache_name=cache_name)
        self.settings = self.session.settings
        self.symbols = symbols
        self.seed = seed
        self.speed = speed
        self.ticks_per_second = ticks_per_second
        self.spike_every_s = spike_every_s
        self.cache_name = cache_name

    @property
    def pipeline(self) -> Any:
        """The session's windowing consumer (``None`` before :meth:`start`)."""
        return self.session.pipeline

    @property
    def produced(self) -> int:
        """Ticks produced so far."""
        return self.session.stats.produced

    @property
    def error(self) -> BaseException | None:
        """The first error of the market's threads, if any."""
        errors = self.session.errors
        return errors[0] if errors else None

    def __enter__(self) -> LiveDemo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LiveDemo:
        """Start producing and consuming in background threads."""
        self.session.start(wait=False)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the market, drain and commit (an error of its threads stays in :attr:`error`)."""
        try:
            self.session.stop(timeout)
        except Exception:
            log.warning("the live demo stopped with an error: %s", self.error)
