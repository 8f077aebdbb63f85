"""Malformed and unusual input over real stdio: every request gets an answer and the server keeps serving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_wire import WireClient

from tiny_copilot.server.lsp import DEBUG_DOCUMENT_COMMAND
from tiny_copilot.server.stdio import MAX_HEADER_LINE_BYTES, MAX_MESSAGE_BYTES

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


@pytest.fixture(scope="module")
def wire(untrained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireClient]:
    log_file = tmp_path_factory.mktemp("bad-input") / "server.log"
    client = WireClient(["--stdio", "-vv", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    client.initialize({"general": {"positionEncodings": ["utf-16"]}})
    yield client
    client.call("shutdown")
    client.notify("exit")
    assert client.process.wait(10) == 0
    assert client.frame_errors == []


def inline(wire: WireClient, uri: str, line: int, character: int) -> dict:
    params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}}
    return wire.call("textDocument/inlineCompletion", params, timeout_s=30)


def open_document(wire: WireClient, uri: str, text: str) -> None:
    wire.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})


def server_text(wire: WireClient, uri: str) -> str | None:
    result = wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": [uri, 0, 0]})["result"]
    return None if result is None else result["text"]


def wait_for_model(wire: WireClient, timeout_s: float = 60.0) -> None:
    """Wait until the server has loaded its model, so that requests reach the completer."""
    open_document(wire, "untitled:model-probe", "")
    deadline = time.monotonic() + timeout_s
    while not wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": ["untitled:model-probe", 0, 0]})["result"]["modelReady"]:
        assert time.monotonic() < deadline, f"the model did not load within {timeout_s} s"
        time.sleep(0.1)


def assert_still_serving(wire: WireClient) -> None:
    assert "result" in inline(wire, "file:///never-opened.py", 0, 0)


def test_malformed_json_gets_parse_error(wire: WireClient) -> None:
    before = len(wire.responses.get(None, {}).get("all", []))
    wire.send_bytes(b'{"jsonrpc": "2.0", "id": 99, "method": ')
    errors = wire.wait_null_id_errors(before + 1)
    assert errors[-1]["error"]["code"] == PARSE_ERROR
    assert_still_serving(wire)


def test_body_over_size_limit_gets_parse_error(wire: WireClient) -> None:
    before = len(wire.responses.get(None, {}).get("all", []))
    wire.send_bytes(b"x" * (MAX_MESSAGE_BYTES + 1))
    errors = wire.wait_null_id_errors(before + 1, timeout_s=60)
    assert errors[-1]["error"]["code"] == PARSE_ERROR
    # The editor learns why a file that large gets no suggestions.
    warning = wire.wait_notification("window/showMessage", lambda params: "over the limit of 64 MB" in params["message"])
    assert warning["type"] == 2  # Warning
    assert "a message of 64 MB" in warning["message"]
    assert_still_serving(wire)


@pytest.mark.parametrize(
    ("length", "logged"),
    [
        (b"99999999999", "dropped a message body of 2 bytes (Content-Length 99999999999)"),
        # pygls converts the value with int(), which rejects more than 4,300 digits.
        (b"7" * 5000, "a message announces a body of 77777777777777777777... bytes"),
    ],
)
def test_huge_content_length_does_not_crash(untrained_checkpoint: Path, tmp_path: Path, length: bytes, logged: str) -> None:
    """A header that claims a huge body, then the end of input: the server exits as on any closed input."""
    log_file = tmp_path / "server.log"
    client = WireClient(["--stdio", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    client.initialize()
    assert client.process.stdin is not None
    client.process.stdin.write(b"Content-Length: " + length + b"\r\n\r\n{}")
    client.process.stdin.flush()
    # Still running, reading the rest of the claimed body.
    time.sleep(1.0)
    assert client.process.poll() is None

    # The LSP specification sets exit code 1 when the input ends without shutdown and exit.
    assert client.close() == 1
    log = log_file.read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert logged in log


def test_over_long_header_line_is_skipped(wire: WireClient) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 4242, "method": "textDocument/inlineCompletion", "params": {
        "textDocument": {"uri": "file:///never-opened.py"}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 2}}}).encode()
    assert wire.process.stdin is not None
    # 65,536 bytes before the line break: the largest line read at once ends exactly where "\r\n" begins.
    long_header = b"X-Padding: " + b"a" * (MAX_HEADER_LINE_BYTES - len(b"X-Padding: ")) + b"\r\n"
    wire.process.stdin.write(b"Content-Length: %d\r\n" % len(body) + long_header + b"\r\n" + body)
    wire.process.stdin.flush()
    assert "result" in wire.wait_response(4242)


@pytest.mark.parametrize(
    "frame",
    [
        # Content-Length smaller than the body: the body's tail arrives glued to the next header.
        lambda body: b"Content-Length: %d\r\n\r\n" % (len(body) - 10) + body,
        # Content-Length larger than the body: the next message's header is read as part of this body.
        lambda body: b"Content-Length: %d\r\n\r\n" % (len(body) + 20) + body,
        # No Content-Length at all: the body is read as header lines.
        lambda body: b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + body,
    ],
    ids=["length-too-small", "length-too-large", "length-missing"],
)
def test_misframed_message_keeps_server_responding(wire: WireClient, frame) -> None:
    """After one wrongly framed message the server finds the next header again and responds to later requests."""
    body = json.dumps({"jsonrpc": "2.0", "id": "framing", "method": "textDocument/completion", "params": {
        "textDocument": {"uri": "file:///never-opened.py"}, "position": {"line": 0, "character": 0}}}).encode()
    assert wire.process.stdin is not None
    wire.process.stdin.write(frame(body))
    wire.process.stdin.flush()
    # The message right after a too-large length loses its header to the bad body. Later ones are served.
    wire.notify("$/setTrace", {"value": "off"})
    for _ in range(3):
        assert_still_serving(wire)


@pytest.mark.parametrize(
    "header",
    [b"content-length: %d\r\n\r\n", b"CONTENT-LENGTH: %d\r\n\r\n", b"Content-Length:%d\r\n\r\n", b"Content-Length: %d \r\n\r\n", b"Content-Length: %d\n\n"],
    ids=["lower-case", "upper-case", "no-space", "trailing-space", "bare-newlines"],
)
def test_content_length_variants_are_read(wire: WireClient, header: bytes) -> None:
    """Header names are case-insensitive in HTTP, whose header format LSP uses; none of these may lose the request."""
    body = json.dumps({"jsonrpc": "2.0", "id": "header-variant", "method": "textDocument/completion", "params": {
        "textDocument": {"uri": "file:///never-opened.py"}, "position": {"line": 0, "character": 0}}}).encode()
    assert wire.process.stdin is not None
    wire.process.stdin.write(header % len(body) + body)
    wire.process.stdin.flush()
    assert "result" in wire.wait_response("header-variant", timeout_s=5)
    assert_still_serving(wire)


def test_invalid_utf8_gets_parse_error(wire: WireClient) -> None:
    before = len(wire.responses.get(None, {}).get("all", []))
    wire.send_bytes(b'{"jsonrpc": "2.0", "method": "\xff\xfe"}')
    errors = wire.wait_null_id_errors(before + 1)
    assert errors[-1]["error"]["code"] == PARSE_ERROR
    assert_still_serving(wire)


@pytest.mark.parametrize("body", [b"[1, 2]", b"42", b'"text"', b'{"id": 5, "method": "shutdown"}', b'{"jsonrpc": "2.0", "id": [1], "method": "shutdown"}'])
def test_non_message_gets_invalid_request(wire: WireClient, body: bytes) -> None:
    before = len(wire.responses.get(None, {}).get("all", []))
    wire.send_bytes(body)
    if b'"id": 5' in body:
        assert wire.wait_response(5)["error"]["code"] == INVALID_REQUEST
    else:
        errors = wire.wait_null_id_errors(before + 1)
        assert errors[-1]["error"]["code"] == INVALID_REQUEST
    assert_still_serving(wire)


@pytest.mark.parametrize(
    "response",
    [{"id": None, "error": {"code": -32700, "message": "Parse error"}}, {"id": [1], "result": None}, {"id": None, "result": 3}],
)
def test_response_with_unusable_id_gets_no_reply(wire: WireClient, response: dict) -> None:
    """A client's error response to a message it could not read has id null, and a reply to it could start a loop."""
    before = len(wire.responses.get(None, {}).get("all", []))
    wire.send(response)
    # The server reads messages in order, so a reply to the response would arrive before this result.
    assert_still_serving(wire)
    assert len(wire.responses.get(None, {}).get("all", [])) == before


