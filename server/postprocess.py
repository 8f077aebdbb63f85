"""Stop rules and clean-up of generated text, as pure functions of the text around the cursor.

Definitions used throughout:
- `line_before` / `line_after`: the cursor's line before and after the cursor.
- The cursor is *at a line end* when `line_after` holds only closing brackets, quotes and `;:,`
  (plus whitespace), such as the `)` an editor auto-inserts; otherwise it is *mid-line*.
- Single-line mode: the suggestion ends at the first newline. Mid-line cursors always get it, and
  there the suggestion is one word: it ends before its first character that is not a letter, digit
  or `_`. Small models ignore the text after the cursor and write a whole line that doubles it. On
  300 cursors inside identifiers of held-out Python, a whole line made the line worse 82.5% of the
  time and one word 38.1% (benchmarks/midline_infill.py).
  Before a word, the suggestion must end with a space, or accepting would glue the two words, and
  must not be that same word (`static |int n` with `int `). Inside a word (letters, digits or `_`
  on both sides) nothing is suggested, because the space would split the word (`if ch|ar in` got
  `ar `).
- Multi-line mode, chosen by the `multiline` setting when the cursor is at a line end:
  "always" at any line end; "auto" only when `line_before` is blank and the previous non-blank line
  ends with a block opener (`:` in Python; `{`, `(` or `[` in every language); "never" not at all.
  A multi-line suggestion ends before its first blank line, before a line indented less than its
  first line (a dedent below the starting block), before a line that repeats the next non-blank
  document line or the line before it, and after `max_lines` lines.
  Small models stutter that way. In the shipped corpus only 0.065% of lines of
  `MIN_REPEATED_LINE_CHARS` or more repeat the previous non-blank line, mostly in data tables.
  A single-line suggestion that repeats the line above stays: in the line-completion evaluation the
  one such suggestion had edit similarity 68 with the line the author wrote (`foo` where `bar` was due).

`cut_index` implements the line rules and serves both as the engine's stop rule during generation
and after it; `finalize` then trims overlap with the document, fixes indentation and drops empty results.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["single", "multi"]

OPENING_BRACKETS = "([{"
CLOSING_BRACKETS = ")]}"
QUOTES = "\"'`"
LINE_END_CHARS = CLOSING_BRACKETS + QUOTES + ";:,"
"""Characters that may follow the cursor while it still counts as being at the line end."""

NEXT_LINES_READ = 16
"""Document lines after the cursor's line kept for the repeated-line rules."""
INDENT_SAMPLE_CHARS = 8000
"""Characters before the cursor sampled to detect the document's indentation."""

_LEADING_WHITESPACE = re.compile(r"[ \t]*")
# A line that starts with whitespace and `*` continues a C block comment (` * text`, ` */`): its one
# space aligns the star, so it does not show how the file is indented.
_INDENTED_LINE = re.compile(r"^[ \t]+[^\s*]", re.MULTILINE)
PYTHON_TRIPLE_QUOTES = ('"""', "'''")


@dataclass(frozen=True)
class IndentStyle:
    """Indentation of a document: tabs, or `width` spaces per level."""

    use_tabs: bool = False
    width: int = 4


@dataclass(frozen=True)
class CursorContext:
    """The text around the cursor that the stop rules and clean-up need; built in O(line length + sample)."""

    line_before: str
    line_after: str
    previous_line: str
    """The nearest non-blank line above the cursor's line; "" when none."""
    next_lines: tuple[str, ...]
    """Up to NEXT_LINES_READ non-blank document lines after the cursor's line."""
    indent: IndentStyle
    language_id: str | None = None
    document: str = field(default="", repr=False, compare=False)
    """The whole document (a reference, not a copy), read only when a suggestion contains a triple quote."""
    offset: int = 0

    @classmethod
    def from_text(cls, text: str, offset: int, language_id: str | None = None) -> CursorContext:
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        line_end = len(text) if line_end < 0 else line_end
        return cls(
            line_before=text[line_start:offset],
            line_after=text[offset:line_end],
            previous_line=_previous_nonblank_line(text, line_start),
            next_lines=_next_nonblank_lines(text, line_end, NEXT_LINES_READ),
            indent=detect_indent(_indent_sample(text, line_start, line_end)),
            language_id=language_id,
            document=text,
            offset=offset,
        )

    @property
    def inside_triple_quotes(self) -> bool:
        """Whether the text before the cursor opens more triple-quoted strings than it closes.

        NOTE: this counts quotes instead of tokenizing, so a triple quote inside a comment or a one-line
        string flips the result. Both counts take about 7 ms on a 5 MB document, so callers ask only when
        a suggestion contains a triple quote.
        """
        return any(self.document.count(quote, 0, self.offset) % 2 == 1 for quote in PYTHON_TRIPLE_QUOTES)

    @property
    def at_line_end(self) -> bool:
        return all(char in LINE_END_CHARS for char in self.line_after.strip())


