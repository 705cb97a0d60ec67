"""`./fit fuzz`: schemathesis against the generated OpenAPI, through Envoy, on a fresh mesh.

Starts its own mesh on free loopback ports (SQLite, or a throw-away PostgreSQL database) with
no edge rate limits, bootstraps an admin with the bootstrap key, signs up a user and gives them
data (devtools/fuzz_data.py: profile, history, goals, sessions, premium bought with a sandbox
test card...), then runs schemathesis (pinned in pyproject.toml) on
`gen/openapi/fitco.swagger.yaml` with every operation authenticated as its access in the
contracts says: user RPCs as a user, admin RPCs as the admin, the bootstrap with its key, the
provider's webhook signed with the webhook secret; internal RPCs are not routed at the edge and
so not fuzzed. Login and /oauth/token get the real credentials in half the cases, RegisterUser
and CreateUser unused addresses, and some path parameters existing ids (dictionaries below);
the operations that use up what they act on (Logout, CancelSubscription, AbandonGoal, ...) get
an account of their own per case, and every other positive case of those whose validity
depends on the state (ids, dates, card tokens) gets valid values (devtools/fuzz_hooks.py): so
that every operation is reached, not only refused.

Checks: no server error (5xx) for any input, status codes, content types and response bodies
as the OpenAPI states. Not checked, with the reason:
- negative_data_rejection: proto3 JSON cannot tell an explicit zero from a field left out, so
  a 0 the schema's minimum forbids means "not given" and is accepted (fitcore.validation);
- positive_data_acceptance: some rules need the database, the catalog or the clock (a taken
  email, an unknown exercise, a measurement in the future), which no schema can state;
- use_after_free, ensure_resource_availability: the OpenAPI declares no links between
  operations.

The result is kept in bench/results/fuzz.json (one entry per database) with a compact summary
in bench/results/fuzz.md; the CI runs a small version (tests/e2e/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2

from devtools import postgres
from devtools.fuzz_data import HOOKED_OPERATIONS, Seed, Target, seed
from devtools.mesh import Mesh, MeshConfig
from devtools.paths import DESCRIPTOR_SET, GEN_OPENAPI, ROOT, VENV_BIN
from fitcore.access import Access, AccessTable

SPEC = GEN_OPENAPI / "fitco.swagger.yaml"
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
RESULTS = ROOT / "bench" / "results"
DEFAULT_CASES = 10_000
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
# The mesh the fuzzer talks to: no edge limits (one client, thousands of requests), tokens that
# outlive a long run, and no per-account login back-off (the fuzzer mixes the real password
# with wrong ones for one email; the back-off has tests of its own).
FUZZ_ENV = {
    "FITCO_RATE_LIMITS": "none",
    "FITCO_TOKEN_TTL_SECONDS": "21600",
    "FITCO_LOGIN_FAILURES_BEFORE_BACKOFF": "1000000000",
}
VERBS = ("get", "put", "post", "delete", "patch")
_OPERATION_ID = re.compile(r"^(?P<service>[A-Za-z0-9]+)_(?P<method>[A-Za-z0-9]+?)\d*$")


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    rpc: str  # Service/Method
    access: Access
    # Takes parameters or a body with fields: hypothesis has a space to search. Without, it
    # stops after a case or two whatever max-examples says.
    takes_input: bool
    # A server stream (WatchEvents): its body is one JSON document per line for as long as
    # the stream lasts, which no response schema describes; tests/e2e/test_realtime_e2e.py
    # and tests/service/test_events.py cover it.
    streams: bool = False

    @property
    def fuzzed(self) -> bool:
        return self.access.at_edge and not self.streams

    @property
    def why_not_fuzzed(self) -> str:
        if self.streams:
            return "server stream: a JSON document per line, not one response body"
        return f"{self.access.name.lower()}: not routed at the edge"


def operations(spec: Path = SPEC, descriptor_set: Path = DESCRIPTOR_SET) -> list[Operation]:
    """Every operation of the OpenAPI with the access its RPC declares."""
    table = AccessTable.of_file_set(
        descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    )
    by_short = {rpc.path.split("/")[1].rsplit(".", 1)[-1] + "/" + rpc.method: rpc for rpc in table}
    doc = yaml.safe_load(spec.read_text())
    out = []
    for path, item in doc["paths"].items():
        for verb in VERBS:
            if verb not in item:
                continue
            op_id = item[verb]["operationId"]
            m = _OPERATION_ID.match(op_id)
            rpc = by_short.get(f"{m['service']}/{m['method']}") if m else None
            access = rpc.access if rpc else Access.UNSPECIFIED
            params = item[verb].get("parameters", [])
            takes_input = any(_has_fields(doc, p) for p in params)
            ok = item[verb].get("responses", {}).get("200", {}).get("description", "")
            out.append(
                Operation(
                    op_id,
                    verb.upper(),
                    path,
                    rpc.path if rpc else "",
                    access,
                    takes_input,
                    streams="(streaming responses)" in ok,
                )
            )
    return out


def _has_fields(doc: dict[str, Any], param: dict[str, Any]) -> bool:
    if param.get("in") != "body":
        return True
    ref = param.get("schema", {}).get("$ref", "")
    schema = doc["definitions"].get(ref.rsplit("/", 1)[-1], param.get("schema", {}))
    return bool(schema.get("properties")) or schema.get("type") == "array"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def config(base_url: str, ops: list[Operation], s: Seed, max_examples: int, seed_value: int) -> str:
    """schemathesis.toml: auth per operation, data that reaches the operations, the checks."""
    rpc = {op.operation_id: op.rpc.rsplit("/", 1)[-1] for op in ops}
    fresh_emails = [f"member-{n}-{uuid.uuid4().hex[:6]}@fuzz.example.com" for n in range(1000)]
    lines = [
        f"base-url = {_toml(base_url)}",
        f"hooks = {_toml(str(HOOKS))}",
        "workers = 1",
        f"seed = {seed_value}",
        "request-timeout = 20",
        "",
        "[generation]",
        f"max-examples = {max_examples}",
        'mode = "all"',
        'database = "none"  # nothing kept between runs',
        "",
        "[phases.stateful]",
        "enabled = false  # the OpenAPI declares no links",
        "",
        "[checks]",
        "enabled = false",
        *(f"{check}.enabled = true" for check in CHECKS),
        "",
        "[dictionaries]",
        f"emails = {{ values = {_toml([s.user.email])} }}",
        f"passwords = {{ values = {_toml([s.user.password])} }}",
        f"new_emails = {{ values = {_toml(fresh_emails)} }}",
        f"exercise_ids = {{ values = {_toml(list(range(1, 21)))} }}",
        # int64 is a string in proto3 JSON, so in the OpenAPI too.
        f"entry_ids = {{ values = {_toml([str(i) for i in s.entry_ids])} }}",
        f"days = {{ values = {_toml(s.days)} }}",
    ]

    def operation(op_ids: list[str], headers: dict[str, str], **parameters: Any) -> None:
        if not op_ids or not (headers or parameters):
            return
        lines.extend(["", "[[operations]]", f"include-operation-id = {_toml(op_ids)}"])
        if headers:
            lines.append(f"headers = {_toml(headers)}")
        if parameters:
            lines.append(f"parameters = {_toml(parameters)}")

    def ids(
        *accesses: Access, methods: tuple[str, ...] = (), but: tuple[str, ...] = ()
    ) -> list[str]:
        return [
            op.operation_id
            for op in ops
            if op.access in accesses
            and (not methods or rpc[op.operation_id] in methods)
            and rpc[op.operation_id] not in but
            # Their caller is set per case by the hooks (a header here would override it).
            and op.operation_id not in HOOKED_OPERATIONS
        ]

    half = {"probability": 0.5}
    user = {"Authorization": f"Bearer {s.user.token}"}
    special = ("Logout", "ChangePassword", "GetExercise", "DeleteHistoryEntry", "GetServedWod")
    operation(ids(Access.USER, but=special), user)
    admin = {"Authorization": f"Bearer {s.admin.token}"}
    operation(ids(Access.ADMIN, but=("CreateUser",)), admin)
    operation(
        ids(Access.ADMIN, methods=("CreateUser",)),
        admin,
        **{"body.email": {"dictionary": "new_emails", **half}},
    )
    # Logout and ChangePassword: a fresh account per case (fuzz_hooks.FreshSession).
    operation(
        ids(Access.USER, methods=("DeleteHistoryEntry",)),
        user,
        entry_id={"dictionary": "entry_ids", **half},
    )
    operation(ids(Access.USER, methods=("GetServedWod",)), user, day={"dictionary": "days", **half})
    operation(
        ids(Access.PUBLIC, Access.USER, methods=("GetExercise",)),
        {},
        exercise_id={"dictionary": "exercise_ids", **half},
    )
    operation(
        ids(Access.PUBLIC, methods=("RegisterUser",)),
        {},
        **{"body.email": {"dictionary": "new_emails", **half}},
    )
    operation(
        ids(Access.PUBLIC, methods=("Login", "IssueToken")),
        {},
        **{
            "body.email": {"dictionary": "emails", **half},
            "body.password": {"dictionary": "passwords", **half},
        },
    )
    operation(
        ids(Access.PUBLIC, methods=("BootstrapAdmin",)),
        {"X-Bootstrap-Key": s.target.bootstrap_key},
    )
    skipped = [op.operation_id for op in ops if not op.fuzzed]
    if skipped:
        lines.extend(
            ["", "[[operations]]", f"include-operation-id = {_toml(skipped)}", "enabled = false"]
        )
    return "\n".join(lines) + "\n"


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The figures that matter, from schemathesis' JSON report."""
    failures = {
        f"{f['code']} {f['title']}": {"count": f["count"], "operations": f.get("operations", [])}
        for f in report.get("failures", [])
    }
    server_errors = sum(
        f["count"] for f in report.get("failures", []) if "server error" in f["title"].lower()
    )
    warnings = {k: v for k, v in report.get("warnings", {}).items() if v}
    reached: dict[str, dict[str, int]] = {}
    for label, phases in report.get("valid_rates", {}).items():
        total = {"accepted": 0, "rejected": 0, "conflicts": 0, "unreachable": 0}
        for counts in phases.values():
            for key in total:
                total[key] += counts.get(key, 0)
        reached[label] = total
    return {
        "cases": report["test_cases"]["generated"],
        "server_errors": server_errors,
        "failures": failures,
        "warnings": warnings,
        "operations": report["operations"],
        # Served, or refused only because of the state (an admin exists, an email is taken).
        "not_reached": sorted(
            label for label, t in reached.items() if not (t["accepted"] or t["conflicts"])
        ),
        "positive_cases_by_operation": reached,
        "phases": {k: v["status"] for k, v in report.get("phases", {}).items()},
        "seconds": round(report.get("running_time", 0.0), 1),
        "schemathesis": report.get("schemathesis_version"),
        "seed": report.get("seed"),
    }