def test_unknown_method_gets_method_not_found(wire: WireClient) -> None:
    response = wire.call("tinyCopilot/noSuchMethod", {"x": 1})
    assert response["error"]["code"] == METHOD_NOT_FOUND
    wire.notify("tinyCopilot/noSuchNotification", {"x": 1})
    wire.notify("$/setTrace", {"value": "off"})
    assert_still_serving(wire)


@pytest.mark.parametrize(
    "params",
    [
        {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 0, "character": 0}},
        {"textDocument": {"uri": "file:///a.py"}, "position": {"line": -1, "character": 0}, "context": {"triggerKind": 1}},
        {"textDocument": "file:///a.py", "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
        {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 0, "character": "x"}, "context": {"triggerKind": 1}},
        None,
        [1, 2],
    ],
)
def test_invalid_params_get_error_with_id(wire: WireClient, params: object) -> None:
    msg_id = wire.request("textDocument/inlineCompletion", params)
    response = wire.wait_response(msg_id)
    assert response["id"] == msg_id
    assert response["error"]["code"] == INVALID_PARAMS
    assert_still_serving(wire)


@pytest.mark.parametrize("method", ["initialized", "textDocument/didClose", "$/cancelRequest"])
def test_notification_sent_as_request_gets_error(wire: WireClient, method: str) -> None:
    params = {"initialized": {}, "textDocument/didClose": {"textDocument": {"uri": "file:///never-opened.py"}}, "$/cancelRequest": {"id": 1}}[method]
    response = wire.call(method, params, timeout_s=5)
    assert response["error"]["code"] == INVALID_REQUEST
    assert method in response["error"]["message"]
    assert_still_serving(wire)


