"""A sandbox payment provider: a separate local process with a payment provider's semantics
(card tokenisation, charges with the usual test cards, refunds, idempotency keys, signed
webhooks delivered at least once), so billing can be developed and tested end to end without a
card network. Billing reaches it only through `billing.provider.PaymentProvider`
(`billing/sandbox_client.py`), so a real provider can replace it without touching billing logic.

State is in memory (a restart loses tokens, charges and pending webhooks). Run it with
`python -m sandboxpay serve`; see sandboxpay/server.py for its configuration.
"""
