"""Write model/shipped/MODEL_CARD.md from the shipped checkpoint and its evaluation.

Usage: .venv/bin/python benchmarks/model_card.py [--check]

Facts come from files, so the card cannot drift from them: the command, step, time and library
versions from model/shipped/config.json; file counts per source and sizes per language from model/shipped/corpus_manifest.json;
quality figures from benchmarks/eval/shipped/eval.json (written by `tiny-copilot eval --out
benchmarks/eval/shipped`). Only the source and licence of each corpus folder is written here, in
SOURCES. With --check it exits 1 when the card is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "model" / "shipped"
EVAL_JSON = REPO / "benchmarks" / "eval" / "shipped" / "eval.json"
CARD = SHIPPED / "MODEL_CARD.md"

# Corpus folder (the first two parts of each manifest path) -> where it came from and its licence.
# Each licence was read from the package's /usr/share/doc/<package>/copyright or its LICENSE file.
SOURCES: dict[str, tuple[str, str]] = {
    "python/cpython-3.11.7-Lib": (
        "CPython 3.11.7 standard library, `Lib/**/*.py` without test, tests, idlelib, tkinter, turtledemo, "
        "lib2to3, ensurepip, site-packages",
        "PSF-2.0",
    ),
    "python/networkx": ("NetworkX 3.6.1, `networkx/**/*.py` without tests (PyPI)", "BSD-3-Clause"),
    "cpp/boost": (
        "Boost 1.74 headers: graph, algorithm, container, unordered, heap, dynamic_bitset, circular_buffer, "
        "multi_array, bimap (Debian libboost1.74-dev)",
        "BSL-1.0",
    ),
    "cpp/catch2": ("Catch2 2.13.10 (Debian catch2)", "BSL-1.0"),
    "cpp/cli11": ("CLI11 2.1.2 (Debian libcli11-dev)", "BSD-3-Clause"),
    "cpp/cpython-3.11-include": ("CPython 3.11 C API headers (Debian libpython3.11-dev)", "PSF-2.0"),
    "cpp/fmt": ("{fmt} 9.1.0 (Debian libfmt-dev)", "MIT"),
    "cpp/glm": ("GLM 0.9.9.8 (Debian libglm-dev)", "MIT"),
    "cpp/nlohmann-json": ("nlohmann/json 3.11.2 (Debian nlohmann-json3-dev)", "MIT"),
    "cpp/range-v3": ("range-v3 0.12.0 (Debian librange-v3-dev)", "BSL-1.0; a few files NCSA or X11"),
    "cpp/spdlog": ("spdlog 1.10.0 (Debian libspdlog-dev)", "MIT"),
    "cpp/stb": ("stb single-file libraries, 2022-09-08 (Debian libstb-dev)", "MIT or public domain"),
    "cpp/utfcpp": ("UTF8-CPP 3.2.3 (Debian libutfcpp-dev)", "BSL-1.0"),
    "cpp/abseil": ("Abseil 20220623.1 headers (Debian libabsl-dev)", "Apache-2.0"),
    "cpp/googletest": ("GoogleTest 1.12.1 sources and headers (Debian googletest)", "BSD-3-Clause"),
    "python/algorithms": ("algorithms 1.0.1, `algorithms/**/*.py` (PyPI; github.com/keon/algorithms)", "MIT"),
    # The rest come only from scripts/build-large-corpus.sh. Each wheel's licence is its dist-info LICENSE file.
    "cpp/boost-more": (
        "Boost 1.74 headers: outcome, variant2, static_string, nowide, program_options, property_tree, regex, "
        "date_time, histogram, process, beast, random (Debian libboost1.74-dev)",
        "BSL-1.0",
    ),
    "python/sympy": ("SymPy 1.13.3 without tests (PyPI)", "BSD-3-Clause; a few files MIT or BSD"),
    "python/django": ("Django 5.1.4 without tests (PyPI)", "BSD-3-Clause"),
    "python/sqlalchemy": ("SQLAlchemy 2.0.36 without tests (PyPI)", "MIT"),
    "python/twisted": ("Twisted 24.11.0 without tests (PyPI)", "MIT"),
    "python/pygments": ("Pygments 2.18.0 (PyPI)", "BSD-2-Clause"),
    "python/requests": ("Requests 2.32.3 (PyPI)", "Apache-2.0"),
    "python/flask": ("Flask 3.1.0 (PyPI)", "BSD-3-Clause"),
    "python/werkzeug": ("Werkzeug 3.1.3 (PyPI)", "BSD-3-Clause"),
    "python/jinja2": ("Jinja 3.1.4 (PyPI)", "BSD-3-Clause"),
    "python/click": ("Click 8.1.7 (PyPI)", "BSD-3-Clause"),
    "python/rich": ("Rich 13.9.4 (PyPI)", "MIT"),
    "python/attr": ("attrs 24.2.0, package `attr` (PyPI)", "MIT"),
    "python/attrs": ("attrs 24.2.0, package `attrs` (PyPI)", "MIT"),
}


def earlier_folders(config: dict[str, Any], manifest: dict[str, Any]) -> dict[str, dict[int, int]]:
    """Return the folders that only earlier training steps used: folder -> {step number: training files}.

    A fine-tune records the folders of the checkpoint it started from (`corpus_folders`). Stages saved
    before that record existed add nothing here, so their commands in the card are the only trace.
    """
    last = {"/".join(Path(entry["path"]).parts[:2]) for entry in manifest["files"]}
    found: dict[str, dict[int, int]] = defaultdict(dict)
    for number, stage in enumerate(training_stages(config), start=1):
        for folder, count in (stage.get("corpus_folders") or {}).items():
            if folder not in last:
                found[folder][number] = count
    return dict(found)


def source_rows(manifest: dict[str, Any], earlier: dict[str, dict[int, int]]) -> list[str]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "val": 0})
    for entry in manifest["files"]:
        folder = "/".join(Path(entry["path"]).parts[:2])
        totals[folder][entry["split"]] += 1
    unknown = sorted((set(totals) | set(earlier)) - set(SOURCES))
    if unknown:
        raise SystemExit(f"model_card.py: corpus folders {unknown} have no source and licence in SOURCES; add them")
    rows = ["| folder | source | licence | train files | validation files |", "|---|---|---|---:|---:|"]
    for folder in sorted(set(totals) | set(earlier)):
        source, licence = SOURCES[folder]
        if folder in totals:
            rows.append(f"| `{folder}` | {source} | {licence} | {totals[folder]['train']:,} | {totals[folder]['val']:,} |")
            continue
        steps = ", ".join(f"{count:,} in step {number}" for number, count in sorted(earlier[folder].items()))
        rows.append(f"| `{folder}` | {source} | {licence} | {steps} (not in the last corpus) | |")
    rows += ["", "| language | train MB | validation MB |", "|---|---:|---:|"]
    for language, splits in sorted(manifest["languages"].items()):
        rows.append(f"| {language} | {splits['train']['bytes'] / 1e6:.2f} | {splits['val']['bytes'] / 1e6:.2f} |")
    return rows


def metric_rows(result: dict[str, Any] | None) -> list[str]:
    if result is None:
        return ["_No evaluation yet: run `tiny-copilot eval --out benchmarks/eval/shipped`._"]
    rows = ["| metric | language | value |", "|---|---|---:|"]
    for language, figures in sorted(result["bits_per_byte"].items()):
        rows.append(f"| bits per byte (held out) | {language} | {figures['bits_per_byte']:.3f} |")
    for language, figures in sorted(result["line_completion"]["by_language"].items()):
        rows.append(f"| line completion exact match | {language} | {figures['exact_match']:.1%} |")
        rows.append(f"| line completion edit similarity | {language} | {figures['edit_similarity']:.1f} |")
    humaneval = result.get("humaneval", {}).get("summary")
    if humaneval:
        rows.append(f"| HumanEval single-line infilling exact match ({humaneval['tasks']} tasks) | python | {humaneval['exact_match']:.3f} |")
        rows.append(f"| HumanEval single-line infilling pass rate | python | {humaneval['pass_rate']:.3f} |")
        # Evaluations before the empty-hole baseline existed lack these figures.
        if humaneval.get("empty_hole_pass_rate") is not None:
            rows.append(f"| HumanEval pass rate with the hole left empty (baseline) | python | {humaneval['empty_hole_pass_rate']:.3f} |")
            rows.append(
                f"| HumanEval pass rate on the {humaneval['tasks_where_empty_fails']} tasks that fail with the hole left empty "
                f"| python | {_rate(humaneval['pass_rate_where_empty_fails'])} |"
            )
    typing = result.get("typing", {})
    if "model" in typing:
        rows.append(f"| typing replay: keystrokes saved | all | {typing['model']['keystrokes_saved']:.1%} |")
    if "baseline_word_completion" in typing:
        baseline = typing["baseline_word_completion"]["keystrokes_saved"]
        rows.append(f"| typing replay: word-completion baseline | all | {baseline:.1%} |")
    return rows


def training_stages(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the runs that made the model, oldest first. A fine-tune records its starting point as its parent."""
    stages = []
    stage: dict[str, Any] | None = config
    while stage:
        stages.append(stage)
        stage = stage.get("parent")
    return stages[::-1]


