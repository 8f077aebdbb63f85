"""Measure what would close the gap to the quality targets: line completion under variants of the server settings.

For each checkpoint (default: the shipped model) it draws the line-completion cases that
`tiny-copilot eval` draws with the same seed (the checkpoint's validation split, or --data) and keeps
at most --max-cases of them. Under every variant, each case gets a suggestion from the server's
`Completer` through `completer_suggest` of training/eval_run.py, the code path of the evaluation and
of tiny-copilot-lsp. Each variant changes one setting from the server defaults:

- token healing off;
- prefix budgets (--prefix-budgets, and all that the model's context allows), the suffix budget held
  at what the defaults get after fitting to the context;
- no suffix (suffix budget 0), the prefix budget held; and no suffix with all the prefix the context allows.

"No suffix" still sends the fill-in-the-middle prompt, with an empty suffix. The server has no
left-to-right prompt, although training used one for half of the documents.

A seeded sample of --humaneval-tasks HumanEval single-line infilling tasks is scored by exact match
too (nothing is executed). Outputs go to --out (default benchmarks/eval/ablations): ablations.json
and ablations.md. `tiny-copilot eval --out benchmarks/eval/NAME` finds them there and quotes them
beside the targets it misses.

    .venv/bin/python benchmarks/ablations.py                      # shipped model, 200 cases, 100 tasks
    .venv/bin/python benchmarks/ablations.py --checkpoint model/shipped --checkpoint RUN/checkpoint
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Set before torch loads, as tiny-copilot-lsp does.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tiny_copilot.model.checkpoint import CheckpointError, load_checkpoint, shipped_checkpoint_path  # noqa: E402
from tiny_copilot.server.prompt import FIM_SENTINEL_TOKENS, fit_budgets  # noqa: E402
from tiny_copilot.server.settings import ServerSettings  # noqa: E402
from tiny_copilot.training.eval_ablations import (  # noqa: E402
    ABLATIONS_FORMAT,
    ABLATIONS_JSON,
    ABLATIONS_MARKDOWN,
    DEFAULTS_VARIANT,
)
from tiny_copilot.training.eval_data import ManifestError, OverlapError, held_out_from_data, held_out_from_manifest  # noqa: E402
from tiny_copilot.training.eval_humaneval import (  # noqa: E402
    HumanEvalUnavailable,
    InfillTask,
    evaluate_infilling,
    load_problems,
    single_line_tasks,
)
from tiny_copilot.training.eval_line import LineCase, evaluate_line_completion, sample_line_cases  # noqa: E402
from tiny_copilot.training.eval_metrics import percentile  # noqa: E402
from tiny_copilot.training.eval_report import TARGETS  # noqa: E402
from tiny_copilot.training.eval_run import (  # noqa: E402
    EvalConfig,
    checkpoint_summary,
    completer_suggest,
    find_manifest,
    select_files,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "eval" / "ablations"
DEFAULT_PREFIX_BUDGETS = (128, 256, 512)
# File and case counts per file come from `tiny-copilot eval`, so the cases are the ones it draws.
EVAL_DEFAULTS = EvalConfig(checkpoint=Path("."), out_dir=Path("."))


@dataclass
class Variant:
    """One set of server settings to measure."""

    name: str
    settings: dict[str, Any]
    """Changes to the server defaults, as an editor sends them (camelCase JSON)."""
    same_as: list[str] = field(default_factory=list)
    """Names of planned variants that fitted to the same budgets and healing, so they were not run again."""


def plan_variants(max_seq_len: int, prefix_budgets: Sequence[int]) -> list[Variant]:
    """Return the server defaults and one-setting changes of them, without variants that would run identically.

    Prefix budgets at or above what the context allows beside the held suffix are left out, because
    the variant with all the context allows already measures that prompt.
    """
    defaults = ServerSettings()
    fitted = fit_budgets(defaults.prefix_budget_tokens, defaults.suffix_budget_tokens, defaults.max_new_tokens, max_seq_len)
    prompt_room = max_seq_len - FIM_SENTINEL_TOKENS - fitted.max_new_tokens
    max_prefix = prompt_room - fitted.suffix_tokens
    held_suffix = {"suffixBudgetTokens": fitted.suffix_tokens}

    planned = [Variant(DEFAULTS_VARIANT, {}), Variant("token healing off", {"tokenHealing": False})]
    for budget in sorted(set(prefix_budgets)):
        if budget < max_prefix:
            planned.append(Variant(f"prefix {budget} tokens", {"prefixBudgetTokens": budget, **held_suffix}))
    widest = "all the context allows"
    planned.append(Variant(f"prefix {max_prefix} tokens, {widest}", {"prefixBudgetTokens": max_prefix, **held_suffix}))
    planned.append(Variant("no suffix", {"prefixBudgetTokens": fitted.prefix_tokens, "suffixBudgetTokens": 0}))
    planned.append(Variant(f"no suffix, prefix {prompt_room} tokens, {widest}", {"prefixBudgetTokens": prompt_room, "suffixBudgetTokens": 0}))

    # Budgets that fit to the same numbers run the same prompts, so each combination is measured once.
    kept: dict[tuple[Any, ...], Variant] = {}
    for variant in planned:
        settings = server_settings(variant.settings)
        budget = fit_budgets(settings.prefix_budget_tokens, settings.suffix_budget_tokens, settings.max_new_tokens, max_seq_len)
        key = (budget, settings.token_healing)
        if key in kept:
            kept[key].same_as.append(variant.name)
        else:
            kept[key] = variant
    return list(kept.values())


def server_settings(settings_json: dict[str, Any]) -> ServerSettings:
    """Build server settings from editor JSON, or raise ValueError naming every invalid entry."""
    settings, problems = ServerSettings.from_json(settings_json)
    if problems:
        raise ValueError("; ".join(problems))
    return settings


def draw_cases(checkpoint: Any, data: Sequence[str], seed: int, max_cases: int) -> tuple[dict[str, Any], list[LineCase]]:
    """Return the held-out summary and at most `max_cases` of the cases `tiny-copilot eval --seed SEED` draws."""
    manifest = find_manifest(checkpoint.path, checkpoint.meta, None)
    held_out = held_out_from_data(data, manifest) if data else held_out_from_manifest(manifest)
    rng = random.Random(seed)
    files = select_files(held_out.files, EVAL_DEFAULTS.limit_files, rng)
    cases = sample_line_cases(files, EVAL_DEFAULTS.line_cases_per_file, rng)
    if len(cases) > max_cases:
        # A second generator, so the cases kept are a subset of the evaluation's, in file order.
        kept_indices = sorted(random.Random(seed).sample(range(len(cases)), max_cases))
        cases = [cases[index] for index in kept_indices]
    summary = {
        "source": held_out.source,
        "files": len(files),
        "files_available": len(held_out.files),
        "left_out": held_out.left_out,
    }
    return summary, cases


def draw_humaneval_tasks(count: int, seed: int) -> list[InfillTask]:
    """Return a seeded sample of `count` HumanEval infilling tasks in task order (none for a count of 0)."""
    if count == 0:
        return []
    tasks = single_line_tasks(load_problems())
    kept_indices = sorted(random.Random(seed).sample(range(len(tasks)), min(count, len(tasks))))
    return [tasks[index] for index in kept_indices]


def measure_checkpoint(
    path: Path, data: Sequence[str], seed: int, max_cases: int, humaneval_tasks: int, prefix_budgets: Sequence[int]
) -> dict[str, Any]:
    """Run every variant on one checkpoint and return its ablations.json entry."""
    checkpoint = load_checkpoint(path)
    held_out, cases = draw_cases(checkpoint, data, seed, max_cases)
    tasks = draw_humaneval_tasks(humaneval_tasks, seed)
    variants = plan_variants(checkpoint.config.max_seq_len, prefix_budgets)
    print(f"{path}: {len(cases)} line cases, {len(tasks)} HumanEval tasks, {len(variants)} variants", flush=True)

    # The defaults come first, so every later variant is compared with their records case by case.
    rows: list[dict[str, Any]] = []
    defaults_records: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        row, records = measure_variant(checkpoint, variant, cases, tasks)
        if variant.name == DEFAULTS_VARIANT:
            defaults_records = records
        row["line"].update(exact_match_changes(defaults_records["line"], records["line"]))
        if row["humaneval"] is not None:
            row["humaneval"].update(exact_match_changes(defaults_records["humaneval"], records["humaneval"]))
        rows.append(row)
        print(f"  {_progress(row)}", flush=True)

    return {
        "checkpoint": checkpoint_summary(checkpoint)
        | {
            "max_seq_len": checkpoint.config.max_seq_len,
            "training_s": checkpoint.meta.get("elapsed_s"),
            "tokens_seen": checkpoint.meta.get("tokens_seen"),
        },
        "held_out": held_out,
        "line_cases": len(cases),
        "line_cases_by_language": {lang: sum(c.language == lang for c in cases) for lang in sorted({c.language for c in cases})},
        "line_cases_sha256": cases_sha256(cases),
        "humaneval_tasks": len(tasks),
        "variants": rows,
    }


def measure_variant(
    checkpoint: Any, variant: Variant, cases: list[LineCase], tasks: list[InfillTask]
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Score one variant and return its ablations.json row with the per-case records of line completion and HumanEval."""
    started = time.perf_counter()
    suggest, completer = completer_suggest(checkpoint, variant.settings)
    line = evaluate_line_completion(suggest, cases)
    humaneval = evaluate_infilling(suggest, tasks, execute=False) if tasks else None
    records = {"line": line.pop("records"), "humaneval": humaneval.pop("records") if humaneval else []}

    row: dict[str, Any] = {
        "name": variant.name,
        "same_as": variant.same_as,
        "settings": variant.settings,
        "token_healing": completer.settings.token_healing,
        "budget": {
            "prefix_tokens": completer.budget.prefix_tokens,
            "suffix_tokens": completer.budget.suffix_tokens,
            "max_new_tokens": completer.budget.max_new_tokens,
        },
        "line": {
            **line["overall"],
            "by_language": {
                language: {key: figures[key] for key in ("cases", "exact_match", "edit_similarity")}
                for language, figures in line["by_language"].items()
            },
            "latency_ms_p50": percentile([record["latency_ms"] for record in records["line"]], 50),
        },
        "humaneval": None,
    }
    if humaneval is not None:
        summary = humaneval["summary"]
        row["humaneval"] = {key: summary[key] for key in ("tasks", "exact_match", "edit_similarity")}
    row["elapsed_s"] = time.perf_counter() - started
    return row, records


