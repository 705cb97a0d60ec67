"""Webhook deliveries: every charge state change becomes a signed event POSTed to billing,
at least once, by one background thread.

- Signed with `billing.domain.signatures.sign` (the format billing verifies), anew on every
  attempt: a retry hours later carries a fresh timestamp and still passes the 5-minute tolerance.
- Retried on any non-2xx answer (redirects included: they are not followed) or connection
  error, with exponential back-off (1 s, 2 s, 4 s ... capped) up to a number of attempts, then
  given up (logged). Real providers do the same for up to days; the defaults here span ~1 h.
- The queue is bounded: beyond its capacity a new event is dropped and logged rather than
  growing without limit. Pending deliveries live in memory: a sandbox restart loses them.
- Chaos (tests): an event is sometimes delivered twice and sometimes held back so a later one
  overtakes it, as real providers do. The choices come from a seeded RNG, one decision per event
  in emit order, so a test that knows the seed knows which events are affected (`Chaos.decide`).

One delivery thread keeps it simple and deterministic; a receiver that hangs holds the queue
for at most the request timeout per attempt. A hand-written scheduler (a heap and a condition
variable, ~60 lines) because the stdlib has none with delays and no dependency is needed.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from billing.domain.signatures import sign
from sandboxpay.store import Charge, new_id

log = logging.getLogger("sandboxpay.webhooks")

SIGNATURE_HEADER: Final = "Provider-Signature"
USER_AGENT: Final = "fitco-sandboxpay/1"


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 1.0
    max_delay_seconds: float = 300.0
    # 1+2+4+...+256 s, then every 5 minutes: about an hour and a half in all.
    max_attempts: int = 16

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after the `failed_attempts`-th failure."""
        return float(min(self.base_seconds * 2 ** (failed_attempts - 1), self.max_delay_seconds))


@dataclass(frozen=True)
class Decision:
    duplicate: bool
    hold: bool


class Chaos:
    """Seeded misbehaviour: `decide()` draws once per event, in emit order."""

    def __init__(
        self,
        seed: int,
        duplicate_rate: float = 0.2,
        hold_rate: float = 0.2,
        hold_seconds: float = 2.0,
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - test chaos, not security
        self.duplicate_rate = duplicate_rate
        self.hold_rate = hold_rate
        self.hold_seconds = hold_seconds

    def decide(self) -> Decision:
        duplicate = self._rng.random() < self.duplicate_rate
        hold = self._rng.random() < self.hold_rate
        return Decision(duplicate, hold)


def event_charge(charge: Charge) -> dict[str, Any]:
    """The charge as events carry it (the shape billing parses)."""
    return {
        "id": charge.id,
        "status": charge.status,
        "amount": charge.amount,
        "currency": charge.currency,
        "amount_refunded": charge.amount_refunded,
        "failure_code": charge.failure_code or None,
        "card_brand": charge.card_brand,
        "card_last4": charge.card_last4,
        "metadata": dict(charge.metadata),
    }


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    event_id: str = field(compare=False)
    event_type: str = field(compare=False)
    body: bytes = field(compare=False)
    failures: int = field(default=0, compare=False)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # a 3xx is a failed delivery (HTTPError), retried like any other


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: bytes,
        now: Callable[[], int],
        *,
        policy: RetryPolicy | None = None,
        chaos: Chaos | None = None,
        capacity: int = 10_000,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._secret = secret
        self._now = now
        self.policy = policy or RetryPolicy()
        self._chaos = chaos
        self.capacity = capacity
        self.timeout = timeout
        self._heap: list[_Delivery] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._drain_until: float | None = None
        self._thread = threading.Thread(target=self._run, name="sandboxpay-webhooks", daemon=True)
        # An explicit empty ProxyHandler: environment proxies never see billing's webhooks.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        self.delivered = 0
        self.given_up = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def emit(self, event_type: str, charge: Charge) -> None:
        """Queue an event for `charge`'s new state (never blocks on the network)."""
        event = {
            "id": new_id("evt"),
            "type": event_type,
            "created": self._now(),
            "data": {"charge": event_charge(charge)},
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        with self._cond:
            decision = self._chaos.decide() if self._chaos else Decision(False, False)
            copies = 2 if decision.duplicate else 1
            if len(self._heap) + copies > self.capacity:
                self.dropped += 1
                log.error(
                    "webhook queue full, event dropped",
                    extra={"event_id": event["id"], "event_type": event_type},
                )
                return
            due = time.monotonic()
            if decision.hold and self._chaos is not None:
                due += self._chaos.hold_seconds
            for copy in range(copies):
                # A duplicate follows its original shortly (both carry the same event id).
                self._push(_Delivery(due + 0.05 * copy, 0, str(event["id"]), event_type, body))
            self._cond.notify()
        log.info(
            "webhook queued",
            extra={
                "event_id": event["id"],
                "event_type": event_type,
                "charge_id": charge.id,
                "chaos_duplicate": decision.duplicate,
                "chaos_hold": decision.hold,
            },
        )

    def _push(self, delivery: _Delivery) -> None:
        self._seq += 1
        delivery.seq = self._seq
        heapq.heappush(self._heap, delivery)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self, flush_seconds: float = 2.0) -> None:
        """Deliver what falls due within `flush_seconds`, then stop; the rest is lost."""
        with self._cond:
            self._drain_until = time.monotonic() + flush_seconds
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(flush_seconds + self.timeout + 1.0)
        lost = self.pending()
        if lost:
            log.warning("webhook deliveries lost at shutdown", extra={"pending": lost})

    def _next(self) -> _Delivery | None:
        """The next due delivery, waiting for it; None when it is time to stop."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._drain_until is not None and (
                    now >= self._drain_until
                    or not self._heap
                    or self._heap[0].due > self._drain_until
                ):
                    return None
                if self._heap and self._heap[0].due <= now:
                    return heapq.heappop(self._heap)
                self._cond.wait(self._heap[0].due - now if self._heap else None)

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            status = self._post(delivery)
            extra = {
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "attempt": delivery.failures + 1,
                "status": status,
            }
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                log.info("webhook delivered", extra=extra)
                continue
            delivery.failures += 1
            if delivery.failures >= self.policy.max_attempts:
                self.given_up += 1
                log.error("webhook given up", extra=extra)
                continue
            delay = self.policy.delay(delivery.failures)
            log.warning("webhook failed, retrying", extra={**extra, "retry_in": delay})
            with self._cond:
                delivery.due = time.monotonic() + delay
                self._push(delivery)

    def _post(self, delivery: _Delivery) -> int | None:
        """The receiver's HTTP status, None when it could not be reached."""
        request = urllib.request.Request(  # noqa: S310 - the URL is configuration, http(s) only
            self.url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: sign(self._secret, self._now(), delivery.body),
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(4096)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (OSError, ValueError) as exc:
            log.warning(
                "webhook receiver unreachable",
                extra={"event_id": delivery.event_id, "error": type(exc).__name__},
            )
            return None
