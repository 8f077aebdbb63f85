"""`tiny-copilot`: train, list, try and evaluate models.

Each subcommand lives in its own module with `add_parser(subparsers)`; the module sets
`run=function(args) -> int` as the parser default and imports torch only inside it, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence

from . import complete_cli, eval_cli, models_cli, train_cli

SUBCOMMANDS = (train_cli, models_cli, complete_cli, eval_cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiny-copilot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v for info, -vv for debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def attach_negative_values(argv: Sequence[str]) -> list[str]:
    """Write `--option -5m` as `--option=-5m`.

    argparse treats a word that starts with "-" as an option unless it is a plain number, so
    `--time-budget -5m` failed with "expected one argument" rather than the duration's own error.
    No option of ours starts with a digit, so such a word is always a value.
    """
    joined: list[str] = []
    for word in argv:
        previous = joined[-1] if joined else ""
        if re.match(r"-\.?\d", word) and previous.startswith("--") and "=" not in previous:
            joined[-1] = f"{previous}={word}"
        else:
            joined.append(word)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(attach_negative_values(sys.argv[1:] if argv is None else argv))
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
