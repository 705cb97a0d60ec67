"""A payment provider double for billing's tests (billing.provider.PaymentProvider), behaving
like the sandbox's test cards, honouring idempotency keys and counting the charges it made.

Tokens: "tok_visa" succeeds, "tok_chargeDeclined" is declined (card_declined),
"tok_insufficient" fails with insufficient_funds, "tok_3ds" requires authentication (until
`confirm`); any other token is unknown. `down = True` makes every call a ProviderError.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

from billing.provider import (
    FAILED,
    REQUIRES_ACTION,
    SUCCEEDED,
    Charge,
    ProviderError,
    Refund,
    UnknownPaymentMethod,
)

CARDS = {
    "tok_visa": (SUCCEEDED, "", "visa", "4242"),
    "tok_chargeDeclined": (FAILED, "card_declined", "visa", "0002"),
    "tok_insufficient": (FAILED, "insufficient_funds", "visa", "9995"),
    "tok_3ds": (REQUIRES_ACTION, "", "visa", "3155"),
}


class FakeProvider:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.down = False
        self._lock = threading.Lock()
        self._by_key: dict[str, Charge] = {}
        self._charges: dict[str, Charge] = {}
        self._refunds: dict[str, Refund] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.calls = 0

    @property
    def charge_count(self) -> int:
        """Charges actually made (calls replayed by an idempotency key are not charges)."""
        with self._lock:
            return len(self._charges)

    def charge(
        self,
        *,
        payment_method_token: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
        metadata: dict[str, str],
    ) -> Charge:
        with self._lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            raise ProviderError("provider unreachable")
        with self._lock:
            if idempotency_key in self._by_key:
                return self._charges[self._by_key[idempotency_key].id]
            card = CARDS.get(payment_method_token)
            if card is None:
                raise UnknownPaymentMethod(payment_method_token)
            status, code, brand, last4 = card
            charge_id = f"ch_{uuid.uuid4().hex[:20]}"  # unique across test runs
            charge = Charge(
                id=charge_id,
                status=status,
                amount=amount,
                currency=currency,
                card_brand=brand,
                card_last4=last4,
                failure_code=code,
                next_action_url=(
                    f"http://sandbox.test/v1/charges/{charge_id}/confirm"
                    if status == REQUIRES_ACTION
                    else ""
                ),
            )
            self._by_key[idempotency_key] = charge
            self._charges[charge_id] = charge
            self.metadata[charge_id] = dict(metadata)
            return charge

    def confirm(self, charge_id: str) -> Charge:
        """The cardholder authenticated (3-D Secure): the charge succeeds."""
        with self._lock:
            charge = replace(self._charges[charge_id], status=SUCCEEDED, next_action_url="")
            self._charges[charge_id] = charge
            return charge

    def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> Refund:
        if self.down:
            raise ProviderError("provider unreachable")
        with self._lock:
            if idempotency_key in self._refunds:
                return self._refunds[idempotency_key]
            refund = Refund(f"re_{uuid.uuid4().hex[:20]}", charge_id, amount, SUCCEEDED)
            self._refunds[idempotency_key] = refund
            return refund

    def get_charge(self, charge_id: str) -> Charge:
        with self._lock:
            return self._charges[charge_id]
