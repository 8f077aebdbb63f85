"""Run a whole evaluation of one checkpoint and write its outputs.

Order of work: first the training corpus manifest and the held-out files, rejecting overlap. Then
bits per byte, line completion and HumanEval infilling run in this process through the server's own
`Completer`. The typing replay follows, through a `tiny-copilot-lsp` process. Last, eval.json,
report.md and the plots go into the output folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .eval_ablations import default_ablations_path, read_ablations
from .eval_data import EvalFile, HeldOutSet, ManifestError, held_out_from_data, held_out_from_manifest
from .eval_humaneval import evaluate_infilling, load_problems, single_line_tasks
from .eval_line import Suggest, evaluate_line_completion, sample_line_cases
from .eval_metrics import METRIC_DEFINITIONS
from .eval_replay import ReplayLimits, plan_spans, run_typing_replay
from .eval_report import target_checks, write_json, write_markdown, write_plots
from .eval_sandbox import SandboxLimits

log = logging.getLogger(__name__)

RESULTS_FORMAT = 1
MANIFEST_FILE = "corpus_manifest.json"
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class EvalConfig:
    """Everything one `tiny-copilot eval` run does."""

    checkpoint: Path
    """Checkpoint folder to evaluate."""
    out_dir: Path
    """Folder for eval.json, report.md and the plots; created if missing."""
    data: tuple[str, ...] = ()
    """Held-out files, folders or globs; empty means the checkpoint's validation split."""
    manifest: Path | None = None
    """The training run's corpus_manifest.json, when it is not beside the checkpoint."""
    limit_files: int = 40
    """Maximum held-out files used (drawn with the seed when there are more)."""
    seed: int = 0
    """Seed of every random choice: files, cursor points, replay windows."""
    bpb_max_chars_per_file: int = 20_000
    """Characters of each file scored for bits per byte."""
    line_cases_per_file: int = 5
    """Line-completion cursor points per file."""
    humaneval_limit: int | None = None
    """HumanEval tasks to run, the first N in task order; None runs all 1,033."""
    humaneval_execute: bool = True
    """Run the infilled programs against their tests in the sandbox."""
    skip_humaneval: bool = False
    skip_typing: bool = False
    ablations: Path | None = None
    """ablations.json of benchmarks/ablations.py, quoted in the report beside missed targets. None looks
    for `<out_dir>/../ablations/ablations.json` (the layout of benchmarks/eval/) and quotes nothing when
    that file is absent."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Server settings as an editor sends them (camelCase JSON); the defaults when empty. They go to the
    in-process completer and, as initializationOptions, to the server of the typing replay."""
    replay: ReplayLimits = field(default_factory=ReplayLimits)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)

    def __post_init__(self) -> None:
        if self.limit_files < 1:
            raise ValueError(f"EvalConfig.limit_files must be >= 1, got {self.limit_files}")
        if self.bpb_max_chars_per_file < 1:
            raise ValueError(f"EvalConfig.bpb_max_chars_per_file must be >= 1, got {self.bpb_max_chars_per_file}")
        if self.line_cases_per_file < 0:
            raise ValueError(f"EvalConfig.line_cases_per_file must be >= 0, got {self.line_cases_per_file}")
        if self.humaneval_limit is not None and self.humaneval_limit < 1:
            raise ValueError(f"EvalConfig.humaneval_limit must be >= 1 or None, got {self.humaneval_limit}")
        from tiny_copilot.server.settings import ServerSettings

        # An evaluation with settings other than those requested would report the wrong figures, so
        # invalid entries stop it rather than fall back to defaults as the server does.
        _, problems = ServerSettings.from_json(self.settings, replace_invalid=False)
        if problems:
            raise ValueError(f"invalid --settings: {'; '.join(problems)}; correct or remove these entries")


