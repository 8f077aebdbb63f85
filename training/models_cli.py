"""`tiny-copilot models` (placeholder until its owner lands it)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="not implemented yet")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("tiny-copilot models is not implemented yet")
