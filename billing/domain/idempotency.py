"""Idempotency keys: a mutating payment call made twice with one key runs once.

The client sends an `Idempotency-Key` (gRPC metadata `idempotency-key`, 8-255 printable ASCII
characters). Per (user, key), one row in idempotency_keys:

- the first request inserts it `in_progress` (INSERT ... ON CONFLICT DO NOTHING: of concurrent
  requests exactly one inserts, the database decides), runs, and stores its answer (the
  serialized response) or its client error (the whole google.rpc.Status, details included),
  `done`, kept RETENTION (24 h: domain-facts, Payments);
- an infrastructure failure (UNAVAILABLE, a deadline, a bug) stores nothing: the row is deleted
  so a retry with the same key runs again (checkout then reuses its payment and the provider's
  own idempotency key, so the card is never charged twice);
- another request with the key and the same parameters (request_hash) waits up to
  `wait_seconds` for the first to finish and answers what it stored; still running then:
  ABORTED; with other parameters: ALREADY_EXISTS (HTTP 409), reason IDEMPOTENCY_KEY_REUSED.

A row `in_progress` holds a lease of IN_PROGRESS_LEASE: if its process died mid-request, a
retry after the lease takes the key over instead of being refused for a day. Expired rows are
ignored, replaced by a new request, and deleted by `purge`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import grpc
from google.rpc import status_pb2
from sqlalchemy import Result, delete, select

from billing.domain.times import utc
from billing.metrics import IDEMPOTENT_REPLAYS_TOTAL
from billing.models import IdempotencyKeyRow
from fitcore.clock import Clock
from fitcore.db import Database, dialect_insert
from fitcore.errors import AlreadyExists, FieldViolation, InvalidArgument, ServiceError

log = logging.getLogger("billing.idempotency")

HEADER: Final = "idempotency-key"
FIELD: Final = "Idempotency-Key"
MIN_KEY, MAX_KEY = 8, 255
# Stored answers are kept this long (domain-facts.md, Payments: "keys kept at least 24 h").
RETENTION: Final = timedelta(hours=24)
# A request still `in_progress` after this is taken to be dead (its process stopped).
IN_PROGRESS_LEASE: Final = timedelta(minutes=2)
IN_PROGRESS: Final = "in_progress"
DONE: Final = "done"
# Client errors are answers like any other: stored and replayed. Anything else is not.
STORED_CODES: Final = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)
_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED
    reason = "IDEMPOTENCY_KEY_IN_PROGRESS"


class ReplayedError(ServiceError):
    """A stored client error, answered again exactly as the first time (details included)."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        self._status = status

    def to_status_proto(self) -> status_pb2.Status:
        return self._status


def check_key(key: str | None) -> str:
    """The Idempotency-Key, or INVALID_ARGUMENT (a field violation on the header)."""
    if not key:
        problem = "required: send an Idempotency-Key header (8-255 printable ASCII characters)"
    elif not MIN_KEY <= len(key) <= MAX_KEY:
        problem = f"must have {MIN_KEY} to {MAX_KEY} characters"
    elif not all(" " <= ch <= "~" for ch in key):
        problem = "must be printable ASCII"
    else:
        return key
    raise InvalidArgument([FieldViolation(FIELD, problem)])


