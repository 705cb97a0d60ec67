"""The sandbox payment provider, for real: its HTTP server on an ephemeral port, billing's
SandboxProvider client, and webhooks to a local receiver that verifies their signatures."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from billing.domain.signatures import verify
from billing.provider import FAILED, REQUIRES_ACTION, SUCCEEDED, ProviderError, UnknownPaymentMethod
from billing.sandbox_client import SandboxProvider
from fitcore.clock import Clock, FixedClock, SystemClock
from fitcore.logs import JsonFormatter
from sandboxpay.config import SandboxConfig
from sandboxpay.server import Sandbox
from sandboxpay.webhooks import Chaos, Decision, RetryPolicy

API_KEY = "test-provider-api-key-0123456789"
SECRET = b"test-webhook-secret-0123456789ab"
CARDS = {
    "4242424242424242": (SUCCEEDED, ""),
    "4000000000000002": (FAILED, "card_declined"),
    "4000000000009995": (FAILED, "insufficient_funds"),
    "4000002500003155": (REQUIRES_ACTION, ""),
}
ROOT = Path(__file__).resolve().parents[2]
EXP_YEAR = date.today().year + 3


# --- a webhook receiver ----------------------------------------------------------------------


@dataclass
class Delivery:
    signature: str
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


@dataclass
class Receiver:
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to answer first, then 200
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.deliveries) >= count, timeout), (
                f"{len(self.deliveries)} of {count} webhooks arrived"
            )
            return list(self.deliveries)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.cond:
                state.deliveries.append(Delivery(self.headers["Provider-Signature"], body))
                status = state.answers.pop(0) if state.answers else 200
                state.cond.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/billing/webhooks"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# --- the sandbox, its logs and the client ----------------------------------------------------


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every record of the sandbox and billing loggers, as the JSON lines a deployment sees."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("sandboxpay", "billing")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield out
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


StartSandbox = Callable[..., Sandbox]


@pytest.fixture
def start_sandbox(receiver: Receiver, logs: io.StringIO) -> Iterator[StartSandbox]:
    started: list[Sandbox] = []

    def start(clock: Clock | None = None, **overrides: Any) -> Sandbox:
        config = SandboxConfig(
            host="127.0.0.1",
            port=0,
            api_key=API_KEY,
            webhook_url=receiver.url,
            webhook_secret=SECRET,
            retry=RetryPolicy(base_seconds=0.05, max_delay_seconds=0.2, max_attempts=5),
            grace_seconds=1.0,
        )
        sandbox = Sandbox(replace(config, **overrides), clock or SystemClock())
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    return start_sandbox()


@pytest.fixture
def provider(sandbox: Sandbox) -> SandboxProvider:
    return SandboxProvider(sandbox.base_url, API_KEY, timeout=5.0)


def http(
    sandbox: Sandbox,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(
        sandbox.base_url + path, data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def tokenize(sandbox: Sandbox, number: str) -> str:
    status, answer = http(
        sandbox,
        "POST",
        "/v1/tokens",
        {"card_number": number, "exp_month": 12, "exp_year": EXP_YEAR, "cvc": "123"},
    )
    assert status == 200, answer
    assert answer["last4"] == number[-4:]
    token: str = answer["token"]
    return token


def charge(provider: SandboxProvider, token: str, key: str, amount: int = 999) -> Any:
    return provider.charge(
        payment_method_token=token,
        amount=amount,
        currency="EUR",
        idempotency_key=key,
        description="Premium monthly",
        metadata={"subscription_id": "sub_1", "payment_id": "pay_1", "user_id": "u1"},
    )


def auth(key: str = API_KEY, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


# --- tests -----------------------------------------------------------------------------------


def test_health_and_http_hygiene(sandbox: Sandbox) -> None:
    assert http(sandbox, "GET", "/health") == (200, {"status": "ok"})
    status, answer = http(sandbox, "GET", "/v1/nothing")
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = http(sandbox, "DELETE", "/v1/charges")
    assert (status, answer["error"]["code"]) == (405, "method_not_allowed")
    status, answer = http(sandbox, "POST", "/v1/tokens", b"{not json")
    assert (status, answer["error"]["code"]) == (400, "malformed_json")
    status, answer = http(sandbox, "POST", "/v1/tokens", b"[1, 2]")
    assert status == 400
    status, answer = http(sandbox, "POST", "/v1/tokens", b'{"a": "' + b"x" * 20_000 + b'"}')
    assert (status, answer["error"]["code"]) == (413, "body_too_large")
    assert set(answer["error"]) >= {"type", "code", "message"}


def test_http_level_errors_are_json_and_not_echoed(sandbox: Sandbox, logs: io.StringIO) -> None:
    host, port = sandbox.address.rsplit(":", 1)
    for raw, status in [
        # Not HTTP/1.x: http.server answers the HTTP/0.9 way, a bare body.
        (b"GARBAGE /4242424242424242 BAD/9\r\n\r\n", ""),
        (b"GET /4242424242424242 HTTP/1.0\r\nX: " + b"4" * 70_000 + b"\r\n\r\n", "431"),
    ]:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(raw)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.decode().rpartition("\r\n\r\n")
        assert head.startswith(f"HTTP/1.0 {status}") if status else head == ""
        assert json.loads(body)["error"]["code"]
        assert "4242424242424242" not in answer.decode()
    code, _ = http(sandbox, "GET", "/v1/charges/4242424242424242", headers=auth())
    assert code == 404
    code, _ = http(sandbox, "GET", "/4242424242424242?card=4242424242424242")
    assert code == 404
    assert "4242424242424242" not in logs.getvalue()


def test_requests_beyond_the_connection_cap_get_503(start_sandbox: StartSandbox) -> None:
    sandbox = start_sandbox(max_connections=1, request_timeout=2.0)
    host, port = sandbox.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as slow:
        slow.sendall(b"GET /health HTTP/1.0\r\n")  # and nothing more, for now
        time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(sandbox.base_url + "/health", timeout=5)
        assert info.value.code == 503
        info.value.close()
        slow.sendall(b"\r\n")
        assert slow.recv(65536).startswith(b"HTTP/1.0 200")
    for _ in range(50):  # the slot is free once the first request's thread has finished
        if http(sandbox, "GET", "/health")[0] == 200:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the slot was not released")


def test_state_is_bounded(start_sandbox: StartSandbox, receiver: Receiver) -> None:
    receiver.answers[:] = [500] * 50
    sandbox = start_sandbox(
        capacity=3, webhook_queue=1, retry=RetryPolicy(5.0, 5.0, max_attempts=2)
    )
    provider = SandboxProvider(sandbox.base_url, API_KEY)
    tokens = [tokenize(sandbox, "4242424242424242") for _ in range(5)]
    with pytest.raises(UnknownPaymentMethod):  # the oldest tokens were evicted
        charge(provider, tokens[0], key="old")
    charge(provider, tokens[4], key="new-1")
    receiver.wait_for(1)  # the first event failed and waits for its retry in the queue
    deadline = time.monotonic() + 5  # (once the sender has taken the 500 and queued it again)
    while sandbox.sender.pending() != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    charge(provider, tokens[3], key="new-2")
    assert (sandbox.sender.pending(), sandbox.sender.dropped) == (1, 1)
    assert sandbox.store.sizes()["tokens"] == 3


def test_idempotency_keys_expire_after_a_day(start_sandbox: StartSandbox) -> None:
    clock = FixedClock(datetime.now(UTC))
    sandbox = start_sandbox(clock=clock)
    provider = SandboxProvider(sandbox.base_url, API_KEY)
    token = tokenize(sandbox, "4242424242424242")
    first = charge(provider, token, key="daily")
    clock.at += timedelta(hours=23)
    assert charge(provider, token, key="daily") == first
    clock.at += timedelta(hours=2)
    assert charge(provider, token, key="daily").id != first.id


@pytest.mark.parametrize(("number", "expected"), CARDS.items())
def test_each_test_card_through_the_client(
    sandbox: Sandbox, provider: SandboxProvider, receiver: Receiver, number: str, expected: Any
) -> None:
    status, failure_code = expected
    result = charge(provider, tokenize(sandbox, number), key=f"k-{number}")
    assert (result.status, result.failure_code) == (status, failure_code)
    assert (result.amount, result.currency) == (999, "EUR")
    assert (result.card_brand, result.card_last4) == ("visa", number[-4:])
    assert result.id.startswith("ch_")
    assert provider.get_charge(result.id) == result
    event = receiver.wait_for(1)[0].event
    assert event["type"] == f"charge.{status}"
    if status != REQUIRES_ACTION:
        assert result.next_action_url == ""
        return
    # The cardholder authenticates at the provider (no API key), once or twice: same answer.
    assert result.next_action_url == f"{sandbox.base_url}/v1/charges/{result.id}/confirm"
    path = result.next_action_url.removeprefix(sandbox.base_url)
    for _ in range(2):
        code, confirmed = http(sandbox, "POST", path)
        assert (code, confirmed["status"], confirmed["next_action"]) == (200, SUCCEEDED, None)
    assert provider.get_charge(result.id).status == SUCCEEDED
    events = receiver.wait_for(2)
    time.sleep(0.2)
    assert [d.event["type"] for d in receiver.deliveries] == [
        "charge.requires_action",
        "charge.succeeded",
    ]
    assert events[1].event["data"]["charge"]["id"] == result.id


def test_a_declined_charge_cannot_be_confirmed_or_refunded(
    sandbox: Sandbox, provider: SandboxProvider
) -> None:
    declined = charge(provider, tokenize(sandbox, "4000000000000002"), key="d1")
    code, answer = http(sandbox, "POST", f"/v1/charges/{declined.id}/confirm")
    assert (code, answer["error"]["code"]) == (400, "charge_unexpected_state")
    with pytest.raises(ProviderError, match="charge_not_refundable"):
        provider.refund(charge_id=declined.id, amount=1, idempotency_key="r1")


def test_unknown_token_and_unknown_charge(sandbox: Sandbox, provider: SandboxProvider) -> None:
    with pytest.raises(UnknownPaymentMethod):
        charge(provider, "tok_does_not_exist", key="u1")
    # Longer than any of the provider's ids: refused as malformed, still the caller's mistake
    # (billing's contract allows 100 characters; found by ./fit fuzz as a 503 at checkout).
    with pytest.raises(UnknownPaymentMethod):
        charge(provider, "0" * 100, key="u2")
    with pytest.raises(ProviderError, match="404"):
        provider.get_charge("ch_nope")
    code, answer = http(sandbox, "POST", "/v1/charges/ch_nope/confirm")
    assert (code, answer["error"]["code"]) == (404, "resource_missing")


def test_idempotent_charges(
    sandbox: Sandbox, provider: SandboxProvider, receiver: Receiver
) -> None:
    token = tokenize(sandbox, "4242424242424242")
    first = charge(provider, token, key="same")
    assert charge(provider, token, key="same") == first
    with pytest.raises(ProviderError, match="409 idempotency_key_in_use"):
        charge(provider, token, key="same", amount=1000)
    assert charge(provider, token, key="other").id != first.id
    # 20 concurrent requests with one key: exactly one charge, one event.
    with ThreadPoolExecutor(20) as pool:
        ids = set(pool.map(lambda _: charge(provider, token, key="burst").id, range(20)))
    assert len(ids) == 1
    receiver.wait_for(3)
    time.sleep(0.3)
    assert len(receiver.deliveries) == 3


def test_requests_are_validated(sandbox: Sandbox) -> None:
    token = tokenize(sandbox, "4242424242424242")
    good = {"payment_method_token": token, "amount": 100, "currency": "EUR"}
    for bad, param in [
        ({**good, "amount": 0}, "amount"),
        ({**good, "amount": 1.5}, "amount"),
        ({**good, "amount": True}, "amount"),
        ({**good, "currency": "EURO"}, "currency"),
        ({**good, "metadata": {"a": 1}}, "metadata"),
        ({**good, "card_number": "4242424242424242"}, "card_number"),
        ({"amount": 100, "currency": "EUR"}, "payment_method_token"),
    ]:
        code, answer = http(sandbox, "POST", "/v1/charges", bad, auth(idem=f"v-{param}"))
        assert (code, answer["error"].get("param")) == (400, param), bad
    code, answer = http(sandbox, "POST", "/v1/charges", good, auth())
    assert (code, answer["error"]["code"]) == (400, "idempotency_key_missing")
    code, answer = http(
        sandbox, "POST", "/v1/tokens", {"card_number": "4242424242424242", "exp_month": 1}
    )
    assert (code, answer["error"]["type"]) == (400, "card_error")


def test_refunds_full_partial_and_over(sandbox: Sandbox, provider: SandboxProvider) -> None:
    paid = charge(provider, tokenize(sandbox, "4242424242424242"), key="p", amount=1000)
    partial = provider.refund(charge_id=paid.id, amount=300, idempotency_key="r-1")
    assert (partial.charge_id, partial.amount, partial.status) == (paid.id, 300, SUCCEEDED)
    assert provider.refund(charge_id=paid.id, amount=300, idempotency_key="r-1") == partial
    with pytest.raises(ProviderError, match="409"):
        provider.refund(charge_id=paid.id, amount=301, idempotency_key="r-1")
    with pytest.raises(ProviderError, match="amount_too_large"):
        provider.refund(charge_id=paid.id, amount=701, idempotency_key="r-2")
    rest = provider.refund(charge_id=paid.id, amount=700, idempotency_key="r-3")
    assert rest.id != partial.id
    _, answer = http(sandbox, "GET", f"/v1/charges/{paid.id}", headers=auth())
    assert (answer["amount_refunded"], answer["status"]) == (1000, SUCCEEDED)
    with pytest.raises(ProviderError, match="charge_already_refunded"):
        provider.refund(charge_id=paid.id, amount=1, idempotency_key="r-4")
    other = charge(provider, tokenize(sandbox, "4242424242424242"), key="q", amount=500)
    full = provider.refund(charge_id=other.id, amount=500, idempotency_key="r-5")
    assert full.amount == 500


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": API_KEY},
        {"Authorization": "Basic " + API_KEY},
        {"Authorization": "Bearer " + API_KEY + "x"},
    ],
)
def test_the_api_key_is_required(sandbox: Sandbox, headers: dict[str, str]) -> None:
    code, answer = http(sandbox, "GET", "/v1/charges/ch_x", headers=headers)
    assert (code, answer["error"]["code"]) == (401, "invalid_api_key")
    code, _ = http(sandbox, "POST", "/v1/charges", {}, {**headers, "Idempotency-Key": "a"})
    assert code == 401


def test_the_client_with_a_bad_key_or_no_provider(sandbox: Sandbox) -> None:
    token = tokenize(sandbox, "4242424242424242")
    with pytest.raises(ProviderError, match="401"):
        charge(SandboxProvider(sandbox.base_url, "wrong-key-wrong-key"), token, key="x")
    with pytest.raises(ProviderError, match="unreachable"):
        charge(SandboxProvider("http://127.0.0.1:9", API_KEY, timeout=1), token, key="x")
    assert "wrong-key" not in repr(SandboxProvider(sandbox.base_url, "wrong-key-wrong-key"))


def test_webhooks_are_signed_with_the_event_shape(
    sandbox: Sandbox, provider: SandboxProvider, receiver: Receiver
) -> None:
    paid = charge(provider, tokenize(sandbox, "4242424242424242"), key="w", amount=1000)
    provider.refund(charge_id=paid.id, amount=400, idempotency_key="w-r")
    deliveries = receiver.wait_for(2)
    for delivery in deliveries:
        verify(SECRET, delivery.signature, delivery.body, now=int(time.time()))
    first, second = (d.event for d in deliveries)
    assert first["id"].startswith("evt_")
    assert first["id"] != second["id"]
    assert abs(first["created"] - time.time()) < 10
    assert first["type"] == "charge.succeeded"
    assert first["data"] == {
        "charge": {
            "id": paid.id,
            "status": "succeeded",
            "amount": 1000,
            "currency": "EUR",
            "amount_refunded": 0,
            "failure_code": None,
            "card_brand": "visa",
            "card_last4": "4242",
            "metadata": {"subscription_id": "sub_1", "payment_id": "pay_1", "user_id": "u1"},
        }
    }
    assert second["type"] == "charge.refunded"
    assert second["data"]["charge"]["amount_refunded"] == 400
    with pytest.raises(Exception, match="does not match"):
        verify(b"another-secret", deliveries[0].signature, deliveries[0].body, int(time.time()))


def test_webhooks_are_retried_until_accepted(
    sandbox: Sandbox, provider: SandboxProvider, receiver: Receiver
) -> None:
    receiver.answers[:] = [500, 503]
    charge(provider, tokenize(sandbox, "4000000000000002"), key="retry")
    deliveries = receiver.wait_for(3)
    assert len({d.body for d in deliveries}) == 1  # the same event, re-signed each time
    for delivery in deliveries:
        verify(SECRET, delivery.signature, delivery.body, now=int(time.time()))
    time.sleep(0.3)
    assert len(receiver.deliveries) == 3
    assert sandbox.sender.delivered == 1


def test_webhooks_are_given_up_after_the_last_attempt(
    start_sandbox: StartSandbox, receiver: Receiver
) -> None:
    receiver.answers[:] = [500] * 10
    sandbox = start_sandbox(retry=RetryPolicy(0.02, 0.05, max_attempts=3))
    provider = SandboxProvider(sandbox.base_url, API_KEY)
    charge(provider, tokenize(sandbox, "4242424242424242"), key="gone")
    receiver.wait_for(3)
    time.sleep(0.3)
    assert len(receiver.deliveries) == 3
    assert (sandbox.sender.given_up, sandbox.sender.pending()) == (1, 0)


def _seed_for(*wanted: Decision, rates: tuple[float, float]) -> int:
    for seed in range(10_000):
        chaos = Chaos(seed, *rates)
        if all(chaos.decide() == decision for decision in wanted):
            return seed
    raise AssertionError("no seed")


def test_chaos_duplicates_and_reorders_deterministically(
    start_sandbox: StartSandbox, receiver: Receiver
) -> None:
    # The seed's draws are known: event 1 held back, event 2 delivered twice.
    seed = _seed_for(Decision(False, True), Decision(True, False), rates=(0.5, 0.5))
    sandbox = start_sandbox(
        chaos=True,
        chaos_seed=seed,
        chaos_duplicate_rate=0.5,
        chaos_hold_rate=0.5,
        chaos_hold_seconds=0.5,
    )
    provider = SandboxProvider(sandbox.base_url, API_KEY)
    first = charge(provider, tokenize(sandbox, "4000002500003155"), key="c1")
    path = first.next_action_url.removeprefix(sandbox.base_url)
    assert http(sandbox, "POST", path)[0] == 200
    deliveries = receiver.wait_for(3)
    events = [d.event for d in deliveries]
    assert [e["type"] for e in events] == [
        "charge.succeeded",
        "charge.succeeded",
        "charge.requires_action",
    ]
    assert events[0]["id"] == events[1]["id"]  # a duplicate is the same event
    assert events[0]["created"] >= events[2]["created"]
    for delivery in deliveries:
        verify(SECRET, delivery.signature, delivery.body, now=int(time.time()))


def test_card_numbers_are_never_stored_or_logged(
    sandbox: Sandbox, provider: SandboxProvider, receiver: Receiver, logs: io.StringIO
) -> None:
    for number in CARDS:
        spaced = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        result = charge(provider, tokenize(sandbox, spaced), key=f"n-{number[-4:]}")
        if result.status == REQUIRES_ACTION:
            http(sandbox, "POST", result.next_action_url.removeprefix(sandbox.base_url))
    http(sandbox, "POST", "/v1/tokens", {"card_number": "4242424242424241", "cvc": "1"})
    receiver.wait_for(5)
    state = repr(vars(sandbox.store)) + repr(vars(sandbox.sender))
    text = logs.getvalue()
    assert "card tokenised" in text  # the logs were captured
    assert "tok_" in state
    for number in [*CARDS, "4242424242424241"]:
        for where in (state, text, *(d.body.decode() for d in receiver.deliveries)):
            assert number not in where, where[
                max(0, where.find(number) - 300) : where.find(number) + 50
            ]
            assert number[:8] not in where
            assert number[:4] + " " + number[4:8] not in where


def test_sigterm_stops_the_process_gracefully(tmp_path: Path, receiver: Receiver) -> None:
    env = {
        **os.environ,
        "FITCO_DATA_DIR": str(tmp_path),
        "FITCO_SANDBOX_ADDRESS": "127.0.0.1:0",
        "FITCO_SANDBOX_PUBLIC_URL": "",
        "FITCO_SANDBOX_WEBHOOK_URL": receiver.url,
        "FITCO_LOG_LEVEL": "DEBUG",
    }
    env.pop("FITCO_PROVIDER_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandboxpay", "serve"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        address = ""
        deadline = time.monotonic() + 15
        while not address and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "listening" in line:
                address = json.loads(line)["address"]
        assert address, "the sandbox did not start"
        key = (tmp_path / "keys" / "provider_api_key").read_text().strip()
        base = f"http://{address}"
        client = SandboxProvider(base, key)
        request = urllib.request.Request(
            base + "/v1/tokens",
            data=json.dumps(
                {
                    "card_number": "4242424242424242",
                    "exp_month": 1,
                    "exp_year": EXP_YEAR,
                    "cvc": "123",
                }
            ).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            token = json.loads(response.read())["token"]
        assert charge(client, token, key="proc").status == SUCCEEDED
        receiver.wait_for(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopping" in rest
    assert "4242424242424242" not in rest
