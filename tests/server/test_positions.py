"""LSP positions <-> str offsets, LSP line splitting and line endings, without a server."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from tiny_copilot.server import positions
from tiny_copilot.server.documents import Document
from tiny_copilot.server.suggestions import cursor_context, suggestion_edit

ENCODINGS = ("utf-8", "utf-16", "utf-32")


def prefix_at(text: str, line: int, character: int, encoding: str) -> str:
    document = Document(uri="file:///t.py", language_id="python", version=1, text=text)
    context = cursor_context(document, types.Position(line=line, character=character), encoding)
    return context.text_lf[: context.offset_lf]


def test_emoji_line_counts_utf16_columns() -> None:
    line = 's = "😀" + x'
    # 😀 is 2 UTF-16 units, so the x ends at column 12 (11 characters).
    assert prefix_at(line, 0, 12, "utf-16") == line
    assert prefix_at(line, 0, 11, "utf-16") == line[:-1]


def test_emoji_line_counts_utf8_columns() -> None:
    line = 's = "😀" + x'
    # 😀 is 4 UTF-8 bytes, so the x ends at byte 14.
    assert prefix_at(line, 0, 14, "utf-8") == line
    assert prefix_at(line, 0, 13, "utf-8") == line[:-1]


def test_emoji_document_second_line() -> None:
    assert prefix_at("😀😀\nab", 1, 1, "utf-16") == "😀😀\na"
    assert prefix_at("😀😀\nab", 1, 1, "utf-8") == "😀😀\na"


def test_emoji_document_utf16_column_two() -> None:
    assert prefix_at("😀😀\nab", 0, 2, "utf-16") == "😀"
    assert prefix_at("😀😀\nab", 0, 4, "utf-8") == "😀"
    assert prefix_at("😀😀\nab", 0, 1, "utf-32") == "😀"


def test_column_inside_character_rounds_down() -> None:
    assert prefix_at("😀😀", 0, 1, "utf-16") == ""
    assert prefix_at("😀😀", 0, 3, "utf-16") == "😀"
    assert prefix_at("é😀", 0, 1, "utf-8") == ""
    assert prefix_at("é😀", 0, 4, "utf-8") == "é"


def test_positions_past_the_end_are_clamped() -> None:
    assert prefix_at("ab\ncd", 0, 99, "utf-16") == "ab"
    assert prefix_at("ab\r\ncd", 0, 99, "utf-16") == "ab"
    assert prefix_at("ab\ncd", 7, 0, "utf-16") == "ab\ncd"
    assert prefix_at("", 0, 5, "utf-8") == ""


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", [""]),
        ("a", ["a"]),
        ("a\n", ["a", ""]),
        ("a\r\nb\rc\nd", ["a", "b", "c", "d"]),
        ("\r\r\n\n", ["", "", "", ""]),
        # Form feed, vertical tab, NEL and U+2028 are not LSP line breaks (str.splitlines treats them as such).
        ("a\x0cb\x0bc\x85d\u2028e\u2029f\x1cg", ["a\x0cb\x0bc\x85d\u2028e\u2029f\x1cg"]),
    ],
)
def test_split_lines_follows_lsp(text: str, lines: list[str]) -> None:
    assert positions.split_lines(text) == lines
    assert len(positions.line_starts(text)) == len(lines)


def test_form_feed_line_keeps_following_positions() -> None:
    text = "x = 1\x0c\ny = 2\n"
    assert prefix_at(text, 1, 1, "utf-16") == "x = 1\x0c\ny"


def test_crlf_and_lf_give_the_same_model_view() -> None:
    lf = "def f():\n    return 1\n"
    crlf = lf.replace("\n", "\r\n")
    for line, character in [(0, 3), (1, 4), (1, 99), (2, 0)]:
        assert prefix_at(crlf, line, character, "utf-16") == prefix_at(lf, line, character, "utf-16")


def test_lone_cr_document_maps_to_lf() -> None:
    assert prefix_at("a\rbc", 1, 1, "utf-16") == "a\nb"


def test_detect_line_ending() -> None:
    assert positions.detect_line_ending("a\r\nb\n") == "\r\n"
    assert positions.detect_line_ending("a\rb") == "\r"
    assert positions.detect_line_ending("ab") == "\n"


def test_from_lf_converts_and_drops_stray_cr() -> None:
    assert positions.from_lf("a\nb\r\nc", "\r\n") == "a\r\nb\r\nc"
    assert positions.from_lf("a\rb", "\n") == "a\nb"


def test_suggestion_edit_covers_replaced_suffix() -> None:
    document = Document(uri="file:///t.py", language_id="python", version=1, text="print()\r\nz")
    context = cursor_context(document, types.Position(line=0, character=6), "utf-16")
    edit = suggestion_edit(context, "x)", 1, "utf-16")
    assert edit.range.start == types.Position(line=0, character=6)
    assert edit.range.end == types.Position(line=0, character=7)
    # The replaced suffix never extends past the end of the cursor's line.
    edit = suggestion_edit(context, "x)\ny", 50, "utf-16")
    assert edit.range.end == types.Position(line=0, character=7)
    assert edit.text == "x)\r\ny"


def test_suggestion_edit_range_counts_units_after_emoji() -> None:
    document = Document(uri="file:///t.py", language_id="python", version=1, text='f("😀", )')
    context = cursor_context(document, types.Position(line=0, character=7), "utf-16")
    edit = suggestion_edit(context, "1", 1, "utf-16")
    assert edit.range.end == types.Position(line=0, character=8)


texts = st.text(alphabet=st.sampled_from(list("ab \t\n\r😀éé\x0c\u2028")), max_size=40)


@given(text=texts, line=st.integers(0, 8), character=st.integers(0, 30), encoding=st.sampled_from(ENCODINGS))
def test_offset_position_round_trip(text: str, line: int, character: int, encoding: str) -> None:
    starts = positions.line_starts(text)
    offset = positions.offset_at(text, starts, line, character, encoding)
    assert 0 <= offset <= len(text)
    back_line, back_units = positions.position_at(text, starts, offset, encoding)
    assert positions.offset_at(text, starts, back_line, back_units, encoding) == offset
    assert back_line == min(line, len(starts) - 1)


@given(text=texts, cut=st.integers(0, 60))
def test_offset_to_lf_matches_prefix(text: str, cut: int) -> None:
    starts = positions.line_starts(text)
    # Only offsets that positions can produce: never between "\r" and "\n".
    line = min(cut, len(starts) - 1)
    offset = positions.offset_at(text, starts, line, cut, "utf-32")
    assert positions.to_lf(text)[: positions.offset_to_lf(text, offset)] == positions.to_lf(text[:offset])


@given(text=texts, start=st.integers(0, 50), end=st.integers(0, 50), insert=texts)
def test_incremental_change_matches_string_edit(text: str, start: int, end: int, insert: str) -> None:
    start, end = sorted((min(start, len(text)), min(end, len(text))))
    # Keep both ends off the middle of "\r\n", which no position can address.
    if 0 < start < len(text) and text[start - 1 : start + 1] == "\r\n":
        start -= 1
    if 0 < end < len(text) and text[end - 1 : end + 1] == "\r\n":
        end += 1
    document = Document(uri="file:///t.py", language_id="python", version=1, text=text)
    change = types.TextDocumentContentChangePartial(
        range=types.Range(start=document.position_at(start, "utf-16"), end=document.position_at(end, "utf-16")),
        text=insert,
    )
    document.apply_change(change, "utf-16")
    assert document.text == text[:start] + insert + text[end:]


def reference_units(char: str, encoding: str) -> int:
    """Code units of one character, counted the slow, obvious way; lone surrogates take 3 UTF-8 bytes."""
    if encoding == "utf-32":
        return 1
    if encoding == "utf-16":
        return 2 if ord(char) > 0xFFFF else 1
    return len(char.encode("utf-8", "surrogatepass"))


mixed_lines = st.text(alphabet=st.sampled_from(["a", "é", "€", "😀", "\U0010ffff", "\ud800", "\udc00", "\u0301"]), max_size=12)


@given(line=mixed_lines, col_units=st.integers(0, 60), encoding=st.sampled_from(ENCODINGS))
def test_units_to_chars_matches_reference(line: str, col_units: int, encoding: str) -> None:
    expected, used = len(line), 0
    for index, char in enumerate(line):
        used += reference_units(char, encoding)
        if used > col_units:
            expected = index
            break
    assert positions.units_to_chars(line, col_units, encoding) == expected
    assert positions.chars_to_units(line, encoding) == sum(reference_units(char, encoding) for char in line)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_long_line_with_one_emoji_is_fast(encoding: str) -> None:
    """A 5 MB minified line with one emoji: every didChange and request converts positions on it."""
    line = "x = 1; " * 700_000 + "s = '😀'; y"
    end_units = positions.chars_to_units(line, encoding)
    started = time.perf_counter()
    for _ in range(3):
        assert positions.units_to_chars(line, end_units - 1, encoding) == len(line) - 1
        assert positions.chars_to_units(line, encoding) == end_units
    # On a shared 2-core machine this took under 0.07 s, and 1.9 s (UTF-16) and 2.8 s (UTF-8) when
    # positions.py looped over the characters in Python.
    assert time.perf_counter() - started < 0.5


line_edits = st.tuples(st.integers(0, 8), st.integers(0, 6), st.integers(0, 8), st.integers(0, 6), texts)


@settings(max_examples=400)
@given(text=texts, edits=st.lists(line_edits, max_size=6), descending=st.booleans(), encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_change_batch_matches_one_by_one(text: str, edits: list, descending: bool, encoding: str) -> None:
    """didChange with several changes: the batched path must give the text that applying them in order gives."""
    changes = []
    for start_line, start_char, end_line, end_char, insert in edits:
        start, end = sorted([(start_line, start_char), (end_line, end_char)])
        changes.append(types.TextDocumentContentChangePartial(range=types.Range(start=types.Position(*start), end=types.Position(*end)), text=insert))
    if descending:
        changes.sort(key=lambda change: change.range.start.line, reverse=True)
    one_by_one = Document(uri="file:///t.py", language_id="python", version=1, text=text)
    for change in changes:
        one_by_one.apply_change(change, encoding)
    batched = Document(uri="file:///t.py", language_id="python", version=1, text=text)
    batched.apply_changes(changes, encoding)
    assert batched.text == one_by_one.text


def test_replace_all_on_large_document_is_fast() -> None:
    """A replace-all sends one change per occurrence, from the bottom up, in one didChange."""
    line = "    total = compute_value(alpha, beta) + gamma\n"
    document = Document(uri="file:///t.py", language_id="python", version=1, text=line * 100_000)
    changes = [
        types.TextDocumentContentChangePartial(range=types.Range(start=types.Position(row, 12), end=types.Position(row, 25)), text="compute_other")
        for row in range(1999, -1, -1)
    ]
    started = time.perf_counter()
    document.apply_changes(changes, "utf-16")
    # On a shared 2-core machine: 0.05 s, and 23 s over stdio when each change rescanned the text.
    assert time.perf_counter() - started < 2.0
    assert document.text.count("compute_other") == 2000
    assert document.text.startswith("    total = compute_other(alpha")
