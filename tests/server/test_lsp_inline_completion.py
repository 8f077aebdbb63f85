"""textDocument/inlineCompletion end to end over stdio with pytest-lsp, for each client profile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import torch
from lsprotocol import types
from lsp_session import (
    PROFILES,
    apply_edit,
    completion_params,
    document_state,
    encoding_of,
    inline_params,
    lsp_session,
    open_document,
)
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

from tiny_copilot.model.checkpoint import save_checkpoint
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

EMOJI_LINE = 's = "😀" + x'
# One inference thread: on a shared CI machine two threads can make each step many times slower.
SETTINGS = {"threads": 1}
SLOW_SETTINGS = {"threads": 1, "maxNewTokens": 512, "multiline": "never", "temperature": 0}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory: pytest.TempPathFactory, small_tokenizer: CodeTokenizer) -> Path:
    """A model whose greedy output is "-" forever, so every request generates until maxNewTokens.

    Every embedding row shares one direction, and the row of "-" is three times as long, so after the
    final norm "-" wins at every position. A run of one character other than a letter or digit is
    never cut as a repetition loop, so a request generates maxNewTokens tokens: long enough for later
    keystrokes to interrupt it.
    """
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("slow") / "checkpoint"
    # Speculative decoding guesses this output six tokens at a time. So the model is large enough that its
    # 512 tokens take well over 0.2 s on an idle machine, where 128 wide and 8 deep took 0.19 s.
    model = GPT(ModelConfig(vocab_size=512, d_model=256, n_layers=12, n_heads=4, max_seq_len=1024))
    shared_D = torch.randn(256)
    with torch.no_grad():
        model.embed.weight.mul_(0.1).add_(shared_D)
        model.embed.weight[small_tokenizer.inner.token_to_id("-")] = 3 * shared_D
    save_checkpoint(path, model, small_tokenizer, {"step": 0})
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=PROFILES)
async def client(request: pytest.FixtureRequest, untrained_checkpoint: Path) -> AsyncIterator[LanguageClient]:
    async with lsp_session(request.param, ["-vv", "--checkpoint", str(untrained_checkpoint)], SETTINGS) as session:
        session.profile = request.param  # type: ignore[attr-defined]
        yield session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow_client(slow_checkpoint: Path) -> AsyncIterator[LanguageClient]:
    async with lsp_session("neovim@v0.7.0", ["-vv", "--checkpoint", str(slow_checkpoint)], SLOW_SETTINGS) as session:
        yield session


async def test_capabilities_and_encoding(client: LanguageClient) -> None:
    capabilities = client.initialize_result.capabilities
    assert capabilities.inline_completion_provider is not None
    assert capabilities.completion_provider is not None
    assert capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert capabilities.position_encoding == encoding_of(client.profile)

    state = await document_state(client, "untitled:none")
    assert state is None
    uri = "file:///enc.py"
    open_document(client, uri, EMOJI_LINE)
    state = await document_state(client, uri)
    assert state is not None
    assert state["encoding"] == encoding_of(client.profile)


async def test_emoji_prefix_ends_at_cursor(client: LanguageClient) -> None:
    uri = "file:///emoji.py"
    open_document(client, uri, EMOJI_LINE + "\n")
    # Right after the x: 12 UTF-16 units or 14 UTF-8 bytes.
    column = 14 if encoding_of(client.profile) == "utf-8" else 12
    state = await document_state(client, uri, 0, column)
    assert state["prefix"] == EMOJI_LINE
    assert state["prefix"].endswith("x")

    open_document(client, "file:///two.py", "😀😀\nab")
    state = await document_state(client, "file:///two.py", 1, 1)
    assert state["prefix"] == "😀😀\na"
    column = 4 if encoding_of(client.profile) == "utf-8" else 2
    state = await document_state(client, "file:///two.py", 0, column)
    assert state["prefix"] == "😀"

    result = await client.text_document_inline_completion_async(inline_params(uri, 0, column))
    for item in result.items:
        assert item.range.start == types.Position(line=0, character=column)


@pytest.mark.parametrize(("text", "line", "character"), [("", 0, 0), ("a", 0, 1), ("a\n", 1, 0)])
async def test_tiny_documents_are_answered(client: LanguageClient, text: str, line: int, character: int) -> None:
    uri = f"file:///tiny{len(text)}.py"
    open_document(client, uri, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, line, character))
    assert result is not None
    for item in result.items:
        assert item.range.start == types.Position(line=line, character=character)
        assert item.range.end.line == line


async def test_items_carry_range_on_cursor_line(client: LanguageClient) -> None:
    uri = "file:///range.py"
    text = "import json\n\ndef load(path):\n    with open(path) as f:\n        return json.\n"
    open_document(client, uri, text)
    result = await client.text_document_inline_completion_async(inline_params(uri, 4, 20))
    assert result.items, "the untrained model always produces some text here"
    for item in result.items:
        assert item.range is not None
        assert item.range.start == types.Position(line=4, character=20)
        assert item.range.end.line == 4


async def test_handler_latency_is_reported(client: LanguageClient) -> None:
    uri = "file:///latency.py"
    open_document(client, uri, "import json\n\ndef load(path):\n    return json.")
    before = (await document_state(client, uri))["handlerLatencyMs"]["requests"]
    await client.text_document_inline_completion_async(inline_params(uri, 3, 16))

    latency = (await document_state(client, uri))["handlerLatencyMs"]
    assert latency["requests"] == before + 1
    assert 0 < latency["p50"] <= latency["p95"]


async def test_switching_documents_keeps_each_cache(client: LanguageClient) -> None:
    lines = [f"def handler_{i}(request):\n    return request.value + {i}\n" for i in range(40)]
    documents = {"file:///switch_a.py": "".join(lines) + "x = ", "file:///switch_b.py": "".join(reversed(lines)) + "y = "}
    for uri, text in documents.items():
        open_document(client, uri, text)
        await client.text_document_inline_completion_async(inline_params(uri, 80, 4))
    before = await document_state(client, "file:///switch_a.py")

    # The user goes back and forth, typing a character in each file: only the new tokens are prefilled.
    for version, uri in enumerate([*documents, *documents], start=2):
        end = types.Position(line=80, character=4 + version // 2 - 1)
        change = types.TextDocumentContentChangePartial(range=types.Range(start=end, end=end), text="1")
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[change]
            )
        )
        await client.text_document_inline_completion_async(inline_params(uri, 80, end.character + 1))

    after = await document_state(client, "file:///switch_a.py")
    prompt_tokens = after["promptTokens"] - before["promptTokens"]
    assert prompt_tokens > 4 * 100
    assert after["reusedTokens"] - before["reusedTokens"] >= 0.95 * prompt_tokens


async def test_closing_a_document_drops_its_cache(client: LanguageClient) -> None:
    uri = "file:///closed_cache.py"
    text = "".join(f"def closed_{i}(item):\n    return item * {i}\n" for i in range(20)) + "z = "
    open_document(client, uri, text)
    await client.text_document_inline_completion_async(inline_params(uri, 40, 4))
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    open_document(client, uri, text)
    before = await document_state(client, uri)

    await client.text_document_inline_completion_async(inline_params(uri, 40, 4))

    after = await document_state(client, uri)
    assert after["promptTokens"] - before["promptTokens"] > 100
    # Nothing of the closed document was left to reuse (all but one token otherwise).
    assert after["reusedTokens"] == before["reusedTokens"]


async def test_crlf_and_lf_give_same_suggestion(client: LanguageClient) -> None:
    lf = "def add(a, b):\n    total = a + b\n    return "
    crlf = lf.replace("\n", "\r\n")
    open_document(client, "file:///lf.py", lf)
    open_document(client, "file:///crlf.py", crlf)
    lf_result = await client.text_document_inline_completion_async(inline_params("file:///lf.py", 2, 11))
    crlf_result = await client.text_document_inline_completion_async(inline_params("file:///crlf.py", 2, 11))

    assert [i.insert_text.replace("\r\n", "\n") for i in crlf_result.items] == [i.insert_text for i in lf_result.items]
    for item in lf_result.items:
        assert "\r" not in item.insert_text
    for item in crlf_result.items:
        assert "\r" not in item.insert_text.replace("\r\n", "")
        assert "\n" not in item.insert_text.replace("\r\n", "")


async def test_edits_track_client_text(client: LanguageClient) -> None:
    uri = "file:///edit.py"
    text = "😀 = 1\r\nprint(😀)\n"
    open_document(client, uri, text)
    unit = 4 if encoding_of(client.profile) == "utf-8" else 2
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=1, character=6 + unit), end=types.Position(line=1, character=6 + unit)),
                    text=", 2",
                ),
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=unit)),
                    text="y",
                ),
            ],
        )
    )
    state = await document_state(client, uri)
    assert state["text"] == "y = 1\r\nprint(😀, 2)\n"
    assert state["version"] == 2


async def test_newer_request_supersedes_older(slow_client: LanguageClient) -> None:
    client = slow_client
    uri = "file:///slow.py"
    open_document(client, uri, "import os\nimport sys\n\ndef main():\n    value = ")
    started = time.monotonic()
    solo = await client.text_document_inline_completion_async(inline_params(uri, 4, 12))
    solo_s = time.monotonic() - started
    assert solo.items
    assert solo_s > 0.2, "the model must generate long enough for two requests to overlap"

    # The older request is at another cursor: requests for the same text and cursor share one generation.
    older = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 11)))
    await asyncio.sleep(0.05)
    newer = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 12)))

    try:
        older_result = await older
        assert list(older_result.items) == []
    except JsonRpcRequestCancelled:
        pass
    newer_result = await newer
    assert [i.insert_text for i in newer_result.items] == [i.insert_text for i in solo.items]


async def test_cancel_storm_runs_one_generation_at_a_time(slow_client: LanguageClient) -> None:
    client = slow_client
    uri = "file:///storm.py"
    text = "def main():\n    value = "
    open_document(client, uri, text)
    started = time.monotonic()
    await client.text_document_inline_completion_async(inline_params(uri, 1, 12))
    full_generation_s = time.monotonic() - started
    assert full_generation_s > 0.2, "the model must generate long enough for keystrokes to interrupt it"

    futures: list[asyncio.Future] = []
    sent_at: list[float] = []
    previous_id: str | None = None
    for keystroke in range(20):
        column = 12 + keystroke
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2 + keystroke),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(line=1, character=column), end=types.Position(line=1, character=column)),
                        text="a",
                    )
                ],
            )
        )
        msg_id = f"storm-{keystroke}"
        sent_at.append(time.monotonic())
        future = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, column + 1), msg_id=msg_id))
        futures.append(future)
        if previous_id is not None:
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous_id))
        previous_id = msg_id
        await asyncio.sleep(0.03)

    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    answered_at = time.monotonic()
    for index, outcome in enumerate(outcomes[:-1]):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, JsonRpcRequestCancelled), (index, outcome)
            continue
        # The didChange before each cancel already stops the outdated generation, so the server may
        # answer empty before the cancel arrives. A short suggestion may also finish before the server
        # reads the next didChange; it must then fit the version it was requested for.
        assert all(item.range.start.character == 13 + index for item in outcome.items), (index, outcome)
    cancelled_or_empty = sum(isinstance(o, BaseException) or not o.items for o in outcomes[:-1])
    assert cancelled_or_empty >= len(outcomes) // 2, outcomes
    assert outcomes[-1].items, "the last request gets the suggestion"
    # Twenty full generations would take 20 * full_generation_s; cancellation stops them within a step.
    assert answered_at - sent_at[0] < 20 * full_generation_s / 2

    state = await document_state(client, uri)
    assert state["text"] == text + "a" * 20
    assert state["maxConcurrentJobs"] == 1


async def test_reopened_document_drops_older_result(slow_client: LanguageClient) -> None:
    """A request started before didClose and didOpen of the same URI must not return a result for the new text."""
    client = slow_client
    uri = "file:///reopened.py"
    open_document(client, uri, "def main():\n    value = ")
    older = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 12)))
    await asyncio.sleep(0.05)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    # VS Code closes and reopens a document when its language mode changes; the text may differ by then.
    open_document(client, uri, "x = 1\n")

    try:
        older_result = await older
    except JsonRpcRequestCancelled:
        older_result = None
    assert older_result is None or list(older_result.items) == [], "a result computed on the closed text"
    state = await document_state(client, uri)
    assert state["text"] == "x = 1\n"


async def test_completion_and_inline_at_same_cursor_both_answered(slow_client: LanguageClient) -> None:
    """VS Code sends completion and inlineCompletion for one keystroke; neither may empty the other."""
    client = slow_client
    uri = "file:///both.py"
    open_document(client, uri, "def main():\n    value = ")
    jobs_before = (await document_state(client, uri))["jobsRun"]
    inline = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 12)))
    completion = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_COMPLETION, completion_params(uri, 1, 12)))

    inline_result, completion_result = await asyncio.gather(inline, completion)
    assert [item.insert_text for item in inline_result.items], "the inline request was superseded by the completion request"
    assert [item.insert_text for item in completion_result.items] == [item.insert_text for item in inline_result.items]
    state = await document_state(client, uri)
    assert state["jobsRun"] - jobs_before == 1, "both requests share one generation"


async def test_cancelled_request_keeps_shared_generation(slow_client: LanguageClient) -> None:
    """$/cancelRequest for one of two requests at the same cursor must not stop the other's generation."""
    client = slow_client
    uri = "file:///shared-cancel.py"
    open_document(client, uri, "def main():\n    value = ")
    inline = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 12), msg_id="shared-inline"))
    completion = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_COMPLETION, completion_params(uri, 1, 12)))
    await asyncio.sleep(0.05)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="shared-inline"))

    inline_outcome, completion_result = await asyncio.gather(inline, completion, return_exceptions=True)
    assert isinstance(inline_outcome, JsonRpcRequestCancelled) or not inline_outcome.items, inline_outcome
    assert completion_result.items, "the completion request lost its suggestion when the other request was cancelled"