def choose_mode(context: CursorContext, multiline: str) -> Mode:
    """Pick single- or multi-line mode for the cursor, following the module's definitions."""
    if not context.at_line_end or multiline == "never":
        return "single"
    if multiline == "always":
        return "multi"
    if context.line_before.strip():
        return "single"
    return "multi" if ends_with_block_opener(context.previous_line, context.language_id) else "single"


def ends_with_block_opener(line: str, language_id: str | None) -> bool:
    code = line.rstrip()
    if language_id == "python" and code.endswith(":"):
        return True
    return code.endswith(("{", "(", "["))


# Greedy decoding of a small model can fall into a loop ("end), end), end), ..."). A block of up to
# MAX_REPEAT_PERIOD characters that repeats REPEAT_COUNT times in a row ends the suggestion after its
# first copy. Blocks of punctuation only ("'/', ") must repeat SYMBOL_REPEAT_COUNT times, and runs of one
# character ("))))", "# -------") never end a suggestion.
MIN_REPEAT_PERIOD = 3
MAX_REPEAT_PERIOD = 48
REPEAT_COUNT = 3
SYMBOL_REPEAT_COUNT = 5


MIN_REPEATED_LINE_CHARS = 8
"""Shortest line (stripped) that the repeated-previous-line rules apply to, so `}` or `pass` may repeat."""


LETTER_OR_DIGIT_RUN = 16
"""Length of a run of one letter or digit that ends the suggestion before the run.

Greedy decoding of a small model can fall into `1044444...`. Only 0.01% of the shipped corpus's lines
contain such a run, mostly long numeric constants."""