def find_manifest(checkpoint: Path, meta: dict[str, Any], explicit: Path | None) -> dict[str, Any]:
    """Return the training corpus manifest with per-file hashes; raise ManifestError when none is found.

    Looked up in this order: `explicit`, corpus_manifest.json in the checkpoint folder, in the run's
    data folder (`<run>/data/`, beside `<run>/checkpoint/`), and a "corpus" entry of config.json that
    lists files.
    """
    candidates = [explicit] if explicit else [checkpoint / MANIFEST_FILE, checkpoint.parent / "data" / MANIFEST_FILE]
    for path in candidates:
        if path is not None and path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ManifestError(f"{path} is not a readable corpus manifest ({exc}); restore it from the training run") from exc
            log.info("training corpus manifest: %s", path)
            return manifest
        if explicit is not None:
            raise ManifestError(f"--manifest {explicit} not found; pass the corpus_manifest.json of the run that trained this checkpoint")
    corpus = meta.get("corpus")
    if isinstance(corpus, dict) and isinstance(corpus.get("files"), list):
        return corpus
    raise ManifestError(
        f"no corpus manifest for {checkpoint}: looked for {', '.join(str(c) for c in candidates)} and a file list in "
        "config.json. Without it the evaluation cannot prove the data is held out; pass --manifest PATH"
    )


def run_evaluation(config: EvalConfig) -> dict[str, Any]:
    """Evaluate `config.checkpoint`; write the outputs to `config.out_dir` and return the results."""
    import torch

    from tiny_copilot.model.checkpoint import load_checkpoint

    started = time.perf_counter()
    timing: dict[str, float] = {}
    rng = random.Random(config.seed)

    # 1. Held-out data, checked against the training corpus before any model work.
    checkpoint = load_checkpoint(config.checkpoint)
    manifest = find_manifest(checkpoint.path, checkpoint.meta, config.manifest)
    held_out = held_out_from_data(config.data, manifest) if config.data else held_out_from_manifest(manifest)
    files = select_files(held_out.files, config.limit_files, rng)
    checkpoint_info = checkpoint_summary(checkpoint)
    # Read now, so that a wrong --ablations file fails before minutes of model work.
    ablations_path = config.ablations or default_ablations_path(config.out_dir)
    ablations = read_ablations(ablations_path, checkpoint_info["weights_sha256"], config.out_dir, required=config.ablations is not None)
    # Created only once the inputs are known to be good, so that a failed start leaves no empty folder.
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        file_above = next((path for path in (config.out_dir, *config.out_dir.parents) if path.is_file()), None)
        problem = f": {file_above} is a file, not a folder" if file_above else f" ({exc.strerror})"
        raise ValueError(f"cannot create the output folder {config.out_dir}{problem}; pass --out a new or existing folder") from exc
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "checkpoint": checkpoint_info,
        "config": _config_summary(config),
        "held_out": _held_out_summary(held_out, files),
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()},
    }
    suggest, completer = completer_suggest(checkpoint, config.settings)
    results["completer_settings"] = asdict(completer.settings)
    timing["load"] = time.perf_counter() - started

    # 2. Quality in this process, through the same Completer the server uses.
    section = time.perf_counter()
    from .eval_bpb import bits_per_byte_by_language

    results["bits_per_byte"] = bits_per_byte_by_language(checkpoint.model, checkpoint.tokenizer, files, config.bpb_max_chars_per_file)
    timing["bits_per_byte"] = time.perf_counter() - section
    log.info("bits per byte of %d files in %.0f s", len(files), timing["bits_per_byte"])

    section = time.perf_counter()
    line = evaluate_line_completion(suggest, sample_line_cases(files, config.line_cases_per_file, rng))
    _write_records(config.out_dir / "line_completion.jsonl", line.pop("records"))
    results["line_completion"] = line
    timing["line_completion"] = time.perf_counter() - section
    log.info("line completion: %d cases in %.0f s", line["overall"]["cases"], timing["line_completion"])

    if not config.skip_humaneval:
        section = time.perf_counter()
        tasks = single_line_tasks(load_problems())[: config.humaneval_limit]
        humaneval = evaluate_infilling(suggest, tasks, config.sandbox, execute=config.humaneval_execute)
        _write_records(config.out_dir / "humaneval.jsonl", humaneval.pop("records"))
        results["humaneval"] = humaneval
        timing["humaneval"] = time.perf_counter() - section

    # 3. Speed and usefulness through the real server; free this process's model first.
    del suggest, completer, checkpoint
    if not config.skip_typing:
        section = time.perf_counter()
        spans = plan_spans(files, config.replay, rng)
        results["typing"] = run_typing_replay(config.checkpoint, spans, config.out_dir / "replay", config.replay, config.settings)
        timing["typing"] = time.perf_counter() - section
        log.info("typing replay of %d files in %.0f s", len(spans), timing["typing"])

    # 4. Outputs.
    timing["total"] = time.perf_counter() - started
    results["timing_s"] = timing
    results["targets"] = target_checks(results)
    if ablations is not None:
        results["ablations"] = ablations
    results["metric_definitions"] = METRIC_DEFINITIONS
    metrics_jsonl = config.checkpoint.expanduser().resolve().parent / METRICS_FILE
    plots = write_plots(results, config.out_dir, metrics_jsonl if metrics_jsonl.is_file() else None)
    write_json(results, config.out_dir / "eval.json")
    write_markdown(results, config.out_dir / "report.md", plots)
    return results


