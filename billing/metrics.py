"""Billing's Prometheus metrics, in one place (served on the service's metrics port with the
shared RPC metrics of fitcore.interceptor).

- `fitco_billing_payments_total{kind,status}`: payments reaching a status (checkout or renewal;
  requires_action, succeeded, failed, refunded, partially_refunded), counted once per change
  by billing.domain.payments.settle_charge, whoever reported it (the provider's synchronous
  answer or a webhook).
- `fitco_billing_webhook_events_total{type,outcome}` and `fitco_billing_webhook_lag_seconds`:
  provider events received (applied, duplicate, ignored, rejected) and how long after the
  provider created them they arrived (for billing.domain.webhooks).
- `fitco_billing_idempotent_replays_total{outcome}`: checkouts answered from a stored answer
  (replayed, in_progress, reused_key).
- `fitco_billing_orphan_payments_total`: a charge that succeeded for a subscription that was
  already canceled (it needs a refund by an admin; logged with its payment id).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PAYMENTS_TOTAL = Counter(
    "fitco_billing_payments_total", "Payments reaching a status", ["kind", "status"]
)
WEBHOOK_EVENTS_TOTAL = Counter(
    "fitco_billing_webhook_events_total", "Provider webhook events received", ["type", "outcome"]
)
WEBHOOK_LAG_SECONDS = Histogram(
    "fitco_billing_webhook_lag_seconds",
    "Seconds between the provider creating an event and billing receiving it",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
IDEMPOTENT_REPLAYS_TOTAL = Counter(
    "fitco_billing_idempotent_replays_total",
    "Checkouts answered from their Idempotency-Key instead of running",
    ["outcome"],
)
ORPHAN_PAYMENTS_TOTAL = Counter(
    "fitco_billing_orphan_payments_total",
    "Charges that succeeded for a subscription already canceled (refund them)",
)