def repetition_cut(text: str) -> int | None:
    """Return the end of the first copy when `text` ends in a block repeated too often in a row, else None.

    A run of one letter or digit is cut whole instead (`LETTER_OR_DIGIT_RUN`).
    """
    last = text[-1:]
    if last.isalnum() and text.endswith(last * LETTER_OR_DIGIT_RUN):
        return len(text.rstrip(last))
    for period in range(MIN_REPEAT_PERIOD, min(MAX_REPEAT_PERIOD, len(text) // REPEAT_COUNT) + 1):
        block = text[-period:]
        if len(set(block)) == 1:
            continue
        count = REPEAT_COUNT if any(ch.isalnum() for ch in block) else SYMBOL_REPEAT_COUNT
        if len(text) >= count * period and text.endswith(block * count):
            return len(text) - (count - 1) * period
    return None


def cut_index(insertion: str, context: CursorContext, mode: Mode, max_lines: int) -> int | None:
    """Return where `insertion` (text generated after the cursor) must end, or None to let it grow."""
    repeated = repetition_cut(insertion)
    if repeated is not None:
        return repeated
    if mode == "single" and not context.at_line_end:
        if _is_word_char(context.line_before[-1:]) and _is_word_char(context.line_after[:1]):
            return 0  # inside a word: any word and its space would split the user's word in two
        if not context.line_before.strip() and context.line_after[:1] in (" ", "\t"):
            return 0  # inside the indentation before code: a word there would split the indentation
        return _word_end(insertion, context.line_after)
    first_newline = insertion.find("\n")
    if mode == "single":
        return first_newline if first_newline >= 0 else None

    lines = insertion.split("\n")
    reference_indent = None
    previous_line = context.previous_line
    line_start = 0
    for number, line in enumerate(lines):
        full_line = context.line_before + line if number == 0 else line
        complete = number < len(lines) - 1
        if number >= 1:
            cut = line_start - 1  # just before the newline that starts this line
            if number >= max_lines:
                return cut
            if complete and not line.strip():
                return cut
            if line.strip() and reference_indent is not None and indent_width(full_line, context.indent) < reference_indent:
                return cut
            if complete and context.next_lines and line.strip() == context.next_lines[0].strip():
                return cut
            if complete and _repeats(line, previous_line):
                return cut
        if reference_indent is None and full_line.strip():
            reference_indent = indent_width(full_line, context.indent)
        if full_line.strip():
            previous_line = full_line
        line_start += len(line) + 1
    return None


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _leading_word(text: str) -> str:
    """Return the letters, digits and `_` that `text` starts with."""
    end = 0
    while end < len(text) and _is_word_char(text[end]):
        end += 1
    return text[:end]


def _word_end(insertion: str, line_after: str) -> int | None:
    """Return where the word that starts `insertion` ends, or None while it may still grow.

    A space right after the word is kept when a word follows the cursor, so `if |x` gets `not `.
    """
    word = _leading_word(insertion)
    if len(word) == len(insertion):
        return None
    if word and insertion[len(word)] == " " and _is_word_char(line_after[:1]):
        return len(word) + 1
    return len(word)


def _repeats(line: str, previous_line: str) -> bool:
    """Return whether `line` repeats `previous_line`, ignoring indentation; short lines never count."""
    stripped = line.strip()
    return len(stripped) >= MIN_REPEATED_LINE_CHARS and stripped == previous_line.strip()


def finalize(
    insertion: str, context: CursorContext, mode: Mode, max_lines: int, truncated: bool = False
) -> tuple[str, int] | None:
    """Clean generated text into (text to insert, characters after the cursor it replaces), or None.

    `truncated` says generation hit its token limit, so a multi-line suggestion's last line is
    incomplete and is dropped. None means nothing worth showing: empty, whitespace-only, or a copy
    of the lines that already follow the cursor.
    """
    insertion = insertion.replace("\r", "")
    cut = cut_index(insertion, context, mode, max_lines)
    if cut is not None:
        insertion = insertion[:cut]
    elif truncated and mode == "multi" and "\n" in insertion:
        insertion = insertion[: insertion.rfind("\n")]
    # Mid-line before a word, the suggestion's word must end with a space, or accepting would glue
    # the two words. The trimming of trailing whitespace below puts that space back.
    space_before_word = mode == "single" and not context.at_line_end and _is_word_char(context.line_after[:1])
    if space_before_word and not insertion.endswith(" "):
        return None
    if space_before_word and insertion.rstrip() == _leading_word(context.line_after):
        return None  # `static |int n` with `int ` would read `static int int n`
    has_triple_quote = any(quote in insertion for quote in PYTHON_TRIPLE_QUOTES)
    if context.language_id == "python" and has_triple_quote and not context.inside_triple_quotes:
        insertion = cut_unclosed_triple_quote(insertion)
    insertion = apply_indent_style(insertion.rstrip(), context.indent, context.line_before)
    if space_before_word and insertion:
        insertion += " "

    kept = drop_repeated_lines(insertion, context)
    if kept is None:
        return None
    text, replace_chars = trim_line_after_overlap(kept, context.line_before, context.line_after)
    if not text.strip():
        return None
    return text, replace_chars


def cut_unclosed_triple_quote(insertion: str) -> str:
    """Cut a Python suggestion before a triple-quoted string that it opens and does not close.

    Accepting a docstring opener with no end after `def f():` would turn the rest of the file into a string.
    """
    for quote in PYTHON_TRIPLE_QUOTES:
        if insertion.count(quote) % 2 == 1:
            insertion = insertion[: insertion.rfind(quote)]
    return insertion


def drop_repeated_lines(insertion: str, context: CursorContext) -> str | None:
    """Drop the suggestion's last lines when they repeat the non-blank lines that follow the cursor's line.

    Return None when the whole suggestion, completed with the text around the cursor, repeats them.
    """
    lines = insertion.split("\n")
    completed = list(lines)
    completed[0] = context.line_before + completed[0]
    completed[-1] = completed[-1] + context.line_after
    for first in range(len(completed)):
        tail = completed[first:]
        if not tail[0].strip() or len(tail) > len(context.next_lines):
            continue
        if all(line.strip() == following.strip() for line, following in zip(tail, context.next_lines)):
            return "\n".join(lines[:first]) if first > 0 else None
    return insertion


def trim_line_after_overlap(insertion: str, line_before: str, line_after: str) -> tuple[str, int]:
    """Keep the suggestion from doubling the text after the cursor on its line.

    `print(|)` with the model proposing `x)` becomes `x`. When the suggestion instead closes the
    brackets after the cursor and goes on (`x) + 1`), it is kept whole and replaces them: the second
    value is how many characters after the cursor the insertion replaces.
    """
    rest = line_after.rstrip()
    if not rest.strip():
        return insertion, 0
    if insertion == rest:
        return "", 0  # the whole rest of the line, its own brackets matched: accepting it would double it

    # Trim the longest end of the suggestion that equals the start of `rest`: the whole of `rest`, or
    # a run of closing characters; closers trimmed must be ones the suggestion itself leaves unmatched.
    unmatched = _unmatched_closers(insertion)
    for length in range(min(len(insertion), len(rest)), 0, -1):
        overlap = rest[:length]
        if not insertion.endswith(overlap):
            continue
        if length < len(rest) and any(char not in LINE_END_CHARS for char in overlap):
            continue
        start = len(insertion) - length
        if all(_closes_outside(insertion, line_before, index, unmatched) for index in range(start, len(insertion))):
            return insertion[:start], 0

    if all(char in CLOSING_BRACKETS for char in rest):
        if "".join(insertion[index] for index in unmatched[: len(rest)]) == rest:
            return insertion, len(rest)
    return insertion, 0


def apply_indent_style(insertion: str, style: IndentStyle, line_before: str) -> str:
    """Rewrite the leading whitespace of the suggestion's lines in the document's tabs-or-spaces style.

    The first line keeps its whitespace when the cursor is after code on its line.
    """
    lines = insertion.split("\n")
    for number, line in enumerate(lines):
        if number == 0 and line_before.strip():
            continue
        leading = _LEADING_WHITESPACE.match(line).group()  # type: ignore[union-attr]
        if style.use_tabs and " " in leading:
            columns = indent_width(leading, style)
            leading_fixed = "\t" * (columns // style.width) + " " * (columns % style.width)
        elif not style.use_tabs and "\t" in leading:
            leading_fixed = leading.replace("\t", " " * style.width)
        else:
            continue
        lines[number] = leading_fixed + line[len(leading) :]
    return "\n".join(lines)


def _unmatched_closers(text: str) -> list[int]:
    """Return the indices of closing brackets in `text` that no opening bracket in `text` matches."""
    stack: list[str] = []
    unmatched: list[int] = []
    for index, char in enumerate(text):
        if char in OPENING_BRACKETS:
            stack.append(char)
        elif char in CLOSING_BRACKETS:
            if stack and OPENING_BRACKETS[CLOSING_BRACKETS.index(char)] == stack[-1]:
                stack.pop()
            else:
                unmatched.append(index)
    return unmatched


def _closes_outside(insertion: str, line_before: str, index: int, unmatched: list[int]) -> bool:
    """Return whether the character at `index` may be trimmed as a copy of the text after the cursor.

    A bracket qualifies when the suggestion leaves it unmatched; a quote when both the line before the
    cursor and the suggestion hold an odd number of that quote, so it closes a string opened earlier.
    """
    char = insertion[index]
    if char in CLOSING_BRACKETS:
        return index in unmatched
    if char in QUOTES:
        return line_before.count(char) % 2 == 1 and insertion.count(char) % 2 == 1
    return True


def indent_width(line: str, style: IndentStyle) -> int:
    """Return the width, in columns, of the leading whitespace of `line` (a tab counts `style.width`)."""
    leading = _LEADING_WHITESPACE.match(line).group()  # type: ignore[union-attr]
    return leading.count(" ") + leading.count("\t") * style.width


def _indent_sample(text: str, line_start: int, line_end: int) -> str:
    """Return the lines before the cursor's line, or those after it when none before is indented (the top of a file)."""
    before = text[max(0, line_start - INDENT_SAMPLE_CHARS) : line_start]
    if _INDENTED_LINE.search(before):
        return before
    return text[line_end : line_end + INDENT_SAMPLE_CHARS]


def detect_indent(sample: str) -> IndentStyle:
    """Detect tabs or spaces and the indentation width from the lines of `sample`; default 4 spaces.

    Lines that start with `*` after their whitespace (block comment continuations) are left out.
    """
    tab_lines = space_lines = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in sample.split("\n"):
        if not line.strip() or line.lstrip().startswith("*"):
            continue
        leading = _LEADING_WHITESPACE.match(line).group()  # type: ignore[union-attr]
        if leading.startswith("\t"):
            tab_lines += 1
        elif leading:
            space_lines += 1
            if leading.count(" ") > previous:
                steps[leading.count(" ") - previous] += 1
        previous = leading.count(" ") if not leading.startswith("\t") else previous
    if tab_lines > space_lines:
        return IndentStyle(use_tabs=True, width=4)
    common = [step for step, _ in steps.most_common() if step in (2, 3, 4, 8)]
    return IndentStyle(use_tabs=False, width=common[0] if common else 4)


def _previous_nonblank_line(text: str, line_start: int, max_lines: int = 50) -> str:
    end = line_start - 1
    for _ in range(max_lines):
        if end < 0:
            return ""
        start = text.rfind("\n", 0, end) + 1
        if text[start:end].strip():
            return text[start:end]
        end = start - 1
    return ""


def _next_nonblank_lines(text: str, line_end: int, count: int, max_scanned: int = 200) -> tuple[str, ...]:
    lines: list[str] = []
    start = line_end + 1
    for _ in range(max_scanned):
        if start > len(text) or len(lines) == count:
            break
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            lines.append(text[start:end])
        start = end + 1
    return tuple(lines)
