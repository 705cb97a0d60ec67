"""The payment provider, as billing sees it: an interface, so a real provider can replace the
local sandbox (billing/sandbox_client.py, process `sandboxpay`) without touching billing logic.

Cards never reach billing: clients tokenise them at the provider (POST /v1/tokens) and send
the token; the provider answers charges with the card's brand and last 4 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Charge statuses, as providers commonly name them.
SUCCEEDED = "succeeded"
FAILED = "failed"
REQUIRES_ACTION = "requires_action"


@dataclass(frozen=True)
class Charge:
    id: str
    status: str  # succeeded | failed | requires_action
    amount: int  # minor units
    currency: str
    card_brand: str
    card_last4: str
    failure_code: str = ""  # card_declined | insufficient_funds | ... when failed
    # Where the cardholder confirms a payment that requires authentication.
    next_action_url: str = ""


@dataclass(frozen=True)
class Refund:
    id: str
    charge_id: str
    amount: int
    status: str  # succeeded | failed


class ProviderError(Exception):
    """The provider could not be reached or answered an error that is not a card's decline
    (billing answers UNAVAILABLE; the same idempotency key can be retried)."""


class UnknownPaymentMethod(Exception):
    """The payment-method token does not exist at the provider (a client error)."""


class PaymentProvider(Protocol):
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
        """Charge the card behind the token. Same idempotency_key -> the same charge (the
        provider's own idempotency), so a retried call never charges twice. A decline is a
        Charge with status failed (not an exception)."""
        ...

    def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> Refund: ...

    def get_charge(self, charge_id: str) -> Charge: ...