def test_second_initialize_gets_error(wire: WireClient) -> None:
    response = wire.call("initialize", {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {"maxNewTokens": 0}})
    assert response["error"]["code"] == INVALID_REQUEST
    assert "only be sent once" in response["error"]["message"]
    assert_still_serving(wire)


@pytest.mark.parametrize(
    ("method", "params"),
    [("$/cancelRequest", {"id": [1]}), ("$/cancelRequest", {"id": {"a": 1}}), ("window/workDoneProgress/cancel", {"token": [1]})],
)
def test_cancel_with_unhashable_id_is_ignored(wire: WireClient, method: str, params: dict) -> None:
    wire.notifications.clear()
    wire.notify(method, params)
    assert_still_serving(wire)
    time.sleep(0.2)
    assert_still_serving(wire)
    shown_messages = [n["params"]["message"] for n in wire.notifications if n["method"] == "window/showMessage"]
    assert shown_messages == []


def test_second_initialized_keeps_model(wire: WireClient) -> None:
    wait_for_model(wire)
    wire.notify("initialized", {})
    state = wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": ["untitled:model-probe", 0, 0]})
    assert state["result"]["modelReady"], "a second initialized reloaded the model"


def test_invalid_notification_is_ignored(wire: WireClient) -> None:
    wire.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///broken.py"}})
    wire.notify("textDocument/didChange", {"textDocument": {"uri": "file:///a.py", "version": 2}, "contentChanges": "x"})
    assert server_text(wire, "file:///broken.py") is None
    assert_still_serving(wire)


def test_positions_past_the_end_are_answered(wire: WireClient) -> None:
    uri = "file:///short.py"
    open_document(wire, uri, "ab\ncd\n")
    for line, character in [(0, 50), (1, 2), (2, 9), (40, 0), (40, 40)]:
        response = inline(wire, uri, line, character)
        assert "result" in response, response
        for item in response["result"]["items"]:
            assert item["range"]["start"]["line"] <= 2
            assert item["range"]["start"]["character"] <= 2


def test_never_opened_document_gets_empty_result(wire: WireClient) -> None:
    assert inline(wire, "file:///nowhere.py", 3, 4)["result"] == {"items": []}
    completion = wire.call("textDocument/completion", {"textDocument": {"uri": "file:///nowhere.py"}, "position": {"line": 0, "character": 0}})
    assert completion["result"]["items"] == []


def test_change_to_unopened_document_is_ignored(wire: WireClient) -> None:
    wire.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": "file:///ghost.py", "version": 2}, "contentChanges": [{"text": "x"}]},
    )
    wire.notify("textDocument/didClose", {"textDocument": {"uri": "file:///ghost.py"}})
    assert server_text(wire, "file:///ghost.py") is None
    assert_still_serving(wire)


def test_untitled_uri_is_served(wire: WireClient) -> None:
    uri = "untitled:Untitled-1"
    open_document(wire, uri, "def f():\n    ")
    assert "result" in inline(wire, uri, 1, 4)
    assert server_text(wire, uri) == "def f():\n    "


def test_five_megabyte_document_is_served(wire: WireClient) -> None:
    uri = "file:///big.py"
    line = "value_%06d = compute(%d, 'text')  # comment\n"
    text = "".join(line % (i, i) for i in range(5 * 1024 * 1024 // len(line % (0, 0))))
    assert len(text) >= 4_900_000
    open_document(wire, uri, text)
    last_line = text.count("\n")
    edit = {"range": {"start": {"line": last_line, "character": 0}, "end": {"line": last_line, "character": 0}}, "text": "result = "}
    wire.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [edit]})

    assert "result" in inline(wire, uri, last_line, 9)
    assert server_text(wire, uri) == text + "result = "
    wire.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert server_text(wire, uri) is None


