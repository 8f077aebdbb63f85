"""textDocument/completion and accepting suggestions, end to end with a trained model, for each client profile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from lsp_session import PROFILES, apply_edit, completion_params, encoding_of, inline_params, lsp_session, open_document
from pytest_lsp import LanguageClient

SETTINGS = {"threads": 1}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=PROFILES)
async def client(request: pytest.FixtureRequest, trained_checkpoint: Path) -> AsyncIterator[LanguageClient]:
    async with lsp_session(request.param, ["-vv", "--checkpoint", str(trained_checkpoint)], SETTINGS) as session:
        session.profile = request.param  # type: ignore[attr-defined]
        yield session


# Cursor at the end of each; a model trained for 30 s suggests something after most of them.
PROMPTS = (
    "import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.",
    "import sys\n\nif __name__ == '__main__':\n    sys.",
    "for i in range(",
    "class Point:\n    def __init__(self",
)


async def test_completion_item_matches_inline_suggestion(client: LanguageClient) -> None:
    suggested = 0
    for index, text in enumerate(PROMPTS):
        uri = f"file:///same{index}.py"
        open_document(client, uri, text)
        line, character = text.count("\n"), len(text.split("\n")[-1])
        inline = await client.text_document_inline_completion_async(inline_params(uri, line, character))
        completion = await client.text_document_completion_async(completion_params(uri, line, character))

        assert len(completion.items) == len(inline.items)
        for item, inline_item in zip(completion.items, inline.items):
            assert item.insert_text == inline_item.insert_text
            assert item.text_edit.new_text == inline_item.insert_text
            assert item.text_edit.range == inline_item.range
            assert item.insert_text_format == types.InsertTextFormat.PlainText
            assert item.label
        suggested += len(inline.items)
    assert suggested, "the trained model suggested nothing for any prompt"


async def test_completion_range_is_on_cursor_line(client: LanguageClient) -> None:
    uri = "file:///emoji_completion.py"
    text = 'print("😀", 1, name.'
    open_document(client, uri, text)
    # The emoji takes 4 UTF-8 bytes or 2 UTF-16 units, so the cursor column differs by profile.
    column = 22 if encoding_of(client.profile) == "utf-8" else 20
    completion = await client.text_document_completion_async(completion_params(uri, 1, column))
    for item in completion.items:
        assert item.text_edit.range.start == types.Position(line=0, character=column)
        assert item.text_edit.range.end.line == 0


async def test_accepting_inside_auto_closed_call(client: LanguageClient) -> None:
    uri = "file:///print.py"
    text = "message = 'hello'\nprint()\n"
    open_document(client, uri, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, 1, 6))
    if not result.items:
        pytest.fail("the trained model gave no suggestion inside print()")
    item = result.items[0]
    accepted = apply_edit(text, item.range, item.insert_text, encoding_of(client.profile))
    line = accepted.split("\n")[1]
    assert line.startswith("print(")
    assert line.endswith(")")
    assert line.count("(") == line.count(")"), f"accepting {item.insert_text!r} gave {line!r}"


async def test_crlf_document_gets_same_suggestion(client: LanguageClient) -> None:
    suggested = 0
    for index, lf in enumerate(PROMPTS):
        crlf = lf.replace("\n", "\r\n")
        open_document(client, f"file:///lf{index}.py", lf)
        open_document(client, f"file:///crlf{index}.py", crlf)
        line, character = lf.count("\n"), len(lf.split("\n")[-1])
        lf_result = await client.text_document_inline_completion_async(inline_params(f"file:///lf{index}.py", line, character))
        crlf_result = await client.text_document_inline_completion_async(inline_params(f"file:///crlf{index}.py", line, character))

        assert [i.insert_text.replace("\r\n", "\n") for i in crlf_result.items] == [i.insert_text for i in lf_result.items]
        assert all("\r" not in i.insert_text for i in lf_result.items)
        assert all("\r" not in i.insert_text.replace("\r\n", "") for i in crlf_result.items)
        suggested += len(lf_result.items)
    assert suggested, "the trained model suggested nothing for any prompt"


async def test_multiline_suggestion_uses_document_line_ending(client: LanguageClient) -> None:
    body = "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n    def norm(self):\n"
    crlf = body.replace("\n", "\r\n")
    open_document(client, "file:///point.py", crlf)
    result = await client.text_document_inline_completion_async(inline_params("file:///point.py", 6, 0))
    for item in result.items:
        assert "\n" not in item.insert_text.replace("\r\n", ""), repr(item.insert_text)
        assert "\r" not in item.insert_text.replace("\r\n", ""), repr(item.insert_text)
