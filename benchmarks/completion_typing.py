"""Latency and KV-cache reuse of the completion core while typing through a real file.

Replays typing: the lines of a file are typed one character at a time at a cursor in its middle, and
every keystroke requests a suggestion from `Completer.complete`, as an editor with no debounce would.
Reports per-keystroke milliseconds (total, prefill, decode, and everything else: prompt building
and clean-up) and the share of prompt tokens served from the KV cache.

The model is the "small" preset with random weights (or --checkpoint). Random weights never stop
early, so --new-tokens fixes the tokens generated per suggestion (about one line of code).

    .venv/bin/python benchmarks/completion_typing.py --file /usr/lib/python3.11/json/decoder.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import torch

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.model.config import preset_config
from tiny_copilot.model.engine import Engine
from tiny_copilot.model.transformer import GPT
from tiny_copilot.server.completion import Completer
from tiny_copilot.server.settings import ServerSettings
from tiny_copilot.training.tokenizer_train import train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=STDLIB / "argparse.py", help="file to type through")
    parser.add_argument("--chars", type=int, default=400, help="characters to type")
    parser.add_argument("--new-tokens", type=int, default=12, help="tokens generated per suggestion")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-healing", action="store_true", help="turn token healing off")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder instead of a random 'small' model")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    engine = _engine(args.checkpoint)
    settings = ServerSettings(max_new_tokens=args.new_tokens, multiline="never", token_healing=not args.no_healing)
    completer = Completer(engine, settings)
    text = args.file.read_text(encoding="utf-8")
    cursor = text.index("\n", len(text) // 2) + 1
    typed = text[cursor : cursor + args.chars]
    before, after = text[:cursor], text[cursor + args.chars :]

    # Warm up: the first call fills the cache with the whole prompt.
    completer.complete(before + after, cursor, "python")
    rows = []
    for count in range(1, len(typed) + 1):
        completer.complete(before + typed[:count] + after, cursor + count, "python")
        stats = completer.last_stats
        assert stats is not None
        rows.append(stats)

    _report(args, engine, text, rows)
    return 0


def _engine(checkpoint: Path | None) -> Engine:
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint)
        return Engine(loaded.model, loaded.tokenizer)
    texts = [path.read_text(encoding="utf-8") for path in sorted((STDLIB / "json").glob("*.py"))]
    texts += [path.read_text(encoding="utf-8") for path in sorted((STDLIB / "collections").glob("*.py"))]
    tokenizer = train_tokenizer(texts, vocab_size=4096)
    torch.manual_seed(0)
    model = GPT(preset_config("small", vocab_size=tokenizer.vocab_size))
    return Engine(model, tokenizer)


def _report(args: argparse.Namespace, engine: Engine, text: str, rows: list) -> None:
    def percentile(values: list[float], share: float) -> float:
        return sorted(values)[min(len(values) - 1, int(share * len(values)))]

    total = [row.elapsed_ms for row in rows]
    prefill = [row.prefill_ms for row in rows]
    decode = [row.decode_ms for row in rows]
    other = [row.elapsed_ms - row.prefill_ms - row.decode_ms for row in rows]
    reused = sum(row.reused_tokens for row in rows) / sum(row.prompt_tokens for row in rows)
    window_moves = sum(1 for row in rows if row.reused_tokens < row.prompt_tokens // 2)
    params = sum(p.numel() for p in engine.model.parameters())

    print(f"file {args.file} ({len(text)} chars), typed {len(rows)} chars, {params / 1e6:.1f}M parameters, "
          f"{args.threads} thread(s), healing {'off' if args.no_healing else 'on'}, {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    print(f"prompt tokens: median {statistics.median(row.prompt_tokens for row in rows):.0f}, "
          f"generated per suggestion: median {statistics.median(row.generated_tokens for row in rows):.0f}")  # fmt: skip
    print(f"KV cache reuse: {reused:.1%} of prompt tokens; {window_moves} keystrokes re-prefilled over half the prompt")
    for name, values in (("total", total), ("prefill", prefill), ("decode", decode), ("prompt+clean-up", other)):
        print(f"{name:>16} ms: p50 {percentile(values, 0.5):6.1f}  p90 {percentile(values, 0.9):6.1f}  max {max(values):6.1f}")


if __name__ == "__main__":
    sys.exit(main())