@pytest.mark.parametrize(("line", "character"), [(0, 5), (1, 8), (2, 7)])
def test_unpaired_surrogate_in_document_is_served(wire: WireClient, line: int, character: int) -> None:
    """JSON can carry an unpaired surrogate ("\\ud800"): JSON.stringify writes one from a VS Code buffer that way."""
    # json.dumps writes each one as an escape, as VS Code does.
    wait_for_model(wire)
    open_document(wire, "file:///surrogate.py", 'x = "\ud800"\nprint(x)\ny = \udc00')
    assert server_text(wire, "file:///surrogate.py") == 'x = "\ud800"\nprint(x)\ny = \udc00'
    for method in ("textDocument/inlineCompletion", "textDocument/completion"):
        params = {"textDocument": {"uri": "file:///surrogate.py"}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}}
        response = wire.call(method, params, timeout_s=30)
        assert "error" not in response, response["error"]["message"]


def test_response_without_request_is_ignored(wire: WireClient) -> None:
    wire.send({"id": "not-a-server-request", "result": {"x": 1}})
    wire.send({"id": 12345, "error": {"code": -1, "message": "client error"}})
    assert_still_serving(wire)


def test_deeply_nested_json_gets_an_answer(wire: WireClient) -> None:
    before = len(wire.responses.get(None, {}).get("all", []))
    depth = 100_000
    wire.send_bytes(b"[" * depth + b"]" * depth)
    errors = wire.wait_null_id_errors(before + 1)
    assert errors[-1]["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST)
    assert_still_serving(wire)


def test_execute_unknown_command_gets_error(wire: WireClient) -> None:
    response = wire.call("workspace/executeCommand", {"command": "tinyCopilot.noSuchCommand", "arguments": []})
    assert response["error"]["code"] == INVALID_PARAMS
    assert json.dumps(response)  # a plain JSON error object


UNDECODABLE_BODIES = {
    "cut short": (b'{"jsonrpc": "2.0", "id": 7, "method": ', "Expecting value"),
    "not UTF-8": (b'{"jsonrpc": "2.0", "method": "\xff\xfe"}', "can't decode byte 0xff"),
    "nested too deep": (b"[" * 100_000 + b"]" * 100_000, "maximum recursion depth"),
}


def test_undecodable_body_logs_one_warning_line(untrained_checkpoint: Path, tmp_path: Path) -> None:
    # The default verbosity, as an editor starts the server: what the user finds in the log.
    log_file = tmp_path / "server.log"
    client = WireClient(["--stdio", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    client.initialize()
    for body, _ in UNDECODABLE_BODIES.values():
        client.send_bytes(body)
    errors = client.wait_null_id_errors(len(UNDECODABLE_BODIES))
    assert [error["error"]["code"] for error in errors] == [PARSE_ERROR] * len(UNDECODABLE_BODIES)
    assert_still_serving(client)
    client.call("shutdown")
    client.notify("exit")
    assert client.process.wait(10) == 0

    log_lines = log_file.read_text(encoding="utf-8").splitlines()
    assert not any("Traceback" in line for line in log_lines), log_lines
    assert not any(" ERROR " in line for line in log_lines), log_lines
    for case, (_, error_text) in UNDECODABLE_BODIES.items():
        matching = [line for line in log_lines if error_text in line]
        assert len(matching) == 1, f"{case}: {log_lines}"
        assert " WARNING " in matching[0], f"{case}: {matching[0]}"


def test_error_response_logs_one_warning_line(untrained_checkpoint: Path, tmp_path: Path) -> None:
    # pygls logs a traceback at ERROR for every error response, but an invalid request is not a server bug.
    log_file = tmp_path / "server.log"
    client = WireClient(["--stdio", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    client.initialize()
    response = client.call("workspace/executeCommand", {"command": "tinyCopilot.noSuchCommand", "arguments": []})
    assert response["error"]["code"] == INVALID_PARAMS
    client.call("shutdown")
    client.notify("exit")
    assert client.process.wait(10) == 0

    log_lines = log_file.read_text(encoding="utf-8").splitlines()
    assert not any("Traceback" in line for line in log_lines), log_lines
    matching = [line for line in log_lines if "tinyCopilot.noSuchCommand" in line]
    assert len(matching) == 1, log_lines
    assert " WARNING " in matching[0], matching[0]
    assert f"error {INVALID_PARAMS}" in matching[0], matching[0]
