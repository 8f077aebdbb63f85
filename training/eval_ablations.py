"""Quote ablation measurements beside the targets that an evaluation misses.

benchmarks/ablations.py writes ablations.json. For each checkpoint it contains line-completion
figures (and, when requested, HumanEval exact match) under variants of the server settings. Each
variant changes one setting from the server defaults. For every missed target that a variant
measures, the evaluation report quotes the server defaults and the best variant. Only the entry
whose weights have the SHA-256 of the evaluated checkpoint is quoted, so a file left over from
another model never is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ABLATIONS_FORMAT = 1
ABLATIONS_JSON = "ablations.json"
ABLATIONS_MARKDOWN = "ablations.md"
DEFAULTS_VARIANT = "server defaults"
"""Name of the variant that runs the server settings unchanged. Every other variant is compared with it."""

# Target key (eval_report.TARGETS) -> the section and figure of a variant that measures it.
VARIANT_FIGURES: dict[str, tuple[str, str]] = {
    "line_exact_match": ("line", "exact_match"),
    "line_edit_similarity": ("line", "edit_similarity"),
    "humaneval_exact_match": ("humaneval", "exact_match"),
}


def default_ablations_path(out_dir: Path) -> Path:
    """Return `<out_dir>/../ablations/ablations.json`: in benchmarks/eval/, the ablations beside an evaluation."""
    return out_dir.parent / "ablations" / ABLATIONS_JSON


def read_ablations(path: Path, weights_sha256: str, report_dir: Path, required: bool) -> dict[str, Any] | None:
    """Read ablations.json and return what a report in `report_dir` quotes for the checkpoint with these weights.

    Return None when the file is absent and not `required`. The result's "variants" is None when the
    file measures other checkpoints only. Raise FileNotFoundError for a required file that is absent
    and ValueError for one that is unreadable or of another format.
    """
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"--ablations {path} not found; write it with `benchmarks/ablations.py --checkpoint CHECKPOINT`")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable ablations file ({exc}); run benchmarks/ablations.py again") from exc
    if not isinstance(data, dict) or data.get("format") != ABLATIONS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} has format {found!r}, expected {ABLATIONS_FORMAT}; run benchmarks/ablations.py again")

    entry = next((e for e in data["checkpoints"] if e["checkpoint"]["weights_sha256"] == weights_sha256), None)
    return {
        "json": _relative(path, report_dir),
        "markdown": _relative(path.with_name(ABLATIONS_MARKDOWN), report_dir),
        "seed": data["seed"],
        "measured_checkpoints": [e["checkpoint"]["path"] for e in data["checkpoints"]],
        "held_out": None if entry is None else entry["held_out"]["source"],
        "line_cases": None if entry is None else entry["line_cases"],
        "humaneval_tasks": None if entry is None else entry["humaneval_tasks"],
        "variants": None if entry is None else entry["variants"],
    }


def ablation_lines(
    targets: dict[str, dict[str, Any]], ablations: dict[str, Any], held_out: str | None = None
) -> list[str]:
    """Return the report section that quotes, per missed target, what the ablations measured.

    `held_out` names the report's own held-out code. When the ablations ran on other code, the section
    states it, because their levels then differ from the report's figures.
    """
    missed = {key: check for key, check in targets.items() if check["met"] is False}
    if not missed:
        return []
    lines = ["", "## What the ablations measured", ""]
    if ablations["variants"] is None:
        measured = ", ".join(f"`{path}`" for path in ablations["measured_checkpoints"]) or "none"
        return lines + [
            f"[{ablations['json']}]({ablations['json']}) measures other checkpoints ({measured}), not this one; "
            "run `benchmarks/ablations.py --checkpoint` with this checkpoint to quote its ablations here."
        ]

    lines += [
        f"From [{ablations['markdown']}]({ablations['markdown']}): {ablations['held_out']}, {ablations['line_cases']} line "
        f"completion cases, {ablations['humaneval_tasks']} HumanEval tasks, seed {ablations['seed']}. Each variant changes "
        "one server setting from the defaults; gained and lost count the cases that it turns right and wrong.",
        "",
    ]
    if held_out is not None and held_out != ablations["held_out"]:
        lines[-2] += (
            f" They ran on the {ablations['held_out']}, not on this report's held-out code ({held_out}), "
            "so compare each variant with its own defaults, not with the figures here."
        )
    reached = []
    for key, check in missed.items():
        lines.append(f"- **{check['name']}** (target {_fmt(check['target'])}, measured here {_fmt(check['measured'])}): "
                     + _quote_figure(key, check["target"], ablations["variants"]))  # fmt: skip
        figures = [row[VARIANT_FIGURES[key][1]] for _, row in _measured_rows(key, ablations["variants"])]
        if figures:
            reached.append(max(figures) >= check["target"])
    if reached and not any(reached):
        lines += ["", "No measured variant reaches any of these targets, so these settings alone do not close the gaps."]
    return lines


def _measured_rows(key: str, variants: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (variant, section) pairs of the variants that measured the figure of target `key`."""
    if key not in VARIANT_FIGURES:
        return []
    section, figure = VARIANT_FIGURES[key]
    return [(v, v[section]) for v in variants if v.get(section) and v[section].get(figure) is not None]


def _quote_figure(key: str, target: float, variants: list[dict[str, Any]]) -> str:
    """Describe the server defaults and the best variant for one target's figure."""
    measured = _measured_rows(key, variants)
    figure = VARIANT_FIGURES[key][1] if measured else ""
    defaults = next((row for variant, row in measured if variant["name"] == DEFAULTS_VARIANT), None)
    others = [(variant, row) for variant, row in measured if variant["name"] != DEFAULTS_VARIANT]
    if defaults is None or not others:
        return "no ablation measures it."

    best_variant, best = max(others, key=lambda pair: pair[1][figure])
    text = f"server defaults {_fmt(defaults[figure])}; "
    if best[figure] <= defaults[figure]:
        return text + f"no variant beats them (the best other is `{best_variant['name']}` at {_fmt(best[figure])})."
    text += f"best variant `{best_variant['name']}` {_fmt(best[figure])} ({best[figure] - defaults[figure]:+.3g}"
    if figure == "exact_match":
        text += f"; {best['gained']} cases gained, {best['lost']} lost"
    verdict = "meets the target" if best[figure] >= target else f"is still {_fmt(target - best[figure])} short of the target"
    return text + f"), which {verdict}."


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
