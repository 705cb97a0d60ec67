"""The sandbox's state: tokens, charges, refunds and idempotency keys, in memory.

A sandbox restart loses everything (tokens, charges, pending webhook deliveries): clients
tokenise again. Every table is an LRU with a cap, so a flood of requests evicts the oldest
entries instead of exhausting memory; an evicted charge answers 404 like an unknown one. The
LRU is an OrderedDict (a dozen lines; a cache library would be a runtime dependency for the
sandbox alone).

What is stored of a card is its token's behaviour, brand and last 4 (sandboxpay/cards.py):
never the number, CVC or expiry. One lock serialises every change, so concurrent requests
with one idempotency key create exactly one charge, and state-change events are emitted (to
the webhook sender's queue) in the order the changes happened.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Generic, TypeVar

from sandboxpay.cards import CardSummary, Outcome

K = TypeVar("K")
V = TypeVar("V")

SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REQUIRES_ACTION: Final = "requires_action"
# Providers keep idempotency keys for 24 hours (../shared/domain-facts.md, Payments: "at least
# 24 h"); a key reused later starts a new request.
IDEMPOTENCY_TTL_SECONDS: Final = 24 * 3600
DEFAULT_CAPACITY: Final = 10_000


class ApiError(Exception):
    """An answer other than success: HTTP status and the provider-style error body."""

    def __init__(
        self, status: int, type_: str, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param


def missing(what: str, param: str | None = None, status: int = 404) -> ApiError:
    return ApiError(status, "invalid_request_error", "resource_missing", f"no such {what}", param)


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond `capacity` (not locked:
    the Store's lock guards it)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LRU({self.capacity}, {self._items!r})"


@dataclass(frozen=True)
class Token:
    id: str
    card: CardSummary
    created: int


@dataclass(frozen=True)
class Charge:
    id: str
    status: str
    amount: int  # minor units
    currency: str
    description: str
    metadata: dict[str, str]
    card_brand: str
    card_last4: str
    created: int
    failure_code: str = ""
    amount_refunded: int = 0


@dataclass(frozen=True)
class Refund:
    id: str
    charge_id: str
    amount: int
    status: str
    created: int


@dataclass(frozen=True)
class _Remembered:
    """What an idempotency key was first used for."""

    fingerprint: str
    result_id: str
    at: int


Emit = Callable[[str, Charge], None]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Store:
    """`emit(event_type, charge)` is called, under the lock, after every charge state change;
    it must only enqueue."""

    def __init__(self, emit: Emit, capacity: int = DEFAULT_CAPACITY) -> None:
        self.emit = emit
        self._lock = threading.Lock()
        self._tokens: LRU[str, Token] = LRU(capacity)
        self._charges: LRU[str, Charge] = LRU(capacity)
        self._refunds: LRU[str, Refund] = LRU(capacity)
        self._keys: LRU[tuple[str, str], _Remembered] = LRU(capacity)

    def add_token(self, card: CardSummary, now: int) -> Token:
        token = Token(new_id("tok"), card, now)
        with self._lock:
            self._tokens.put(token.id, token)
        return token

    def _remembered(self, scope: str, key: str, fingerprint: str, now: int) -> str | None:
        """The id the key first produced, None for a new (or expired) key; 409 when the key
        came with other parameters."""
        seen = self._keys.get((scope, key))
        if seen is None or now - seen.at > IDEMPOTENCY_TTL_SECONDS:
            return None
        if seen.fingerprint != fingerprint:
            raise ApiError(
                409,
                "idempotency_error",
                "idempotency_key_in_use",
                "this Idempotency-Key was used with other parameters",
            )
        return seen.result_id

    def create_charge(
        self,
        *,
        key: str,
        fingerprint: str,
        token_id: str,
        amount: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
        now: int,
    ) -> tuple[Charge, bool]:
        """(the charge, whether this call created it). Same key + same body: the first charge."""
        with self._lock:
            first = self._remembered("charge", key, fingerprint, now)
            if first is not None and (existing := self._charges.get(first)) is not None:
                return existing, False
            token = self._tokens.get(token_id)
            if token is None:
                raise missing("payment method", "payment_method_token", status=400)
            outcome = token.card.behaviour.outcome
            status = {
                Outcome.SUCCEED: SUCCEEDED,
                Outcome.DECLINE: FAILED,
                Outcome.REQUIRE_AUTH: REQUIRES_ACTION,
            }[outcome]
            charge = Charge(
                id=new_id("ch"),
                status=status,
                amount=amount,
                currency=currency,
                description=description,
                metadata=dict(metadata),
                card_brand=token.card.brand,
                card_last4=token.card.last4,
                created=now,
                failure_code=token.card.behaviour.failure_code,
            )
            self._charges.put(charge.id, charge)
            self._keys.put(("charge", key), _Remembered(fingerprint, charge.id, now))
            self.emit(f"charge.{status}", charge)
            return charge, True

    def get_charge(self, charge_id: str) -> Charge:
        with self._lock:
            charge = self._charges.get(charge_id)
        if charge is None:
            raise missing("charge")
        return charge

    def confirm(self, charge_id: str) -> Charge:
        """The cardholder authenticated: requires_action -> succeeded (again: no change)."""
        with self._lock:
            charge = self._charges.get(charge_id)
            if charge is None:
                raise missing("charge")
            if charge.status == SUCCEEDED:
                return charge
            if charge.status != REQUIRES_ACTION:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    "charge_unexpected_state",
                    f"a {charge.status} charge cannot be confirmed",
                )
            confirmed = replace(charge, status=SUCCEEDED)
            self._charges.put(charge_id, confirmed)
            self.emit("charge.succeeded", confirmed)
            return confirmed

    def refund(
        self, *, key: str, fingerprint: str, charge_id: str, amount: int | None, now: int
    ) -> tuple[Refund, bool]:
        """Refund `amount` (None: what remains) of a succeeded charge."""
        with self._lock:
            first = self._remembered("refund", key, fingerprint, now)
            if first is not None and (existing := self._refunds.get(first)) is not None:
                return existing, False
            charge = self._charges.get(charge_id)
            if charge is None:
                raise missing("charge", "charge_id", status=400)
            if charge.status != SUCCEEDED:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    "charge_not_refundable",
                    f"a {charge.status} charge cannot be refunded",
                    "charge_id",
                )
            remaining = charge.amount - charge.amount_refunded
            if remaining == 0:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    "charge_already_refunded",
                    "the charge is already fully refunded",
                    "charge_id",
                )
            amount = remaining if amount is None else amount
            if amount > remaining:
                raise ApiError(
                    400,
                    "invalid_request_error",
                    "amount_too_large",
                    f"amount exceeds what remains to refund ({remaining})",
                    "amount",
                )
            refund = Refund(new_id("re"), charge_id, amount, SUCCEEDED, now)
            refunded = replace(charge, amount_refunded=charge.amount_refunded + amount)
            self._refunds.put(refund.id, refund)
            self._charges.put(charge_id, refunded)
            self._keys.put(("refund", key), _Remembered(fingerprint, refund.id, now))
            self.emit("charge.refunded", refunded)
            return refund, True

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {
                "tokens": len(self._tokens),
                "charges": len(self._charges),
                "refunds": len(self._refunds),
                "idempotency_keys": len(self._keys),
            }
