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
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")
"""Characters outside the Basic Multilingual Plane: two UTF-16 code units, four UTF-8 bytes."""


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

    if encoding == "utf-16":
        return _utf16_units_to_chars(line, col_units)
    return _utf8_units_to_chars(line, col_units)


def _utf16_units_to_chars(line: str, col_units: int) -> int:
    # Only astral characters take two units, so the loop runs once per astral character before the
    # column, not once per character: a Python loop took about 0.3 s per call on a 5 MB line.
    astral_before = 0
    for match in _ASTRAL.finditer(line):
        units_before = match.start() + astral_before
        if col_units <= units_before:
            break
        if col_units == units_before + 1:
            return match.start()  # between the two halves of a surrogate pair
        astral_before += 1
    return min(col_units - astral_before, len(line))


def _utf8_units_to_chars(line: str, col_units: int) -> int:
    # Lone surrogates (JSON may carry them) count as the 3 bytes that "surrogatepass" writes.
    encoded = line.encode("utf-8", "surrogatepass")
    if col_units >= len(encoded):
        return len(line)
    end = col_units
    while end > 0 and encoded[end] & 0xC0 == 0x80:
        end -= 1  # a continuation byte: the column is inside a character, so round down to its start
    return len(encoded[:end].decode("utf-8", "surrogatepass"))


def chars_to_units(segment: str, encoding: PositionEncoding) -> int:
    """Return the length of `segment` in code units of `encoding`."""
    if encoding == "utf-32" or segment.isascii():
        return len(segment)
    if encoding == "utf-16":
        return len(segment.encode("utf-16-le", "surrogatepass")) // 2
    return len(segment.encode("utf-8", "surrogatepass"))


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
