"""`tiny-copilot models`: list trained runs (and the shipped model), or the size presets with exact parameter counts."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list trained models, or the presets",
        description="List the runs under the runs folder: name, preset (with * when shape options changed it), "
        "parameters, step, validation bits per byte, date of the last checkpoint as recorded in it, and the "
        "checkpoint folder to pass to --checkpoint or --init.",
    )
    parser.add_argument("--runs-dir", type=Path, metavar="DIR", help="folder of runs (default: <user data folder>/tiny-copilot/runs)")
    parser.add_argument("--presets", action="store_true", help="list the size presets with their exact parameter counts instead")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.presets:
        return _print_presets(args.json)

    from tiny_copilot.model.checkpoint import CheckpointError, shipped_checkpoint_path

    from .runs import default_runs_dir, list_runs, summarize_checkpoint

    runs_dir = args.runs_dir or default_runs_dir()
    if args.runs_dir is not None:
        problem = _runs_dir_problem(args.runs_dir)
        if problem:
            print(f"tiny-copilot models: error: {problem}", file=sys.stderr)
            return 2
    summaries, problems = list_runs(runs_dir)
    shipped = shipped_checkpoint_path()
    if (shipped / "config.json").is_file():
        try:
            summaries.append(summarize_checkpoint("default (shipped)", shipped))
        except CheckpointError as exc:
            problems.append(f"shipped model {shipped}: {exc}")

    if args.json:
        rows = [{**summary.__dict__, "path": str(summary.path)} for summary in summaries]
        print(json.dumps({"runs_dir": str(runs_dir), "models": rows, "problems": problems}, indent=2))
        return 0
    if not any(summary.path.parent.parent == runs_dir for summary in summaries):
        others = " (only the models below)" if summaries else ""
        print(f"no runs of your own under {runs_dir}{others}; train one with `tiny-copilot train --time-budget 10m`")
    if summaries:
        header = ("NAME", "PRESET", "PARAMS", "STEP", "VAL BPB", "SAVED", "CHECKPOINT")
        table = [header] + [
            (
                s.name,
                s.preset,
                f"{s.parameters / 1e6:.2f}M" if s.parameters else "?",
                str(s.step) if s.step is not None else "?",
                f"{s.val_bpb:.3f}" if s.val_bpb is not None else "-",
                s.saved_at or "-",
                str(s.path),
            )
            for s in summaries
        ]
        _print_table(table)
        for line in _preset_footnotes(summaries):
            print(line)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    return 0


def _runs_dir_problem(runs_dir: Path) -> str | None:
    """Return why an explicit --runs-dir is not a folder of runs, with what to pass instead, or None."""
    from tiny_copilot.model.checkpoint import CONFIG_FILE

    from .runs import resolve_checkpoint_dir

    if not runs_dir.exists():
        return f"--runs-dir {runs_dir} not found; pass the folder that contains your run folders (the parent of a --out folder)"
    if not runs_dir.is_dir():
        return f"--runs-dir {runs_dir} is a file, not a folder; pass the folder that contains your run folders"
    if (resolve_checkpoint_dir(runs_dir) / CONFIG_FILE).is_file():
        return (
            f"--runs-dir {runs_dir} is a training run folder; list the folder that contains it: "
            f"tiny-copilot models --runs-dir {shlex.quote(str(runs_dir.parent))}"
        )
    return None


def _preset_footnotes(summaries: list) -> list[str]:
    """Explain each PRESET shown with a `*`: the preset changed by shape options."""
    lines = []
    for summary in summaries:
        if not summary.preset.endswith("*"):
            continue
        base = summary.preset.removesuffix("*")
        change = f"with {summary.shape_options}" if summary.shape_options else "with a changed shape (see its config.json)"
        lines.append(f"* {summary.name}: the {base} preset {change}")
    return lines


def _print_presets(as_json: bool) -> int:
    from tiny_copilot.model.config import DEFAULT_PRESET, PRESETS, preset_config
    from tiny_copilot.model.transformer import count_parameters

    from .train_config import DEFAULT_SEQ_LEN

    rows = []
    for name in PRESETS:
        config = preset_config(name, max_seq_len=DEFAULT_SEQ_LEN)
        parameters = count_parameters(config)
        rows.append({"preset": name, "default": name == DEFAULT_PRESET, "parameters": parameters, **config.to_dict()})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [("PRESET", "PARAMETERS", "VOCAB", "D_MODEL", "LAYERS", "HEADS")] + [
        (
            r["preset"] + (" (default)" if r["default"] else ""),
            f"{r['parameters']:,}",
            str(r["vocab_size"]),
            str(r["d_model"]),
            str(r["n_layers"]),
            str(r["n_heads"]),
        )
        for r in rows
    ]
    _print_table(table)
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
