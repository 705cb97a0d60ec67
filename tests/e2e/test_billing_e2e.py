"""Premium end to end (issue #11, "Done when"), through Envoy's JSON API and the sandbox payment
provider's HTTP API, on a mesh of its own: every test card through checkout, one charge for 20
concurrent duplicates, forged / replayed / stale webhooks refused, events out of order, a
failed renewal going past_due then canceled, the WOD growing from 6 to 9 exercises after paying
and back after the period ends, billing's metrics, and no card number left anywhere.

The sandbox runs with FITCO_SANDBOX_WEBHOOK_CHAOS (its webhooks are duplicated and held back at
random, so they arrive late and out of order), and the test clock moves whole months.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from billing.domain.signatures import sign
from devtools.ports import free_port
from tests.e2e.conftest import RunningMesh, e2e_config, running_mesh
from tests.e2e.harness import JsonClient, Response, TestClock, User, register

pytestmark = pytest.mark.e2e

SUCCEEDS = "4242 4242 4242 4242"
DECLINED = "4000000000000002"
NO_FUNDS = "4000-0000-0000-9995"
NEEDS_AUTH = "4000002500003155"
CARDS = (SUCCEEDS, DECLINED, NO_FUNDS, NEEDS_AUTH)
MONTHLY = "premium_monthly"
FREE_WOD, PREMIUM_WOD = 6, 9
# How long the coach and the monolith keep a user's entitlements (FITCO_ENTITLEMENTS_TTL_SECONDS).
ENTITLEMENTS_TTL = 2.0


@pytest.fixture(scope="module")
def bm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    data: Path = tmp_path_factory.mktemp("billing-mesh")
    clock = TestClock(data / "clock-offset")
    config = e2e_config(
        data,
        clock,
        f"sqlite:///{data / 'fitco.db'}",
        FITCO_SANDBOX_WEBHOOK_CHAOS="true",
        FITCO_SANDBOX_WEBHOOK_CHAOS_SEED="11",
        FITCO_ENTITLEMENTS_TTL_SECONDS=str(ENTITLEMENTS_TTL),
    )
    with running_mesh(replace(config, billing_metrics_port=free_port()), clock) as m:
        yield m


# -- helpers -----------------------------------------------------------------------------


def tokenise(m: RunningMesh, number: str) -> str:
    """A card token from the sandbox (the only place a card number is ever sent)."""
    card = {"card_number": number, "exp_month": 12, "exp_year": 2039, "cvc": "123"}
    r = m.sandbox().post("/v1/tokens", card)
    assert r.status == 200, r.body
    assert r.body["last4"] == number[-4:]
    return str(r.body["token"])


def checkout(
    c: JsonClient, user: User, token: str, key: str | None = None, plan: str = MONTHLY
) -> Response:
    headers = {} if key == "" else {"idempotency-key": key or f"e2e-{uuid.uuid4().hex}"}
    body = {"plan_id": plan, "payment_method_token": token}
    return c.post("/v1/billing/checkout", body, token=user.token, headers=headers)


def subscription(c: JsonClient, user: User) -> dict[str, Any]:
    r = c.get("/v1/subscription", token=user.token)
    assert r.status == 200, r.body
    return dict(r.body)


def reason(r: Response) -> str:
    return next((d.get("reason", "") for d in r.body.get("details", []) if "reason" in d), "")


def eventually(check: Callable[[], bool], seconds: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        time.sleep(0.2)


def wod_size(c: JsonClient, user: User) -> int:
    r = c.get("/v1/wod", token=user.token)
    assert r.status == 200, r.body
    return len(r.body["exercises"])


def webhook_secret(m: RunningMesh) -> bytes:
    return (m.mesh.config.data_dir / "keys" / "webhook_secret").read_bytes().strip()


def post_event(
    m: RunningMesh, event: dict[str, Any], at: int, secret: bytes | None = None
) -> Response:
    """Deliver an event as the provider would (through Envoy), signed at unix time `at`."""
    raw = json.dumps(event).encode()
    signature = sign(webhook_secret(m) if secret is None else secret, at, raw)
    return m.client().post(
        "/v1/billing/webhooks",
        raw=raw,
        headers={"content-type": "application/json", "provider-signature": signature},
    )


def now(m: RunningMesh) -> int:
    return int(m.clock.now().timestamp())


def metrics(m: RunningMesh) -> dict[str, float]:
    url = f"http://127.0.0.1:{m.mesh.config.billing_metrics}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def move_clock(m: RunningMesh, days: int = 0, seconds: float = 0.0) -> None:
    """Move every service's clock (the sandbox's too: it signs its webhooks with it)."""
    m.clock.offset += days * 86400 + seconds
    m.clock.path.write_text(str(m.clock.offset))
    time.sleep(0.1)


# -- at the edge -------------------------------------------------------------------------------


def test_billing_at_the_edge_over_grpc_and_reflection(bm: RunningMesh) -> None:
    """Native gRPC through Envoy reaches billing; reflection at the edge (served by the
    monolith) describes BillingService; the internal GetEntitlements is not routed."""
    with grpc.insecure_channel(f"{bm.host}:{bm.port}") as ch:
        plans = billing_pb2_grpc.BillingServiceStub(ch).ListPlans(
            billing_pb2.ListPlansRequest(), timeout=5
        )
        assert {p.id for p in plans.plans} == {"free", MONTHLY, "premium_yearly"}
        with pytest.raises(grpc.RpcError) as refused:
            billing_pb2_grpc.BillingServiceStub(ch).GetEntitlements(
                billing_pb2.GetEntitlementsRequest(), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        asks = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="fitco.billing.v1.BillingService"
            ),
        ]
        listed, described = stub.ServerReflectionInfo(iter(asks), timeout=10)
    names = {s.name for s in listed.list_services_response.service}
    assert "fitco.billing.v1.BillingService" in names
    assert described.file_descriptor_response.file_descriptor_proto


# -- checkout with each test card -----------------------------------------------------------


def test_plans_are_public_in_minor_units(bm: RunningMesh) -> None:
    r = bm.client().get("/v1/plans")
    assert r.status == 200, r.body
    plans = {p["id"]: p for p in r.body["plans"]}
    assert set(plans) == {"free", MONTHLY, "premium_yearly"}
    assert plans[MONTHLY]["currency"] == "EUR" and int(plans[MONTHLY]["amount"]) > 0
    assert int(plans["free"]["amount"]) == 0


def test_a_card_that_succeeds_makes_the_user_premium(bm: RunningMesh) -> None:
    c = bm.client()
    user = register(c)
    assert subscription(c, user)["entitlements"]["premium"] is False
    r = checkout(c, user, tokenise(bm, SUCCEEDS))
    assert r.status == 200, r.body
    sub, payment = r.body["subscription"], r.body["payment"]
    assert (sub["status"], sub["plan_id"], sub["card_last4"]) == ("active", MONTHLY, "4242")
    assert sub["current_period_end"]
    assert (payment["status"], payment["card_brand"], payment["card_last4"]) == (
        "succeeded",
        "visa",
        "4242",
    )
    assert int(payment["amount"]) == 999 and payment["currency"] == "EUR"
    assert r.body["entitlements"]["premium"] is True
    assert r.body["entitlements"]["wod_exercises"] == PREMIUM_WOD
    state = subscription(c, user)
    assert state["subscription"]["status"] == "active"
    assert [p["status"] for p in state["payments"]] == ["succeeded"]
    # No more of the card than brand and last 4 in any answer.
    assert "4242424242424242" not in json.dumps([r.body, state])


@pytest.mark.parametrize(
    ("card", "why"), [(DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds")]
)
def test_a_refused_card_answers_400_with_the_reason_and_leaves_the_free_plan(
    bm: RunningMesh, card: str, why: str
) -> None:
    c = bm.client()
    user = register(c)
    r = checkout(c, user, tokenise(bm, card))
    assert r.status == 400, r.body
    assert reason(r) == why, r.body
    state = subscription(c, user)
    assert state["entitlements"]["premium"] is False
    assert state["entitlements"]["plan_id"] == "free"
    assert state["entitlements"]["wod_exercises"] == FREE_WOD
    assert state["subscription"]["status"] in ("none", "incomplete", "canceled")


def test_a_card_that_needs_authentication_is_active_after_the_confirmation(
    bm: RunningMesh,
) -> None:
    c = bm.client()
    user = register(c)
    r = checkout(c, user, tokenise(bm, NEEDS_AUTH))
    assert r.status == 200, r.body
    assert r.body["subscription"]["status"] == "incomplete"
    assert r.body["payment"]["status"] == "requires_action"
    assert r.body["entitlements"]["premium"] is False
    action = r.body["payment"]["next_action"]
    assert action["type"] == "authenticate"
    # The cardholder confirms at the provider; its webhook (late, maybe twice) makes it active.
    confirmed = bm.sandbox().post(urlsplit(action["url"]).path)
    assert confirmed.status == 200, confirmed.body
    assert confirmed.body["status"] == "succeeded"
    eventually(
        lambda: subscription(c, user)["subscription"]["status"] == "active",
        what="the webhook activates the subscription",
    )
    state = subscription(c, user)
    assert state["entitlements"]["premium"] is True
    assert [p["status"] for p in state["payments"]] == ["succeeded"]


def test_checkout_needs_an_idempotency_key(bm: RunningMesh) -> None:
    c = bm.client()
    user = register(c)
    r = checkout(c, user, tokenise(bm, SUCCEEDS), key="")
    assert r.status == 400, r.body
    assert subscription(c, user)["entitlements"]["premium"] is False


# -- idempotency ---------------------------------------------------------------------------


def test_twenty_concurrent_checkouts_with_one_key_charge_once(bm: RunningMesh) -> None:
    c = bm.client()
    user = register(c)
    token, key = tokenise(bm, SUCCEEDS), f"e2e-{uuid.uuid4().hex}"
    answers: list[Response] = []
    lock, start = threading.Lock(), threading.Barrier(20)

    def buy() -> None:
        client = JsonClient(bm.host, bm.port)
        try:
            start.wait()
            r = checkout(client, user, token, key)
            with lock:
                answers.append(r)
        finally:
            client.close()

    threads = [threading.Thread(target=buy) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 20
    ok = [r for r in answers if r.status == 200]
    # The others waited for the first and got its answer, or (still running) 409 ABORTED.
    assert ok and all(r.status in (200, 409) for r in answers), [r.status for r in answers]
    assert len({r.body["payment"]["id"] for r in ok}) == 1
    assert len(subscription(c, user)["payments"]) == 1  # one payment, one charge
    # The same key later: the stored first answer; with other parameters: refused.
    again = checkout(c, user, token, key)
    assert (again.status, again.body["payment"]["id"]) == (200, ok[0].body["payment"]["id"])
    other = checkout(c, user, token, key, plan="premium_yearly")
    assert other.status == 409, other.body
    assert reason(other) == "IDEMPOTENCY_KEY_REUSED", other.body
    assert len(subscription(c, user)["payments"]) == 1


# -- webhooks --------------------------------------------------------------------------------


def _event(kind: str, charge: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": f"evt_e2e_{uuid.uuid4().hex}",
        "type": kind,
        "created": created,
        "data": {"charge": charge},
    }


def test_forged_replayed_and_stale_webhooks_are_refused(bm: RunningMesh) -> None:
    t = now(bm)
    event = _event("charge.succeeded", {"id": "ch_e2e_unknown", "status": "succeeded"}, t)
    assert post_event(bm, event, t, secret=b"not-the-secret-" * 3).status == 401  # forged
    assert post_event(bm, event, t - 600).status == 401  # stale: signed 10 minutes ago
    assert post_event(bm, event, t + 600).status == 401  # from the future
    raw = json.dumps(event).encode()
    genuine = sign(webhook_secret(bm), t, raw)
    headers = {"content-type": "application/json", "provider-signature": genuine}
    c = bm.client()
    tampered = raw.replace(b"succeeded", b"failed")
    assert c.post("/v1/billing/webhooks", raw=tampered, headers=headers).status == 401
    no_signature = {"content-type": "application/json"}
    assert c.post("/v1/billing/webhooks", raw=raw, headers=no_signature).status == 401
    first = c.post("/v1/billing/webhooks", raw=raw, headers=headers)
    assert (first.status, first.body) == (200, {"duplicate": False}), first.body
    again = c.post("/v1/billing/webhooks", raw=raw, headers=headers)
    assert (again.status, again.body) == (200, {"duplicate": True}), again.body
    # The same delivery replayed after the 5-minute tolerance: refused.
    move_clock(bm, seconds=360)
    try:
        assert c.post("/v1/billing/webhooks", raw=raw, headers=headers).status == 401
    finally:
        move_clock(bm, seconds=-360)


def test_events_out_of_order_leave_the_newest_state(bm: RunningMesh) -> None:
    c = bm.client()
    user = register(c)
    r = checkout(c, user, tokenise(bm, NEEDS_AUTH))
    assert r.status == 200, r.body
    payment, sub = r.body["payment"], r.body["subscription"]
    charge_id = urlsplit(payment["next_action"]["url"]).path.split("/")[3]
    charge = {
        "id": charge_id,
        "amount": int(payment["amount"]),
        "currency": payment["currency"],
        "amount_refunded": 0,
        "card_brand": "visa",
        "card_last4": "3155",
        "metadata": {
            "subscription_id": str(sub["id"]),
            "payment_id": str(payment["id"]),
            "user_id": str(user.id),
        },
    }
    t = now(bm)
    paid = _event("charge.succeeded", charge | {"status": "succeeded"}, t)
    assert post_event(bm, paid, t).status == 200
    eventually(lambda: subscription(c, user)["subscription"]["status"] == "active")
    # Older news arriving after the payment succeeded changes nothing.
    late = _event("charge.requires_action", charge | {"status": "requires_action"}, t - 30)
    failed = _event(
        "charge.failed", charge | {"status": "failed", "failure_code": "card_declined"}, t - 20
    )
    for event in (late, failed):
        answer = post_event(bm, event, t)
        assert (answer.status, answer.body) == (200, {"duplicate": False}), answer.body
    # The real confirmation at the sandbox, and its webhooks (late, duplicated): no change.
    assert bm.sandbox().post(urlsplit(payment["next_action"]["url"]).path).status == 200
    time.sleep(3)
    state = subscription(c, user)
    assert state["subscription"]["status"] == "active"
    assert state["entitlements"]["premium"] is True
    assert [p["status"] for p in state["payments"]] == ["succeeded"]


# -- entitlements and the clock -------------------------------------------------------------


def test_the_wod_grows_to_9_after_paying_and_shrinks_after_the_period(bm: RunningMesh) -> None:
    c = bm.client()
    user = register(c)
    assert wod_size(c, user) == FREE_WOD
    free_regen = c.post("/v1/wod:regenerate", {}, token=user.token)
    assert free_regen.status == 403, free_regen.body
    assert checkout(c, user, tokenise(bm, SUCCEEDS)).status == 200
    # Effective within seconds (entitlements are cached briefly), for today's WOD too.
    eventually(lambda: wod_size(c, user) == PREMIUM_WOD, what="the WOD reaches 9 exercises")
    assert c.post("/v1/wod:regenerate", {}, token=user.token).status == 200
    r = c.post("/v1/subscription:cancel", {"at_period_end": True}, token=user.token)
    assert r.status == 200, r.body
    assert r.body["subscription"]["cancel_at_period_end"] is True
    assert r.body["entitlements"]["premium"] is True  # paid until the period ends
    moved = 0
    try:
        move_clock(bm, days=32)
        moved = 32
        eventually(
            lambda: subscription(c, user)["subscription"]["status"] == "canceled",
            what="the renewal loop ends the subscription at the period end",
        )
        assert subscription(c, user)["entitlements"]["premium"] is False
        # Once the services' cached entitlements expired, the new day's WOD is a free one.
        time.sleep(ENTITLEMENTS_TTL + 0.5)
        assert wod_size(c, user) == FREE_WOD
        assert c.post("/v1/wod:regenerate", {}, token=user.token).status == 403
    finally:
        move_clock(bm, days=-moved)


def test_a_failed_renewal_goes_past_due_then_canceled(bm: RunningMesh) -> None:
    """The 3-D Secure card pays the checkout once confirmed, but its renewal is an off-session
    charge that needs the cardholder again: not paid, so past_due (premium kept in the grace
    period), retried, then canceled when the grace period is over."""
    c = bm.client()
    user = register(c)
    r = checkout(c, user, tokenise(bm, NEEDS_AUTH))
    assert bm.sandbox().post(urlsplit(r.body["payment"]["next_action"]["url"]).path).status == 200
    eventually(lambda: subscription(c, user)["subscription"]["status"] == "active")
    moved = 0
    try:
        move_clock(bm, days=32)
        moved += 32
        eventually(
            lambda: subscription(c, user)["subscription"]["status"] == "past_due",
            what="the failed renewal makes it past_due",
        )
        state = subscription(c, user)
        assert state["entitlements"]["premium"] is True  # the grace period
        renewal = state["payments"][0]
        assert (renewal["kind"], renewal["status"]) == ("renewal", "requires_action")
        move_clock(bm, days=8)
        moved += 8
        eventually(
            lambda: subscription(c, user)["subscription"]["status"] == "canceled",
            what="past the grace period it is canceled",
        )
        assert subscription(c, user)["entitlements"]["premium"] is False
    finally:
        move_clock(bm, days=-moved)


# -- observability and card data --------------------------------------------------------------


def test_metrics_count_payments_and_webhook_lag(bm: RunningMesh) -> None:
    seen = metrics(bm)
    paid = 'fitco_billing_payments_total{kind="checkout",status="succeeded"}'
    assert seen.get(paid, 0) >= 4, {k: v for k, v in seen.items() if "payments" in k}
    assert seen.get('fitco_billing_payments_total{kind="checkout",status="failed"}', 0) >= 2
    assert seen.get("fitco_billing_webhook_lag_seconds_count", 0) >= 1
    rejected = [v for k, v in seen.items() if "webhook_events_total" in k and "rejected" in k]
    assert sum(rejected) >= 5


def test_no_card_number_is_stored_or_logged(bm: RunningMesh) -> None:
    """After everything above: the numbers appear in no database file and no process log."""
    # Every file of the mesh: both databases (with their -wal files), every program's log,
    # supervisord's, Envoy's access log.
    files = [p for p in bm.mesh.config.data_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"billing.db", "fitco.db", "billing.log", "sandbox.log", "access.log"} <= names
    needles = {n.encode() for n in CARDS} | {
        n.replace(" ", "").replace("-", "").encode() for n in CARDS
    }
    found = [(str(p), n.decode()) for p in files for n in needles if n in p.read_bytes()]
    assert not found, found
