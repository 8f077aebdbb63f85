"""Tab-indented documents are shown to the model with spaces, without moving the text after the cursor."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tiny_copilot.server.tab_indent import REGION_GRID_CHARS, TAB_SPACES, spaces_for_tabs

documents = st.text(alphabet=st.sampled_from(list("\t\t  ab:(\n")), max_size=80)


def columns(line: str) -> tuple[int, str]:
    """Width of the leading whitespace (a tab counts TAB_SPACES) and the rest of the line."""
    rest = line.lstrip(" \t")
    leading = line[: len(line) - len(rest)]
    return leading.count(" ") + TAB_SPACES * leading.count("\t"), rest


@settings(max_examples=500)
@given(text=documents, data=st.data())
def test_conversion_keeps_the_code_and_the_text_after_the_cursor(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    converted, converted_offset = spaces_for_tabs(text, offset, before_chars=1000, after_chars=1000)

    line_end = text.find("\n", offset) if "\n" in text[offset:] else len(text)
    assert converted[converted_offset:].startswith(text[offset:line_end])
    assert [columns(line) for line in converted.split("\n")] == [columns(line) for line in text.split("\n")]
    # Before the cursor, no indentation contains a tab any more.
    for line in converted[:converted_offset].split("\n"):
        assert "\t" not in line[: len(line) - len(line.lstrip(" \t"))]


def test_cursor_line_and_lines_around_it_are_converted() -> None:
    text = "def f():\n\tif x:\n\t\treturn 1\n\t\n\tfoo()\n"
    offset = text.index("\n\tfoo") + 1  # at the start of `\tfoo()`, before its tab
    converted, converted_offset = spaces_for_tabs(text, offset, 100, 100)

    assert converted == "def f():\n    if x:\n        return 1\n    \n\tfoo()\n"
    assert converted[converted_offset:] == "\tfoo()\n"


def test_text_far_from_the_cursor_is_left_alone() -> None:
    block = "def f():\n\treturn 1\n"
    text = block * (3 * REGION_GRID_CHARS // len(block))
    offset = len(text) // 2
    converted, converted_offset = spaces_for_tabs(text, offset, before_chars=1000, after_chars=1000)

    assert converted.startswith(block * 10)
    assert converted.endswith(block * 10)
    assert "\t" not in converted[converted_offset - 1000 : converted_offset + 1000]


def test_typing_keeps_the_converted_text_before_the_cursor() -> None:
    """While the user types, the converted text changes only at the cursor, so the KV cache stays valid."""
    text = ("class A:\n\tdef f(self):\n\t\treturn 1\n" * 800) + "\t\tvalue = compute(\n" + "\tpass\n" * 50
    cursor = text.index("compute(") + len("compute(")
    previous = None
    for typed in range(1, 40):
        document = text[:cursor] + "x" * typed + text[cursor:]
        converted, converted_offset = spaces_for_tabs(document, cursor + typed, before_chars=4000, after_chars=1000)
        if previous is not None:
            assert converted[: converted_offset - 1] == previous
        previous = converted[:converted_offset]
