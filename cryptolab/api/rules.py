"""REST routes of the user alert rules: ``/api/v1/rules`` (list, add, enable, remove).

The body of ``POST /api/v1/rules`` is a rule's JSON (:meth:`cryptolab.models.rules.Rule.to_dict`,
``id`` and ``created`` optional): :class:`~cryptolab.api.schemas.RuleIn` checks its JSON types
and the :class:`~cryptolab.models.rules.Rule` model the rest, and either refusal is 422 naming
the field (a parameter as ``params.<name>``); an id in use is 409. Running consumers pick a
change up within ``CRYPTOLAB_RULES_RELOAD``. A rule's ``webhook`` is answered as
``scheme://host/***``: the path of a Slack or Discord URL is a credential.

Examples
--------
>>> from starlette.testclient import TestClient
>>> from cryptolab.api import create_app
>>> from cryptolab.store import Store
>>> with TestClient(create_app(store=Store("sqlite://"))) as http:
...     r = http.post("/api/v1/rules", json={"id": "btc-40k", "kind": "cross_above",
...                   "params": {"level": 40000}, "symbol": "BTC-USD"})
...     r.status_code, r.json()["description"]
...     http.post("/api/v1/rules", json={"kind": "move", "params": {"pct": -1}}).json()["field"]
...     http.get("/api/v1/rules").json()["count"], http.delete("/api/v1/rules/btc-40k").status_code
(201, 'BTC-USD 1m: close crosses above 40000')
'params.pct'
(1, 204)
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Path, Query
from starlette.responses import Response

from cryptolab.api.errors import ERROR_RESPONSES, ApiError
from cryptolab.api.params import reject_unknown_query
from cryptolab.api.schemas import ErrorOut, RuleEnabledIn, RuleIn, RuleOut, RulesOut
from cryptolab.api.state import State
from cryptolab.config import redact_webhook
from cryptolab.errors import ValidationError
from cryptolab.models.rules import RULE_ID_RE, RULE_PARAMS, Rule

__all__ = ["rule_json", "router"]

router = APIRouter(prefix="/api/v1", tags=["rules"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(reject_unknown_query)])

_CONFLICT: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorOut, "description": "a rule with this id exists already"}}
_PARAM_NAMES: Final = frozenset(name for spec in RULE_PARAMS.values() for name in spec)

#: Example rules of each kind, for ``/docs`` (and the schema's explicit examples).
_EXAMPLES: Final[dict[str, Any]] = {
    "cross_above": {"summary": "BTC-USD closes above 40,000 (1m)", "value": {
        "kind": "cross_above", "params": {"level": 40000}, "symbol": "BTC-USD", "interval": "1m"}},
    "move": {"summary": "any symbol falls more than 3% over 5 candles (5m)", "value": {
        "kind": "move", "params": {"pct": 3, "candles": 5, "direction": "down"}, "interval": "5m",
        "severity": "HIGH"}},
    "volume_spike": {"summary": "volume above 4x its mean of 30 candles, POSTed to Slack", "value": {
        "kind": "volume_spike", "params": {"factor": 4, "lookback": 30},
        "webhook": "https://hooks.slack.com/services/T000/B000/XXXX", "webhook_format": "slack"}},
}

#: A path parameter holding a rule id.
RuleId = Annotated[str, Path(alias="id", description="the rule's id",
                             json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$",
                                                "maxLength": 40})]


def rule_json(rule: Rule) -> dict[str, Any]:
    """A rule as the API answers it: its JSON, webhook redacted, with its detector and description.

    Examples
    --------
    >>> r = Rule(id="x", kind="move", params={"pct": 2}, created=0,
    ...          webhook="https://hooks.slack.com/services/T/B/secret")
    >>> body = rule_json(r); body["webhook"], body["detector"], body["description"]
    ('https://hooks.slack.com/***', 'rule:x', '* 1m: move of more than 2% within one candle')
    """
    out = rule.to_dict()
    if rule.webhook is not None:
        out["webhook"] = redact_webhook(rule.webhook)
    out.update(detector=rule.detector, description=rule.describe())
    return out


def _rule_id(text: str) -> str:
    if RULE_ID_RE.fullmatch(text) is None:
        shown = text if len(text) <= 64 else text[:64] + "..."
        raise ValidationError("id", f"{shown!r} is not 1-40 letters, digits, _ . - (starting with a letter or digit)")
    return text


def _as_rule(body: RuleIn) -> Rule:
    data = body.model_dump(exclude_unset=True)
    data["params"] = body.params.model_dump(exclude_none=True)
    try:
        return Rule.from_dict(data)
    except ValidationError as exc:  # a parameter is named as where it is in the body
        field = f"params.{exc.field}" if exc.field in _PARAM_NAMES else exc.field
        raise ValidationError(field, exc.reason) from None


@router.get("/rules", response_model=RulesOut, summary="User alert rules")
def list_rules(
    state: State,
    enabled: bool | None = Query(None, description="only the enabled (true) or disabled (false) ones"),
) -> dict[str, Any]:
    """The rules in the store, by creation time then id."""
    rules = [rule_json(r) for r in state.store.rules.list(enabled=enabled)]
    return {"count": len(rules), "rules": rules}


@router.post("/rules", response_model=RuleOut, status_code=201, summary="Add a user alert rule",
             responses=_CONFLICT)
def add_rule(state: State, body: Annotated[RuleIn, Body(openapi_examples=_EXAMPLES)]) -> dict[str, Any]:
    """Store a rule; 201 with it as stored, 409 when its id is in use, 422 naming a bad field."""
    rule = _as_rule(body)
    if state.store.rules.get(rule.id) is not None:
        raise ApiError(409, f"a rule with id {rule.id!r} exists already", "id")
    try:
        state.store.rules.add(rule)
    except ValidationError as exc:  # the same id added meanwhile
        raise ApiError(409, exc.reason, "id") from None
    return rule_json(rule)


@router.patch("/rules/{id}", response_model=RuleOut, summary="Enable or disable a user alert rule")
def set_enabled(state: State, rule_id: RuleId, body: RuleEnabledIn) -> dict[str, Any]:
    """Set ``enabled``; 200 with the rule, 404 when there is none with this id."""
    rid = _rule_id(rule_id)
    if not state.store.rules.set_enabled(rid, body.enabled):
        raise ApiError(404, f"no rule {rid!r}", "id")
    rule = state.store.rules.get(rid)
    if rule is None:  # removed meanwhile
        raise ApiError(404, f"no rule {rid!r}", "id")
    return rule_json(rule)


@router.delete("/rules/{id}", status_code=204, response_class=Response,
               summary="Remove a user alert rule (its alerts stay)")
def remove_rule(state: State, rule_id: RuleId) -> Response:
    """Delete the rule; 204, or 404 when there is none with this id."""
    rid = _rule_id(rule_id)
    if not state.store.rules.remove(rid):
        raise ApiError(404, f"no rule {rid!r}", "id")
    return Response(status_code=204)
