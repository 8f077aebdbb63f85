"""`tiny-copilot train`: the flags are derived from TrainConfig, so help, defaults and checks live in one place."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import shlex
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_origin

from .train_config import DEFAULT_TIME_BUDGET_S, TrainConfig, flag_of, keep_resumed_dtype, resume_config

DESCRIPTION = """\
Train a small GPT on source code, on CPU or GPU. Data preparation (corpus, tokenizer, token files) runs
first and is not counted in --time-budget; the budget covers the optimisation loop, including the
start-up speed measurement, evaluations and checkpoints. Interrupt with Ctrl-C to save a checkpoint and
stop; continue later with --resume. Under torchrun, each process trains on its own share of every step."""

EPILOG = """\
examples:
  tiny-copilot train --time-budget 10m                      the standard library, preset small
  tiny-copilot train --data ~/src/myproject --init default --time-budget 5m
  tiny-copilot train --preset tiny --max-steps 500 --out runs/tiny
  tiny-copilot train --resume --out runs/tiny --max-steps 1000
  torchrun --nproc-per-node 2 -m tiny_copilot.training.cli train --device cpu --max-steps 100"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on source code",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (default: the newest run) from its last checkpoint, with the same "
        "data order, schedule and optimizer state",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the model shape and exact parameter count, then exit")
    parser.set_defaults(run=_run)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per TrainConfig field; an option not given leaves no attribute on the namespace."""
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        meta = field.metadata
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
        help_text = meta["help"]
        if field.default not in (None, ()) and "default" not in help_text:
            shown = repr(field.default) if isinstance(field.default, str) else field.default
            help_text += f" (default {shown})"
        kwargs["help"] = help_text.replace("%", "%%")
        value_type = _value_type(hints[field.name])
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if value_type is tuple:
            kwargs["action"] = "extend" if meta.get("nargs") else "append"
            if meta.get("nargs"):
                kwargs["nargs"] = meta["nargs"]
        elif "parse" in meta:
            kwargs["type"] = _argument_type(meta["parse"])
        else:
            kwargs["type"] = value_type
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag_of(field.name), **kwargs)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Return the TrainConfig fields given on the command line, with values converted to field types."""
    given = {}
    for field in dataclasses.fields(TrainConfig):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            given[field.name] = tuple(value) if isinstance(value, list) else value
    if "data_paths" in given:
        # Saved in the run's config and read again by --resume, which may run from another folder.
        given["data_paths"] = tuple(os.path.abspath(os.path.expanduser(path)) for path in given["data_paths"])
    if "sample_prompt" in given:
        from .complete_cli import interpret_escapes

        given["sample_prompt"] = interpret_escapes(given["sample_prompt"])
    return given


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap `parse` so that argparse prints its ValueError message instead of a generic one."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _value_type(hint: Any) -> type:
    """Reduce `int | None`, `tuple[str, ...]` or `Literal[...]` to the type argparse converts to."""
    origin = get_origin(hint)
    if origin is tuple:
        return tuple
    if origin is typing.Literal:
        return str
    arguments = [a for a in get_args(hint) if a is not type(None)]
    if arguments:
        return _value_type(arguments[0])
    return hint


PASSIVE_WAIT = ("OMP_WAIT_POLICY", "PASSIVE")
"""OpenMP threads that sleep instead of spinning while they wait for each other. Spinning threads wait
for a sibling that is not running when other processes keep the CPU busy. On a 2-core AMD EPYC with
torch 2.13, passive waits made a training step 5-8x faster on a busy CPU and no slower on an idle one."""


def _run(args: argparse.Namespace) -> int:
    # libgomp reads the variable once, when torch loads; torch is not imported before this point.
    os.environ.setdefault(*PASSIVE_WAIT)
    from tiny_copilot.model.checkpoint import CheckpointError, read_checkpoint_meta

    from .runs import default_runs_dir, list_runs, new_run_dir, read_training_state, resume_checkpoint_dir

    try:
        given = config_from_args(args)
        if args.resume:
            run_dir = Path(given["out_dir"]).expanduser() if "out_dir" in given else _newest_run(default_runs_dir(), list_runs)
            checkpoint_dir = resume_checkpoint_dir(run_dir)
            saved = read_training_state(checkpoint_dir).training_config
            config = resume_config(saved, given)
            trained_dtype = read_checkpoint_meta(checkpoint_dir).get("execution", {}).get("dtype")
            config, note = keep_resumed_dtype(config, given, trained_dtype)
            if note:
                print(f"tiny-copilot train: {note}", file=sys.stderr)
        else:
            config = TrainConfig(**given)
            run_dir = Path(config.out_dir).expanduser() if config.out_dir else new_run_dir(config.preset)
            _check_can_be_folder(run_dir)
    except (ValueError, CheckpointError) as exc:
        print(f"tiny-copilot train: error: {exc}", file=sys.stderr)
        return 2

    if args.dry_run:
        return _dry_run(config, checkpoint_dir if args.resume else None)
    return _train(config, run_dir, args.resume)


