"""Command-line entry point behind ./fit."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import fitedge
from devtools import (
    bench,
    bruno,
    deploy_check,
    envoy_files,
    fuzz,
    gen,
    mesh,
    postgres,
    secrets,
    tools,
)
from devtools.paths import ROOT, VENV_BIN


def _run(*cmd: str, env: dict[str, str] | None = None) -> int:
    print(f"$ {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode  # noqa: S603


def cmd_gen(args: argparse.Namespace) -> int:
    return gen.run(check=args.check)


def _breaking() -> int:
    """buf breaking against the previous commit (when it already had contracts)."""
    has_prev = subprocess.run(
        ["git", "cat-file", "-e", "HEAD~1:buf.yaml"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if has_prev.returncode != 0:
        print("buf breaking: no previous commit with contracts, nothing to compare")
        return 0
    return _run(str(VENV_BIN / "buf"), "breaking", "--against", ".git#ref=HEAD~1")


def cmd_check(_args: argparse.Namespace) -> int:
    """Static checks: generated code, contracts, lint, format, types."""
    steps: list[Callable[[], int]] = [
        lambda: gen.run(check=True),
        lambda: envoy_files.run(check=True),
        deploy_check.run,
        lambda: _run(str(VENV_BIN / "buf"), "lint"),
        _breaking,
        lambda: _run(str(VENV_BIN / "ruff"), "check", "."),
        lambda: _run(str(VENV_BIN / "ruff"), "format", "--check", "."),
        lambda: _run(str(VENV_BIN / "mypy")),
    ]
    failed = 0
    for step in steps:
        failed |= step() != 0
    print("check: FAILED" if failed else "check: all green")
    return int(failed)


def _postgres_env() -> dict[str, str]:
    env = dict(os.environ)
    ci = env.get("CI", "").lower() in ("1", "true", "yes")
    if ci:
        env["FITCO_REQUIRE_POSTGRES"] = "1"
    if env.get("FITCO_TEST_POSTGRES_URL") or env.get("FITCO_SKIP_POSTGRES") == "1":
        return env
    try:
        env["FITCO_TEST_POSTGRES_URL"] = postgres.ensure(install_if_missing=True)
        print(f"test: PostgreSQL at {env['FITCO_TEST_POSTGRES_URL']}")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        if ci:
            raise
        print(f"test: no PostgreSQL ({exc}); its tests will be skipped", file=sys.stderr)
    return env


def cmd_test(args: argparse.Namespace) -> int:
    env = _postgres_env()
    return _run(str(VENV_BIN / "python"), "-m", "pytest", *args.pytest_args, env=env)


def cmd_postgres(_args: argparse.Namespace) -> int:
    print(postgres.ensure(install_if_missing=True))
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    return _run(str(VENV_BIN / "python"), "-m", "monolith", "migrate")


def cmd_seed(args: argparse.Namespace) -> int:
    from devtools import seed  # noqa: PLC0415 - imports the monolith (not needed elsewhere)

    return seed.run(args)


def cmd_run(args: argparse.Namespace) -> int:
    return mesh.run(args)


def cmd_shift(args: argparse.Namespace) -> int:
    """Change (and persist) the WOD split between the legacy implementation and the coach."""
    config = mesh.MeshConfig.from_env()
    admin = args.admin_url or config.admin_url
    runtime_dir = Path(args.runtime_dir) if args.runtime_dir else config.runtime_dir
    if args.coach is None:
        live = fitedge.live_split(admin)
        saved = fitedge.read_runtime(runtime_dir)
        print(f"live:      {live or 'Envoy not reachable at ' + admin}")
        print(f"persisted: {saved or 'nothing yet (fresh start: legacy 100 / coach 0)'}")
        return 0
    try:
        split = fitedge.Split.coach_percent(args.coach)
    except ValueError as exc:
        print(f"shift: {exc}", file=sys.stderr)
        return 2
    fitedge.write_runtime(runtime_dir, split)
    applied = fitedge.apply_live(admin, split)
    where = "live and persisted" if applied else "persisted; Envoy not running, applies on start"
    print(f"WOD split: legacy {split.legacy}% / coach {split.coach}% ({where})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    return bench.run(args)


def cmd_fuzz(args: argparse.Namespace) -> int:
    return fuzz.run(args)


def cmd_bruno(args: argparse.Namespace) -> int:
    return bruno.run(args.base_url, args.bootstrap_key)


def cmd_secrets(args: argparse.Namespace) -> int:
    return secrets.run(args.directory)


def cmd_tools(args: argparse.Namespace) -> int:
    return tools.install(args.names)


def cmd_envoy(args: argparse.Namespace) -> int:
    return envoy_files.run(check=args.check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./fit", description="The Fit Company developer commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("help", help="show this help")
    p = sub.add_parser("run", aliases=["up"], help="set up and run the system locally")
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS (JSON and gRPC) with a development certificate; plain HTTP redirects",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("shift", help="change the WOD traffic split: shift wod --coach 10")
    p.add_argument("route", choices=["wod"], help="the route to shift")
    p.add_argument("--coach", type=int, help="percentage of WOD requests for the coach (0-100)")
    p.add_argument("--admin-url", help="Envoy admin URL (default from FITCO_ENVOY_ADMIN_PORT)")
    p.add_argument(
        "--runtime-dir",
        help="Envoy's runtime directory (default var/envoy/runtime; compose: "
        "var/compose/envoy-runtime)",
    )
    p.set_defaults(func=cmd_shift)
    p = sub.add_parser("bench", help="load tests (k6, ghz) and the report in bench/results")
    p.add_argument(
        "what",
        choices=[
            "matrix",
            "capacity",
            "capacity-high",
            "migration",
            "grpc",
            "scaling",
            "profile",
            "flood",
            "realtime",
            "report",
            "all",
        ],
    )
    p.add_argument("--seconds", type=int, default=8, help="measurement per cell (default 8)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser(
        "seed", help="seed N onboarded users into the configured database: seed users N --out F"
    )
    p.add_argument("what", choices=["users"])
    p.add_argument("count", type=int, metavar="N")
    p.add_argument("--out", required=True, help="CSV of email,password (with a header)")
    p.set_defaults(func=cmd_seed)
    p = sub.add_parser("bruno", help="run the Bruno collection against a fresh local mesh")
    p.add_argument("--base-url", help="run against this URL instead of a fresh mesh")
    p.add_argument("--bootstrap-key", help="with --base-url: the bootstrap key")
    p.set_defaults(func=cmd_bruno)
    p = sub.add_parser(
        "fuzz", help="fuzz the OpenAPI with schemathesis on a fresh mesh (bench/results/fuzz.json)"
    )
    p.add_argument(
        "--cases", type=int, default=fuzz.DEFAULT_CASES, help="test cases to generate (about)"
    )
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--seed", type=int, default=1, help="schemathesis' random seed")
    p.add_argument("--keep", help="keep schemathesis' config, output and report in this directory")
    p.set_defaults(func=cmd_fuzz)
    p = sub.add_parser("secrets", help="generate compose/k8s secrets into var/secrets")
    p.add_argument("directory", nargs="?", help="where (default var/secrets)")
    p.set_defaults(func=cmd_secrets)
    p = sub.add_parser(
        "tools", help="build pinned Go tools into .tools/bin (k6, ghz, grpcurl, ...)"
    )
    p.add_argument("names", nargs="*", help=f"some of: {', '.join(tools.TOOLS)} (default: all)")
    p.set_defaults(func=cmd_tools)
    p = sub.add_parser("envoy", help="render envoy/envoy.compose.yaml and validate the configs")
    p.add_argument("--check", action="store_true", help="fail if the committed config drifted")
    p.set_defaults(func=cmd_envoy)
    p = sub.add_parser("test", help="run the test suite (starts a local PostgreSQL)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("check", help="gen drift, buf lint/breaking, ruff, mypy")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("gen", help="regenerate gen/ from proto/")
    p.add_argument("--check", action="store_true", help="fail if gen/ is out of date")
    p.set_defaults(func=cmd_gen)
    p = sub.add_parser("migrate", help="upgrade the database schema (DATABASE_URL) to head")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("postgres", help="install/start a local PostgreSQL and print its URL")
    p.set_defaults(func=cmd_postgres)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    if extra and getattr(args, "func", None) is not cmd_test:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.pytest_args = [*extra, *args.pytest_args]
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return func(args)
