"""Property-based fuzzing over real stdio: random edits and malformed messages, thousands per run.

Two properties: every request gets exactly one response with its id, and after any sequence of
edits the server's copy of each document equals the client's (read with the -vv diagnostic command).
The client applies edits with its own code (`apply_edit`), not the server's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsp_session import apply_edit
from lsp_wire import WireClient
from lsprotocol import types

from tiny_copilot.server.lsp import DEBUG_DOCUMENT_COMMAND

ENCODING = "utf-16"
ALPHABET = st.sampled_from(list("ab ()\t_:=\n\r😀é\x0c\u2028"))
TEXTS = st.text(alphabet=ALPHABET, max_size=30)
COORDINATE = st.integers(min_value=0, max_value=12)


@pytest.fixture(scope="module")
def wire(untrained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireClient]:
    log_file = tmp_path_factory.mktemp("fuzz") / "server.log"
    client = WireClient(["--stdio", "-vv", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    client.initialize({"general": {"positionEncodings": [ENCODING]}}, {"threads": 1, "maxNewTokens": 4})
    yield client
    client.call("shutdown")
    client.notify("exit")
    assert client.process.wait(10) == 0
    assert client.frame_errors == []


def position(line: int, character: int) -> dict:
    return {"line": line, "character": character}


edit_ops = st.tuples(COORDINATE, COORDINATE, COORDINATE, COORDINATE, TEXTS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=TEXTS, edits=st.lists(st.lists(edit_ops, min_size=1, max_size=4), max_size=12), requests=st.lists(st.tuples(COORDINATE, COORDINATE), max_size=3))
def test_server_text_matches_client_after_edits(wire: WireClient, initial: str, edits: list, requests: list) -> None:
    uri = "file:///fuzz.py"
    wire.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": initial}})
    text = initial
    pending: list[int] = []
    for version, batch in enumerate(edits, start=2):
        changes = []
        for start_line, start_char, end_line, end_char, new_text in batch:
            start, end = sorted([(start_line, start_char), (end_line, end_char)])
            edit_range = types.Range(start=types.Position(*start), end=types.Position(*end))
            # Changes in one notification apply in order, each to the result of the previous.
            text = apply_edit(text, edit_range, new_text, ENCODING)
            changes.append({"range": {"start": position(*start), "end": position(*end)}, "text": new_text})
        wire.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes})
        for line, character in requests:
            params = {"textDocument": {"uri": uri}, "position": position(line, character), "context": {"triggerKind": 2}}
            pending.append(wire.request("textDocument/inlineCompletion", params))

    state = wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": [uri, 0, 0]})
    assert state["result"]["text"] == text
    for msg_id in pending:
        response = wire.wait_response(msg_id, timeout_s=30)
        assert "result" in response or response["error"]["code"] == -32800
    wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["uri", "line", "character", "textDocument", "position", "context", "x"]), children, max_size=3),
    max_leaves=8,
)
methods = st.sampled_from(
    [
        "textDocument/inlineCompletion",
        "textDocument/completion",
        "textDocument/didChange",
        "textDocument/didOpen",
        "workspace/didChangeConfiguration",
        "workspace/executeCommand",
        "tinyCopilot/unknown",
        "$/cancelRequest",
        "initialize",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, params=json_values, as_request=st.booleans(), garbage=st.binary(max_size=20))
def test_every_request_is_answered(wire: WireClient, method: str, params: object, as_request: bool, garbage: bytes) -> None:
    if garbage:
        wire.send_bytes(garbage)
    if as_request:
        response = wire.call(method, params, timeout_s=30)
        assert "result" in response or "code" in response["error"]
    else:
        wire.notify(method, params)
    # Whatever came before, the server still serves and still has no stray document.
    probe = wire.call("textDocument/completion", {"textDocument": {"uri": "file:///probe.py"}, "position": position(0, 0)})
    assert probe["result"]["items"] == []

