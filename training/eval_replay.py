"""Typing replay through the real language server, and the word-completion baseline on the same text.

One server process serves the whole replay, started as an editor starts it (stdio, default settings,
`--checkpoint DIR`), with info-level logging to a file: debug logging would write every message and
slow the requests being timed. Before the replay, a cold-start probe measures the time from spawning
the server to its first non-empty suggestion. After it, the server's resident memory is read from
/proc, and its KV-cache hit rate from the line it logs on shutdown.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .eval_data import EvalFile
from .eval_line import LSP_LANGUAGE_IDS
from .eval_lsp_client import LspSource, StdioLanguageClient
from .eval_metrics import percentile
from .eval_typing import TypingResult, WordCompletionSource, replay

log = logging.getLogger(__name__)

# The server logs its share of prompt tokens served from the KV cache when it shuts down.
# TODO: read this from a structured stats request once the server offers one; a log line can change.
_CACHE_LOG_LINE = re.compile(r"shutdown requested; cache hit rate ([0-9.]+)%")
_MODEL_LOADED_LOG_LINE = re.compile(r"tiny_copilot\.server\.loading: loaded .* in ([0-9.]+) ms")
_COLD_START_PROBE = "import os\n\n\ndef main():\n    path = os.path."
_COLD_START_POLL_S = 0.05
_PROBE_SPANS = 3
_PROBE_CUTS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class ReplayLimits:
    """How much text the replay types."""

    max_files: int = 6
    """Files replayed; each one gets a new document."""
    max_chars_per_file: int = 400
    """Characters typed per file; a longer file is opened with the text before a window of this size."""
    cold_start_timeout_s: float = 60.0
    """How long the cold-start probe waits for a first non-empty suggestion."""

    def __post_init__(self) -> None:
        if self.max_files < 1:
            raise ValueError(f"ReplayLimits.max_files must be >= 1, got {self.max_files}")
        if self.max_chars_per_file < 1:
            raise ValueError(f"ReplayLimits.max_chars_per_file must be >= 1, got {self.max_chars_per_file}")
        if not self.cold_start_timeout_s > 0:
            raise ValueError(f"ReplayLimits.cold_start_timeout_s must be > 0, got {self.cold_start_timeout_s}")


@dataclass(frozen=True)
class ReplaySpan:
    file: EvalFile
    before: str
    """Text already in the document when it is opened."""
    to_type: str


def plan_spans(files: list[EvalFile], limits: ReplayLimits, rng: random.Random) -> list[ReplaySpan]:
    """Pick the files and, in each, the window to type: a whole short file, else a window at a line start."""
    chosen = rng.sample(files, min(limits.max_files, len(files)))
    spans = []
    for eval_file in sorted(chosen, key=lambda f: f.name):
        text = eval_file.text
        if len(text) <= limits.max_chars_per_file:
            spans.append(ReplaySpan(eval_file, "", text))
            continue
        last_start = len(text) - limits.max_chars_per_file
        line_starts = [0] + [i + 1 for i, char in enumerate(text[:last_start]) if char == "\n"]
        start = rng.choice(line_starts)
        spans.append(ReplaySpan(eval_file, text[:start], text[start : start + limits.max_chars_per_file]))
    return spans


def server_command(checkpoint: Path, log_file: Path) -> list[str]:
    """Return the command an editor runs: the installed `tiny-copilot-lsp` next to this interpreter."""
    script = Path(sys.executable).with_name("tiny-copilot-lsp")
    program = [str(script)] if script.exists() else [shutil.which("tiny-copilot-lsp") or "tiny-copilot-lsp"]
    return [*program, "--checkpoint", str(checkpoint), "-v", "--log-file", str(log_file)]


def run_typing_replay(
    checkpoint: Path,
    spans: list[ReplaySpan],
    workdir: Path,
    limits: ReplayLimits,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Replay `spans` through the server and through the word-completion baseline; return both and the server figures.

    `settings` (editor JSON) reach the server as initializationOptions and as its workspace configuration.
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "server.log"
    # The server appends to its log, and the cold-start probe reads the model's load time from it. A
    # line left by an earlier run made the probe end before this server had loaded its model.
    log_file.unlink(missing_ok=True)
    client = StdioLanguageClient(server_command(checkpoint, log_file), workdir / "server.stderr", settings=settings)
    try:
        client.initialize(workdir)
        cold_start = _probe_cold_start(client, workdir, spans, limits.cold_start_timeout_s, log_file)
        model_runs = []
        for index, span in enumerate(spans):
            uri = (workdir / f"replay-{index}{Path(span.file.name).suffix}").as_uri()
            source = LspSource(client, uri, LSP_LANGUAGE_IDS.get(span.file.language, "plaintext"))
            model_runs.append(replay(source, span.before, span.to_type, len(span.file.text)))
            saved = model_runs[-1].keystrokes_saved
            log.info("replayed %s: %d chars, %.1f%% keystrokes saved", span.file.name, model_runs[-1].chars, 100 * (saved or 0))
        memory_kib = client.rss_kib()
    finally:
        client.close()
    if cold_start["first_suggestion_ms"] is None and client.first_suggestion_at is not None:
        cold_start["first_suggestion_ms"] = (client.first_suggestion_at - client.spawned_at) * 1000

    baseline_runs = [replay(WordCompletionSource(), s.before, s.to_type, len(s.file.text)) for s in spans]
    model, baseline = _merged(model_runs), _merged(baseline_runs)
    by_language = {}
    for language in sorted({span.file.language for span in spans}):
        chosen = [i for i, span in enumerate(spans) if span.file.language == language]
        model_saved = _merged([model_runs[i] for i in chosen]).keystrokes_saved
        baseline_saved = _merged([baseline_runs[i] for i in chosen]).keystrokes_saved
        by_language[language] = {
            "files": len(chosen),
            "keystrokes_saved": model_saved,
            "baseline_keystrokes_saved": baseline_saved,
            "ratio_to_baseline": _ratio(model_saved, baseline_saved),
        }
    per_file = [
        {"file": span.file.name, "chars": run.chars, "keystrokes_saved": run.keystrokes_saved, "baseline_keystrokes_saved": base.keystrokes_saved}
        for span, run, base in zip(spans, model_runs, baseline_runs)
    ]
    return {
        "model": summarize(model),
        "baseline_word_completion": summarize(baseline),
        "ratio_to_baseline": _ratio(model.keystrokes_saved, baseline.keystrokes_saved),
        "by_language": by_language,
        "cold_start": cold_start,
        "server_memory_kib": memory_kib,
        "cache": read_cache_stats(log_file),
        "per_file": per_file,
        "server_command": server_command(checkpoint, log_file),
    }


def _merged(results: list[TypingResult]) -> TypingResult:
    total = TypingResult()
    for result in results:
        total.merge(result)
    return total


def summarize(result: TypingResult) -> dict[str, Any]:
    return {
        "chars": result.chars,
        "auto_indented": result.auto_indented,
        "typed": result.typed,
        "keystrokes": result.keystrokes,
        "keystrokes_saved": result.keystrokes_saved,
        "accepted_chars_share": result.accepted_chars / result.chars if result.chars else None,
        "requests": result.requests,
        "shown": result.shown,
        "accepted": result.accepted,
        "acceptance_rate": result.accepted / result.shown if result.shown else None,
        "latency_ms_p50": percentile(result.latencies_ms, 50),
        "latency_ms_p95": percentile(result.latencies_ms, 95),
        "latency_ms_p99": percentile(result.latencies_ms, 99),
        "latencies_ms": result.latencies_ms,
        "saved_by_position": result.saved_by_position,
        "chars_by_position": result.chars_by_position,
    }


def read_cache_stats(log_file: Path) -> dict[str, Any]:
    """Return the KV-cache hit rate (share of prompt tokens reused) that the server logged on shutdown."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    matches = _CACHE_LOG_LINE.findall(text)
    if not matches:
        log.warning("no cache hit rate line in %s; the cache hit rate is unknown", log_file)
        return {"hit_rate": None}
    return {"hit_rate": float(matches[-1]) / 100}


