r"""Incremental tokenization of the prompt windows between keystrokes.

Each window of the prompt (prefix, suffix) is a slot. `EncodingCache.encode(slot, text)` returns the
same ids and offsets as tokenizing `text` from scratch. It reuses the slot's previous result up to a
pre-token boundary shortly before the first changed character and tokenizes only the rest, usually
the cursor's line and the line before it.

Why the reuse is exact: byte-level BPE merges only inside pre-tokens, so the tokens before a
pre-token boundary depend only on the text before it, provided the pre-tokenizer's regex examined
no character at or after the change to place that boundary. The boundary rules below are proven for
the two regex pre-tokenizers we train, whose runs (letters, digits, punctuation, whitespace) stop at
the first character outside their class:
- GPT-2 pattern: a newline right after a non-whitespace character starts a pre-token (no
  alternative but the whitespace ones matches a newline).
- GPT-4 patterns: the position after a newline that is followed by spaces or tabs and then a
  non-whitespace character starts a pre-token (`\s*[\r\n]` ends at the last newline of a
  whitespace run, and punctuation runs end after their trailing newlines).
In both, the examined characters end at the first non-whitespace character after the newline, which
must lie before the change. Other pre-tokenizers get no reuse. A property test compares the result
with full tokenization on random edits.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Literal

from tiny_copilot.model.tokenizer import CodeTokenizer

Offsets = list[tuple[int, int]]
"""(start, end) str indices of each token in the encoded text."""

PreTokenizerFamily = Literal["gpt2", "gpt4", "other"]

# The Split patterns of `training.tokenizer_train` ("gpt4", "gpt4_digits"); they differ only in digits.
GPT4_SPLIT_PATTERNS: tuple[str, ...] = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
)

_INDENT_THEN_TEXT = re.compile(r"[ \t]*\S")


@dataclass(frozen=True)
class _Entry:
    text: str
    ids: list[int]
    offsets: Offsets
    starts: list[int]


class EncodingCache:
    """The latest encoding per slot, reused by the next `encode` of that slot; not thread-safe."""

    def __init__(self, tokenizer: CodeTokenizer) -> None:
        self.tokenizer = tokenizer
        self.family = pre_tokenizer_family(tokenizer)
        self._entries: dict[str, _Entry] = {}
        self.reused_chars = 0
        """Characters whose tokens came from a previous encoding (for diagnostics)."""
        self.encoded_chars = 0
        """Characters tokenized from scratch (for diagnostics)."""

    def encode(self, slot: str, text: str) -> tuple[list[int], Offsets]:
        """Return the ids and offsets of `text`, exactly as `tokenizer.inner.encode` would."""
        previous = self._entries.get(slot)
        if previous is not None and previous.text == text:
            self.reused_chars += len(text)
            return previous.ids, previous.offsets

        index = 0
        if previous is not None and self.family != "other":
            index = _reusable_tokens(previous, text, self.family)
        if index > 0:
            assert previous is not None
            boundary = previous.starts[index]
            encoding = self.tokenizer.inner.encode(text[boundary:], add_special_tokens=False)
            ids = previous.ids[:index] + encoding.ids
            offsets = previous.offsets[:index] + [(start + boundary, end + boundary) for start, end in encoding.offsets]
            self.reused_chars += boundary
            self.encoded_chars += len(text) - boundary
        else:
            encoding = self.tokenizer.inner.encode(text, add_special_tokens=False)
            ids, offsets = encoding.ids, list(encoding.offsets)
            self.encoded_chars += len(text)

        self._entries[slot] = _Entry(text, ids, offsets, [start for start, _ in offsets])
        return ids, offsets

    def clear(self) -> None:
        self._entries.clear()



def pre_tokenizer_family(tokenizer: CodeTokenizer) -> PreTokenizerFamily:
    """Recognize the pre-tokenizers whose boundary rules the module docstring proves."""
    config = json.loads(tokenizer.json_text).get("pre_tokenizer") or {}
    if config.get("type") == "ByteLevel" and config.get("use_regex"):
        return "gpt2"
    steps = config.get("pretokenizers", []) if config.get("type") == "Sequence" else []
    if (
        len(steps) == 2
        and steps[0].get("type") == "Split"
        and steps[0].get("pattern", {}).get("Regex") in GPT4_SPLIT_PATTERNS
        and steps[0].get("behavior") == "Isolated"
        and not steps[0].get("invert")
        and steps[1].get("type") == "ByteLevel"
        and not steps[1].get("use_regex")
    ):
        return "gpt4"
    return "other"


def _reusable_tokens(previous: _Entry, text: str, family: PreTokenizerFamily) -> int:
    """Return how many leading tokens of `previous` are exact for `text`; 0 when none are safe."""
    common = _common_prefix_length(previous.text, text)
    boundary = _boundary_before(text, common, family)
    if boundary <= 0:
        return 0
    index = bisect.bisect_left(previous.starts, boundary)
    # The boundary is a pre-token start, so the previous encoding has a token starting there.
    if index >= len(previous.starts) or previous.starts[index] != boundary:
        return 0
    return index


def _boundary_before(text: str, change: int, family: PreTokenizerFamily) -> int:
    """Return the last pre-token boundary whose placement reads only `text[:change]`, or -1."""
    newline = text.rfind("\n", 0, change)
    while newline > 0:
        after = _INDENT_THEN_TEXT.match(text, newline + 1)
        # The first non-whitespace character after the newline must come before the change.
        if after is not None and after.end() <= change:
            if family == "gpt4":
                return newline + 1
            if not text[newline - 1].isspace():
                return newline
        newline = text.rfind("\n", 0, newline)
    return -1


def _common_prefix_length(a: str, b: str) -> int:
    """Return the length of the longest common prefix, by binary search over slice comparisons."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
