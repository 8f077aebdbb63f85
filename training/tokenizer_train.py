"""Train the byte-level BPE tokenizer on the train split, check it and measure it.

Contract:
    tokenizer = train_tokenizer(corpus.texts("train"), vocab_size=4096, check_texts=corpus.texts("val"))
    report = measure_tokenizer(tokenizer, corpus.texts_by_language("val"))
    describe_tokenizer(report)    # lines: vocabulary size, bytes per token per language

The tokenizer is lossless on any text: byte-level BPE maps every byte to a symbol, and the decoder maps
symbols back, so tabs, CRLF, a lone CR, trailing spaces and non-ASCII text all survive a round trip.
Special tokens are exactly `model.fim.SPECIAL_TOKENS` at ids 0..3. `train_tokenizer` verifies the round
trip on awkward code samples and on a sample of `check_texts` before it returns, and raises
TokenizerCheckError on any mismatch. The pre-tokenizer and default vocabulary size were chosen by
`benchmarks/tokenizer_choice.py`; its results and the decision are in `benchmarks/tokenizer_choice.md`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ..model.fim import SPECIAL_TOKENS
from ..model.tokenizer import CodeTokenizer

log = logging.getLogger(__name__)

PreTokenizerName = Literal["gpt2", "gpt4", "gpt4_digits"]
PRE_TOKENIZERS: tuple[PreTokenizerName, ...] = ("gpt2", "gpt4", "gpt4_digits")
DEFAULT_PRE_TOKENIZER: PreTokenizerName = "gpt4"
DEFAULT_VOCAB_SIZE = 4096
# BPE merges settle long before this much code, and training time grows with it: the 28 MB Python
# standard library takes 4-7 s on a 2-core CPU.
DEFAULT_MAX_TRAIN_BYTES = 32_000_000
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)
# Token files store ids as uint16.
MAX_VOCAB_SIZE = 65536

# GPT-4's split pattern (cl100k): letters with one leading non-letter, digit groups of up to three,
# punctuation runs with their trailing newlines, and whitespace runs that leave one space for the next word.
_GPT4_PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"
)
_GPT4_DIGITS_PATTERN = _GPT4_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")

# Code that tends to break lossy tokenizers; every trained tokenizer must round-trip all of it.
AWKWARD_SAMPLES: tuple[str, ...] = (
    "def f(x):\n\treturn x  \n",
    "int main(void) {\r\n    return 0;\r\n}\r\n",
    "line one\rline two after a lone carriage return\r",
    "trailing spaces   \n\t\t\n   \n",
    'greeting = "héllo wörld ✓ 😀 👩‍👩‍👧 中文 Ελληνικά"  # non-ASCII\n',
    "naïve_ñame = 'é' + 'é'  # precomposed and combining accents\n",
    "x = '<|endoftext|>'  # a special token's spelling is ordinary text\n",
    "    \u00a0\u2003mixed\u200bspaces\ufeff\n",
    "",
    " ",
    "\n\n\n",
)
_CHECK_SAMPLE_SIZE = 64
_CHECK_SEED = 0


class TokenizerCheckError(RuntimeError):
    """A trained tokenizer failed its round-trip self-check."""


@dataclass(frozen=True)
class TokenizerReport:
    """Figures of a tokenizer measured on held-out text."""

    vocab_size: int
    """Size of the vocabulary, special tokens included; below the requested size on small corpora."""
    bytes_per_token: dict[str, float]
    """UTF-8 bytes per token for each language; higher means shorter sequences for the model."""
    n_tokens: dict[str, int]
    n_bytes: dict[str, int]


def build_pre_tokenizer(name: PreTokenizerName) -> pre_tokenizers.PreTokenizer:
    """Return a byte-level pre-tokenizer: GPT-2's regex, or GPT-4's regex (optionally one digit per piece)."""
    if name == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    patterns = {"gpt4": _GPT4_PATTERN, "gpt4_digits": _GPT4_DIGITS_PATTERN}
    if name not in patterns:
        raise ValueError(f"unknown pre-tokenizer {name!r}; choose one of {', '.join(PRE_TOKENIZERS)}")
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(patterns[name]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def train_tokenizer(
    texts: Sequence[str],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    pre_tokenizer: PreTokenizerName = DEFAULT_PRE_TOKENIZER,
    check_texts: Sequence[str] = (),
    max_train_bytes: int = DEFAULT_MAX_TRAIN_BYTES,
) -> CodeTokenizer:
    """Train a byte-level BPE on `texts` (the train split only) and verify its round trip.

    Past `max_train_bytes`, training uses a fixed subset of whole texts (chosen by content hash).
    The round trip is checked on `AWKWARD_SAMPLES` and on up to 64 texts drawn from `check_texts`
    (pass the validation split). Raises ValueError for a vocabulary size outside [260, 65536] or
    no text, and TokenizerCheckError when any text does not decode back to itself.
    """
    if not isinstance(vocab_size, int) or not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be an integer in [{MIN_VOCAB_SIZE}, {MAX_VOCAB_SIZE}] "
            f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens, ids stored as uint16), got {vocab_size!r}"
        )
    if not any(texts):
        raise ValueError("train_tokenizer needs at least one non-empty text")

    texts = _subset(texts, max_train_bytes)
    started = time.perf_counter()
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = build_pre_tokenizer(pre_tokenizer)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols, so that text unseen in training still encodes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    trained = CodeTokenizer.from_json(tokenizer.to_str())
    log.info(
        "trained %s BPE with %d tokens on %d texts in %.1f s",
        pre_tokenizer, trained.vocab_size, len(texts), time.perf_counter() - started,
    )

    rng = random.Random(_CHECK_SEED)
    sample = rng.sample(list(check_texts), min(_CHECK_SAMPLE_SIZE, len(check_texts)))
    check_round_trip(trained, [*AWKWARD_SAMPLES, *sample])
    return trained


def _subset(texts: Sequence[str], max_bytes: int) -> Sequence[str]:
    """Return `texts`, or whole texts in content-hash order up to `max_bytes` when there are more."""
    sizes = [len(text.encode("utf-8")) for text in texts]
    if sum(sizes) <= max_bytes:
        return texts
    order = sorted(range(len(texts)), key=lambda i: hashlib.sha256(texts[i].encode("utf-8")).digest())
    chosen, total = [], 0
    for i in order:
        if total + sizes[i] <= max_bytes or not chosen:
            chosen.append(texts[i])
            total += sizes[i]
    log.info("training the tokenizer on %d of %d texts (%.1f of %.1f MB)", len(chosen), len(texts), total / 1e6, sum(sizes) / 1e6)
    return chosen


def check_round_trip(tokenizer: CodeTokenizer, texts: Sequence[str]) -> None:
    """Raise TokenizerCheckError unless every text decodes back from its ids exactly, and no id is special."""
    for ids, text in zip(tokenizer.encode_batch(list(texts)), texts):
        decoded = tokenizer.decode(ids)
        if decoded != text:
            where = next((i for i, (a, b) in enumerate(zip(decoded, text)) if a != b), min(len(decoded), len(text)))
            raise TokenizerCheckError(
                f"tokenizer round trip changed the text at character {where}: expected "
                f"{text[max(0, where - 20): where + 20]!r}, got {decoded[max(0, where - 20): where + 20]!r}; "
                "this is a bug in the tokenizer setup, please report it with this text"
            )
        specials = tokenizer.specials.all().intersection(ids)
        if specials:
            raise TokenizerCheckError(
                f"plain text encoded to special token ids {sorted(specials)}; "
                "special-token spellings in code must stay ordinary text"
            )


def measure_tokenizer(tokenizer: CodeTokenizer, texts_by_language: Mapping[str, Sequence[str]]) -> TokenizerReport:
    """Count tokens and UTF-8 bytes per language and return the bytes-per-token figures."""
    n_tokens: dict[str, int] = {}
    n_bytes: dict[str, int] = {}
    for language, texts in sorted(texts_by_language.items()):
        n_tokens[language] = sum(len(ids) for ids in tokenizer.encode_batch(list(texts)))
        n_bytes[language] = sum(len(text.encode("utf-8")) for text in texts)
    bytes_per_token = {
        language: n_bytes[language] / n_tokens[language] for language in n_tokens if n_tokens[language] > 0
    }
    return TokenizerReport(tokenizer.vocab_size, bytes_per_token, n_tokens, n_bytes)


def describe_tokenizer(report: TokenizerReport, where: str = "validation") -> list[str]:
    """Return human-readable lines of a tokenizer report."""
    lines = [f"tokenizer: {report.vocab_size} tokens; bytes per token on {where}:"]
    for language, ratio in report.bytes_per_token.items():
        lines.append(
            f"  {language:<7} {ratio:5.2f} bytes/token "
            f"({report.n_bytes[language]:,} bytes -> {report.n_tokens[language]:,} tokens)"
        )
    return lines