def request_hash(method: str, params: Mapping[str, str]) -> str:
    """sha256 of the canonical request: the method and its parameters, as sorted JSON."""
    canonical = json.dumps({"method": method, "params": dict(params)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Idempotency:
    def __init__(
        self, db: Database, clock: Clock, *, wait_seconds: float = 5.0, poll_seconds: float = 0.05
    ) -> None:
        self._db = db
        self._clock = clock
        self._wait = wait_seconds
        self._poll = poll_seconds

    def run(self, user_id: int, key: str, req_hash: str, work: Callable[[], bytes]) -> bytes:
        """`work()`'s answer for this (user, key): run at most once while the key lives."""
        deadline = time.monotonic() + self._wait
        while True:
            row = self._live(user_id, key)
            if row is None:
                claimed_at = self._claim(user_id, key, req_hash)
                if claimed_at is not None:
                    return self._execute(user_id, key, claimed_at, work)
                continue  # another request inserted it first: look at theirs
            if row.request_hash != req_hash:
                IDEMPOTENT_REPLAYS_TOTAL.labels("reused_key").inc()
                raise AlreadyExists(
                    "this Idempotency-Key was used with other parameters: use a new key",
                    reason="IDEMPOTENCY_KEY_REUSED",
                )
            if row.state == DONE:
                IDEMPOTENT_REPLAYS_TOTAL.labels("replayed").inc()
                return _replay(row)
            if time.monotonic() >= deadline:
                IDEMPOTENT_REPLAYS_TOTAL.labels("in_progress").inc()
                raise Aborted("a request with this Idempotency-Key is in progress: retry later")
            time.sleep(self._poll)

    def _live(self, user_id: int, key: str) -> IdempotencyKeyRow | None:
        """The key's row unless absent or expired (a read: waiting requests never queue behind
        writers)."""
        with self._db.transaction(write=False) as s:
            row = s.get(IdempotencyKeyRow, (user_id, key))
            return row if row is not None and utc(row.expires_at) > self._clock.now() else None

    def _claim(self, user_id: int, key: str, req_hash: str) -> datetime | None:
        """Insert the key `in_progress`: when this request won it, the row's created_at (what
        identifies this claim); None when another request holds it."""
        now = self._clock.now()
        with self._db.transaction() as s:
            # An expired row is forgotten first; then the database lets one insert win.
            s.execute(
                delete(IdempotencyKeyRow).where(
                    IdempotencyKeyRow.user_id == user_id,
                    IdempotencyKeyRow.key == key,
                    IdempotencyKeyRow.expires_at <= now,
                )
            )
            stmt = (
                dialect_insert(s, IdempotencyKeyRow)
                .values(
                    user_id=user_id,
                    key=key,
                    request_hash=req_hash,
                    state=IN_PROGRESS,
                    response=None,
                    error_code="",
                    error_reason="",
                    error_message="",
                    created_at=now,
                    expires_at=now + IN_PROGRESS_LEASE,
                )
                .on_conflict_do_nothing()
            )
            won = _rowcount(s.execute(stmt)) == 1
        return now if won else None

    def _execute(
        self, user_id: int, key: str, claimed_at: datetime, work: Callable[[], bytes]
    ) -> bytes:
        try:
            answer = work()
        except ServiceError as exc:
            if exc.code in STORED_CODES:
                self._store(user_id, key, claimed_at, None, exc)
            else:
                self._forget(user_id, key, claimed_at)
            raise
        except BaseException:
            self._forget(user_id, key, claimed_at)
            raise
        self._store(user_id, key, claimed_at, answer, None)
        return answer

    def _store(
        self,
        user_id: int,
        key: str,
        claimed_at: datetime,
        answer: bytes | None,
        err: ServiceError | None,
    ) -> None:
        now = self._clock.now()
        with self._db.transaction() as s:
            row = s.get(IdempotencyKeyRow, (user_id, key), with_for_update=True)
            if row is None or utc(row.created_at) != claimed_at:
                return  # our lease ran out and another request took the key over
            row.state, row.expires_at = DONE, now + RETENTION
            if err is None:
                row.response = answer
            else:
                row.response = err.to_status_proto().SerializeToString()
                row.error_code = err.code.name[:32]
                row.error_reason = err.reason[:64]
                row.error_message = err.message[:500]

    def _forget(self, user_id: int, key: str, claimed_at: datetime) -> None:
        try:
            with self._db.transaction() as s:
                s.execute(
                    delete(IdempotencyKeyRow).where(
                        IdempotencyKeyRow.user_id == user_id,
                        IdempotencyKeyRow.key == key,
                        IdempotencyKeyRow.created_at == claimed_at,
                    )
                )
        except Exception:
            # The lease runs out on its own; the original error is what the client must see.
            log.warning("could not release an idempotency key", exc_info=True)

    def purge(self, now: datetime | None = None) -> int:
        """Delete expired keys; how many went."""
        with self._db.transaction() as s:
            result = s.execute(
                delete(IdempotencyKeyRow).where(
                    IdempotencyKeyRow.expires_at <= (now or self._clock.now())
                )
            )
            return _rowcount(result)

    def stored(self, user_id: int, key: str) -> IdempotencyKeyRow | None:
        """The row of a key (tests, support)."""
        with self._db.transaction(write=False) as s:
            return s.scalars(
                select(IdempotencyKeyRow).where(
                    IdempotencyKeyRow.user_id == user_id, IdempotencyKeyRow.key == key
                )
            ).first()


def _rowcount(result: Result[Any]) -> int:
    """Rows an INSERT/DELETE touched (a CursorResult's rowcount; Result's type omits it)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _replay(row: IdempotencyKeyRow) -> bytes:
    if row.error_code:
        status = status_pb2.Status()
        status.ParseFromString(row.response or b"")
        raise ReplayedError(status)
    return row.response or b""
