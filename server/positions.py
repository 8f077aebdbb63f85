"""LSP positions and Python string offsets, LSP line splitting and line-ending conversion.

An LSP `Position` counts columns in code units of the negotiated position encoding (UTF-16 unless
the client and server agreed on UTF-8 or UTF-32), and lines end only at "\\n", "\\r\\n" or "\\r".
Python's `str.splitlines` also breaks at form feeds, U+2028 and others, and a `str` index counts
code points, so neither may be used with LSP positions directly. Every conversion lives here:
`col_units` names a column in encoding code units, `offset` a Python `str` index.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Literal

PositionEncoding = Literal["utf-8", "utf-16", "utf-32"]
LineEnding = Literal["\n", "\r\n", "\r"]

DEFAULT_ENCODING: PositionEncoding = "utf-16"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FIRST_ASTRAL = "\U00010000"


def normalize_encoding(value: object) -> PositionEncoding:
    """Map pygls' negotiated encoding (a str or a PositionEncodingKind enum) to its name."""
    name = str(getattr(value, "value", value)).lower()
    if name in ("utf-8", "utf-16", "utf-32"):
        return name  # type: ignore[return-value]
    raise ValueError(f"unknown position encoding {value!r}; expected utf-8, utf-16 or utf-32")


def line_starts(text: str) -> list[int]:
    """Return the offset where each LSP line of `text` starts; an empty text has one line."""
    if "\r" not in text:
        # The common case: one C-level split instead of a regex scan over the whole document.
        return [0, *accumulate(len(line) + 1 for line in text.split("\n")[:-1])]
    return [0, *(match.end() for match in _LINE_BREAK.finditer(text))]


def split_lines(text: str) -> list[str]:
    """Split `text` into LSP lines without their line endings; "a\\n" gives ["a", ""]."""
    return _LINE_BREAK.split(text)


def line_content_end(text: str, starts: Sequence[int], line: int) -> int:
    """Return the offset just before the line ending of `line` (or the end of `text`)."""
    if line + 1 >= len(starts):
        return len(text)
    end = starts[line + 1]
    if text[end - 1] == "\n" and end >= 2 and text[end - 2] == "\r":
        return end - 2
    return end - 1


def units_to_chars(line: str, col_units: int, encoding: PositionEncoding) -> int:
    """Return how many characters of `line` fit in `col_units` code units of `encoding`.

    A column past the end of the line gives the line length (the LSP rule); a column inside a
    character that takes several code units rounds down to that character's start, so a
    malformed position never splits a surrogate pair or a UTF-8 sequence.
    """
    if col_units <= 0:
        return 0
    if encoding == "utf-32" or line.isascii():
        return min(col_units, len(line))
    if encoding == "utf-16" and (not line or max(line) < _FIRST_ASTRAL):
        return min(col_units, len(line))

    used = 0
    for index, char in enumerate(line):
        used += _char_units(char, encoding)
        if used > col_units:
            return index
    return len(line)


def chars_to_units(segment: str, encoding: PositionEncoding) -> int:
    """Return the length of `segment` in code units of `encoding`."""
    if encoding == "utf-32" or segment.isascii():
        return len(segment)
    if encoding == "utf-16":
        return len(segment) + sum(1 for char in segment if char >= _FIRST_ASTRAL)
    return sum(_char_units(char, encoding) for char in segment)


def _char_units(char: str, encoding: PositionEncoding) -> int:
    code = ord(char)
    if encoding == "utf-16":
        return 2 if code > 0xFFFF else 1
    if encoding == "utf-32":
        return 1
    if code < 0x80:
        return 1
    if code < 0x800:
        return 2
    # Lone surrogates (JSON may carry them) count as the 3 bytes that "surrogatepass" writes.
    return 3 if code < 0x10000 else 4


def offset_at(text: str, starts: Sequence[int], line: int, col_units: int, encoding: PositionEncoding) -> int:
    """Return the `str` offset of an LSP position, clamped into the document.

    A line past the last one means the end of the document; a column past the end of its line
    means the end of that line (before its line ending).
    """
    if line < 0:
        return 0
    if line >= len(starts):
        return len(text)
    start = starts[line]
    content = text[start : line_content_end(text, starts, line)]
    return start + units_to_chars(content, col_units, encoding)


def position_at(text: str, starts: Sequence[int], offset: int, encoding: PositionEncoding) -> tuple[int, int]:
    """Return the (line, col_units) of a `str` offset; an offset inside "\\r\\n" counts as its line's end."""
    offset = max(0, min(offset, len(text)))
    line = bisect_right(starts, offset) - 1
    start = starts[line]
    offset = min(offset, line_content_end(text, starts, line))
    return line, chars_to_units(text[start:offset], encoding)


def detect_line_ending(text: str) -> LineEnding:
    """Return the first line ending in `text`, or "\\n" when it has none."""
    match = _LINE_BREAK.search(text)
    return match.group() if match else "\n"  # type: ignore[return-value]


def to_lf(text: str) -> str:
    """Convert every LSP line ending in `text` to "\\n"."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def offset_to_lf(text: str, offset: int) -> int:
    """Map an offset in `text` to the same place in `to_lf(text)`."""
    if "\r" not in text:
        return offset
    # Only "\r\n" shrinks (to one character); a lone "\r" becomes "\n" in place.
    return offset - text.count("\r\n", 0, offset)


def from_lf(text: str, ending: LineEnding) -> str:
    """Write `text` (any line endings) with `ending` after every line."""
    text = to_lf(text)
    return text if ending == "\n" else text.replace("\n", ending)
