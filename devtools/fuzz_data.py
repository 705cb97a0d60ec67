"""The data `./fit fuzz` needs for its requests to be served, made through the public API as any
client makes it (devtools/fuzz.py runs the fuzzer, devtools/fuzz_hooks.py shapes its cases).

The seed, made once before a run: an admin (by the bootstrap key) and the fuzzed user with a
complete profile (birth year, sex, weight, height), preferences, a body metric, history, today's
WOD, goals of three kinds, an ended and an active workout session with sets, a group of its own
and another account's group it joined by invitation code, and premium bought by a real checkout
with a sandbox test card (tokenised at the payment provider, as a client app does). It is
written to a file the hooks read (`Seed.save`, `Seed.load`).

Per-case fixtures, made by the hooks just before a case is sent: an account of its own with what
the case needs, for the operations that use up what they act on and so could be served only a
few times on one seeded user (a subscription is canceled once, a goal abandoned once, a user has
one active session, buys a plan once and regenerates the WOD three times a day, a session holds
200 sets, a user 20 active goals). Each is named after what it makes (`fresh_premium`, ...).
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from billing import dev_secrets
from fitcore.config import Env

if TYPE_CHECKING:  # the hooks load this module in schemathesis' process: no mesh code there
    from devtools.mesh import Mesh

PASSWORD: Final = "fuzzing-passphrase-1"  # noqa: S105 - throw-away accounts on a throw-away mesh
# The sandbox's test card that always succeeds (sandboxpay/cards.py TEST_CARDS).
TEST_CARD: Final = {"card_number": "4242424242424242", "exp_month": 12, "cvc": "123"}
PREMIUM_PLAN: Final = "premium_monthly"
PROFILE: Final = {
    "weight": 72.5,
    "height": 178,
    "fitness_goal": "strength",
    "birth_year": 1990,
    "sex": "female",
    "activity_level": "moderate",
}
# Goals that are valid for the PROFILE above (weight 72.5 kg, no training yet), by kind: a
# weight-loss target below the weight, the others above the current value.
GOAL_TARGETS: Final = {
    "weight_loss": 65.0,
    "muscle_gain": 80.0,
    "strength": 120.0,
    "endurance": 150.0,
}
GOAL_DAYS_AHEAD: Final = 90  # after today in any time zone, well within the 5 years allowed
# The operations whose caller (and some of whose values) devtools/fuzz_hooks.py sets per case.
HOOKED_OPERATIONS: Final = frozenset(
    {
        "GoalService_GetGoal",
        "GoalService_CreateGoal",
        "GoalService_UpdateGoal",
        "GoalService_AbandonGoal",
        "TrainingService_GetSession",
        "TrainingService_StartSession",
        "TrainingService_LogSet",
        "TrainingService_EndSession",
        "HistoryService_RecordExercise",
        "NutritionService_GetNutrition",
        "CoachService_RegenerateWod",
        "BillingService_CancelSubscription",
        "BillingService_RefundPayment",
        "BillingService_Checkout",
        "BillingService_ReceiveWebhook",
        "GroupService_CreateGroup",
        "GroupService_GetGroup",
        "GroupService_JoinGroup",
        "GroupService_LeaveGroup",
        "GroupService_ListGroupMessages",
    }
)
# A user belongs to 100 groups at most (proto/fitco/groups/v1/groups.proto): CreateGroup cases
# change their owner this often.
GROUPS_PER_OWNER: Final = 40


@dataclass(frozen=True)
class Target:
    """The mesh the fuzzer talks to: its edge, and what a client, an operator and the payment
    provider hold (the bootstrap key, the provider's URL, the webhook signing secret)."""

    base_url: str
    bootstrap_key: str
    sandbox_url: str
    webhook_secret: str

    @classmethod
    def of(cls, mesh: Mesh) -> Target:
        c = mesh.config
        key = (c.data_dir / "keys" / "bootstrap.key").read_text().strip()
        # Billing's own environment, so the secret is the one billing verifies with.
        secret = dev_secrets.webhook_secret(Env(mesh.billing_env())).decode()
        return cls(c.envoy_url, key, c.sandbox_url, secret)


@dataclass
class Account:
    email: str
    password: str
    token: str


@dataclass
class Seed:
    """What the fuzzer and its hooks need to reach every operation."""

    target: Target
    admin: Account
    user: Account
    card_token: str  # a sandbox test card's token (a provider's tokens can be charged again)
    exercise_ids: list[int]  # catalog exercises measured in reps
    entry_ids: list[int] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    goal_ids: list[int] = field(default_factory=list)
    session_ids: list[int] = field(default_factory=list)  # the user's ended, then active one
    group_ids: list[int] = field(default_factory=list)  # groups the user owns
    # Another account's group, which the user joins (and may leave) with its invitation code.
    host_group_id: int = 0
    invitation_code: str = ""

    @property
    def base_url(self) -> str:
        return self.target.base_url

    def save(self, path: Path) -> None:
        """Owner-only: it holds tokens and the webhook secret."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh)

    @classmethod
    def load(cls, path: Path) -> Seed:
        doc = json.loads(path.read_text())
        return cls(
            **doc
            | {
                "target": Target(**doc["target"]),
                "admin": Account(**doc["admin"]),
                "user": Account(**doc["user"]),
            }
        )


def call(base_url: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """One JSON request; header names are keyword arguments (`idempotency_key=...`)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - our own mesh on loopback
        base_url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    for name, value in headers.items():
        req.add_header(name.replace("_", "-"), value)
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        return json.loads(resp.read() or b"null")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def future_day(days: int = GOAL_DAYS_AHEAD) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


def register(base_url: str, name: str) -> Account:
    email = f"{name}-{uuid.uuid4().hex[:12]}@fuzz.example.com"
    body = {"email": email, "name": name.title(), "password": PASSWORD}
    token = call(base_url, "POST", "/v1/auth/register", body)["access_token"]
    return Account(email, PASSWORD, token)


def onboard(base_url: str, token: str) -> None:
    call(base_url, "POST", "/v1/profile/onboarding", PROFILE, **bearer(token))


def tokenise_card(sandbox_url: str) -> str:
    """What a client app does with the card form: the card goes to the provider, not to us."""
    card = TEST_CARD | {"exp_year": date.today().year + 5}
    return str(call(sandbox_url, "POST", "/v1/tokens", card)["token"])


def checkout(base_url: str, token: str, card_token: str, plan: str = PREMIUM_PLAN) -> Any:
    body = {"plan_id": plan, "payment_method_token": card_token}
    key = f"fuzz-{uuid.uuid4().hex}"
    return call(
        base_url, "POST", "/v1/billing/checkout", body, idempotency_key=key, **bearer(token)
    )


def create_goal(base_url: str, token: str, kind: str, exercise_id: int = 0) -> int:
    body: dict[str, Any] = {
        "kind": kind,
        "target_value": GOAL_TARGETS[kind],
        "target_date": future_day(),
    }
    if kind == "strength":
        body["exercise_id"] = exercise_id
    return int(call(base_url, "POST", "/v1/goals", body, **bearer(token))["goal"]["id"])


def start_session(base_url: str, token: str, *, from_wod: bool = False) -> int:
    answer = call(base_url, "POST", "/v1/sessions", {"from_wod": from_wod}, **bearer(token))
    return int(answer["session"]["id"])


def log_set(base_url: str, token: str, session_id: int, exercise_id: int) -> None:
    body = {
        "exercise_id": exercise_id,
        "reps": 8,
        "weight": 40,
        "rpe": 7,
        "client_set_id": uuid.uuid4().hex,
    }
    call(base_url, "POST", f"/v1/sessions/{session_id}/sets", body, **bearer(token))


def create_group(base_url: str, token: str, title: str) -> dict[str, Any]:
    answer = call(base_url, "POST", "/v1/groups", {"title": title}, **bearer(token))
    return dict(answer["group"])


def reps_exercises(base_url: str) -> list[int]:
    """Catalog exercises measured in reps (a set of them needs no duration; they have a 1RM)."""
    page = call(base_url, "GET", "/v1/exercises?page_size=100")
    return [int(e["id"]) for e in page["exercises"] if e.get("measure") == "reps"]


def seed(target: Target, history_entries: int = 40) -> Seed:
    """The admin and the fuzzed user with their data (see the module docstring)."""
    url = target.base_url
    admin = call(
        url,
        "POST",
        "/v1/admin/bootstrap",
        {"email": "admin@fuzz.example.com", "name": "Fuzz Admin"},
        x_bootstrap_key=target.bootstrap_key,
    )
    login = {"email": admin["email"], "password": admin["password"]}
    admin_token = call(url, "POST", "/v1/auth/login", login)["access_token"]
    user = register(url, "fuzzer")
    auth = bearer(user.token)
    onboard(url, user.token)
    prefs = {"equipment": ["dumbbell", "bench"], "training_days_per_week": 4}
    call(url, "PUT", "/v1/profile/preferences", prefs, **auth)
    call(url, "POST", "/v1/profile/metrics", {"weight_kg": 72, "note": "seed"}, **auth)
    wod = call(url, "GET", "/v1/wod", **auth)
    exercises = reps_exercises(url)
    entries = [
        call(
            url,
            "POST",
            "/v1/history",
            {"exercise_id": 1 + n % 20, "sets": 3, "reps": 10, "note": f"seed {n}"},
            **auth,
        )["entry"]["id"]
        for n in range(history_entries)
    ]
    goals = [
        create_goal(url, user.token, kind, exercises[-1])
        for kind in ("endurance", "weight_loss", "strength")
    ]
    sessions: list[int] = []
    for from_wod, sets in ((True, 3), (False, 2)):  # the first one ends, the second stays open
        if sessions:
            call(url, "POST", f"/v1/sessions/{sessions[-1]}:end", {}, **auth)
        sessions.append(start_session(url, user.token, from_wod=from_wod))
        for n in range(sets):
            log_set(url, user.token, sessions[-1], exercises[n % len(exercises)])
    card = tokenise_card(target.sandbox_url)
    checkout(url, user.token, card)
    host = register(url, "host")
    hosted = create_group(url, host.token, "Hosted")
    call(url, "POST", "/v1/groups:join", {"invitation_code": hosted["invitation_code"]}, **auth)
    own = create_group(url, user.token, "Own")
    return Seed(
        target=target,
        admin=Account(admin["email"], admin["password"], admin_token),
        user=user,
        card_token=card,
        exercise_ids=exercises,
        entry_ids=[int(e) for e in entries],
        days=[wod["day"]],
        goal_ids=goals,
        session_ids=sessions,
        group_ids=[int(own["id"])],
        host_group_id=int(hosted["id"]),
        invitation_code=str(hosted["invitation_code"]),
    )


# -- per-case fixtures (devtools/fuzz_hooks.py) ----------------------------------------------


def fresh(s: Seed, *, onboarded: bool = True) -> Account:
    """A new account (onboarded with PROFILE unless told otherwise)."""
    account = register(s.base_url, "fixture")
    if onboarded:
        onboard(s.base_url, account.token)
    return account


def fresh_premium(s: Seed) -> tuple[Account, dict[str, Any]]:
    """A new onboarded account on premium, and the payment that bought it."""
    account = fresh(s)
    answer = checkout(s.base_url, account.token, s.card_token)
    return account, dict(answer["payment"])


def fresh_with_goal(s: Seed) -> tuple[Account, int]:
    """A new onboarded account with an active endurance goal."""
    account = fresh(s)
    return account, create_goal(s.base_url, account.token, "endurance")


def fresh_in_session(s: Seed) -> tuple[Account, int]:
    """A new onboarded account with an active workout session."""
    account = fresh(s)
    return account, start_session(s.base_url, account.token)


def join_hosted_group(s: Seed) -> int:
    """The user joins the seeded host's group again (joining is idempotent); its id."""
    body = {"invitation_code": s.invitation_code}
    call(s.base_url, "POST", "/v1/groups:join", body, **bearer(s.user.token))
    return s.host_group_id


def fresh_with_wod(s: Seed) -> Account:
    """A new onboarded account that was served today's WOD (so a session can follow it)."""
    account = fresh(s)
    call(s.base_url, "GET", "/v1/wod", **bearer(account.token))
    return account