def exact_match_changes(defaults: list[dict[str, Any]], variant: list[dict[str, Any]]) -> dict[str, int]:
    """Count the cases that a variant turns right ("gained") and wrong ("lost") against the server defaults."""
    if len(defaults) != len(variant):
        raise ValueError(f"{len(variant)} variant records against {len(defaults)} of the defaults; both must score the same cases")
    gained = sum(v["exact_match"] and not d["exact_match"] for d, v in zip(defaults, variant))
    lost = sum(d["exact_match"] and not v["exact_match"] for d, v in zip(defaults, variant))
    return {"gained": gained, "lost": lost}


def cases_sha256(cases: list[LineCase]) -> str:
    """Return a hash of the cases, so that two checkpoints' entries show whether they scored the same ones."""
    digest = hashlib.sha256()
    for case in cases:
        digest.update(json.dumps([case.file, case.offset, case.reference]).encode("utf-8"))
    return digest.hexdigest()


def markdown_lines(results: dict[str, Any]) -> list[str]:
    """Render ablations.md from the ablations.json content."""
    targets = ", ".join(f"{name} >= {target:g}" for key, (name, target) in TARGETS.items() if not key.startswith("typing"))
    lines = [
        "# Ablations: what closes the gap to the quality targets",
        "",
        f"Generated by `{results['command']}`; seed {results['seed']}. Line completion as `tiny-copilot eval` measures it "
        "(a cursor inside a line of held-out code and the rest of the line removed, scored by exact match and edit "
        "similarity of the first suggested line). Suggestions come from the server's `Completer` with greedy decoding. "
        f"Each variant changes one server setting from the defaults. Targets: {targets}.",
        "",
        "Budgets are in tokens after fitting to the model's context, as the server fits them. \"Gained / lost\" count "
        "the exact-match cases that a variant turns right / wrong against the server defaults; with N cases, one case "
        "is 1/N of exact match. \"No suffix\" sends the fill-in-the-middle prompt with an empty suffix, not a "
        "left-to-right prompt. p50 ms is the median time of one suggestion while the script ran, so it includes any "
        "other load on the machine. Prefix budgets that the context cannot hold beside the suffix are not run. "
        "HumanEval EM is the exact match on a seeded sample of the single-line infilling tasks; nothing is executed.",
    ]
    for entry in results["checkpoints"]:
        lines += _checkpoint_lines(entry)
    if len(results["checkpoints"]) > 1:
        lines += _comparison_lines(results["checkpoints"])
    return lines + [""]


