"""Credentials come only from the environment or URLs, and never show.

A password in ``CRYPTOLAB_STORE_URL`` or ``CRYPTOLAB_REDIS_URL``, a
``CRYPTOLAB_KAFKA_SASL_PASSWORD`` or a ``CRYPTOLAB_COINGECKO_API_KEY`` must not
appear in logs (every logger at DEBUG), reprs, error messages, CLI output,
executed notebooks, their HTML or the scheduled-run log.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from cryptolab.cache import RedisCache, open_cache
from cryptolab.config import Settings
from cryptolab.errors import CacheError, StoreError
from cryptolab.notebooks import NotebookRunError, redact_parameters, run_notebook
from cryptolab.schedules import Pipeline, run_pipeline
from cryptolab.store import Store

ROOT = Path(__file__).resolve().parents[2]

PG_PASSWORD = "pg-s3cret-7d1f"
REDIS_PASSWORD = "redis-s3cret-92ab"
SASL_PASSWORD = "sasl-s3cret-44c0"
API_KEY = "CG-s3cret-a1b2"
SECRETS = (PG_PASSWORD, REDIS_PASSWORD, SASL_PASSWORD, API_KEY)

#: Nothing listens on port 1: connections are refused at once.
DEAD_STORE = f"postgresql+psycopg://app:{PG_PASSWORD}@127.0.0.1:1/cryptolab"
DEAD_REDIS = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"
ENV = {
    "CRYPTOLAB_STORE_URL": DEAD_STORE,
    "CRYPTOLAB_REDIS_URL": DEAD_REDIS,
    "CRYPTOLAB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "CRYPTOLAB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "CRYPTOLAB_KAFKA_SASL_USERNAME": "cryptolab",
    "CRYPTOLAB_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    "CRYPTOLAB_COINGECKO_API_KEY": API_KEY,
}


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        if r.exc_info and r.exc_info[1] is not None:
            parts.append(repr(r.exc_info[1]))
    return "\n".join(parts)


# --------------------------------------------------------------------------- library


def test_settings_and_adapters_never_show_a_secret(all_logs: pytest.LogCaptureFixture) -> None:
    s = Settings.from_env(ENV)
    assert s.store_url == DEAD_STORE and s.kafka_options["sasl.password"] == SASL_PASSWORD  # usable
    store = Store.from_settings(s)
    cache = open_cache(s)
    shown = [repr(s), str(s), json.dumps(s.redacted(), default=str), repr(store), store.url,
             repr(cache), repr(RedisCache(DEAD_REDIS))]
    assert not leaked("\n".join(shown)), shown
    assert "app:***@127.0.0.1:1" in repr(store) and ":***@127.0.0.1:1" in repr(cache)
    assert not leaked(_log_text(all_logs))


def test_connection_errors_never_show_a_secret(all_logs: pytest.LogCaptureFixture) -> None:
    store = Store(DEAD_STORE)
    with pytest.raises(StoreError) as store_err:
        store.init()
    cache = RedisCache(DEAD_REDIS, socket_timeout=0.5)
    with pytest.raises(CacheError) as cache_err:
        cache.latest("BTC-USD", "1m")
    texts = [str(store_err.value), repr(store_err.value), str(cache_err.value), repr(cache_err.value)]
    # the cause chain (what a traceback prints) as well
    for exc in (store_err.value, cache_err.value):
        cause = exc.__cause__
        while cause is not None:
            texts.append(str(cause))
            cause = cause.__cause__
    assert "Connection refused" in texts[0] or "connection" in texts[0].lower()
    assert not leaked("\n".join(texts[:4])), texts[:4]
    assert not leaked(_log_text(all_logs))
    # the driver's own exception (chained, shown in tracebacks) must not carry it either
    assert not leaked("\n".join(texts[4:])), texts[4:]


def test_kafka_clients_get_the_sasl_password_but_logs_do_not(capfd: pytest.CaptureFixture[str]) -> None:
    from confluent_kafka import Producer

    from cryptolab.kafka import producer_config

    s = Settings.from_env({**ENV, "CRYPTOLAB_KAFKA_BOOTSTRAP": "127.0.0.1:1",
                           "CRYPTOLAB_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                           "CRYPTOLAB_KAFKA_SASL_MECHANISM": "PLAIN", "CRYPTOLAB_KAFKA_DEBUG": "conf,security"})
    conf = producer_config(s)
    assert conf["sasl.password"] == SASL_PASSWORD
    records: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger(f"test.kafka.{uuid.uuid4().hex[:6]}")
    logger.addHandler(_Keep())
    logger.setLevel(logging.DEBUG)
    p = Producer({**conf, "logger": logger})
    p.poll(1.0)  # librdkafka dumps its configuration (debug=conf) and fails to connect
    out, err = capfd.readouterr()
    assert any("sasl.password" in r for r in records), "the configuration dump was expected"
    assert not leaked("\n".join(records) + out + err)


# --------------------------------------------------------------------------- CLI


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAB_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "cryptolab", "--log-level", "DEBUG", *args],
                          env=full, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("args", [("db", "info"), ("db", "info", "--json"), ("db", "init"),
                                  ("export", "candles", "--out", "-")])
def test_cli_output_and_errors_never_show_a_secret(args: tuple[str, ...]) -> None:
    proc = _cli(*args, env=ENV)
    assert proc.returncode != 0  # nothing answers on port 1
    assert "127.0.0.1:1" in proc.stdout + proc.stderr, proc.stderr  # it does say where it failed
    assert not leaked(proc.stdout + proc.stderr), proc.stdout + proc.stderr


@pytest.mark.integration
def test_cli_db_info_on_a_real_server_with_a_password_in_the_url(pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    # the test server trusts local connections, so any password is accepted (and must be hidden)
    url = make_url(pg_url).set(password=PG_PASSWORD).render_as_string(hide_password=False)
    for args in (("db", "init"), ("db", "info"), ("db", "info", "--json")):
        proc = _cli(*args, "--store", url, env={})
        assert proc.returncode == 0, proc.stderr
        assert "***" in proc.stdout and not leaked(proc.stdout + proc.stderr), proc.stdout


# --------------------------------------------------------------------------- notebooks


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("store_url = None  # SQLAlchemy URL\napi_key = ''")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *[nbformat.v4.new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_redact_parameters() -> None:
    shown = redact_parameters({"store_url": DEAD_STORE, "api_key": API_KEY, "symbols": ["BTC-USD"],
                               "urls": [DEAD_REDIS], "n": 3})
    assert shown == {"store_url": "postgresql+psycopg://app:***@127.0.0.1:1/cryptolab", "api_key": "***",
                     "symbols": ["BTC-USD"], "urls": ["redis://:***@127.0.0.1:1/0"], "n": 3}


@pytest.mark.notebooks
def test_executed_notebook_html_and_errors_never_hold_a_parameter_secret(
    tmp_path: Path, all_logs: pytest.LogCaptureFixture,
) -> None:
    ok = _notebook(tmp_path / "ok.ipynb", "print('connecting to', store_url.split('@')[-1])")
    run = run_notebook(ok, {"store_url": DEAD_STORE, "api_key": API_KEY}, output_dir=tmp_path / "out")
    executed = nbformat.read(run.output, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "app:***@127.0.0.1:1" in injected[0].source  # what was passed, hidden
    assert "connecting to 127.0.0.1:1/cryptolab" in _files_text(tmp_path / "out")
    assert not leaked(repr(run))
    failing = _notebook(tmp_path / "bad.ipynb", "raise RuntimeError(f'cannot reach {store_url}')")
    with pytest.raises(NotebookRunError) as info:
        run_notebook(failing, {"store_url": DEAD_STORE}, output_dir=tmp_path / "out")
    assert "cannot reach postgresql+psycopg://app:***@" in str(info.value)
    assert not leaked(str(info.value) + json.dumps(info.value.to_dict()))
    assert not leaked(_files_text(tmp_path / "out")), "a secret was written to an output file"
    assert not leaked(_log_text(all_logs))


@pytest.mark.notebooks
def test_scheduled_run_log_never_holds_a_parameter_secret(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "nb.ipynb", "x = 1")
    pipeline = Pipeline(name="secret", path=tmp_path / "secret.toml", cron="0 * * * *", notebook=nb,
                        output_dir=tmp_path / "runs", parameters={"store_url": DEAD_STORE})
    record = run_pipeline(pipeline, overrides={"api_key": API_KEY})
    assert record.ok, record.error
    assert not leaked(_files_text(tmp_path / "runs"))
    assert not leaked(json.dumps(record.to_dict(), default=str))


@pytest.mark.integration
@pytest.mark.notebooks
def test_market_report_on_postgres_with_a_password_in_the_url(pg_url: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    from cryptolab.batch import candles_from_ticks, frame_to_candles
    from cryptolab.notebooks import render_report
    from cryptolab.sources.synthetic import SyntheticMarket

    url = make_url(pg_url).set(password=PG_PASSWORD).render_as_string(hide_password=False)
    store = Store(url)
    store.init()
    m = SyntheticMarket(symbols=2, seed=5, start_ms=1_700_000_040_000, duration_ms=3_600_000,
                        ticks_per_second=2.0, random_injections=0)
    store.commit_batch(group="g", topic="t", candles=frame_to_candles(candles_from_ticks(m.to_frame(), "1m")))
    store.close()
    html = render_report(url, tmp_path / "out")
    assert "BTC-USD" in html.read_text()
    assert not leaked(_files_text(tmp_path / "out"))