async def test_completion_and_selected_item_both_answered(slow_client: LanguageClient) -> None:
    """With the suggest widget open, VS Code requests completions again (the list is incomplete) and
    an inline completion that names the widget's selected item, for the same keystroke. The prompts
    differ, so the requests cannot share a generation, but neither is outdated, so neither may be emptied."""
    client = slow_client
    uri = "file:///widget-open.py"
    open_document(client, uri, "def main():\n    val")
    params = inline_params(uri, 1, 7)
    params.context.selected_completion_info = types.SelectedCompletionInfo(
        range=types.Range(start=types.Position(1, 4), end=types.Position(1, 7)), text="value"
    )

    def send(method: str) -> asyncio.Future:
        if method == types.TEXT_DOCUMENT_INLINE_COMPLETION:
            return asyncio.wrap_future(client.protocol.send_request(method, params))
        return asyncio.wrap_future(client.protocol.send_request(method, completion_params(uri, 1, 7)))

    for order in ((types.TEXT_DOCUMENT_COMPLETION, types.TEXT_DOCUMENT_INLINE_COMPLETION), (types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_COMPLETION)):
        first = send(order[0])
        await asyncio.sleep(0.05)
        second = send(order[1])
        results = dict(zip(order, await asyncio.gather(first, second)))

        assert results[types.TEXT_DOCUMENT_COMPLETION].items, f"completion emptied, order {order}"
        inline_items = results[types.TEXT_DOCUMENT_INLINE_COMPLETION].items
        assert inline_items, f"inline completion emptied, order {order}"
        assert inline_items[0].insert_text.startswith("value")


