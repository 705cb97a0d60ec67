"""`./fit seed users N --out FILE` (devtools/seed.py over monolith/domain/seeding.py): seeded
users are real users (they log in with the CSV's password and are onboarded: they get a WOD),
and a second run keeps them and adds only the missing ones. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

from fitco.coach.v1 import coach_pb2
from fitco.user.v1 import user_pb2

from devtools import seed
from tests.conftest import RunningMonolith, make_env


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["email", "password"]
        return list(reader)


def test_seeded_users_log_in_onboarded_and_a_rerun_keeps_them(
    monolith: RunningMonolith, tmp_path: Path
) -> None:
    url = str(monolith.app.db.engine.url.render_as_string(hide_password=False))
    env = make_env(monolith.key_dir, url)
    out = tmp_path / "users.csv"

    assert seed.seed(env, 30, out) == (30, 0)
    first = _rows(out)
    assert len(first) == 30 and len({r["email"] for r in first}) == 30
    assert out.stat().st_mode & 0o077 == 0  # credentials: owner-only

    users = monolith.client.users
    for row in (first[0], first[17], first[29]):
        login = users.Login(user_pb2.LoginRequest(email=row["email"], password=row["password"]))
        assert login.onboarded
        md = (("authorization", f"Bearer {login.access_token}"),)
        profile = users.GetProfile(user_pb2.GetProfileRequest(), metadata=md).profile
        assert profile.weight > 0 and profile.height > 0 and profile.fitness_goal
        wod = monolith.client.coach.GetWod(coach_pb2.GetWodRequest(), metadata=md)
        assert wod.exercises  # the legacy WOD of an onboarded user

    # A second run: the 30 are kept (same emails, same password), 10 more are made.
    assert seed.seed(env, 40, out) == (10, 30)
    second = _rows(out)
    assert second[:30] == first and len(second) == 40
    last = second[-1]
    assert users.Login(user_pb2.LoginRequest(email=last["email"], password=last["password"]))
