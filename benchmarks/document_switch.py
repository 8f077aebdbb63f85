"""Typing in several files in turn: one KV cache for the server against one per document, in one run.

An editor requests suggestions in whichever file has focus. With a single cache, the first request
after a switch prefills the whole prompt of the other file (about 1k tokens). With a cache per
document (`server.loading.document_caches`), it prefills only what changed there. For each switching
pattern, both engines serve the same requests in alternation, so both see the same machine load.
Each file is typed at a cursor with about 4,000 characters before it, one character per request,
as the user writes the rest of that line. The model is the shipped one (or --checkpoint).

    .venv/bin/python benchmarks/document_switch.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from tiny_copilot.model.checkpoint import load_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.engine import Engine
from tiny_copilot.server.completion import Completer
from tiny_copilot.server.loading import document_caches
from tiny_copilot.server.settings import ServerSettings

REPOSITORY = Path(__file__).resolve().parent.parent
FILES = ("model/engine.py", "server/lsp.py", "server/postprocess.py")
MIN_PREFIX_CHARS = 4000
"""The cursor's line starts this far into the file, so the prefix budget is full (~3.5 characters per token)."""
LINE_CHARS = 24
"""Characters typed into each file's line over a run."""


def typing_points(text: str) -> tuple[str, str, str]:
    """Return the text before a line, that line, and the text after it, for a line after MIN_PREFIX_CHARS."""
    start = text.index("\n", MIN_PREFIX_CHARS) + 1
    while len(text[start : text.index("\n", start)].strip()) < LINE_CHARS:
        start = text.index("\n", start) + 1
    end = text.index("\n", start)
    return text[:start], text[start:end], text[end:]


def run(completers: dict[str, Completer], files: list[tuple[str, str, str]], keys_per_visit: int) -> dict[str, list[float]]:
    """Type LINE_CHARS characters into each file, switching file after `keys_per_visit` keystrokes."""
    latencies_ms: dict[str, list[float]] = {name: [] for name in completers}
    typed = [0] * len(files)
    while min(typed) < LINE_CHARS:
        for index, (before, line, after) in enumerate(files):
            for _ in range(keys_per_visit):
                typed[index] = min(typed[index] + 1, LINE_CHARS)
                text = before + line[: typed[index]] + after
                cursor = len(before) + typed[index]
                for name, completer in completers.items():
                    started = time.perf_counter()
                    completer.complete(text, cursor, "python", cache_key=f"file:///{index}")
                    latencies_ms[name].append((time.perf_counter() - started) * 1000)
    return latencies_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder (default: the shipped model)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(args.checkpoint or shipped_checkpoint_path())
    slots = document_caches(checkpoint.model)
    settings = ServerSettings()
    completers = {
        "one cache": Completer(Engine(checkpoint.model, checkpoint.tokenizer, cache_slots=1), settings),
        f"{slots} caches": Completer(Engine(checkpoint.model, checkpoint.tokenizer, cache_slots=slots), settings),
    }
    files = [typing_points((REPOSITORY / name).read_text(encoding="utf-8")) for name in FILES]
    run(completers, files[:1], LINE_CHARS)  # warm-up: the first forward passes allocate buffers
    print(f"{len(FILES)} files, {LINE_CHARS} keystrokes each, shipped model, 1 thread")
    for keys_per_visit in (1, 4):
        for count in (2, 3):
            latencies = run(completers, files[:count], keys_per_visit)
            row = []
            for name, values in latencies.items():
                values.sort()
                p50, p95 = statistics.median(values), values[int(0.95 * (len(values) - 1))]
                row.append((name, p50, p95, statistics.fmean(values)))
            (_, p50_one, _, mean_one), (_, p50_many, _, mean_many) = row
            cells = ", ".join(f"{name} p50 {p50:.1f} / p95 {p95:.1f} ms" for name, p50, p95, _ in row)
            print(
                f"{count} files, switch every {keys_per_visit} keystroke(s): {cells}; "
                f"mean {mean_one / mean_many:.2f}x, p50 {p50_one / p50_many:.2f}x faster with per-document caches"
            )


if __name__ == "__main__":
    main()