def training_rows(config: dict[str, Any]) -> list[str]:
    stages = training_stages(config)
    rows = []
    for number, stage in enumerate(stages, start=1):
        if len(stages) > 1:
            role = "from scratch" if number == 1 else "fine-tuned from the model of step " + str(number - 1)
            rows += [f"Step {number} ({role}):", ""]
        rows += [
            "```",
            stage["command"],
            "```",
            "",
            f"- {stage['step']:,} optimizer steps, {stage['tokens_seen'] / 1e6:.1f}M tokens seen, "
            f"{stage['elapsed_s'] / 60:.0f} minutes of wall time.",
        ]
        folders = stage.get("corpus_folders")
        if folders:
            rows.append(f"- Corpus: {sum(folders.values()):,} training files in {len(folders)} folders (listed below).")
        rows.append("")
    tokens = sum(stage["tokens_seen"] for stage in stages)
    minutes = sum(stage["elapsed_s"] for stage in stages) / 60
    rows.append(
        f"- In all: {tokens / 1e6:.1f}M tokens in {minutes:.0f} minutes; the last corpus below has "
        f"{config['corpus']['train_tokens'] / 1e6:.1f}M training tokens, so the last run made "
        f"{config['tokens_seen'] / config['corpus']['train_tokens']:.1f} passes over it."
    )
    return rows


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render() -> str:
    config = json.loads((SHIPPED / "config.json").read_text(encoding="utf-8"))
    manifest = json.loads((SHIPPED / "corpus_manifest.json").read_text(encoding="utf-8"))
    result = json.loads(EVAL_JSON.read_text(encoding="utf-8")) if EVAL_JSON.exists() else None
    model = config["model"]
    lines = [
        "# Model card: the shipped tiny-copilot model",
        "",
        "<!-- Generated by benchmarks/model_card.py from config.json, corpus_manifest.json and "
        "benchmarks/eval/shipped/eval.json; do not edit by hand. -->",
        "",
        "A decoder-only Transformer for inline code completion in Python, C and C++, trained from scratch "
        "with fill-in-the-middle by `tiny-copilot train`. It is what `tiny-copilot-lsp` serves when no "
        "checkpoint is chosen.",
        "",
        "## Model",
        "",
        f"- {config['parameters']:,} parameters: {model['n_layers']} layers, width {model['d_model']}, "
        f"{model['n_heads']} heads, vocabulary {model['vocab_size']:,}, context {model['max_seq_len']} tokens.",
        f"- Weights stored as {config['weights_dtype']} in `model.safetensors`; tokenizer sha256 "
        f"`{config['tokenizer_sha256'][:16]}`.",
        "",
        "## Training",
        "",
        *training_rows(config),
        f"- Hardware: a 2-core AMD EPYC with AVX-512 BF16 (shared with other work), {config['execution']['dtype']} "
        f"autocast, torch.compile {'on' if config['execution']['compiled'] else 'off'}.",
        f"- Libraries: " + ", ".join(f"{name} {version}" for name, version in sorted(config["versions"].items())) + ".",
        f"- Validation during training: {config['val']['bpb']:.3f} bits per byte.",
        "",
        "## Corpus",
        "",
        f"{config['corpus']['n_files']:,} files after filtering, {config['corpus']['train_tokens']:,} training and "
        f"{config['corpus']['val_tokens']:,} validation tokens; skipped: "
        + ", ".join(f"{count} {reason}" for reason, count in sorted(config["corpus"]["skipped"].items()))
        + ". Every file's sha256 and split are in `corpus_manifest.json`.",
        "",
        *source_rows(manifest, earlier_folders(config, manifest)),
        "",
        "`scripts/build-large-corpus.sh DIR` rebuilds the last corpus from the Debian and PyPI packages above; "
        "the last step's command leaves out `python/sympy` and `cpp/boost-more` with `--exclude`. Steps 1 and 2 "
        "trained on the smaller corpus of `scripts/build-shipped-corpus.sh` (step 1 without `cpp/abseil`, "
        "`cpp/googletest` and `python/algorithms`), and step 3 on the large corpus without `python/sympy`. "
        "Step 4 left out `cpp/boost-more` because after step 3 the model completed `#include <` with a Boost "
        "header rather than a standard one.",
        "",
        "## Evaluation",
        "",
        "Held-out files are the validation split above; `tiny-copilot eval` refuses any file whose content "
        "hash is in the training split. Greedy decoding, so re-running the evaluation reproduces these "
        "figures. Definitions and the full report: `benchmarks/eval/shipped/report.md`.",
        "",
        *metric_rows(result),
        "",
        "## Limits",
        "",
        f"- Trained for {sum(stage['elapsed_s'] for stage in training_stages(config)) / 3600:.1f} hours on a 2-core CPU: "
        "it completes common idioms (`self.items.append(item)`, `if __name__ == '__main__':`, `++i)`, a standard "
        "header after `#include <`), but it suggests nothing in the empty body of `def dfs(graph, start):`, "
        "seldom reuses names from the open file and often proposes plausible but wrong code. Review every suggestion.",
        "- The validation split holds other files of the same libraries, and some libraries (GLM above all) "
        "contain near-copies of one file, so the C++ figures above overstate quality on code from other "
        "projects. `benchmarks/eval/shipped-other-projects/report.md` measures code from outside the corpus: "
        "the standard library's own tests and Boost libraries that were not trained on (sort, lockfree, icl, "
        "polygon, tokenizer).",
        "- Python, C and C++ only; other languages are disabled by default.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when MODEL_CARD.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = CARD.read_text(encoding="utf-8") if CARD.exists() else ""
        if current != text:
            print(f"{CARD} is out of date; run benchmarks/model_card.py", file=sys.stderr)
            return 1
        return 0
    CARD.write_text(text, encoding="utf-8")
    print(f"wrote {CARD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
