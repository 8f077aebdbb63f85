"""Helpers for end-to-end tests: start `tiny-copilot-lsp` under pytest-lsp's client with an editor profile."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from tiny_copilot.server.lsp import DEBUG_DOCUMENT_COMMAND

PROFILES = ("neovim@v0.7.0", "visual-studio-code", "utf-8-client")
"""Client capability sets: two recorded from real editors, and one that prefers UTF-8 positions (like Neovim 0.10+)."""

READY_TIMEOUT_S = 60.0


def capabilities_for(profile: str) -> types.ClientCapabilities:
    if profile != "utf-8-client":
        return client_capabilities(profile)
    capabilities = client_capabilities("visual-studio-code")
    capabilities.general = types.GeneralClientCapabilities(
        position_encodings=[types.PositionEncodingKind.Utf8, types.PositionEncodingKind.Utf16]
    )
    return capabilities


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tiny_copilot.server.cli", "--stdio", *args]


@asynccontextmanager
async def lsp_session(
    profile: str,
    args: list[str],
    initialization_options: Any = None,
    wait_ready: bool = True,
) -> AsyncIterator[LanguageClient]:
    """Start the server, initialize it with `profile`'s capabilities, and shut it down afterwards."""
    client = make_test_lsp_client()
    await client.start_io(*server_command(*args))
    try:
        client.initialize_result = await client.initialize_session(  # type: ignore[attr-defined]
            types.InitializeParams(
                capabilities=capabilities_for(profile),
                initialization_options=initialization_options,
                client_info=types.ClientInfo(name=f"pytest {profile}"),
            )
        )
        if wait_ready:
            await wait_until_ready(client)
        yield client
        await client.shutdown_session()
    finally:
        await client.stop()


async def document_state(client: LanguageClient, uri: str, line: int = 0, character: int = 0) -> dict[str, Any] | None:
    """Read the server's copy of `uri` through the -vv diagnostic command."""
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=DEBUG_DOCUMENT_COMMAND, arguments=[uri, line, character])
    )
    return None if result is None else _as_dict(result)


async def wait_until_ready(client: LanguageClient, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until the model is loaded, polling the diagnostic command."""
    uri = "untitled:readiness-probe"
    open_document(client, uri, "")
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        state = await document_state(client, uri)
        if state is not None and state["modelReady"]:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"model not ready after {timeout_s} s; server messages: {client.messages}")
        await asyncio.sleep(0.05)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))


def open_document(client: LanguageClient, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)
        )
    )


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )


def completion_params(uri: str, line: int, character: int) -> types.CompletionParams:
    return types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
    )


def apply_edit(text: str, edit_range: types.Range, new_text: str, encoding: str) -> str:
    """Apply an edit to `text` as a client does, counting columns in `encoding` (independent of the server's code)."""
    start = _client_offset(text, edit_range.start, encoding)
    end = _client_offset(text, edit_range.end, encoding)
    return text[:start] + new_text + text[end:]


def _client_offset(text: str, position: types.Position, encoding: str) -> int:
    pieces = re.split(r"(\r\n|\r|\n)", text)
    contents, endings = pieces[0::2], pieces[1::2] + [""]
    if position.line >= len(contents):
        return len(text)  # a line past the last one means the end of the document, as VS Code clamps it
    line = position.line
    offset = sum(len(c) + len(e) for c, e in zip(contents[:line], endings[:line]))
    unit_bytes = {"utf-8": 1, "utf-16": 2, "utf-32": 4}[encoding]
    codec = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}[encoding]
    encoded = contents[line].encode(codec)[: position.character * unit_bytes]
    return offset + len(encoded.decode(codec, errors="ignore"))


def encoding_of(profile: str) -> str:
    return "utf-8" if profile == "utf-8-client" else "utf-16"


def _as_dict(value: Any) -> Any:
    """Turn pygls' namedtuple-like results of custom commands into plain dicts and lists."""
    if hasattr(value, "_asdict"):
        return {key: _as_dict(item) for key, item in value._asdict().items()}
    if isinstance(value, list):
        return [_as_dict(item) for item in value]
    return value