def run_schemathesis(
    base_url: str,
    s: Seed,
    cases: int,
    workdir: Path,
    seed_value: int = 1,
    spec: Path = SPEC,
) -> dict[str, Any]:
    """Run schemathesis; return the figures (and the paths of its reports)."""
    ops = operations(spec)
    fuzzed = [op for op in ops if op.fuzzed]
    searched = [op for op in fuzzed if op.takes_input]
    max_examples = max(1, math.ceil((cases - len(fuzzed) + len(searched)) / max(1, len(searched))))
    cfg = workdir / "schemathesis.toml"
    cfg.write_text(config(base_url, ops, s, max_examples, seed_value))
    report = workdir / "schemathesis.json"
    cmd = [
        str(VENV_BIN / "schemathesis"),
        "--config-file",
        str(cfg),
        "run",
        str(spec),
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    started = time.monotonic()
    seed_file = workdir / "seed.json"
    s.save(seed_file)
    env = dict(os.environ, FITCO_FUZZ_SEED=str(seed_file))  # for devtools/fuzz_hooks.py
    proc = subprocess.run(  # noqa: S603
        cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    output = proc.stdout + proc.stderr
    (workdir / "schemathesis.out").write_text(output)
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report (exit {proc.returncode}):\n{output}")
    result = summarize(json.loads(report.read_text()))
    result.update(
        exit_code=proc.returncode,
        wall_seconds=round(time.monotonic() - started, 1),
        max_examples_per_operation=max_examples,
        checks=CHECKS,
        not_fuzzed={op.operation_id: op.why_not_fuzzed for op in ops if not op.fuzzed},
    )
    return result


def problems(result: dict[str, Any]) -> list[str]:
    """What makes a run fail: any failure (a 5xx, a response the OpenAPI does not describe),
    a warning, an operation never reached or not tested."""
    out = [
        f"{name}: {f['count']} on {', '.join(f['operations'])}"
        for name, f in result["failures"].items()
    ]
    out += [f"warning {name}: {value}" for name, value in result["warnings"].items()]
    out += [f"never accepted: {label}" for label in result["not_reached"]]
    ops = result["operations"]
    if ops.get("errored") or ops.get("tested") != ops.get("selected"):
        out.append(f"operations not all tested: {ops}")
    return out


@contextmanager
def fresh_mesh(db: str) -> Iterator[Target]:
    """A mesh of its own on a SQLite file or a new PostgreSQL database."""
    with tempfile.TemporaryDirectory(prefix="fitco-fuzz-") as tmp:
        data = Path(tmp)
        with _database(db, data) as url:
            config = MeshConfig.on_free_ports(data, database_url=url, extra_env=dict(FUZZ_ENV))
            mesh = Mesh(config)
            try:
                mesh.start()
                yield Target.of(mesh)
            finally:
                mesh.stop()


@contextmanager
def _database(db: str, data: Path) -> Iterator[str]:
    if db == "sqlite":
        yield f"sqlite:///{data / 'fitco.db'}"
        return
    with postgres.throwaway_database("fitco_fuzz") as url:
        yield url


def fuzz(db: str, cases: int, seed_value: int = 1, keep: Path | None = None) -> dict[str, Any]:
    """A fresh mesh, seeded, fuzzed: the result (see `summarize`)."""
    with tempfile.TemporaryDirectory(prefix="fitco-fuzz-work-") as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with fresh_mesh(db) as target:
            s = seed(target)
            result = run_schemathesis(target.base_url, s, cases, work, seed_value)
    result["database"] = db
    return result


def _write(result: dict[str, Any], command: str) -> None:
    """bench/results/fuzz.json (one entry per database, the latest run) and fuzz.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "fuzz.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    result = dict(result, command=command, date=datetime.now(UTC).strftime("%Y-%m-%d"))
    runs[result["database"]] = result
    path.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    lines = [
        "# Fuzzing the OpenAPI (`./fit fuzz`)",
        "",
        "schemathesis against `gen/openapi/fitco.swagger.yaml` through Envoy on a fresh mesh, "
        "every operation authenticated as its access says; details in `fuzz.json`.",
        "",
        "| database | date | cases | server errors | other failures | warnings | operations "
        "(tested/fuzzed) | never accepted | seconds | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for db, r in sorted(runs.items()):
        other = sum(f["count"] for f in r["failures"].values()) - r["server_errors"]
        ops = r["operations"]
        lines.append(
            f"| {db} | {r['date']} | {r['cases']:,} | {r['server_errors']} | {other} | "
            f"{len(r['warnings'])} | {ops['tested']}/{ops['selected']} | "
            f"{len(r['not_reached'])} | {r['wall_seconds']} | `{r['command']}` |"
        )
    (RESULTS / "fuzz.md").write_text("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    command = f"./fit fuzz --cases {args.cases} --db {args.db}"
    print(f"fuzz: {command} (a fresh mesh, then schemathesis)", flush=True)
    keep = Path(args.keep) if args.keep else None
    result = fuzz(args.db, args.cases, args.seed, keep)
    _write(result, command)
    found = problems(result)
    print(
        f"fuzz: {result['cases']:,} cases in {result['wall_seconds']} s, "
        f"{result['server_errors']} server errors, {len(result['failures'])} kinds of failure, "
        f"{len(result['warnings'])} warnings; bench/results/fuzz.json"
    )
    for problem in found:
        print(f"  {problem}")
    return 1 if found else 0
