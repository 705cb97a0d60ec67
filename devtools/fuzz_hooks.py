"""schemathesis hooks for `./fit fuzz` (loaded by schemathesis, not imported by the project).

The OpenAPI cannot say what only the state of the system decides: which ids exist, what "today"
is, which caller may still do something once. Without help, whole operations would only ever be
refused. So, from the seed devtools/fuzz.py writes (devtools/fuzz_data.py), these hooks give:

- Logout and ChangePassword (they end every session of their caller): an account of their own
  per case (`FreshSession`); every other ChangePassword case gets its right `current_password`.
- The operations in `HANDLERS`, just before each case is sent (`before_call`): the caller (the
  seeded user, the admin, or a fixture account of the case's own, see fuzz_data), and in every
  other positive case, starting with a phase's first, what only the state decides: an id that
  exists, a date after today, a target on the far side of the current value, a card token. The
  other positive cases and all the negative ones are sent as generated. The rewritten values
  are valid for the schema too, so the case stays a positive one.
- Checkout: the `Idempotency-Key` header it requires (a new key, or in every fourth case the
  previous case's caller and key again: a retry).
- The provider's webhook: the `Provider-Signature` header over the exact bytes sent (the body
  is serialized here and sent as those bytes), and in every other positive case the fields of a
  provider event (`id`, `type`, `created`, a charge) beside whatever was generated.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from billing.domain.signatures import sign
from devtools import fuzz_data as data
from devtools.fuzz_data import Seed

SEED_ENV: Final = "FITCO_FUZZ_SEED"  # the path of the seed file devtools.fuzz writes
FRESH_SESSION_OPERATIONS: Final = ["UserService_Logout", "UserService_ChangePassword"]
# Every handled event type of billing.domain.webhooks, and one it does not handle.
EVENT_TYPES: Final = (
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.requires_action",
    "customer.updated",
)

Case = Any  # schemathesis.Case (its attributes are set dynamically)
Handler = Callable[[Case, dict[str, Any]], None]


@cache
def _seed() -> Seed:
    return Seed.load(Path(os.environ[SEED_ENV]))


# -- helpers ----------------------------------------------------------------------------------

_turns: dict[tuple[str, str], itertools.count[int]] = {}


def _positive(case: Case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _well_formed_turn(case: Case) -> bool:
    """Every other positive case of an operation, starting with the first of each phase."""
    if not _positive(case):
        return False
    key = (case.operation.label, str(case.meta.phase.name))
    return next(_turns.setdefault(key, itertools.count())) % 2 == 0


def _as(case: Case, token: str) -> None:
    case.headers = dict(case.headers or {}, Authorization=f"Bearer {token}")


def _body(case: Case) -> dict[str, Any]:
    """The generated JSON object (a positive case's body is one)."""
    body = case.body
    assert isinstance(body, dict), body
    return body


def _path(case: Case, name: str, value: int) -> None:
    case.path_parameters = dict(case.path_parameters or {}, **{name: str(value)})


_picks = itertools.count()


def _pick(values: list[int]) -> int:
    """The seeded values in turn."""
    return values[next(_picks) % len(values)]


@schemathesis.auth(refresh_interval=None).apply_to(operation_id=FRESH_SESSION_OPERATIONS)
class FreshSession:
    """A new account per case: its token is the case's Authorization."""

    def __init__(self) -> None:
        self._cases = itertools.count()

    def get(self, case: Case, ctx: Any) -> str:
        return data.fresh(_seed(), onboarded=False).token

    def set(self, case: Case, token: str, ctx: Any) -> None:
        _as(case, token)
        body = case.body
        right_password = next(self._cases) % 2 == 0
        if right_password and isinstance(body, dict) and "current_password" in body:
            body["current_password"] = data.PASSWORD


# -- the seeded user: an id of theirs, or a valid record --------------------------------------


def _seeded_id(name: str, ids: Callable[[Seed], list[int]]) -> Handler:
    def handle(case: Case, kwargs: dict[str, Any]) -> None:
        _as(case, _seed().user.token)
        if _well_formed_turn(case):
            _path(case, name, _pick(ids(_seed())))

    return handle


def record_exercise(case: Case, kwargs: dict[str, Any]) -> None:
    """A catalog exercise, a time within the last year, something done."""
    _as(case, _seed().user.token)
    if not _well_formed_turn(case):
        return
    body = _body(case)
    body["exercise_id"] = _pick(_seed().exercise_ids)
    if "performed_at" in body:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        body["performed_at"] = an_hour_ago.isoformat().replace("+00:00", "Z")
    if not any(body.get(f) for f in ("sets", "reps", "duration_seconds")):
        body["sets"] = 3


def get_nutrition(case: Case, kwargs: dict[str, Any]) -> None:
    """The fuzzed profile operations may have cleared the birth year or the sex: complete the
    profile again (a nutrition plan needs it, and refusing one without it has its own tests)."""
    s = _seed()
    _as(case, s.user.token)
    complete = {k: data.PROFILE[k] for k in ("birth_year", "sex", "weight", "height")}
    data.call(s.base_url, "PATCH", "/v1/profile", complete, **data.bearer(s.user.token))


# -- operations that use up what they act on: a fixture account per case ----------------------


def create_goal(case: Case, kwargs: dict[str, Any]) -> None:
    """An onboarded account of its own (a user holds 20 active goals at most), and a target
    that suits the generated kind."""
    s = _seed()
    if not _well_formed_turn(case):
        _as(case, s.user.token)
        return
    _as(case, data.fresh(s).token)
    body = _body(case)
    kind = body.get("kind", "endurance")
    body.update(kind=kind, target_value=data.GOAL_TARGETS[kind], target_date=data.future_day())
    body.pop("exercise_id", None)
    if kind == "strength":
        body["exercise_id"] = _pick(s.exercise_ids)


def _with_goal(change: bool) -> Handler:
    """UpdateGoal, AbandonGoal: an account of its own with an active goal (an abandoned goal
    cannot be abandoned again nor changed)."""

    def handle(case: Case, kwargs: dict[str, Any]) -> None:
        s = _seed()
        if not _well_formed_turn(case):
            _as(case, s.user.token)
            return
        account, goal_id = data.fresh_with_goal(s)
        _as(case, account.token)
        _path(case, "goal_id", goal_id)
        body = case.body
        if change and isinstance(body, dict):
            if "target_value" in body:
                body["target_value"] = 2 * data.GOAL_TARGETS["endurance"]
            if "target_date" in body:
                body["target_date"] = data.future_day(2 * data.GOAL_DAYS_AHEAD)

    return handle


def start_session(case: Case, kwargs: dict[str, Any]) -> None:
    """An account of its own, served today's WOD (a user has one active session at most)."""
    _as(case, data.fresh_with_wod(_seed()).token)


def _in_session(log: bool) -> Handler:
    """LogSet, EndSession: an account of its own in an active session (an ended session takes
    no sets, and a session holds 200 at most)."""

    def handle(case: Case, kwargs: dict[str, Any]) -> None:
        s = _seed()
        if not _well_formed_turn(case):
            _as(case, s.user.token)
            return
        account, session_id = data.fresh_in_session(s)
        _as(case, account.token)
        _path(case, "session_id", session_id)
        if log:
            body = _body(case)
            body["exercise_id"] = _pick(s.exercise_ids)
            if not body.get("reps") and not body.get("duration_seconds"):
                body["reps"] = 8

    return handle


def premium(case: Case, kwargs: dict[str, Any]) -> None:
    """CancelSubscription, RegenerateWod: a premium account of its own in every case (a
    subscription is canceled once; premium regenerates the WOD 3 times a day). Negative cases
    too: the transcoder ignores unknown fields, so one of them may well be served."""
    _as(case, data.fresh_premium(_seed())[0].token)


def refund_payment(case: Case, kwargs: dict[str, Any]) -> None:
    """The admin refunds a payment of its own (a payment is refunded in full once)."""
    s = _seed()
    _as(case, s.admin.token)
    if not _well_formed_turn(case):
        return
    _account, payment = data.fresh_premium(s)
    _path(case, "payment_id", int(payment["id"]))
    body = case.body
    if isinstance(body, dict) and "amount" in body:
        body["amount"] = str(max(1, int(payment["amount"]) // 2))


class Checkout:
    """A free account of its own in well-formed cases (a subscriber cannot buy their plan
    again) with a test card's token, and the Idempotency-Key header on every case."""

    def __init__(self) -> None:
        self._cases = itertools.count()
        self._previous: tuple[str, str] | None = None

    def __call__(self, case: Case, kwargs: dict[str, Any]) -> None:
        s = _seed()
        retry = next(self._cases) % 4 == 3
        if retry and self._previous is not None:
            token, key = self._previous  # the same caller and key again
        else:
            key = f"fuzz-{uuid.uuid4().hex}"
            token = s.user.token
            if _well_formed_turn(case):
                token = data.fresh(s, onboarded=False).token
                _body(case)["payment_method_token"] = s.card_token
        self._previous = (token, key)
        _as(case, token)
        case.headers["Idempotency-Key"] = key


class Webhook:
    """Sign what is sent; make every other positive case a provider event."""

    def __init__(self) -> None:
        self._events = itertools.count()
        self._last_id = ""

    def __call__(self, case: Case, kwargs: dict[str, Any]) -> None:
        if _well_formed_turn(case):
            self._eventify(_body(case))
        body = case.body
        if isinstance(body, NotSet):
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        else:
            try:
                raw = json.dumps(body, allow_nan=False).encode()
            except (TypeError, ValueError):  # not JSON (NaN, binary data): sent unsigned
                return
        kwargs["data"] = raw  # exactly the bytes signed, sent as they are
        secret = _seed().target.webhook_secret.encode()
        signature = sign(secret, int(time.time()), raw)
        case.headers = dict(case.headers or {}, **{"Provider-Signature": signature})

    def _eventify(self, body: dict[str, Any]) -> None:
        n = next(self._events)
        # Every fourth event is delivered again (billing answers `duplicate`).
        event_id = self._last_id if n % 4 == 3 else f"evt_fuzz_{uuid.uuid4().hex}"
        self._last_id = event_id
        kind = EVENT_TYPES[n % len(EVENT_TYPES)]
        body.update(id=event_id, type=kind, created=int(time.time()))
        if kind.startswith("charge."):
            # Its metadata names a payment billing may know, of another charge: billing must
            # not cross them (the event is recorded and ignored).
            charge = {
                "id": f"ch_fuzz_{uuid.uuid4().hex[:16]}",
                "status": kind.removeprefix("charge."),
                "amount": 999,
                "currency": "EUR",
                "metadata": {"payment_id": str(n + 1)},
            }
            body["data"] = {"charge": charge}


# -- groups ------------------------------------------------------------------------------------


def _group_ids(s: Seed) -> list[int]:
    return [*s.group_ids, s.host_group_id]


class CreateGroup:
    """An owner of its own every GROUPS_PER_OWNER cases (a user belongs to 100 groups at most),
    and in well-formed turns a start an hour ahead (it may be at most 30 days ahead)."""

    def __init__(self) -> None:
        self._cases = itertools.count()
        self._owner: data.Account | None = None

    def __call__(self, case: Case, kwargs: dict[str, Any]) -> None:
        if self._owner is None or next(self._cases) % data.GROUPS_PER_OWNER == 0:
            self._owner = data.fresh(_seed())  # onboarded: `follow_wod` needs a WOD
        _as(case, self._owner.token)
        if _well_formed_turn(case):
            in_an_hour = datetime.now(UTC) + timedelta(hours=1)
            _body(case)["starts_at"] = in_an_hour.isoformat().replace("+00:00", "Z")


def join_group(case: Case, kwargs: dict[str, Any]) -> None:
    """The seeded host's invitation code (joining again is idempotent)."""
    s = _seed()
    _as(case, s.user.token)
    if _well_formed_turn(case):
        _body(case)["invitation_code"] = s.invitation_code


def leave_group(case: Case, kwargs: dict[str, Any]) -> None:
    """The user leaves the host's group, joined again just before (a member leaves once)."""
    s = _seed()
    _as(case, s.user.token)
    if _well_formed_turn(case):
        _path(case, "group_id", data.join_hosted_group(s))


HANDLERS: Final[dict[str, Handler]] = {
    "GoalService_GetGoal": _seeded_id("goal_id", lambda s: s.goal_ids),
    "GoalService_CreateGoal": create_goal,
    "GoalService_UpdateGoal": _with_goal(change=True),
    "GoalService_AbandonGoal": _with_goal(change=False),
    "TrainingService_GetSession": _seeded_id("session_id", lambda s: s.session_ids),
    "TrainingService_StartSession": start_session,
    "TrainingService_LogSet": _in_session(log=True),
    "TrainingService_EndSession": _in_session(log=False),
    "HistoryService_RecordExercise": record_exercise,
    "NutritionService_GetNutrition": get_nutrition,
    "CoachService_RegenerateWod": premium,
    "BillingService_CancelSubscription": premium,
    "BillingService_RefundPayment": refund_payment,
    "BillingService_Checkout": Checkout(),
    "BillingService_ReceiveWebhook": Webhook(),
    "GroupService_CreateGroup": CreateGroup(),
    "GroupService_GetGroup": _seeded_id("group_id", _group_ids),
    "GroupService_JoinGroup": join_group,
    "GroupService_LeaveGroup": leave_group,
    "GroupService_ListGroupMessages": _seeded_id("group_id", _group_ids),
}


# devtools/fuzz.py leaves the Authorization of these to the hooks.
assert set(HANDLERS) == data.HOOKED_OPERATIONS, set(HANDLERS) ^ data.HOOKED_OPERATIONS


@schemathesis.hook
def before_call(context: Any, case: Case, kwargs: dict[str, Any]) -> None:
    handler = HANDLERS.get(case.operation.definition.raw.get("operationId", ""))
    if handler is not None:
        handler(case, kwargs)