def units(text: str, encoding: str) -> int:
    """Length of `text` in the position units of `encoding`."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text)


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
async def test_selected_item_is_extended(client: LanguageClient, line_ending: str) -> None:
    """With the suggest widget open, VS Code shows only items that keep its item's range and text."""
    encoding = encoding_of(client.profile)
    before = 'import json\n\ndef load(path):\n    s = "😀" + json.'.replace("\n", line_ending)
    typed, item_text = "lo", "loads"
    uri = f"file:///selected-{len(line_ending)}.py"
    open_document(client, uri, before + typed + line_ending)
    line = before.count("\n")
    start = units(before.rsplit("\n", 1)[-1], encoding)
    selected = types.SelectedCompletionInfo(
        range=types.Range(start=types.Position(line, start), end=types.Position(line, start + len(typed))),
        text=item_text,
    )
    params = inline_params(uri, line, start + len(typed))
    params.context.selected_completion_info = selected
    result = await client.text_document_inline_completion_async(params)

    # The reference: the same document with the item accepted, asked without a selected item.
    accepted_uri = f"file:///selected-accepted-{len(line_ending)}.py"
    open_document(client, accepted_uri, before + item_text + line_ending)
    expected = await client.text_document_inline_completion_async(inline_params(accepted_uri, line, start + len(item_text)))
    assert expected.items, "the untrained model produces some text after `json.loads`"
    assert [item.range for item in result.items] == [selected.range]
    assert [item.insert_text for item in result.items] == [item_text + expected.items[0].insert_text]