def _probe_cold_start(
    client: StdioLanguageClient, workdir: Path, spans: list[ReplaySpan], timeout_s: float, log_file: Path
) -> dict[str, Any]:
    """Ask for suggestions until one is non-empty; the server returns no item while its model loads.

    A loaded model can still have nothing to suggest at one cursor, so the probe cycles through a few
    documents: a Python snippet and cuts of the files about to be replayed. The server's "loaded"
    log line tells which replies came from a loaded model. Once every probe document got such a reply,
    the probe stops, and the replay itself may then record the first non-empty suggestion.
    """
    sources = []
    for index, (text, language_id) in enumerate(_probe_documents(spans)):
        source = LspSource(client, (workdir / f"cold-start-probe-{index}").as_uri(), language_id)
        source.open(text)
        sources.append(source)
    figures: dict[str, Any] = {"first_reply_ms": None, "model_ready_reply_ms": None, "first_suggestion_ms": None}
    attempts = ready_replies = 0
    deadline = time.perf_counter() + timeout_s
    try:
        while time.perf_counter() < deadline and ready_replies < len(sources):
            model_loaded = _model_load_ms(log_file) is not None
            suggestion = sources[attempts % len(sources)].suggest()
            attempts += 1
            now_ms = (time.perf_counter() - client.spawned_at) * 1000
            if figures["first_reply_ms"] is None:
                figures["first_reply_ms"] = now_ms
            if model_loaded:
                ready_replies += 1
                if figures["model_ready_reply_ms"] is None:
                    figures["model_ready_reply_ms"] = now_ms
            if suggestion:
                figures["first_suggestion_ms"] = now_ms
                break
            time.sleep(_COLD_START_POLL_S)
        if figures["model_ready_reply_ms"] is None:
            log.warning("the server's model was not ready within %.0f s of spawning it", timeout_s)
    finally:
        for source in sources:
            source.close()
    return {**figures, "model_load_ms": _model_load_ms(log_file), "requests": attempts}


def _model_load_ms(log_file: Path) -> float | None:
    """Return the load time the server logged once its model was ready, or None before that."""
    try:
        match = _MODEL_LOADED_LOG_LINE.search(log_file.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return float(match.group(1)) if match else None


def _probe_documents(spans: list[ReplaySpan]) -> list[tuple[str, str]]:
    """Return (text, language id) of each probe document."""
    documents = [(_COLD_START_PROBE, "python")]
    for span in spans[:_PROBE_SPANS]:
        language_id = LSP_LANGUAGE_IDS.get(span.file.language, "plaintext")
        for cut in _PROBE_CUTS:
            documents.append((span.before + span.to_type[: int(len(span.to_type) * cut)], language_id))
    return documents


def _ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline <= 0:
        return None
    return value / baseline