def _train(config: TrainConfig, run_dir: Path, resume: bool) -> int:
    from tqdm import tqdm

    from tiny_copilot.model.checkpoint import CheckpointError

    from .runs import remove_unused_run_files, snapshot_run_dir
    from .trainer import train

    def say(line: str) -> None:
        tqdm.write(line, file=sys.stdout)

    if config.stop_time_s == DEFAULT_TIME_BUDGET_S and config.time_budget_s is None:
        say(f"no --time-budget or --max-steps given: training for {DEFAULT_TIME_BUDGET_S / 60:.0f} minutes")
    before = snapshot_run_dir(run_dir)
    try:
        outcome = train(config, run_dir, resume=resume, command=shlex.join(["tiny-copilot", *sys.argv[1:]]), say=say)
    except BaseException as exc:
        # Bad data, a broken checkpoint or Ctrl-C before the first save: leave no unusable run behind.
        expected = isinstance(exc, (CheckpointError, FileNotFoundError, ValueError)) or _is_write_error(exc)
        if expected:
            message = _write_error_message(exc, run_dir) if _is_write_error(exc) else str(exc)
            print(f"tiny-copilot train: error: {message}", file=sys.stderr)
        removed = remove_unused_run_files(run_dir, before) if _is_main_process() else []
        if removed:
            print(f"tiny-copilot train: removed {removed[0] if removed[0] == run_dir else ', '.join(map(str, removed))} "
                  "because the run saved no checkpoint", file=sys.stderr)  # fmt: skip
        if expected:
            return 1
        raise

    if outcome.checkpoint_dir is None:
        return 130 if outcome.interrupted else 0
    val = ""
    if outcome.val is not None:
        measured = "" if outcome.val_step == outcome.step else f" (measured at step {outcome.val_step})"
        val = f", val {outcome.val.bpb:.3f} bits/byte{measured}"
    speed = f", {outcome.tokens_per_s:,.0f} tokens/s, MFU {100 * outcome.mfu:.1f}%" if outcome.tokens_per_s else ""
    say(f"{'interrupted' if outcome.interrupted else 'finished'} at step {outcome.step}{val}{speed}")
    say(f"checkpoint: {outcome.checkpoint_dir}")
    if outcome.interrupted:
        say(f"continue with: tiny-copilot train --resume --out {shlex.quote(str(outcome.run_dir))}")
        return 130
    say(f"try it: tiny-copilot complete --checkpoint {shlex.quote(str(outcome.checkpoint_dir))} --prompt 'for i in range('")
    return 0


def _dry_run(config: TrainConfig, resumed_checkpoint: Path | None) -> int:
    from tiny_copilot.model.checkpoint import CheckpointError, load_checkpoint, shipped_checkpoint_path
    from tiny_copilot.model.transformer import count_parameters

    from .speed import model_flops_per_token

    # The run's shape, as the trainer picks it: a resumed or fine-tuned checkpoint keeps its own shape
    # (all but --seq-len), and only a run from scratch takes the preset's.
    start = resumed_checkpoint
    if start is None and config.init_checkpoint is not None:
        start = shipped_checkpoint_path() if config.init_checkpoint == "default" else Path(config.init_checkpoint).expanduser()
    if start is None:
        model_config, source = config.model_config(), f"preset {config.preset}"
    else:
        try:
            model_config, source = load_checkpoint(start).config, f"checkpoint {start}"
        except CheckpointError as exc:
            print(f"tiny-copilot train: error: {exc}", file=sys.stderr)
            return 2
        if config.seq_len is not None:
            model_config = dataclasses.replace(model_config, max_seq_len=config.seq_len)
    total = count_parameters(model_config)
    embedding = model_config.vocab_size * model_config.d_model
    print(f"{source}: {model_config}")
    print(f"parameters: {total:,} ({embedding:,} in the tied embedding, {total - embedding:,} in the blocks and norms)")
    print(f"tokens per optimizer step and process: {config.batch_size * config.grad_accum * model_config.max_seq_len:,}")
    flops = model_flops_per_token(model_config, total, model_config.max_seq_len)
    print(f"training FLOPs per token (6 N + 12 L D T): {flops / 1e6:.1f} M")
    return 0


def _check_can_be_folder(run_dir: Path) -> None:
    """Raise ValueError when `run_dir`, or a folder above it, is an existing file, so it cannot be created."""
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"--out {run_dir}: {path} is a file, not a folder; pass a folder path to --out")
            return


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
"""Errors of a write into the run folder that the user fixes outside tiny-copilot: disk space, permissions."""


def _is_write_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS


def _write_error_message(exc: BaseException, run_dir: Path) -> str:
    """Name the path that could not be written, why, and how to go on without losing the run's last checkpoint."""
    from .runs import resolve_checkpoint_dir

    assert isinstance(exc, OSError)
    failed = f"cannot write {exc.filename} ({exc.strerror})" if exc.filename else f"cannot write into {run_dir} ({exc.strerror})"
    fix = "free disk space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make the folder writable"
    checkpoint_dir = resolve_checkpoint_dir(run_dir)
    if not checkpoint_dir.is_dir():
        return f"{failed}; {fix}, or pass --out a folder you can write to"
    return (
        f"{failed}; the checkpoint in {checkpoint_dir} is intact, so {fix}, then continue with: "
        f"tiny-copilot train --resume --out {shlex.quote(str(run_dir))}"
    )


def _is_main_process() -> bool:
    """Return whether this is rank 0, the process that writes the run folder (always, without torchrun)."""
    return os.environ.get("RANK", "0") == "0"


def _newest_run(runs_dir: Path, list_runs: Any) -> Path:
    summaries, _ = list_runs(runs_dir)
    if not summaries:
        raise ValueError(f"--resume found no run with a checkpoint under {runs_dir}; pass the run folder with --out")
    return summaries[0].path.parent
