"""Start-up, settings, model loading, shutdown and exit of `tiny-copilot-lsp`, over real stdio."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsp_wire import WireClient

from tiny_copilot.model.checkpoint import shipped_checkpoint_path
from tiny_copilot.server.lsp import DEBUG_DOCUMENT_COMMAND, PARENT_POLL_S

INVALID_REQUEST = -32600
SERVER_NOT_INITIALIZED = -32002
PROGRESS_CAPABILITIES = {"window": {"workDoneProgress": True}}


def inline(wire: WireClient, uri: str, line: int, character: int) -> dict:
    params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, "context": {"triggerKind": 2}}
    return wire.call("textDocument/inlineCompletion", params, timeout_s=30)


def wait_model_ready(wire: WireClient, timeout_s: float = 60.0) -> bool:
    wire.notify("textDocument/didOpen", {"textDocument": {"uri": "untitled:probe", "languageId": "python", "version": 1, "text": ""}})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": ["untitled:probe", 0, 0]})
        if state["result"]["modelReady"]:
            return True
        time.sleep(0.05)
    return False


def wait_for_notification(wire: WireClient, method: str, predicate=lambda params: True, timeout_s: float = 30.0) -> dict:
    return wire.wait_notification(method, predicate, timeout_s)


def wait_for_log(log_file: Path, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not (log_file.exists() and text in log_file.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout_s} s"
        time.sleep(0.05)


def test_shutdown_then_exit_returns_zero(untrained_checkpoint: Path) -> None:
    wire = WireClient(["--stdio", "--checkpoint", str(untrained_checkpoint)])
    wire.initialize()
    assert wire.call("shutdown")["result"] is None
    assert wire.call("textDocument/completion", {"textDocument": {"uri": "file:///a"}, "position": {"line": 0, "character": 0}})["error"]["code"] == INVALID_REQUEST
    wire.notify("exit")
    assert wire.process.wait(10) == 0
    assert wire.frame_errors == []


def test_exit_without_shutdown_returns_one(untrained_checkpoint: Path) -> None:
    wire = WireClient(["--stdio", "--checkpoint", str(untrained_checkpoint)])
    wire.initialize()
    wire.notify("exit")
    assert wire.process.wait(10) == 1


def test_closed_stdin_ends_the_server() -> None:
    wire = WireClient(["--stdio", "--checkpoint", "/nonexistent"])
    wire.initialize()
    assert wire.close() == 1


def test_closed_stdin_after_shutdown_returns_zero() -> None:
    wire = WireClient(["--stdio", "--checkpoint", "/nonexistent"])
    wire.initialize()
    wire.call("shutdown")
    assert wire.close() == 0


def test_request_before_initialize_is_rejected() -> None:
    wire = WireClient(["--stdio", "--checkpoint", "/nonexistent"])
    response = wire.call("textDocument/completion", {"textDocument": {"uri": "file:///a"}, "position": {"line": 0, "character": 0}})
    assert response["error"]["code"] == SERVER_NOT_INITIALIZED
    assert "result" in wire.initialize()
    wire.close()


def test_server_exits_when_editor_process_dies() -> None:
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    wire = WireClient(["--stdio", "--checkpoint", "/nonexistent"])
    wire.call("initialize", {"processId": editor.pid, "rootUri": None, "capabilities": {}})
    wire.notify("initialized", {})
    editor.kill()
    editor.wait()
    # The server keeps our stdin open, so only the process poll can end it.
    assert wire.process.wait(PARENT_POLL_S * 3 + 5) == 1


def test_initialize_answers_before_model_loads(untrained_checkpoint: Path) -> None:
    wire = WireClient(["--stdio", "-vv", "--checkpoint", str(untrained_checkpoint)])
    wire.initialize(PROGRESS_CAPABILITIES)
    uri = "file:///early.py"
    wire.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "import os\n"}})
    started = time.monotonic()
    response = inline(wire, uri, 1, 0)
    assert time.monotonic() - started < 1.0
    assert "result" in response

    assert wait_model_ready(wire)
    begin = wait_for_notification(wire, "$/progress", lambda params: params["value"]["kind"] == "begin")
    end = wait_for_notification(wire, "$/progress", lambda params: params["value"]["kind"] == "end")
    assert begin["token"] == end["token"]
    assert end["value"]["message"] == "model ready"
    wire.close()


def test_missing_checkpoint_shows_fix_and_keeps_serving(tmp_path: Path) -> None:
    wire = WireClient(["--stdio", "-vv", "--checkpoint", str(tmp_path / "no-such-model")])
    wire.initialize(PROGRESS_CAPABILITIES)
    message = wait_for_notification(wire, "window/showMessage")
    assert message["type"] == 1  # Error
    assert "no-such-model" in message["message"]
    assert message["message"].endswith("comes from the --checkpoint option of tiny-copilot-lsp.")
    assert "checkpoint setting" not in message["message"]
    end = wait_for_notification(wire, "$/progress", lambda params: params["value"]["kind"] == "end")
    assert end["value"]["message"] == "model not loaded"

    wire.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///a.py", "languageId": "python", "version": 1, "text": "x"}})
    assert inline(wire, "file:///a.py", 0, 1)["result"] == {"items": []}
    wire.call("shutdown")
    wire.notify("exit")
    assert wire.process.wait(10) == 0


def test_broken_checkpoint_shows_message(untrained_checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in untrained_checkpoint.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (broken / "model.safetensors").write_bytes(b"truncated")
    wire = WireClient(["--stdio", "--checkpoint", str(broken)])
    wire.initialize()
    message = wait_for_notification(wire, "window/showMessage")
    assert message["type"] == 1
    assert "model.safetensors" in message["message"]
    wire.close()


def test_invalid_settings_are_reported_and_defaulted(untrained_checkpoint: Path) -> None:
    wire = WireClient(["--stdio", "-vv"])
    options = {"tinyCopilot": {"checkpoint": str(untrained_checkpoint), "maxNewTokens": -3, "noSuchSetting": 1}}
    wire.initialize(PROGRESS_CAPABILITIES, options)
    warning = wait_for_notification(wire, "window/showMessage", lambda params: "maxNewTokens" in params["message"])
    assert warning["type"] == 2  # Warning
    wait_for_notification(wire, "window/showMessage", lambda params: "noSuchSetting" in params["message"])
    # The valid entry still applies: the checkpoint from the settings loads.
    assert wait_model_ready(wire)
    wire.close()


def served_model(wire: WireClient) -> str | None:
    """Return the folder of the model the server serves now (the probe document of wait_model_ready must be open)."""
    state = wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": ["untitled:probe", 0, 0]})
    return state["result"]["modelPath"]


def wait_served_model(wire: WireClient, path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while served_model(wire) != str(path):
        assert time.monotonic() < deadline, f"the server serves {served_model(wire)}, not {path}, after {timeout_s} s"
        time.sleep(0.05)


def test_checkpoint_setting_change_reloads_model(untrained_checkpoint: Path, tmp_path: Path) -> None:
    wire = WireClient(["--stdio", "-vv"])
    wire.initialize(PROGRESS_CAPABILITIES, {"checkpoint": str(tmp_path / "missing")})
    wait_for_notification(wire, "window/showMessage", lambda params: "missing" in params["message"])

    wire.notify("workspace/didChangeConfiguration", {"settings": {"tinyCopilot": {"checkpoint": str(untrained_checkpoint)}}})
    assert wait_model_ready(wire)
    wait_served_model(wire, untrained_checkpoint)
    ends = [m for m in wire.notifications if m["method"] == "$/progress" and m["params"]["value"]["kind"] == "end"]
    assert [m["params"]["value"]["message"] for m in ends][-1] == "model ready"
    wire.close()


def test_bad_checkpoint_setting_serves_shipped(tmp_path: Path) -> None:
    wire = WireClient(["--stdio", "-vv"])
    wire.initialize(PROGRESS_CAPABILITIES, {"checkpoint": str(tmp_path / "missing")})

    message = wait_for_notification(wire, "window/showMessage", lambda params: "missing" in params["message"])
    assert message["type"] == 1  # Error
    assert "Serving the shipped model until the setting names a folder that loads" in message["message"]
    assert "comes from the checkpoint setting" in message["message"]
    assert "--checkpoint" not in message["message"]
    assert ".." not in message["message"]  # the load error's own "." and the fallback's joined as ".."
    assert wait_model_ready(wire)
    assert served_model(wire) == str(shipped_checkpoint_path())
    wire.close()


# With two folders, the second change arrives while the first load runs, when no model is being served.
@pytest.mark.parametrize("folders", [("typo",), ("typo-a", "typo-b")])
def test_failed_reload_keeps_previous_model(untrained_checkpoint: Path, tmp_path: Path, folders: tuple[str, ...]) -> None:
    wire = WireClient(["--stdio", "-vv"])
    wire.initialize(PROGRESS_CAPABILITIES, {"checkpoint": str(untrained_checkpoint)})
    assert wait_model_ready(wire)

    for folder in folders:
        wire.notify("workspace/didChangeConfiguration", {"settings": {"tinyCopilot": {"checkpoint": str(tmp_path / folder)}}})
    message = wait_for_notification(wire, "window/showMessage", lambda params: folders[-1] in params["message"])
    assert f"Still serving {untrained_checkpoint}" in message["message"]
    assert wait_model_ready(wire)
    assert served_model(wire) == str(untrained_checkpoint)
    wire.close()


def test_document_text_is_logged_only_at_debug(untrained_checkpoint: Path, tmp_path: Path) -> None:
    marker = "secret_marker_7f3a"
    for flags, expect_text in ((["-v"], False), (["-vv"], True)):
        log_file = tmp_path / f"server{len(flags[0])}.log"
        wire = WireClient(["--stdio", *flags, "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
        wire.initialize()
        wait_for_log(log_file, "loaded ")
        wire.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///s.py", "languageId": "python", "version": 1, "text": marker}})
        inline(wire, "file:///s.py", 0, len(marker))
        wire.call("shutdown")
        wire.notify("exit")
        assert wire.process.wait(10) == 0
        assert (marker in log_file.read_text()) is expect_text, flags


@pytest.mark.parametrize(("flags", "offered"), [(["-v"], False), (["--debug-commands"], True)])
def test_debug_command_needs_verbose_debug_or_its_flag(untrained_checkpoint: Path, flags: list[str], offered: bool) -> None:
    wire = WireClient(["--stdio", *flags, "--checkpoint", str(untrained_checkpoint)])
    capabilities = wire.initialize()["result"]["capabilities"]
    assert (DEBUG_DOCUMENT_COMMAND in capabilities.get("executeCommandProvider", {}).get("commands", [])) is offered
    response = wire.call("workspace/executeCommand", {"command": DEBUG_DOCUMENT_COMMAND, "arguments": ["file:///a", 0, 0]})
    # An unknown document gives a null result; an unoffered command gives an error.
    assert ("error" in response) is not offered
    wire.close()


@pytest.mark.parametrize("flag", ["--help", "--version-does-not-exist"])
def test_cli_prints_nothing_to_stdout_on_errors(flag: str) -> None:
    result = subprocess.run([sys.executable, "-m", "tiny_copilot.server.cli", flag], capture_output=True, text=True, timeout=30)
    if flag == "--help":
        assert result.returncode == 0
        assert "--checkpoint" in result.stdout
    else:
        assert result.returncode == 2
        assert result.stdout == ""
        assert "unrecognized arguments" in result.stderr


def test_shutdown_while_model_loads_is_quiet(untrained_checkpoint: Path, tmp_path: Path) -> None:
    """shutdown right after initialized stops the model load without an error message or traceback."""
    log_file = tmp_path / "server.log"
    wire = WireClient(["--stdio", "-v", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    wire.initialize(PROGRESS_CAPABILITIES)
    # The load has started once its progress begins; importing torch alone then takes about a second.
    wait_for_notification(wire, "$/progress", lambda params: params["value"]["kind"] == "begin")
    assert "result" in wire.call("shutdown", timeout_s=30)
    # `exit` ends the process at once, so wait for the load to end first.
    deadline = time.monotonic() + 60
    load_ended = re.compile("model loading cancelled|loading the model failed")
    while time.monotonic() < deadline and not load_ended.search(log_file.read_text(encoding="utf-8")):
        time.sleep(0.05)
    wire.notify("exit")
    assert wire.process.wait(30) == 0

    log = log_file.read_text(encoding="utf-8")
    assert "model loading cancelled: the server is shutting down" in log
    assert "Traceback" not in log
    errors = [n for n in wire.notifications if n["method"] == "window/showMessage" and n["params"]["type"] == 1]
    assert errors == []


class ConfigurationReplyClient(WireClient):
    """Replies to workspace/configuration with `reply`, where LSP expects an array."""

    def __init__(self, reply: object, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.reply = reply

    def _answer_server_request(self, message: dict) -> None:
        if message["method"] == "workspace/configuration":
            self.send({"id": message["id"], "result": self.reply})
        else:
            super()._answer_server_request(message)


@pytest.mark.parametrize(("reply", "shown"), [(None, "null"), ({"maxNewTokens": 3}, '{"maxNewTokens": 3}')])
def test_non_array_configuration_is_logged(
    untrained_checkpoint: Path, tmp_path: Path, reply: object, shown: str
) -> None:
    log_file = tmp_path / "server.log"
    wire = ConfigurationReplyClient(reply, ["--stdio", "-v", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    wire.initialize({"workspace": {"configuration": True}})
    wire.notify("workspace/didChangeConfiguration", {"settings": None})
    # Without the fallback, a null response was rejected and the server waited for it forever without
    # a message. An object was read as the list of its keys, and its first key as the settings.
    expected = f"workspace/configuration returned {shown}, not an array"
    deadline = time.monotonic() + 10
    while expected not in log_file.read_text():
        assert time.monotonic() < deadline, f"{expected!r} not logged within 10 s"
        inline(wire, "file:///never-opened.py", 0, 0)  # lets the client read the server's request and reply
    wire.call("shutdown")
    wire.notify("exit")
    assert wire.process.wait(10) == 0


def test_pulled_settings_are_applied(untrained_checkpoint: Path, tmp_path: Path) -> None:
    """A client that sends didChangeConfiguration without settings returns them from workspace/configuration."""
    log_file = tmp_path / "server.log"
    reply = [{"temperature": "warm"}]
    wire = ConfigurationReplyClient(reply, ["--stdio", "-v", "--checkpoint", str(untrained_checkpoint)], log_file=log_file)
    wire.initialize({"workspace": {"configuration": True}})
    wire.notify("workspace/didChangeConfiguration", {"settings": None})
    # The invalid value is reported only if the pulled settings were read.
    deadline = time.monotonic() + 10
    while not [n for n in wire.notifications if n["method"] == "window/showMessage" and "temperature" in n["params"]["message"]]:
        assert time.monotonic() < deadline, f"no warning about temperature within 10 s; log:\n{log_file.read_text()}"
        inline(wire, "file:///never-opened.py", 0, 0)  # lets the client read the server's request and reply
    assert "not an array" not in log_file.read_text()
    wire.call("shutdown")
    wire.notify("exit")
    assert wire.process.wait(10) == 0


def test_closed_stdout_ends_the_server(tmp_path: Path) -> None:
    """An editor that closes the server's stdout but keeps its stdin open must not leave the server running."""
    log_file = tmp_path / "server.log"
    command = [sys.executable, "-m", "tiny_copilot.server.cli", "--stdio", "--log-file", str(log_file)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdin is not None and process.stdout is not None
    process.stdout.close()
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": null, "capabilities": {}}}'
    process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    process.stdin.flush()
    try:
        assert process.wait(10) == 1
    finally:
        process.kill()
    assert "broken pipe" in log_file.read_text()
