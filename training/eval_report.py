"""Write an evaluation's outputs: eval.json, report.md and PNG plots.

Plots use matplotlib's Agg backend, chosen inside `write_plots`, so importing this module opens no
display and costs nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .eval_ablations import ablation_lines
from .eval_metrics import METRIC_DEFINITIONS

log = logging.getLogger(__name__)

TARGETS: dict[str, tuple[str, float]] = {
    "line_exact_match": ("line completion exact match", 0.30),
    "line_edit_similarity": ("line completion edit similarity", 60.0),
    "humaneval_exact_match": ("HumanEval single-line exact match", 0.25),
    "typing_keystrokes_saved": ("typing replay keystrokes saved", 0.25),
    "typing_ratio_to_baseline": ("typing replay, ratio to word completion", 2.0),
}


def target_checks(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compare the measured figures with the shipped model's targets.

    Each check has the target, the measured figure, "met" (None when not measured) and "gap", how far
    the figure falls short of the target in its own unit (None unless the target is missed).
    """
    line = results.get("line_completion", {}).get("overall", {})
    humaneval = results.get("humaneval", {}).get("summary", {})
    typing = results.get("typing", {})
    measured = {
        "line_exact_match": line.get("exact_match"),
        "line_edit_similarity": line.get("edit_similarity"),
        "humaneval_exact_match": humaneval.get("exact_match"),
        "typing_keystrokes_saved": typing.get("model", {}).get("keystrokes_saved"),
        "typing_ratio_to_baseline": typing.get("ratio_to_baseline"),
    }
    checks = {}
    for key, (name, target) in TARGETS.items():
        value = measured[key]
        met = None if value is None else value >= target
        checks[key] = {"name": name, "target": target, "measured": value, "met": met, "gap": target - value if met is False else None}
    return checks


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_markdown(results: dict[str, Any], path: Path, plots: dict[str, str]) -> None:
    path.write_text("\n".join(markdown_lines(results, plots)) + "\n", encoding="utf-8")


