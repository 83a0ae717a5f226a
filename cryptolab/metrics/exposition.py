"""A registry per process object, and its ``/metrics`` over HTTP (prometheus_client's server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from cryptolab.errors import ConfigError

__all__ = ["MetricsServer", "registry"]


def registry(*collectors: Collector, process: bool = True) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) holding ``collectors``.

    Parameters
    ----------
    collectors
        What to expose (:class:`~cryptolab.metrics.ConsumerCollector`, ...).
    process
        Also expose the process's own metrics (``process_*``: CPU, memory, open files;
        ``python_*``: garbage collector, version).

    Examples
    --------
    >>> reg = registry()
    >>> reg.get_sample_value("python_gc_objects_collected_total", {"generation": "0"}) is not None
    True
    """
    reg = CollectorRegistry()
    if process:
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
    for collector in collectors:
        reg.register(collector)
    return reg


class MetricsServer:
    """``/metrics`` of ``registry`` over HTTP, served by a daemon thread until :meth:`close`.

    Parameters
    ----------
    registry
        What to serve.
    port
        TCP port (``0``: any free one; read :attr:`port`).
    host
        Interface to listen on (default loopback; ``0.0.0.0`` for every interface).

    Raises
    ------
    ConfigError
        When the port cannot be listened on (in use, not allowed).

    Examples
    --------
    >>> import httpx
    >>> with MetricsServer(registry(), 0) as server:
    ...     text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    >>> "process_cpu_seconds_total" in text or "python_info" in text
    True
    """

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
        try:
            self._server, self._thread = start_http_server(port, host, registry=registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        #: The port listened on (the one chosen when ``port`` was 0).
        self.port: int = int(self._server.server_port)

    @property
    def url(self) -> str:
        """Where the metrics are: ``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
