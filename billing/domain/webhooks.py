"""Provider webhooks: verify, deduplicate and apply the provider's charge events.

    POST /v1/billing/webhooks   Provider-Signature: t=<unix>,v1=<hex>   {"id": "evt_...", ...}

1. The signature is checked first (billing.domain.signatures: constant time, v1 only, 5 minutes
   of tolerance): a stranger gets UNAUTHENTICATED and learns nothing else. A signed body that is
   not a well-formed event is INVALID_ARGUMENT (the provider's bug, not an attack).
2. In ONE write transaction: the event id is inserted into webhook_events (ON CONFLICT DO
   NOTHING); when it was already there the event is a duplicate and nothing else happens. Else
   the effect is applied in the same transaction, so an event is applied exactly once even when
   delivered twice at the same moment (the second insert waits for the first transaction, then
   conflicts) or when billing crashes half-way (both roll back; the provider retries).
3. The effect: the charge's payment (by the provider's charge id, else the `payment_id` billing
   put in the charge's metadata) is settled by billing.domain.payments.settle_charge, which only
   moves payments forward, so events are safe in any order. An event for a payment billing does
   not know, or of a type it does not handle, is recorded and ignored (answered 200: the
   provider must stop retrying it), never an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from billing.domain import payments, signatures
from billing.metrics import WEBHOOK_EVENTS_TOTAL, WEBHOOK_LAG_SECONDS
from billing.models import PaymentRow, WebhookEventRow
from fitcore.clock import Clock
from fitcore.db import Database, dialect_insert
from fitcore.errors import FieldViolation, InvalidArgument

log = logging.getLogger("billing.webhooks")

# Event types billing acts on, and the charge status each one implies when the charge object
# does not carry a status billing knows.
CHARGE_EVENTS: Final = {
    "charge.succeeded": payments.SUCCEEDED,
    "charge.failed": payments.FAILED,
    "charge.requires_action": payments.REQUIRES_ACTION,
    "charge.refunded": payments.REFUNDED,
}
# Outcomes counted in fitco_billing_webhook_events_total{outcome}.
APPLIED: Final = "applied"
DUPLICATE: Final = "duplicate"
REJECTED: Final = "rejected"
UNKNOWN_PAYMENT: Final = "unknown_payment"
IGNORED: Final = "ignored"
# Column sizes (billing/models.py) and a bound on what is parsed at all.
MAX_EVENT_ID: Final = 64
MAX_TYPE: Final = 64
MAX_BODY_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class ChargeData:
    """The part of an event's `data.charge` that billing uses."""

    id: str
    status: str
    amount: int
    currency: str
    amount_refunded: int = 0
    failure_code: str = ""
    card_brand: str = ""
    card_last4: str = ""
    next_action_url: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created: datetime
    charge: ChargeData | None  # None for event types billing does not handle


def _type_label(event_type: str) -> str:
    """A bounded metrics label: unknown types are counted together."""
    return event_type if event_type in CHARGE_EVENTS else "other"


def _str(obj: dict[str, Any], key: str, where: str, bad: list[FieldViolation], limit: int) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        bad.append(FieldViolation(f"{where}{key}", f"must be a string of at most {limit} chars"))
        return ""
    return value


def _int(obj: dict[str, Any], key: str, where: str, bad: list[FieldViolation]) -> int:
    value = obj.get(key, 0)
    # bool is an int in Python; a JSON true is not an amount.
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        bad.append(FieldViolation(f"{where}{key}", "must be a non-negative integer"))
        return 0
    return value


def _charge(data: Any, bad: list[FieldViolation]) -> ChargeData | None:
    charge = data.get("charge") if isinstance(data, dict) else None
    if not isinstance(charge, dict):
        bad.append(FieldViolation("data.charge", "must be an object"))
        return None
    where = "data.charge."
    charge_id = _str(charge, "id", where, bad, 64)
    if not charge_id:
        bad.append(FieldViolation("data.charge.id", "is required"))
    metadata = charge.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        bad.append(FieldViolation("data.charge.metadata", "must map strings to strings"))
        metadata = {}
    return ChargeData(
        id=charge_id,
        status=_str(charge, "status", where, bad, 32),
        amount=_int(charge, "amount", where, bad),
        currency=_str(charge, "currency", where, bad, 3).upper(),
        amount_refunded=_int(charge, "amount_refunded", where, bad),
        failure_code=_str(charge, "failure_code", where, bad, 100),
        card_brand=_str(charge, "card_brand", where, bad, 32),
        card_last4=_str(charge, "card_last4", where, bad, 4),
        next_action_url=_str(charge, "next_action_url", where, bad, 300),
        metadata=metadata,
    )


