"""A raw JSON-RPC connection to `tiny-copilot-lsp` over stdio, for tests that must send malformed bytes.

pytest-lsp's client only sends well-formed, typed messages; this one writes any frame and reads
every message the server sends, on a reader thread.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

SERVER_MODULE = "tiny_copilot.server.cli"


class WireClient:
    def __init__(self, args: list[str], log_file: Path | None = None) -> None:
        command = [sys.executable, "-m", SERVER_MODULE, *args]
        if log_file is not None:
            command += ["--log-file", str(log_file)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.frame_errors: list[str] = []
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send_bytes(self, body: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8"))

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any = None) -> int:
        msg_id = next(self._ids)
        self.send({"id": msg_id, "method": method, "params": params})
        return msg_id

    def call(self, method: str, params: Any = None, timeout_s: float = 10.0) -> dict[str, Any]:
        return self.wait_response(self.request(method, params), timeout_s)

    def wait_response(self, msg_id: Any, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while msg_id not in self.responses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response to request {msg_id!r} within {timeout_s} s")
            self._pump(remaining)
        return self.responses.pop(msg_id)

    def wait_null_id_errors(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.responses.get(None, {}).get("all", [])) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._pump(remaining)
        return self.responses.get(None, {}).get("all", [])

    def wait_notification(self, method: str, predicate=lambda params: True, timeout_s: float = 30.0) -> dict[str, Any]:
        """Return the params of the first notification `method` whose params satisfy `predicate`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in self.notifications:
                if message["method"] == method and predicate(message["params"]):
                    return message["params"]
            self._pump(0.2)
        raise TimeoutError(f"no {method} within {timeout_s} s; got {[m['method'] for m in self.notifications]}")

    def initialize(self, capabilities: dict[str, Any] | None = None, options: Any = None) -> dict[str, Any]:
        params = {"processId": None, "rootUri": None, "capabilities": capabilities or {}, "initializationOptions": options}
        response = self.call("initialize", params)
        self.notify("initialized", {})
        return response

    def close(self, timeout_s: float = 10.0) -> int:
        """Close stdin and return the exit code, killing the server if it does not exit in time."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def _pump(self, timeout_s: float) -> None:
        try:
            message = self.messages.get(timeout=min(timeout_s, 0.5))
        except queue.Empty:
            return
        if message is None:
            raise ConnectionError(f"server closed stdout (exit code {self.process.poll()})")
        if "method" in message and "id" in message:
            self._answer_server_request(message)
        elif "method" in message:
            self.notifications.append(message)
        elif message.get("id") is None:
            self.responses.setdefault(None, {"all": []})["all"].append(message)
        else:
            self.responses[message["id"]] = message

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [None for _ in message["params"]["items"]]
        self.send({"id": message["id"], "result": result})

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                header = stream.readline()
                if not header:
                    self.messages.put(None)
                    return
                if header == b"\r\n":
                    break
                name, _, value = header.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                self.frame_errors.append("frame without Content-Length")
                continue
            body = stream.read(length)
            try:
                self.messages.put(json.loads(body))
            except json.JSONDecodeError as exc:
                self.frame_errors.append(f"server sent invalid JSON: {exc}: {body[:200]!r}")