def _checkpoint_lines(entry: dict[str, Any]) -> list[str]:
    checkpoint, held_out = entry["checkpoint"], entry["held_out"]
    languages = sorted(entry["line_cases_by_language"])
    by_language = ", ".join(f"{lang} {count}" for lang, count in entry["line_cases_by_language"].items())
    lines = [
        "",
        f"## `{_display_path(checkpoint['path'])}`",
        "",
        f"{checkpoint['parameters']:,} parameters, step {checkpoint.get('step', 'n/a')}, context {checkpoint['max_seq_len']} "
        f"tokens, weights sha256 `{checkpoint['weights_sha256'][:12]}`. Held-out data: {held_out['source']}, "
        f"{held_out['files']} files; {entry['line_cases']} line-completion cases ({by_language}); "
        f"{entry['humaneval_tasks']} HumanEval infilling tasks.",
        "",
    ]
    header = ["variant", "prefix / suffix", "exact match", "edit similarity", "gained / lost"]
    header += [f"{lang} EM / ES" for lang in languages] + ["p50 ms"]
    if entry["humaneval_tasks"]:
        header += ["HumanEval EM", "HumanEval gained / lost"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in entry["variants"]:
        line = row["line"]
        name = row["name"] + "".join(f" (= {other})" for other in row["same_as"])
        cells = [
            name,
            f"{row['budget']['prefix_tokens']} / {row['budget']['suffix_tokens']}",
            _percent(line["exact_match"]),
            _number(line["edit_similarity"], "{:.1f}"),
            "" if row["name"] == DEFAULTS_VARIANT else f"+{line['gained']} / -{line['lost']}",
        ]
        for lang in languages:
            figures = line["by_language"].get(lang, {})
            cells.append(f"{_percent(figures.get('exact_match'))} / {_number(figures.get('edit_similarity'), '{:.1f}')}")
        cells.append(_number(line["latency_ms_p50"], "{:.0f}"))
        if entry["humaneval_tasks"]:
            humaneval = row["humaneval"]
            cells.append(_number(humaneval["exact_match"], "{:.3f}"))
            cells.append("" if row["name"] == DEFAULTS_VARIANT else f"+{humaneval['gained']} / -{humaneval['lost']}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _comparison_lines(entries: list[dict[str, Any]]) -> list[str]:
    first_cases = entries[0]["line_cases_sha256"]
    lines = [
        "",
        "## Checkpoints compared, server defaults",
        "",
        "| checkpoint | parameters | step | training min | tokens seen | line cases | same cases as the first | exact match "
        "| edit similarity | HumanEval EM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        defaults = next(row for row in entry["variants"] if row["name"] == DEFAULTS_VARIANT)
        humaneval = defaults["humaneval"] or {}
        lines.append(
            f"| `{_display_path(entry['checkpoint']['path'])}` | {entry['checkpoint']['parameters']:,} | "
            f"{entry['checkpoint'].get('step', 'n/a')} | {_number(_minutes(entry['checkpoint'].get('training_s')), '{:.0f}')} | "
            f"{_number(entry['checkpoint'].get('tokens_seen'), '{:,}')} | {entry['line_cases']} | "
            f"{'yes' if entry['line_cases_sha256'] == first_cases else 'no'} | {_percent(defaults['line']['exact_match'])} | "
            f"{_number(defaults['line']['edit_similarity'], '{:.1f}')} | {_number(humaneval.get('exact_match'), '{:.3f}')} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, action="append", help="checkpoint folder; repeat to compare several (default: the shipped model)"
    )
    parser.add_argument(
        "--data", nargs="+", metavar="PATH", help="held-out files, folders or globs (default: each checkpoint's validation split)"
    )
    parser.add_argument(
        "--max-cases", type=int, default=200, metavar="N", help="line-completion cases per checkpoint at most (default: %(default)s)"
    )
    parser.add_argument(
        "--humaneval-tasks", type=int, default=100, metavar="N", help="HumanEval infilling tasks scored by exact match, 0 for none (default: %(default)s)"
    )
    parser.add_argument(
        "--prefix-budgets",
        type=int,
        nargs="+",
        default=list(DEFAULT_PREFIX_BUDGETS),
        metavar="TOKENS",
        help="prefix budgets to try besides all the context allows (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=EVAL_DEFAULTS.seed, help="seed of file, case and task choices (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: benchmarks/eval/ablations)")
    args = parser.parse_args(argv)
    if args.max_cases < 1:
        parser.error(f"--max-cases must be >= 1, got {args.max_cases}")
    if args.humaneval_tasks < 0:
        parser.error(f"--humaneval-tasks must be >= 0, got {args.humaneval_tasks}")
    for budget in args.prefix_budgets:
        try:
            ServerSettings(prefix_budget_tokens=budget)
        except ValueError as exc:
            parser.error(f"--prefix-budgets {budget}: {exc}")

    checkpoints = args.checkpoint or [shipped_checkpoint_path()]
    results: dict[str, Any] = {
        "format": ABLATIONS_FORMAT,
        "command": " ".join(["benchmarks/ablations.py", *(argv if argv is not None else sys.argv[1:])]),
        "seed": args.seed,
        "max_cases": args.max_cases,
        "data": list(args.data or []),
        "targets": {key: target for key, (_, target) in TARGETS.items()},
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "checkpoints": [],
    }
    try:
        for path in checkpoints:
            results["checkpoints"].append(
                measure_checkpoint(path, args.data or (), args.seed, args.max_cases, args.humaneval_tasks, args.prefix_budgets)
            )
    except (CheckpointError, ManifestError, OverlapError, HumanEvalUnavailable, ValueError, FileNotFoundError) as exc:
        print(f"ablations.py: {exc}", file=sys.stderr)
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ABLATIONS_JSON).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / ABLATIONS_MARKDOWN).write_text("\n".join(markdown_lines(results)), encoding="utf-8")
    print(f"wrote {args.out / ABLATIONS_JSON} and {args.out / ABLATIONS_MARKDOWN}")
    return 0


def _progress(row: dict[str, Any]) -> str:
    text = f"{row['name']}: line EM {_percent(row['line']['exact_match'])}, ES {_number(row['line']['edit_similarity'], '{:.1f}')}"
    if row["humaneval"] is not None:
        text += f", HumanEval EM {row['humaneval']['exact_match']:.3f}"
    return text + f" ({row['elapsed_s']:.0f} s)"


def _display_path(path: str) -> str:
    try:
        return Path(path).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def _number(value: Any, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
