"""A blocking LSP client over stdio that plays an editor for the typing replay.

It starts the real `tiny-copilot-lsp` process, frames JSON-RPC messages with Content-Length
headers, replies to the few requests a server may send to its client, and exposes the document as a
`SuggestionSource`: didOpen, one incremental didChange per keystroke or accepted suggestion, and a
textDocument/inlineCompletion request after each change. Positions are sent in UTF-16 code units,
the encoding every LSP client supports.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

_INLINE_TRIGGER_AUTOMATIC = 2


class LspError(RuntimeError):
    """The server failed, replied with an error, or did not reply in time."""


class StdioLanguageClient:
    """One server process and the JSON-RPC conversation with it."""

    def __init__(
        self,
        command: Sequence[str],
        stderr_path: Path,
        timeout_s: float = 30.0,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.command = list(command)
        self.timeout_s = timeout_s
        self.settings = settings
        self.spawned_at = time.perf_counter()
        self.first_suggestion_at: float | None = None
        """perf_counter() when an inlineCompletion reply first showed text; set by LspSource."""
        self._stderr = open(stderr_path, "wb")
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0
        )
        self._next_id = 1
        self._responses: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    # --- JSON-RPC ----------------------------------------------------------------------------

    def request(self, method: str, params: Any) -> Any:
        """Send a request and wait for its result; raise LspError on an error reply or a timeout."""
        request_id = self._next_id
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                message = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise LspError(f"{method} got no reply within {self.timeout_s} s; see the server log") from None
            if message.get("id") != request_id:
                log.debug("dropping a stale reply %s", message.get("id"))
                continue
            if "error" in message:
                raise LspError(f"{method} failed: {message['error']}")
            return message.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _send(self, message: dict[str, Any]) -> None:
        if self.process.poll() is not None:
            raise LspError(f"the language server exited with status {self.process.returncode}; see its log")
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def _read_loop(self, stream: IO[bytes]) -> None:
        while True:
            message = _read_message(stream)
            if message is None:
                return
            if "method" in message and "id" in message:
                self._answer_server_request(message)
            elif "method" not in message:
                self._responses.put(message)

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        # Configuration requests get this client's settings (None: the server keeps its defaults).
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [self.settings] * len(message.get("params", {}).get("items", []))
        try:
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        except (LspError, OSError):
            pass  # the server is going away; its exit is reported by the next request

    # --- lifecycle ---------------------------------------------------------------------------

    def initialize(self, root: Path) -> dict[str, Any]:
        capabilities = {
            "general": {"positionEncodings": ["utf-16"]},
            "textDocument": {
                "synchronization": {"dynamicRegistration": False},
                "inlineCompletion": {"dynamicRegistration": False},
            },
            "workspace": {"configuration": True},
        }
        result = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.resolve().as_uri(),
                "capabilities": capabilities,
                "initializationOptions": self.settings,
            },
        )
        self.notify("initialized", {})
        return result

    def rss_kib(self) -> dict[str, int]:
        """Return the server's current and peak resident memory (VmRSS, VmHWM) in KiB, from /proc."""
        figures = {}
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    figures[key] = int(value.split()[0])
        except OSError:
            log.warning("cannot read the memory of server process %d", self.process.pid)
        return figures

    def close(self) -> None:
        """Shut the server down politely, killing it if it does not exit within a few seconds."""
        try:
            if self.process.poll() is None:
                self.request("shutdown", None)
                self.notify("exit", None)
                self.process.wait(timeout=5)
        except (LspError, OSError, subprocess.TimeoutExpired) as error:
            log.warning("language server did not shut down cleanly (%s); killing it", error)
            self.process.kill()
            self.process.wait()
        finally:
            self._stderr.close()


class LspSource:
    """A document in the server, seen as a SuggestionSource; the cursor is always at its end."""

    def __init__(self, client: StdioLanguageClient, uri: str, language_id: str) -> None:
        self.client = client
        self.uri = uri
        self.language_id = language_id
        self.version = 0
        self.text = ""
        self.last_result: Any = None

    def open(self, text: str) -> None:
        self.version = 1
        self.text = text
        self.client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": self.uri, "languageId": self.language_id, "version": self.version, "text": text}},
        )

    def insert(self, text: str) -> None:
        self.version += 1
        at = self._cursor()
        self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
            },
        )
        self.text += text

    def _cursor(self) -> dict[str, int]:
        line_start = self.text.rfind("\n") + 1
        return {"line": self.text.count("\n"), "character": _utf16_length(self.text[line_start:])}

    def suggest(self) -> str:
        result = self.client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": self._cursor(),
                "context": {"triggerKind": _INLINE_TRIGGER_AUTOMATIC},
            },
        )
        self.last_result = result
        shown = shown_text(result, self.text[self.text.rfind("\n") + 1 :])
        if shown and self.client.first_suggestion_at is None:
            self.client.first_suggestion_at = time.perf_counter()
        return shown

    def close(self) -> None:
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": self.uri}})


def shown_text(result: Any, line_before_cursor: str) -> str:
    """Return the ghost text an editor shows after the cursor for an inlineCompletion result.

    Only the first item counts. An item whose range starts before the cursor on the cursor's line
    replaces the text typed there, so the part of its insertText that repeats that text is not shown.
    An item that does not repeat it shows nothing, because an editor would not offer it as ghost text.
    """
    items = result.get("items", []) if isinstance(result, dict) else result or []
    if not items:
        return ""
    item = items[0]
    text = item["insertText"]
    if isinstance(text, dict):  # a StringValue snippet; ghost text shows its value
        text = text.get("value", "")
    item_range = item.get("range")
    if not item_range:
        return text
    start_utf16 = item_range["start"]["character"]
    cursor_utf16 = _utf16_length(line_before_cursor)
    if start_utf16 >= cursor_utf16:
        return text
    replaced = line_before_cursor.encode("utf-16-le")[2 * start_utf16 :].decode("utf-16-le")
    return text[len(replaced) :] if text.startswith(replaced) else ""


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """Read one framed message; None at end of stream."""
    length = None
    while True:
        header = stream.readline()
        if not header:
            return None
        header = header.strip()
        if not header:
            break
        name, _, value = header.decode("ascii").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    if length is None:
        return None
    body = b""
    while len(body) < length:
        chunk = stream.read(length - len(body))
        if not chunk:
            return None
        body += chunk
    return json.loads(body)