def markdown_lines(results: dict[str, Any], plots: dict[str, str]) -> list[str]:
    checkpoint = results["checkpoint"]
    held_out = results["held_out"]
    lines = [
        f"# Evaluation of `{checkpoint['path']}`",
        "",
        f"Model: {_fmt(checkpoint.get('parameters'), '{:,}')} parameters, step {checkpoint.get('step', 'n/a')}. "
        f"Held-out data: {held_out['source']}, {held_out['files']} files "
        f"({', '.join(f'{k} {v}' for k, v in held_out['files_by_language'].items()) or 'none'}); "
        f"left out: {', '.join(f'{k} {v}' for k, v in held_out['left_out'].items()) or 'none'}. "
        f"Seed {results['config']['seed']}; total time {results['timing_s'].get('total', 0):.0f} s.",
        "",
        "## Targets",
        "",
        "| figure | target | measured | met | short by |",
        "|---|---|---|---|---|",
    ]
    for check in results["targets"].values():
        met = {True: "yes", False: "**no**", None: "not measured"}[check["met"]]
        short = ""
        if check["gap"] is not None:
            short = f"{_fmt(check['gap'])} ({check['measured'] / check['target']:.0%} of the target)"
        lines.append(f"| {check['name']} | {_fmt(check['target'])} | {_fmt(check['measured'])} | {met} | {short} |")
    if results.get("ablations"):
        lines += ablation_lines(results["targets"], results["ablations"], results["held_out"]["source"])

    if "bits_per_byte" in results:
        lines += ["", "## Bits per byte (left to right)", "", "| language | files | bytes | bits/byte |", "|---|---|---|---|"]
        for language, row in results["bits_per_byte"].items():
            lines.append(f"| {language} | {row['files']} | {row['bytes']:,} | {row['bits_per_byte']:.3f} |")

    if "line_completion" in results:
        line = results["line_completion"]
        lines += ["", "## Line completion", "", "| language | cases | exact match | edit similarity | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
        for language, row in line["by_language"].items():
            lines.append(
                f"| {language} | {row['cases']} | {_fmt(row['exact_match'])} | {_fmt(row['edit_similarity'])} | "
                f"{_fmt(row['latency_ms_p50'], '{:.0f}')} | {_fmt(row['latency_ms_p95'], '{:.0f}')} |"
            )

    if "humaneval" in results:
        summary = results["humaneval"]["summary"]
        sandbox = summary["sandbox"]
        lines += [
            "",
            "## HumanEval single-line infilling (Python)",
            "",
            f"{summary['tasks']} tasks: exact match {_fmt(summary['exact_match'])}, edit similarity "
            f"{_fmt(summary['edit_similarity'])}, pass rate {_fmt(summary['pass_rate'])} ({summary['timeouts']} timeouts). "
            f"Sandbox: {sandbox['timeout_s']} s wall clock, {sandbox['memory_mb']} MiB address space, temporary working "
            f"folder, network isolation: {sandbox['network_isolation']}.",
            *_empty_hole_lines(summary),
            "",
            "Published exact match for comparison: "
            + ", ".join(f"{name} {value:.2f}" for name, value in summary["published_exact_match"].items())
            + ".",
        ]

    if "typing" in results:
        lines += _typing_lines(results["typing"])

    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({file})" for name, file in plots.items()]
    lines += ["", "## Metric definitions", ""] + [f"- **{name}**: {text}" for name, text in METRIC_DEFINITIONS.items()]
    return lines


def _empty_hole_lines(summary: dict[str, Any]) -> list[str]:
    if summary.get("empty_hole_pass_rate") is None:
        return []
    return [
        "",
        f"With the hole left empty, {_fmt(summary['empty_hole_pass_rate'])} of the tasks pass "
        f"({summary['empty_hole_timeouts']} timeouts): their tests do not need the removed line, so the pass rate "
        f"counts them for any suggestion that keeps the program valid. On the {summary['tasks_where_empty_fails']} "
        f"tasks whose tests fail with an empty hole, the model's pass rate is {_fmt(summary['pass_rate_where_empty_fails'])}; "
        f"its gain over the empty hole on all tasks is {_fmt_signed(summary['gain_over_empty_hole'])}.",
    ]


def _typing_lines(typing: dict[str, Any]) -> list[str]:
    model, baseline = typing["model"], typing["baseline_word_completion"]
    cold, cache, memory = typing["cold_start"], typing["cache"], typing["server_memory_kib"]
    lines = [
        "",
        "## Typing replay through the language server",
        "",
        "| source | chars | keystrokes saved | shown | accepted | acceptance | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in (("tiny-copilot server", model), ("word completion (baseline)", baseline)):
        lines.append(
            f"| {name} | {row['chars']} | {_fmt(row['keystrokes_saved'])} | {row['shown']} | {row['accepted']} | "
            f"{_fmt(row['acceptance_rate'])} | {_fmt(row['latency_ms_p50'], '{:.1f}')} | {_fmt(row['latency_ms_p95'], '{:.1f}')} |"
        )
    if len(typing.get("by_language", {})) > 1:
        lines += ["", "| language | files | keystrokes saved | baseline | ratio |", "|---|---|---|---|---|"]
        for language, row in typing["by_language"].items():
            lines.append(
                f"| {language} | {row['files']} | {_fmt(row['keystrokes_saved'])} | "
                f"{_fmt(row['baseline_keystrokes_saved'])} | {_fmt(row['ratio_to_baseline'])} |"
            )
    lines += [
        "",
        f"Ratio to the baseline: {_fmt(typing['ratio_to_baseline'])}. Cold start: spawn to first non-empty suggestion "
        f"{_fmt(cold['first_suggestion_ms'], '{:.0f}')} ms, to the first reply from a loaded model "
        f"{_fmt(cold['model_ready_reply_ms'], '{:.0f}')} ms (model load {_fmt(cold['model_load_ms'], '{:.0f}')} ms). Server memory: RSS {_fmt(memory.get('VmRSS'), '{:,}')} KiB, "
        f"peak {_fmt(memory.get('VmHWM'), '{:,}')} KiB. KV-cache hit rate: {_fmt(cache['hit_rate'])} of prompt tokens "
        "(all requests of the server, cold-start probe included).",
    ]
    return lines


def write_plots(results: dict[str, Any], out_dir: Path, metrics_jsonl: Path | None) -> dict[str, str]:
    """Draw the plots the results allow; return {title: file name} for the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    typing = results.get("typing")
    if typing and typing["model"]["latencies_ms"]:
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.hist(typing["model"]["latencies_ms"], bins=40, color="tab:blue")
        axes.set_xlabel("inlineCompletion latency (ms, client side)")
        axes.set_ylabel("requests")
        axes.set_title("Typing replay latency")
        plots["latency histogram"] = _save(figure, out_dir / "latency_histogram.png")

    if typing:
        figure, axes = plt.subplots(figsize=(6, 3.5))
        tenths = [f"{10 * i}-{10 * i + 10}%" for i in range(len(typing["model"]["chars_by_position"]))]
        for name, row in (("tiny-copilot", typing["model"]), ("word completion", typing["baseline_word_completion"])):
            # A tenth of the file with no replayed characters has no share; NaN leaves a gap in the line.
            shares = [s / c if c else float("nan") for s, c in zip(row["saved_by_position"], row["chars_by_position"])]
            axes.plot(tenths, shares, marker="o", label=name)
        axes.set_xlabel("position in the file")
        axes.set_ylabel("share of characters accepted")
        axes.tick_params(axis="x", labelrotation=45)
        axes.legend()
        axes.set_title("Characters saved by position")
        plots["chars saved by position"] = _save(figure, out_dir / "chars_saved_by_position.png")

    curves = read_loss_curves(metrics_jsonl) if metrics_jsonl else {}
    if curves:
        # Losses are nats per token and bits per byte another unit, so each gets its own panel.
        per_byte = {name: points for name, points in curves.items() if "bpb" in name or "bits_per_byte" in name}
        per_token = {name: points for name, points in curves.items() if name not in per_byte}
        panels = [(title, series) for title, series in (("loss (nats/token)", per_token), ("bits per byte", per_byte)) if series]
        figure, axes_list = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        for axes, (title, series) in zip(axes_list[0], panels):
            for name, points in series.items():
                axes.plot([p[0] for p in points], [p[1] for p in points], label=name)
            axes.set_xlabel("step")
            axes.set_ylabel(title)
            axes.legend()
        figure.suptitle("Training run of this checkpoint")
        plots["loss curves"] = _save(figure, out_dir / "loss_curves.png")
    plt.close("all")
    return plots


def read_loss_curves(metrics_jsonl: Path) -> dict[str, list[tuple[float, float]]]:
    """Collect (step, value) series of every loss or bits-per-byte field in a training metrics.jsonl."""
    curves: dict[str, list[tuple[float, float]]] = {}
    try:
        lines = metrics_jsonl.read_text(encoding="utf-8").splitlines()
    except OSError:
        return curves
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), (int, float)):
            continue
        for key, value in record.items():
            if ("loss" in key or "bpb" in key or "bits_per_byte" in key) and isinstance(value, (int, float)):
                curves.setdefault(key, []).append((record["step"], float(value)))
    return curves


def _save(figure: Any, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path.name


def _fmt(value: Any, pattern: str = "{:.3g}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _fmt_signed(value: float | None) -> str:
    return _fmt(value, "{:+.3g}")
