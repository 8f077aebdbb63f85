"""`tiny-copilot eval`: measure a checkpoint on held-out code and write eval.json, report.md and plots."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .eval_replay import ReplayLimits
from .eval_run import EvalConfig

log = logging.getLogger(__name__)

# Defaults come from the config dataclasses, so the help text cannot drift from them.
_DEFAULTS = EvalConfig(checkpoint=Path("."), out_dir=Path("."))
_REPLAY_DEFAULTS = ReplayLimits()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure a model on held-out code: bits per byte, line completion, HumanEval infilling, typing replay",
        description=(
            "Evaluate a checkpoint on code it was not trained on (checked by SHA-256 against its training corpus "
            "manifest) and write eval.json, report.md and PNG plots."
        ),
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder to evaluate (default: the shipped model)")
    parser.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help="held-out files, folders or globs (default: the checkpoint's validation split); files the model "
        "was trained on are left out and counted, and naming one explicitly is an error",
    )
    parser.add_argument("--manifest", type=Path, help="the training run's corpus_manifest.json, if not beside the checkpoint")
    parser.add_argument("--out", type=Path, default=Path("eval-results"), help="output folder (default: ./eval-results)")
    parser.add_argument(
        "--limit", type=_positive_int, default=_DEFAULTS.limit_files, metavar="N", help="held-out files used at most (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=_DEFAULTS.seed, help="seed of file, cursor and replay-window choices (default: %(default)s)"
    )
    parser.add_argument(
        "--bpb-chars",
        type=_positive_int,
        default=_DEFAULTS.bpb_max_chars_per_file,
        metavar="N",
        help="characters of each file scored for bits per byte (default: %(default)s)",
    )
    parser.add_argument(
        "--line-cases",
        type=_non_negative_int,
        default=_DEFAULTS.line_cases_per_file,
        metavar="N",
        help="line-completion cursor points per file (default: %(default)s)",
    )
    parser.add_argument(
        "--humaneval-limit", type=_positive_int, metavar="N", help="run only the first N of the 1,033 HumanEval infilling tasks"
    )
    parser.add_argument("--no-execute", action="store_true", help="score HumanEval by exact match only; run no generated code")
    parser.add_argument("--skip-humaneval", action="store_true", help="leave out HumanEval infilling")
    parser.add_argument("--skip-typing", action="store_true", help="leave out the typing replay through the language server")
    parser.add_argument(
        "--typing-files",
        type=_positive_int,
        default=_REPLAY_DEFAULTS.max_files,
        metavar="N",
        help="files typed in the replay (default: %(default)s)",
    )
    parser.add_argument(
        "--typing-chars",
        type=_positive_int,
        default=_REPLAY_DEFAULTS.max_chars_per_file,
        metavar="N",
        help="characters typed per file in the replay (default: %(default)s)",
    )
    parser.add_argument(
        "--ablations",
        type=Path,
        metavar="PATH",
        help="ablations.json of benchmarks/ablations.py to quote beside missed targets "
        "(default: OUT/../ablations/ablations.json when it exists)",
    )
    parser.add_argument(
        "--settings",
        type=_json_object,
        default={},
        metavar="JSON",
        help='server settings as an editor sends them, e.g. \'{"maxNewTokens": 16}\' (default: the server defaults)',
    )
    parser.set_defaults(run=_run)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--settings must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--settings must be a JSON object, got {type(value).__name__}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _positive_int(text: str) -> int:
    """Parse a count of at least 1, so that a bad value is reported under the option the user typed."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    from tiny_copilot.model.checkpoint import CheckpointError, shipped_checkpoint_path

    from .eval_data import ManifestError, OverlapError
    from .eval_humaneval import HumanEvalUnavailable
    from .eval_lsp_client import LspError
    from .eval_run import run_evaluation

    try:
        config = EvalConfig(
            checkpoint=args.checkpoint or shipped_checkpoint_path(),
            out_dir=args.out,
            data=tuple(args.data or ()),
            manifest=args.manifest,
            limit_files=args.limit,
            seed=args.seed,
            line_cases_per_file=args.line_cases,
            bpb_max_chars_per_file=args.bpb_chars,
            humaneval_limit=args.humaneval_limit,
            humaneval_execute=not args.no_execute,
            skip_humaneval=args.skip_humaneval,
            skip_typing=args.skip_typing,
            ablations=args.ablations,
            settings=args.settings,
            replay=ReplayLimits(max_files=args.typing_files, max_chars_per_file=args.typing_chars),
        )
        results = run_evaluation(config)
    except (OverlapError, ManifestError, CheckpointError, HumanEvalUnavailable, LspError, ValueError, FileNotFoundError) as exc:
        print(f"tiny-copilot eval: {exc}", file=sys.stderr)
        return 2

    print(f"wrote {config.out_dir / 'eval.json'} and {config.out_dir / 'report.md'}")
    for check in results["targets"].values():
        measured = "n/a" if check["measured"] is None else f"{check['measured']:.3g}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        print(f"  {check['name']}: {measured} (target {check['target']:g}) {verdict}")
    return 0
