"""`./fit seed users N --out FILE`: N distinct, onboarded users in the database of the running
configuration (DATABASE_URL, or the SQLite file in FITCO_DATA_DIR), for load tests (issue #13).

Written through the monolith's domain code (monolith/domain/seeding.py): real argon2 password
hashes, computed once and reused. Users that exist are kept, so a second run with a larger N
adds only the missing ones. FILE is CSV `email,password` with a header, one line per user.

The password is generated once per data directory (`<data dir>/seed-password`, owner-only) and
reused by later runs, so the lines of users kept from an earlier run stay valid. Never point
this at a production database: the seeded accounts are real accounts.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import secrets
import time
from pathlib import Path

from fitcore.config import Env, data_dir
from fitcore.db import open_database
from fitcore.settings import clock_from_env
from monolith.app import database_url
from monolith.domain.passwords import owasp_hasher
from monolith.domain.seeding import seed_user, seed_users
from monolith.migrations import MIGRATIONS

log = logging.getLogger("devtools.seed")
PASSWORD_FILE = "seed-password"  # noqa: S105 - a file name, not a password


def seed_password(directory: Path) -> str:
    """The seeded users' password: made on the first run, read on the next ones."""
    path = directory / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def seed(env: Env, count: int, out: Path) -> tuple[int, int]:
    """Seed `count` users; write their credentials to `out`. Returns (created, kept)."""
    url = database_url(env)
    MIGRATIONS.upgrade(url)
    db, _head = open_database(env, url, MIGRATIONS, log)
    try:
        password = seed_password(data_dir(env))
        password_hash = owasp_hasher().hash(password)  # once, for every account
        users = [seed_user(n) for n in range(count)]
        result = seed_users(db, clock_from_env(env), users, password_hash)
    finally:
        db.engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "password"])
        writer.writerows([u.email, password] for u in users)
    out.chmod(0o600)
    return result.created, result.kept


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("seed: N must be at least 1")
        return 2
    started = time.monotonic()
    created, kept = seed(Env(), args.count, Path(args.out))
    print(
        f"seed: {created} users created, {kept} kept, credentials in {args.out} "
        f"({time.monotonic() - started:.1f} s)"
    )
    return 0
