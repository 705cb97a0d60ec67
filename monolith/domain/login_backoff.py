"""Per-email login back-off that does not tell which emails are registered.

After `threshold` consecutive failed logins for one email, that email is locked for
`base * 2^(failures - threshold)` seconds (capped at `max_seconds`); a login while locked is
refused with RESOURCE_EXHAUSTED (reason LOGIN_BACKOFF, RetryInfo) before any password hashing,
so a flood against one email costs a row read per attempt, not an Argon2 computation.
A successful login resets the count.

The state is keyed by a SHA-256 of the normalised email, computed and stored the same way for
unknown emails as for registered ones: the answers (code, message, timing of the lock) are
identical, so the back-off cannot be used to enumerate accounts. A plain hash rather than an
HMAC because the users table holds the emails in clear anyway; the hash only keeps attempted
(possibly mistyped) addresses out of this table.

Attempts refused while locked are not counted (only verified failures are), so the lock grows
with guesses actually checked. Concurrent attempts that all pass the check before the first
failure is recorded can overshoot the threshold by at most the number in flight, which the
password hashing pool bounds. Failures are counted with one atomic upsert, so none is lost.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from fitcore.db import dialect_insert
from fitcore.errors import ResourceExhausted
from monolith.domain.common import as_utc
from monolith.models import LoginAttemptRow

KEY_CONTEXT = b"fitco login back-off v1\x00"  # domain separation: not a bare email hash
MAX_EXPONENT = 32  # 2^32 s is far past any sensible cap; keeps the float finite


def attempt_key(normalized_email: str) -> str:
    """The back-off key of an email, as the login looks it up (stripped, lower case)."""
    return hashlib.sha256(KEY_CONTEXT + normalized_email.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BackoffPolicy:
    threshold: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 900.0

    def lock_seconds(self, failures: int) -> float:
        """How long an email stays locked after its `failures`-th consecutive failure."""
        if failures < self.threshold:
            return 0.0
        exponent = min(failures - self.threshold, MAX_EXPONENT)
        return min(self.max_seconds, self.base_seconds * 2.0**exponent)


def locked_error(retry_after_seconds: float) -> ResourceExhausted:
    wait = max(1, math.ceil(retry_after_seconds))
    return ResourceExhausted(
        f"too many failed logins for this email; retry in {wait} s",
        reason="LOGIN_BACKOFF",
        retry_after_seconds=wait,
    )


class LoginBackoff:
    def __init__(self, policy: BackoffPolicy | None = None) -> None:
        self.policy = policy or BackoffPolicy()

    def check(self, s: Session, key: str, now: datetime) -> int:
        """The consecutive failures so far; raises ResourceExhausted while `key` is locked."""
        row = s.get(LoginAttemptRow, key)
        if row is None:
            return 0
        if row.locked_until is not None:
            remaining = (as_utc(row.locked_until) - now).total_seconds()
            if remaining > 0:
                raise locked_error(remaining)
        return row.failures

    def record_failure(self, s: Session, key: str, now: datetime) -> int:
        """Count one failure atomically (concurrent failures all count); lock when due."""
        insert = dialect_insert(s, LoginAttemptRow).values(
            key=key, failures=1, locked_until=None, updated_at=now
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[LoginAttemptRow.key],
            set_={"failures": LoginAttemptRow.failures + 1, "updated_at": now},
        ).returning(LoginAttemptRow.failures)
        failures = int(s.execute(upsert).scalar_one())
        # The upsert holds the row (PostgreSQL row lock, SQLite write lock) until commit, so
        # this second statement sees no interleaved change.
        seconds = self.policy.lock_seconds(failures)
        if seconds > 0:
            s.execute(
                update(LoginAttemptRow)
                .where(LoginAttemptRow.key == key)
                .values(locked_until=now + timedelta(seconds=seconds))
            )
        return failures

    def reset(self, s: Session, key: str) -> None:
        s.execute(delete(LoginAttemptRow).where(LoginAttemptRow.key == key))
