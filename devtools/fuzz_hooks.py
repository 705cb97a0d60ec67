"""schemathesis hooks for `./fit fuzz` (loaded by schemathesis, not imported by the project).

Logout and ChangePassword end every session of their caller: with one token for the whole run
only the first case of each would get past authentication. So each of their cases signs up an
account of its own, and every other ChangePassword case gets that account's password as
`current_password` (a wrong one is INVALID_ARGUMENT, so otherwise no case would be served).
The mesh's URL and the password come from the environment `devtools.fuzz` runs schemathesis in.
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.request
import uuid
from typing import Any

import schemathesis

FRESH_SESSION_OPERATIONS = ["UserService_Logout", "UserService_ChangePassword"]
BASE_URL_ENV = "FITCO_FUZZ_BASE_URL"
PASSWORD_ENV = "FITCO_FUZZ_PASSWORD"  # noqa: S105 - the name of a variable


@schemathesis.auth(refresh_interval=None).apply_to(operation_id=FRESH_SESSION_OPERATIONS)
class FreshSession:
    """A new account per case: its token is the case's Authorization."""

    def __init__(self) -> None:
        self._cases = itertools.count()

    def get(self, case: Any, ctx: Any) -> str:
        body = {
            "email": f"session-{uuid.uuid4().hex[:12]}@fuzz.example.com",
            "name": "Session",
            "password": os.environ[PASSWORD_ENV],
        }
        req = urllib.request.Request(  # noqa: S310 - the run's own mesh on loopback
            os.environ[BASE_URL_ENV] + "/v1/auth/register",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return str(json.loads(resp.read())["access_token"])

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = dict(case.headers or {}, Authorization=f"Bearer {data}")
        body = case.body
        right_password = next(self._cases) % 2 == 0
        if right_password and isinstance(body, dict) and "current_password" in body:
            body["current_password"] = os.environ[PASSWORD_ENV]
