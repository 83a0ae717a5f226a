"""Webhooks: an alert's body (JSON, Slack or Discord), its HMAC-SHA256 signature, one POST.

What is sent where and when is the consumer's delivery thread
(:mod:`cryptolab.pipeline.webhooks`), fed from the store's outbox; this module is the HTTP
side, on httpx.

Every POST carries ``Content-Type: application/json``, ``Idempotency-Key: <alert id>`` and,
with a secret, ``X-Cryptolab-Signature: sha256=<hex HMAC-SHA256 of the raw body>``
(:func:`sign`; receivers check it with :func:`verify`). The alert id (:func:`alert_id`) is
the same for every delivery of an alert, whichever process sends it and however often:
receivers drop the deliveries whose id they have seen.

Examples
--------
>>> from cryptolab.models import Alert
>>> a = Alert(symbol="BTC-USD", interval="1m", window_start=1_700_000_040_000, detector="rule:btc-40k",
...           severity="HIGH", score=40_100.0, ts_ms=1_700_000_100_000, features={"level": 40_000.0})
>>> body = render(a, "json", description="BTC-USD 1m: close crosses above 40000")
>>> import json; d = json.loads(body)
>>> d["id"] == alert_id(a), d["rule"], d["text"]
(True, 'btc-40k', 'HIGH BTC-USD 1m 2023-11-14T22:14:00Z: BTC-USD 1m: close crosses above 40000 (score 40100)')
>>> json.loads(render(a, "slack"))
{'text': 'HIGH BTC-USD 1m 2023-11-14T22:14:00Z: rule:btc-40k (score 40100)'}
>>> sig = sign("whsec", body.encode()); verify("whsec", body.encode(), sig), verify("other", body.encode(), sig)
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import orjson

from cryptolab.errors import ValidationError

if TYPE_CHECKING:  # httpx (and ssl) load only when a webhook is sent: a consumer without one never pays
    import httpx
from cryptolab.models import Alert, iso_utc
from cryptolab.models.rules import WEBHOOK_FORMATS, rule_id_of

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "PostResult",
    "alert_id",
    "backoff_ms",
    "post",
    "render",
    "sign",
    "verify",
]

#: The signature header: ``sha256=<hex HMAC-SHA256 of the body with the secret>``.
SIGNATURE_HEADER: Final = "X-Cryptolab-Signature"
#: The header repeating the payload's ``id``.
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
#: Longest wait between two attempts of a delivery (ms).
MAX_BACKOFF_MS: Final = 3_600_000


def alert_id(alert: Alert) -> str:
    """The alert's idempotency key: 32 hex digits of the SHA-256 of its key.

    Examples
    --------
    >>> from cryptolab.models import Alert
    >>> alert_id(Alert(symbol="X", interval="1m", window_start=0, detector="rule:a", severity="LOW",
    ...                score=1.0, ts_ms=60_000))
    '2997e5f750e7e7c9fb6ffd23a2b05c3b'
    """
    key = "\x1f".join((alert.symbol, alert.interval, str(alert.window_start), alert.detector))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _text(alert: Alert, description: str | None) -> str:
    what = description or alert.detector
    return (f"{alert.severity} {alert.symbol} {alert.interval} {iso_utc(alert.window_start)}: "
            f"{what} (score {alert.score:.6g})")


def render(alert: Alert, fmt: str = "json", *, description: str | None = None) -> str:
    """The body of a webhook for ``alert``.

    Parameters
    ----------
    alert
        The alert.
    fmt
        ``json``: ``{"id", "type": "alert", "rule", "alert": {...}, "text"}`` (times in epoch
        ms); ``slack``: ``{"text": ...}``; ``discord``: ``{"content": ...}``.
    description
        What the rule says, in words (:meth:`~cryptolab.models.rules.Rule.describe`).

    Raises
    ------
    ValidationError
        An unknown format.
    """
    text = _text(alert, description)
    if fmt == "slack":
        doc: dict[str, object] = {"text": text}
    elif fmt == "discord":
        doc = {"content": text}
    elif fmt == "json":
        doc = {"id": alert_id(alert), "type": "alert", "rule": rule_id_of(alert.detector),
               "alert": alert.to_dict(), "text": text}
    else:
        raise ValidationError("webhook_format", f"must be one of {', '.join(WEBHOOK_FORMATS)}, got {fmt!r}")
    return orjson.dumps(doc).decode()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` (the header's value) signs ``body`` with ``secret`` (constant time)."""
    return signature is not None and hmac.compare_digest(sign(secret, body), signature)


def backoff_ms(attempts: int, base_ms: int) -> int:
    """The wait after ``attempts`` failed POSTs: ``base_ms`` doubled each time, at most an hour.

    Examples
    --------
    >>> [backoff_ms(n, 2_000) for n in (1, 2, 3, 20)]
    [2000, 4000, 8000, 3600000]
    """
    return int(min(base_ms * 2 ** min(max(attempts - 1, 0), 40), MAX_BACKOFF_MS))


@dataclass(frozen=True, slots=True)
class PostResult:
    """What one POST came to: ``ok`` (a 2xx answer), the HTTP status, or the error."""

    ok: bool
    status: int | None
    error: str | None


def post(client: httpx.Client, url: str, body: str, *, key: str, secret: str | None,
         timeout_s: float) -> PostResult:
    """POST ``body`` to ``url``, signed with ``secret``; any 2xx answer is a delivery.

    Network errors and timeouts are results, not exceptions (``status=None``).
    """
    import httpx

    data = body.encode()
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key,
               "User-Agent": "cryptolab-webhooks"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, data)
    try:
        resp = client.post(url, content=data, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return PostResult(False, None, f"{type(exc).__name__}: {exc}"[:300])
    if 200 <= resp.status_code < 300:
        return PostResult(True, resp.status_code, None)
    return PostResult(False, resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}")
