"""Typing replay: a simulated user types held-out code and takes the suggestions that match.

The user types the text one character at a time at the end of the document, and the editor inserts
the indentation at each line start (auto-indent). After every keystroke or accepted suggestion the
source is asked for a suggestion, as an editor asks for ghost text. A suggestion is accepted whole when the next characters start with it, else up to its
last word boundary inside the matching part, and only when that saves a keystroke: accepting costs
one key (Tab), so a 1-character acceptance gains nothing. Accepted characters are not typed.

Sources are the language server (see eval_lsp_client.LspSource) and the baseline every editor has,
`WordCompletionSource`: complete the word being typed from the words earlier in the buffer.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol

# Accepting costs one keystroke, so only acceptances of at least this many characters save any.
MIN_ACCEPT_CHARS = 2
POSITION_BINS = 10

_WORD = re.compile(r"\w+")


class SuggestionSource(Protocol):
    """An editor's view of a completion provider; the cursor is always at the end of the document."""

    def open(self, text: str) -> None:
        """Start a new document with `text` before the cursor."""

    def insert(self, text: str) -> None:
        """Insert `text` at the cursor, which moves to its end."""

    def suggest(self) -> str:
        """Return the text suggested at the cursor, "" for none."""

    def close(self) -> None:
        """Close the document."""


def is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def accepted_length(suggestion: str, upcoming: str) -> int:
    """Return how many characters of `suggestion` the user accepts when `upcoming` comes next.

    The whole suggestion when `upcoming` starts with it. Otherwise the matching part, cut back to the
    last word boundary of the suggestion (a point not between two of its word characters), because
    editors accept the rest of a suggestion word by word. 0 when that is under MIN_ACCEPT_CHARS.
    """
    common = 0
    limit = min(len(suggestion), len(upcoming))
    while common < limit and suggestion[common] == upcoming[common]:
        common += 1
    accepted = common
    if common < len(suggestion):
        while accepted > 0 and is_word_char(suggestion[accepted - 1]) and is_word_char(suggestion[accepted]):
            accepted -= 1
    return accepted if accepted >= MIN_ACCEPT_CHARS else 0


class WordCompletionSource:
    """Baseline: complete the current word with the nearest earlier word in the buffer that extends it."""

    def __init__(self) -> None:
        self.text = ""

    def open(self, text: str) -> None:
        self.text = text

    def insert(self, text: str) -> None:
        self.text += text

    def suggest(self) -> str:
        match = re.search(r"\w+\Z", self.text)
        if match is None:
            return ""
        prefix = match.group()
        # Nearest first, as Vim's Ctrl-N and most editors' buffer-word completion order them.
        for word in reversed(_WORD.findall(self.text, 0, match.start())):
            if len(word) > len(prefix) and word.startswith(prefix):
                return word[len(prefix) :]
        return ""

    def close(self) -> None:
        self.text = ""


@dataclass
class TypingResult:
    """Counts of one or more replays; `merge` adds them up."""

    chars: int = 0
    """Characters of the replayed text that a user types: all but the indentation at line starts."""
    auto_indented: int = 0
    """Indentation characters that the simulated editor inserted after a line break (auto-indent)."""
    typed: int = 0
    """Characters typed by hand."""
    shown: int = 0
    """Requests that returned a non-empty suggestion."""
    accepted: int = 0
    """Accepted suggestions (one keystroke each)."""
    accepted_chars: int = 0
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    saved_by_position: list[int] = field(default_factory=lambda: [0] * POSITION_BINS)
    """Accepted characters per tenth of the file, by where they sit in the whole file."""
    chars_by_position: list[int] = field(default_factory=lambda: [0] * POSITION_BINS)

    @property
    def keystrokes(self) -> int:
        return self.typed + self.accepted

    @property
    def keystrokes_saved(self) -> float | None:
        """1 - keystrokes / characters; see eval_metrics.METRIC_DEFINITIONS["keystrokes_saved"]."""
        return 1 - self.keystrokes / self.chars if self.chars else None

    def merge(self, other: TypingResult) -> None:
        for name in ("chars", "auto_indented", "typed", "shown", "accepted", "accepted_chars", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies_ms.extend(other.latencies_ms)
        for i in range(POSITION_BINS):
            self.saved_by_position[i] += other.saved_by_position[i]
            self.chars_by_position[i] += other.chars_by_position[i]


def replay(source: SuggestionSource, before: str, to_type: str, file_chars: int | None = None) -> TypingResult:
    """Open a document holding `before`, then type `to_type` at its end through `source`.

    The indentation at the start of each line is inserted by the simulated editor, as auto-indent
    does after Enter, so it is neither typed nor counted as saved when a suggestion covers it.
    `file_chars` is the length of the whole file, for the by-position counts; it defaults to
    len(before) + len(to_type).
    """
    file_chars = file_chars or len(before) + len(to_type)
    indentation = indentation_mask(before, to_type)
    result = TypingResult()
    source.open(before)
    position = 0
    while position < len(to_type):
        if indentation[position]:
            end = position
            while end < len(to_type) and indentation[end]:
                end += 1
            source.insert(to_type[position:end])
            result.auto_indented += end - position
            position = end
            continue

        started = time.perf_counter()
        suggestion = source.suggest()
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.requests += 1
        if suggestion:
            result.shown += 1

        accepted = accepted_length(suggestion, to_type[position:])
        if accepted:
            source.insert(to_type[position : position + accepted])
            result.accepted += 1
            for offset in range(position, position + accepted):
                if not indentation[offset]:
                    result.accepted_chars += 1
                    result.saved_by_position[_bin(len(before) + offset, file_chars)] += 1
            position += accepted
        else:
            source.insert(to_type[position])
            result.typed += 1
            position += 1
    source.close()

    for offset in range(len(to_type)):
        if not indentation[offset]:
            result.chars += 1
            result.chars_by_position[_bin(len(before) + offset, file_chars)] += 1
    return result


def indentation_mask(before: str, to_type: str) -> list[bool]:
    """Mark the characters of `to_type` that are spaces or tabs at the start of a line."""
    mask = []
    at_line_start = not before or before.endswith("\n")
    for char in to_type:
        if char == "\n":
            mask.append(False)
            at_line_start = True
        elif at_line_start and char in " \t":
            mask.append(True)
        else:
            mask.append(False)
            at_line_start = False
    return mask


def _bin(offset: int, file_chars: int) -> int:
    return min(POSITION_BINS - 1, offset * POSITION_BINS // max(file_chars, 1))