async def test_selected_item_elsewhere_gets_nothing(client: LanguageClient) -> None:
    uri = "file:///selected-elsewhere.py"
    open_document(client, uri, "import json\nvalue = json.lo\n")
    params = inline_params(uri, 1, 15)
    params.context.selected_completion_info = types.SelectedCompletionInfo(
        range=types.Range(start=types.Position(0, 0), end=types.Position(0, 6)), text="import"
    )
    result = await client.text_document_inline_completion_async(params)
    assert list(result.items) == []


async def test_selected_item_text_is_kept_verbatim(client: LanguageClient) -> None:
    # The line endings of an item's text were once rewritten to the document's, so the result no
    # longer started with the item's text, which VS Code requires.
    item_text = "loads(x,\r\n    y"
    uri = "file:///selected-verbatim.py"
    open_document(client, uri, 'import json\n\ndef load(path):\n    s = "x" + json.lo\n')
    params = inline_params(uri, 3, 21)
    params.context.selected_completion_info = types.SelectedCompletionInfo(
        range=types.Range(start=types.Position(3, 19), end=types.Position(3, 21)), text=item_text
    )
    result = await client.text_document_inline_completion_async(params)
    assert result.items, "the untrained model produces some text after the item"
    assert result.items[0].insert_text.startswith(item_text), result.items[0].insert_text
