"""The delivery thread: webhook deliveries from the store's outbox to their URLs, with retries.

Deliveries are written to the outbox in the transaction that inserts their alerts
(:mod:`cryptolab.store.outbox`); :class:`WebhookSender` sends them from a thread of its own, so
the consumer never waits for an endpoint: it only wakes the thread after a commit that wrote
some (:meth:`~WebhookSender.nudge`). The thread leases due deliveries, POSTs each
(:func:`cryptolab.webhooks.post`), and records the outcome: delivered (any 2xx), due again
after a back-off (``CRYPTOLAB_WEBHOOK_BACKOFF`` doubled per attempt, at most an hour), or
``failed`` after ``CRYPTOLAB_WEBHOOK_ATTEMPTS`` POSTs. A process that dies leaves its
deliveries in the outbox: the next sender (any consumer of the store) sends them once their
lease has run out. Delivery is at least once (a process can die between a POST and its
record): receivers drop repeats by the payload's ``id`` (the ``Idempotency-Key`` header).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from cryptolab.config import Settings, redact_webhook
from cryptolab.errors import StoreError
from cryptolab.webhooks import backoff_ms, post

if TYPE_CHECKING:  # loaded with the first delivery
    import httpx

__all__ = ["WebhookSender"]

#: The package's one logger: its lines keep the name they always had.
log = logging.getLogger("cryptolab.pipeline")

#: Deliveries leased at a time.
_CLAIM = 10
#: Longest sleep between two looks at the outbox (s): deliveries other processes left.
_POLL_S = 5.0


class WebhookSender:
    """Send the outbox's due deliveries, on a thread of its own (:meth:`start`) or on call (:meth:`run_once`).

    Parameters
    ----------
    outbox
        The store's outbox (``store.webhooks``).
    settings
        ``webhook_secret``, ``webhook_attempts``, ``webhook_backoff_ms``, ``webhook_timeout_ms``.
    client
        An ``httpx.Client`` (a new one by default).

    Examples
    --------
    >>> from cryptolab.store import Store
    >>> sender = WebhookSender(Store("sqlite://").webhooks, Settings.from_env({}))
    >>> sender.lease_ms, sender.attempts
    (110000, 8)
    """

    def __init__(self, outbox: Any, settings: Settings, *, client: httpx.Client | None = None) -> None:
        self.outbox = outbox
        self.secret = settings.webhook_secret
        self.attempts = settings.webhook_attempts
        self.backoff_ms = settings.webhook_backoff_ms
        self.timeout_s = settings.webhook_timeout_ms / 1000
        #: A lease outlives the POSTs of one claim.
        self.lease_ms = _CLAIM * settings.webhook_timeout_ms + 10_000
        self._client = client
        self._own_client = client is None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_until = 0.0
        self._thread: threading.Thread | None = None
        #: POSTs made, deliveries delivered and failed for good, by this sender.
        self.posts = self.delivered = self.failed = 0

    @property
    def client(self) -> httpx.Client:
        """The HTTP client (made on first use)."""
        if self._client is None:
            import httpx

            self._client = httpx.Client(follow_redirects=False)
        return self._client

    def run_once(self, *, deadline: float | None = None) -> int:
        """Lease the due deliveries and POST each (until ``deadline``, monotonic); return how many."""
        now = int(time.time() * 1000)
        batch = self.outbox.claim(now_ms=now, limit=_CLAIM, lease_ms=self.lease_ms)
        done = 0
        for d in batch:
            if deadline is not None and time.monotonic() > deadline:
                break  # left leased: sent again when the lease runs out
            result = post(self.client, d.url, d.body, key=d.alert_id, secret=self.secret,
                          timeout_s=self.timeout_s)
            self.posts += 1
            attempts = d.attempts + 1
            when: int | None = None
            if result.ok:
                self.delivered += 1
            elif attempts >= self.attempts:
                self.failed += 1
                log.warning("webhook to %s for alert %s failed for good after %d attempts: %s",
                            _host(d.url), d.alert_id, attempts, result.error)
            else:
                when = int(time.time() * 1000) + backoff_ms(attempts, self.backoff_ms)
                log.info("webhook to %s for alert %s: %s; retry %d at %d", _host(d.url), d.alert_id,
                         result.error, attempts + 1, when)
            assert d.id is not None
            self.outbox.settle(d.id, ok=result.ok, status=result.status, error=result.error,
                               next_attempt_ms=when, now_ms=int(time.time() * 1000))
            done += 1
        return done

    def drain(self, timeout_s: float) -> int:
        """Send what is due until nothing is, or ``timeout_s`` passed; return how many were sent."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while time.monotonic() < deadline:
            n = self.run_once(deadline=deadline)
            total += n
            if n == 0:
                break
        return total

    # ---------------------------------------------------------------- thread
    def start(self) -> None:
        """Start the delivery thread (a daemon: it never holds the process up)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cryptolab-webhooks", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Wake the thread: a commit wrote deliveries (thread-safe, never blocks)."""
        self._wake.set()

    def close(self, drain_s: float = 2.0) -> None:
        """Stop the thread, after up to ``drain_s`` seconds more of sending what is due.

        What is not sent by then stays in the outbox for the next sender.
        """
        thread = self._thread
        if thread is not None:
            self._drain_until = time.monotonic() + drain_s
            self._stop.set()
            self._wake.set()
            thread.join(drain_s + 1.0)
            self._thread = None
            if thread.is_alive():  # stuck in a POST: it ends with its timeout
                return
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    def _loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            if stopping and time.monotonic() >= self._drain_until:
                return
            try:
                n = self.run_once(deadline=self._drain_until if stopping else None)
            except StoreError as exc:
                log.warning("webhooks: the outbox is unavailable (%s)", exc)
                n = 0
            except Exception:  # never let the thread die: the outbox keeps what was not sent
                log.exception("webhooks: sending failed")
                n = 0
            if stopping and n == 0:
                return
            if n:
                continue
            self._wake.wait(self._sleep_s())
            self._wake.clear()

    def _sleep_s(self) -> float:
        """Until the next delivery is due (between 0.5 and :data:`_POLL_S` s)."""
        try:
            due = self.outbox.next_due_ms()
        except StoreError:
            return _POLL_S
        if due is None:
            return _POLL_S
        return float(min(max((due - time.time() * 1000) / 1000, 0.5), _POLL_S))


_host = redact_webhook  # a webhook URL's path may be a credential: logs show scheme and host