def parse_event(raw: bytes) -> Event:
    """The event in a (verified) body; InvalidArgument when it is not a well-formed event."""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgument([FieldViolation("body", f"at most {MAX_BODY_BYTES} bytes")])
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument([FieldViolation("body", "must be a JSON object")]) from exc
    if not isinstance(doc, dict):
        raise InvalidArgument([FieldViolation("body", "must be a JSON object")])
    bad: list[FieldViolation] = []
    event_id = _str(doc, "id", "", bad, MAX_EVENT_ID)
    event_type = _str(doc, "type", "", bad, MAX_TYPE)
    if not event_id:
        bad.append(FieldViolation("id", "is required"))
    if not event_type:
        bad.append(FieldViolation("type", "is required"))
    created = _int(doc, "created", "", bad)
    if "created" not in doc:
        bad.append(FieldViolation("created", "is required"))
    charge = _charge(doc.get("data"), bad) if event_type in CHARGE_EVENTS else None
    if bad:
        raise InvalidArgument(bad, "not a well-formed provider event")
    return Event(event_id, event_type, datetime.fromtimestamp(min(created, 2**33), UTC), charge)


def charge_status(event_type: str, charge: ChargeData) -> str:
    """The charge's status as settle_charge takes it: the charge's own when billing knows it
    (it is the charge as it was when the event was made), else the one the event type implies."""
    if charge.status in payments.CHARGE_STATUSES:
        return charge.status
    return CHARGE_EVENTS[event_type]


def _find_payment(s: Session, charge: ChargeData) -> PaymentRow | None:
    """The payment of `charge`, locked (payment first, then subscription: payments.py's lock
    order); None when billing does not know it or the charge does not match it."""
    payment = payments.lock_payment_by_charge(s, charge.id)
    if payment is None:
        raw_id = charge.metadata.get("payment_id", "")
        if not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 18:
            return None
        payment = payments.lock_payment(s, int(raw_id))
        if payment is None:
            return None
        if payment.provider_payment_id not in (None, "", charge.id):
            return None  # the metadata names a payment of another charge: do not cross them
    if (charge.amount and charge.amount != payment.amount) or (
        charge.currency and charge.currency != payment.currency.upper()
    ):
        log.warning(
            "webhook charge does not match its payment",
            extra={"payment_id": payment.id, "charge_id": charge.id},
        )
        return None
    return payment


class Webhooks:
    """Receives the provider's events (the servicer of ReceiveWebhook delegates here)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        secret: bytes,
        *,
        tolerance_seconds: int = signatures.DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        self.db = db
        self.clock = clock
        self._secret = secret
        self.tolerance_seconds = tolerance_seconds

    def receive(self, raw: bytes, signature: str) -> bool:
        """Verify and apply one delivery; True when the event was already received (nothing was
        done again). Raises SignatureError (UNAUTHENTICATED) or InvalidArgument."""
        now = self.clock.now()
        try:
            signatures.verify(
                self._secret, signature, raw, int(now.timestamp()), self.tolerance_seconds
            )
            event = parse_event(raw)
        except (signatures.SignatureError, InvalidArgument) as exc:
            WEBHOOK_EVENTS_TOTAL.labels("unknown", REJECTED).inc()
            log.warning("webhook rejected", extra={"reason": exc.reason})
            raise
        with self.db.transaction() as s:
            outcome = self._apply(s, event, now)
        WEBHOOK_EVENTS_TOTAL.labels(_type_label(event.type), outcome).inc()
        if outcome != DUPLICATE:
            WEBHOOK_LAG_SECONDS.observe(max(0.0, (now - event.created).total_seconds()))
        log.info(
            "webhook received",
            extra={"event_id": event.id, "event_type": event.type, "outcome": outcome},
        )
        return outcome == DUPLICATE

    def _apply(self, s: Session, event: Event, now: datetime) -> str:
        inserted = s.execute(
            dialect_insert(s, WebhookEventRow)
            .values(event_id=event.id, type=event.type, created_at=event.created, received_at=now)
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        if inserted.rowcount == 0:  # type: ignore[attr-defined]
            return DUPLICATE
        charge = event.charge
        if charge is None:
            return IGNORED
        payment = _find_payment(s, charge)
        if payment is None:
            log.warning(
                "webhook for an unknown payment ignored",
                extra={"event_id": event.id, "charge_id": charge.id},
            )
            return UNKNOWN_PAYMENT
        payments.settle_charge(
            s,
            payment,
            status=charge_status(event.type, charge),
            failure_code=charge.failure_code,
            card_brand=charge.card_brand,
            card_last4=charge.card_last4,
            next_action_url=charge.next_action_url,
            amount_refunded=charge.amount_refunded,
            at=now,
            actor="provider",
            charge_id=charge.id,
        )
        return APPLIED
