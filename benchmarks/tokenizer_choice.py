"""Measure candidate pre-tokenizers and vocabulary sizes for the code tokenizer.

Trains every candidate of `training.tokenizer_train.PRE_TOKENIZERS` at several vocabulary sizes on one
part of the Python standard library plus C/C++ headers from /usr/include, and measures UTF-8 bytes per
token on held-out files of each language. Files go through `training.corpus.build_corpus`, so the same
filters apply as in real training, and the held-out files are its validation split.

    .venv/bin/python benchmarks/tokenizer_choice.py > /tmp/tokenizer_choice.txt

Prints Markdown tables; the recorded run and the decision are in benchmarks/tokenizer_choice.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence

import tokenizers

from tiny_copilot.model.config import PRESETS
from tiny_copilot.training.corpus import Corpus, build_corpus, default_paths, split_fraction
from tiny_copilot.training.tokenizer_train import PRE_TOKENIZERS, check_round_trip, measure_tokenizer, train_tokenizer

D_MODELS = (128, 192, 256)


def select(corpus: Corpus, split: str, budget_bytes: int) -> dict[str, list[str]]:
    """Take whole files of one split in hash order until each language has `budget_bytes` of text."""
    chosen: dict[str, list[str]] = {}
    used: dict[str, int] = {}
    for source in sorted(corpus.files, key=lambda f: split_fraction(f.relative_path)):
        text = source.text_for(split)  # type: ignore[arg-type]
        language = "c/c++" if source.language in ("c", "cpp") else source.language
        if not text or used.get(language, 0) >= budget_bytes:
            continue
        chosen.setdefault(language, []).append(text)
        used[language] = used.get(language, 0) + len(text.encode("utf-8"))
    return chosen


def non_embedding_params(d_model: int, n_layers: int) -> int:
    # Attention (4 d^2) and a 4x MLP (8 d^2) per block; norms have no weights worth counting.
    return 12 * n_layers * d_model * d_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c-root", default="/usr/include", help="folder of C/C++ headers (default /usr/include)")
    parser.add_argument("--train-mb", type=float, default=8.0, help="training text per language, in MB")
    parser.add_argument("--heldout-mb", type=float, default=2.0, help="held-out text per language, in MB")
    parser.add_argument("--vocab-sizes", default="1024,2048,4096,8192,16384", help="comma-separated sizes")
    args = parser.parse_args(argv)
    vocab_sizes = [int(v) for v in args.vocab_sizes.split(",")]

    started = time.perf_counter()
    python = build_corpus(default_paths(), val_fraction=0.1)
    headers = build_corpus([args.c_root], val_fraction=0.1)
    train = {**select(python, "train", int(args.train_mb * 1e6)), **select(headers, "train", int(args.train_mb * 1e6))}
    heldout = {**select(python, "val", int(args.heldout_mb * 1e6)), **select(headers, "val", int(args.heldout_mb * 1e6))}
    train_texts = [text for texts in train.values() for text in texts]
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, tokenizers {tokenizers.__version__}")
    print(f"corpus read in {time.perf_counter() - started:.1f} s")
    for name, texts in (("train", train), ("held-out", heldout)):
        sizes = ", ".join(f"{lang} {len(t)} files {sum(len(x.encode()) for x in t) / 1e6:.2f} MB" for lang, t in texts.items())
        print(f"{name}: {sizes}")
    print()

    languages = sorted(heldout)
    heldout_mb = sum(len(text.encode()) for texts in heldout.values() for text in texts) / 1e6
    mean_ratio: dict[tuple[str, int], float] = {}
    print("| pre-tokenizer | vocab | " + " | ".join(f"{lang} bytes/token" for lang in languages) + " | train s | encode MB/s |")
    print("|---|---|" + "---|" * len(languages) + "---|---|")
    for pre_tokenizer in PRE_TOKENIZERS:
        for vocab_size in vocab_sizes:
            t0 = time.perf_counter()
            tokenizer = train_tokenizer(train_texts, vocab_size, pre_tokenizer)
            train_s = time.perf_counter() - t0
            check_round_trip(tokenizer, [text for texts in heldout.values() for text in texts[:20]])
            t0 = time.perf_counter()
            report = measure_tokenizer(tokenizer, heldout)
            encode_mb_s = heldout_mb / (time.perf_counter() - t0)
            mean_ratio[pre_tokenizer, vocab_size] = sum(report.bytes_per_token.values()) / len(languages)
            ratios = " | ".join(f"{report.bytes_per_token[lang]:.2f}" for lang in languages)
            print(f"| {pre_tokenizer} | {vocab_size} | {ratios} | {train_s:.1f} | {encode_mb_s:.2f} |", flush=True)
    print()

    # Training cost per byte of code ~ 6 * (non-embedding + head parameters) / bytes per token, because the
    # tied output head multiplies every position by the whole vocab x d_model table.
    best = PRE_TOKENIZERS[1]
    print(f"Training FLOPs per byte of code with {best}, relative to vocab 4096 (lower trains on more code per hour)")
    print("| vocab | " + " | ".join(PRESETS) + " |")
    print("|---|" + "---|" * len(PRESETS))
    for vocab_size in vocab_sizes:
        cells = []
        for preset in PRESETS.values():
            def cost(v: int) -> float:
                body = non_embedding_params(preset["d_model"], preset["n_layers"])
                return (body + v * preset["d_model"]) / mean_ratio[best, v]
            cells.append(f"{cost(vocab_size) / cost(4096):.2f}" if (best, 4096) in mean_ratio else "-")
        print(f"| {vocab_size} | " + " | ".join(cells) + " |")
    print()

    print("Embedding parameters (tied input/output table = vocab x d_model), and their share of each preset")
    print("| vocab | " + " | ".join(f"d={d}" for d in D_MODELS) + " | " + " | ".join(f"share in {n}" for n in PRESETS) + " |")
    print("|---|" + "---|" * (len(D_MODELS) + len(PRESETS)))
    for vocab_size in vocab_sizes:
        cells = [f"{vocab_size * d / 1e6:.2f}M" for d in D_MODELS]
        for preset in PRESETS.values():
            embedding = vocab_size * preset["d_model"]
            total = embedding + non_embedding_params(preset["d_model"], preset["n_layers"])
            cells.append(f"{100 * embedding / total:.0f} %")
        print(f"| {vocab_size} | " + " | ".join(cells) + " |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