def select_files(files: list[EvalFile], limit: int, rng: random.Random) -> list[EvalFile]:
    """Return at most `limit` of `files`, drawn with `rng` and sorted by name, or all of them when they fit."""
    if len(files) <= limit:
        return files
    return sorted(rng.sample(files, limit), key=lambda f: f.name)


def completer_suggest(checkpoint: Any, settings_json: dict[str, Any]) -> tuple[Suggest, Any]:
    """Wrap the server's Completer as a Suggest function: single-line suggestions, every language enabled.

    Return the function and the `Completer` behind it. Its `settings` and `budget` (token budgets
    fitted to the model's context) are what the suggestions used.
    """
    import dataclasses

    import torch

    from tiny_copilot.model.engine import Engine
    from tiny_copilot.server.completion import Completer
    from tiny_copilot.server.settings import ALL_LANGUAGES, ServerSettings

    # Both quality tasks compare one line, so generation stops at the first line break.
    base, _ = ServerSettings.from_json(settings_json)
    settings = dataclasses.replace(base, multiline="never", enabled_languages=(ALL_LANGUAGES,))
    torch.set_num_threads(settings.effective_threads())
    completer = Completer(Engine(checkpoint.model, checkpoint.tokenizer), settings)

    def suggest(text: str, offset: int, language_id: str | None) -> str:
        suggestion = completer.complete(text, offset, language_id=language_id)
        return suggestion.text if suggestion is not None else ""

    return suggest, completer


def checkpoint_summary(checkpoint: Any) -> dict[str, Any]:
    """Describe a loaded checkpoint for a results file; `weights_sha256` identifies its weights."""
    from tiny_copilot.model.checkpoint import WEIGHTS_FILE

    meta = checkpoint.meta
    return {
        "path": str(checkpoint.path),
        "weights_sha256": hashlib.sha256((checkpoint.path / WEIGHTS_FILE).read_bytes()).hexdigest(),
        "parameters": checkpoint.model.num_parameters(),
        "model": checkpoint.config.to_dict(),
        "step": meta.get("step"),
        "preset": meta.get("preset"),
        "tokenizer_sha256": meta.get("tokenizer_sha256"),
    }


def _config_summary(config: EvalConfig) -> dict[str, Any]:
    summary = asdict(config)
    for key in ("checkpoint", "out_dir", "manifest", "ablations"):
        summary[key] = None if summary[key] is None else str(summary[key])
    summary["data"] = list(config.data)
    return summary


def _held_out_summary(held_out: HeldOutSet, used: list[Any]) -> dict[str, Any]:
    by_language: dict[str, int] = {}
    for eval_file in used:
        by_language[eval_file.language] = by_language.get(eval_file.language, 0) + 1
    return {
        "source": held_out.source,
        "files_available": len(held_out.files),
        "files": len(used),
        "files_by_language": dict(sorted(by_language.items())),
        "bytes": sum(len(f.text.encode("utf-8")) for f in used),
        "left_out": held_out.left_out,
        "names": [f.name for f in used],
    }


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
