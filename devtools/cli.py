"""Command-line entry point behind ./fit."""

from __future__ import annotations

import argparse
import sys

from devtools import gen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./fit", description="The Fit Company developer commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("help", help="show this help")
    p_gen = sub.add_parser("gen", help="regenerate gen/ from proto/")
    p_gen.add_argument("--check", action="store_true", help="fail if gen/ is out of date")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.command in (None, "help"):
        parser.print_help()
        return 0
    if args.command == "gen":
        return gen.run(check=args.check)
    parser.error(f"unknown command {args.command}")
    return 2
