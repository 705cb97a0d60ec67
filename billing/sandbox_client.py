"""`SandboxProvider`: billing's `PaymentProvider` over the sandbox's HTTP API (sandboxpay/).

Stdlib `urllib.request` (no HTTP client is a runtime dependency, and billing makes one call per
payment): a timeout on every call, the API key as a bearer token, billing's idempotency key
forwarded as `Idempotency-Key` so a retried call never charges twice. Environment proxies are
ignored (the provider is reached directly) and redirects are not followed.

Failures are classified for billing:
- a card's decline is not an error: a `Charge` with status failed and its failure_code;
- a payment-method token the provider does not have or refuses as malformed (a 400 on its
  `payment_method_token` parameter, e.g. `resource_missing`, or `parameter_invalid` for one
  longer than its ids) -> UnknownPaymentMethod: the caller's token is wrong, the provider is
  fine (a ProviderError would tell the caller to retry a request that cannot succeed);
- everything else (connection errors, timeouts, 5xx, 401, 409 idempotency conflicts, a refund
  the provider refuses, an answer that is not the expected JSON) -> ProviderError, whose
  message names the provider's error code but never echoes a secret.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any, Final
from urllib.parse import quote

from billing.provider import Charge, ProviderError, Refund, UnknownPaymentMethod

log = logging.getLogger("billing.provider")

# An answer larger than this is not one of the provider's (a charge is well under 2 KiB).
MAX_RESPONSE_BYTES: Final = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class SandboxProvider:
    def __init__(self, base_url: str, api_key: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)

    def __repr__(self) -> str:  # never the API key
        return f"SandboxProvider({self.base_url!r})"

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
        body = {
            "payment_method_token": payment_method_token,
            "amount": amount,
            "currency": currency,
            "description": description,
            "metadata": metadata,
        }
        status, answer = self._call("POST", "/v1/charges", body, idempotency_key)
        if status == 400 and _param(answer) == "payment_method_token":
            raise UnknownPaymentMethod("the payment method does not exist at the provider")
        return _charge(self._expect(status, answer, "charge"))

    def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> Refund:
        body = {"charge_id": charge_id, "amount": amount}
        status, answer = self._call("POST", "/v1/refunds", body, idempotency_key)
        data = self._expect(status, answer, "refund")
        try:
            return Refund(
                id=str(data["id"]),
                charge_id=str(data["charge_id"]),
                amount=_int(data["amount"]),
                status=str(data["status"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError("the provider's refund is malformed") from exc

    def get_charge(self, charge_id: str) -> Charge:
        status, answer = self._call("GET", f"/v1/charges/{quote(charge_id, safe='')}")
        return _charge(self._expect(status, answer, "charge lookup"))

    @staticmethod
    def _expect(status: int, answer: dict[str, Any], what: str) -> dict[str, Any]:
        if status == 200:
            return answer
        code = _code(answer) or "unknown"
        log.warning("provider refused", extra={"what": what, "status": status, "code": code})
        raise ProviderError(f"the provider refused the {what}: HTTP {status} {code}")

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON object) of a call that reached the provider with an answer below
        500; ProviderError for anything else."""
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(  # noqa: S310 - base_url is configuration (http/https)
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = int(response.status), response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = int(exc.code), exc.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
            log.warning("provider unreachable", extra={"error": type(exc).__name__})
            raise ProviderError("the payment provider is unreachable") from exc
        if status >= 500:
            raise ProviderError(f"the payment provider failed: HTTP {status}")
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ProviderError("the provider's answer is too large")
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise ProviderError(f"the provider's answer is not JSON: HTTP {status}") from exc
        if not isinstance(answer, dict):
            raise ProviderError(f"the provider's answer is not a JSON object: HTTP {status}")
        return status, answer


def _code(answer: dict[str, Any]) -> str:
    error = answer.get("error")
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def _param(answer: dict[str, Any]) -> str:
    """The request parameter an error is about ("" when none is named)."""
    error = answer.get("error")
    return str(error.get("param") or "") if isinstance(error, dict) else ""


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


def _charge(data: dict[str, Any]) -> Charge:
    try:
        next_action = data.get("next_action")
        return Charge(
            id=str(data["id"]),
            status=str(data["status"]),
            amount=_int(data["amount"]),
            currency=str(data["currency"]),
            card_brand=str(data.get("card_brand") or ""),
            card_last4=str(data.get("card_last4") or ""),
            failure_code=str(data.get("failure_code") or ""),
            next_action_url=str(next_action.get("url") or "") if next_action else "",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderError("the provider's charge is malformed") from exc
