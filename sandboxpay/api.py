"""The sandbox's endpoints, HTTP-free: a parsed request in, (status, JSON object) out.

Routes (sandboxpay/server.py does the HTTP, auth and limits):
  GET  /health                         public
  POST /v1/tokens                      public: client-side tokenisation, the only place a card
                                       number is seen (sandboxpay/cards.py)
  POST /v1/charges                     API key + Idempotency-Key
  GET  /v1/charges/{id}                API key
  POST /v1/charges/{id}/confirm        public: the cardholder's authentication step
  POST /v1/refunds                     API key + Idempotency-Key

Requests are strict (unknown fields, wrong types and out-of-range values are 400 with the
offending `param`), like real providers, so a client's mistake shows up in the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fitcore.clock import Clock
from sandboxpay.cards import CardError, inspect
from sandboxpay.store import REQUIRES_ACTION, ApiError, Charge, Refund, Store
from sandboxpay.webhooks import event_charge

log = logging.getLogger("sandboxpay.api")

# Limits in the spirit of real providers' (Stripe: amounts up to 8 digits, metadata 50 keys of
# 40 characters with values of 500).
MAX_AMOUNT: Final = 99_999_999
MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_CHARS: Final = 40
MAX_METADATA_VALUE_CHARS: Final = 500
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_ID_CHARS: Final = 64
_CURRENCY = re.compile(r"[A-Za-z]{3}")
# Printable ASCII without spaces at the ends; a UUID or any client-chosen string fits.
_IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]{0,253}[!-~])?")

Response = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Request:
    params: tuple[str, ...]  # the path's captured ids
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (an empty body is `{}`); 400 when it is anything else."""
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid("malformed_json", "the body is not valid JSON") from exc
        if not isinstance(value, dict):
            raise invalid("malformed_json", "the body must be a JSON object")
        return value

    def idempotency_key(self) -> str:
        key = self.headers.get("idempotency-key")
        if key is None:
            raise invalid("idempotency_key_missing", "the Idempotency-Key header is required")
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise invalid("idempotency_key_invalid", "Idempotency-Key: 1-255 printable chars")
        return key


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def invalid(code: str, message: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", code, message, param)


def _fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for name in body:
        if name not in allowed:
            raise invalid("parameter_unknown", f"unknown field {name[:40]!r}", name[:40])


def _int(body: dict[str, Any], name: str, lowest: int, highest: int) -> int:
    value = body.get(name)
    if value is None:
        raise invalid("parameter_missing", f"{name} is required", name)
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise invalid("parameter_invalid", f"{name} must be an integer {lowest}..{highest}", name)
    return value


def _str(body: dict[str, Any], name: str, max_chars: int, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if value is None or value == "":
        raise invalid("parameter_missing", f"{name} is required", name)
    if not isinstance(value, str) or len(value) > max_chars:
        raise invalid("parameter_invalid", f"{name} must be a string of <= {max_chars}", name)
    return value


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise invalid(
            "parameter_invalid", f"metadata: an object of <= {MAX_METADATA_KEYS} keys", "metadata"
        )
    for key, item in value.items():
        if not 0 < len(key) <= MAX_METADATA_KEY_CHARS or not isinstance(item, str):
            raise invalid("parameter_invalid", "metadata keys and values are strings", "metadata")
        if len(item) > MAX_METADATA_VALUE_CHARS:
            raise invalid("parameter_invalid", "a metadata value is too long", "metadata")
    return dict(value)


def fingerprint(body: dict[str, Any]) -> str:
    """What makes two requests with one idempotency key "the same": their parsed bodies."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def charge_json(charge: Charge, base_url: str) -> dict[str, Any]:
    """The charge as the API answers it: what events carry, and its description, creation
    time and the next action a 3-D Secure charge waits for."""
    next_action = None
    if charge.status == REQUIRES_ACTION:
        url = f"{base_url}/v1/charges/{charge.id}/confirm"
        next_action = {"type": "authenticate", "url": url}
    return {
        **event_charge(charge),
        "description": charge.description,
        "created": charge.created,
        "next_action": next_action,
    }


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "charge_id": refund.charge_id,
        "amount": refund.amount,
        "status": refund.status,
        "created": refund.created,
    }


class Api:
    def __init__(self, store: Store, clock: Clock, base_url: Callable[[], str]) -> None:
        self.store = store
        self.clock = clock
        self.base_url = base_url

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def health(self, _request: Request) -> Response:
        return 200, {"status": "ok"}

    def create_token(self, request: Request) -> Response:
        body = request.json()
        _fields(body, ("card_number", "exp_month", "exp_year", "cvc"))
        try:
            card = inspect(
                body.get("card_number"),
                body.get("exp_month"),
                body.get("exp_year"),
                body.get("cvc"),
                self.clock.now().date(),
            )
        except CardError as exc:
            raise ApiError(400, "card_error", exc.code, exc.message, exc.param) from None
        token = self.store.add_token(card, self._now())
        log.info("card tokenised", extra={"token": token.id, "last4": card.last4})
        return 200, {"token": token.id, "brand": card.brand, "last4": card.last4}

    def create_charge(self, request: Request) -> Response:
        key = request.idempotency_key()
        body = request.json()
        _fields(body, ("payment_method_token", "amount", "currency", "description", "metadata"))
        currency = _str(body, "currency", 3)
        if not _CURRENCY.fullmatch(currency):
            raise invalid("parameter_invalid", "currency: a 3-letter ISO 4217 code", "currency")
        charge, created = self.store.create_charge(
            key=key,
            fingerprint=fingerprint(body),
            token_id=_str(body, "payment_method_token", MAX_ID_CHARS),
            amount=_int(body, "amount", 1, MAX_AMOUNT),
            currency=currency.upper(),
            description=_str(body, "description", MAX_DESCRIPTION_CHARS, required=False),
            metadata=_metadata(body),
            now=self._now(),
        )
        log.info(
            "charge created" if created else "charge replayed",
            extra={"charge_id": charge.id, "status": charge.status, "last4": charge.card_last4},
        )
        return 200, charge_json(charge, self.base_url())

    def get_charge(self, request: Request) -> Response:
        return 200, charge_json(self.store.get_charge(request.params[0]), self.base_url())

    def confirm_charge(self, request: Request) -> Response:
        charge = self.store.confirm(request.params[0])
        log.info("charge confirmed", extra={"charge_id": charge.id, "status": charge.status})
        return 200, charge_json(charge, self.base_url())

    def create_refund(self, request: Request) -> Response:
        key = request.idempotency_key()
        body = request.json()
        _fields(body, ("charge_id", "amount"))
        amount = _int(body, "amount", 1, MAX_AMOUNT) if body.get("amount") is not None else None
        refund, created = self.store.refund(
            key=key,
            fingerprint=fingerprint(body),
            charge_id=_str(body, "charge_id", MAX_ID_CHARS),
            amount=amount,
            now=self._now(),
        )
        log.info(
            "refund created" if created else "refund replayed",
            extra={"refund_id": refund.id, "charge_id": refund.charge_id, "amount": refund.amount},
        )
        return 200, refund_json(refund)
