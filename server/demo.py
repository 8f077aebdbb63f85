"""`make run`: start `tiny-copilot-lsp` as an editor would, ask for one inline completion, and print it.

The demo is a real LSP client over stdio (pygls' LanguageClient): it opens examples/example.py with
one line cut short at the cursor, requests textDocument/inlineCompletion, and shows the suggestion
as ghost text. Then it prints how to connect an editor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "example.py"
CURSOR_AFTER = "    return max(items, key="
"""The demo cuts the example's line at the end of this text and puts the cursor there."""
READY_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.2
GREY, RESET = "\033[90m", "\033[0m"

EDITOR_HELP = """\
Connect an editor (the server, `tiny-copilot-lsp`, speaks LSP over stdio):
  VS Code: build and install the extension: see editor-clients/vscode/README.md.
  Neovim 0.7+: load the plugin in editor-clients/nvim and call require("tiny_copilot").setup({}).
  Any other LSP client: run `tiny-copilot-lsp --stdio` for files of your language.
  Serve your own model with --checkpoint DIR or the tinyCopilot.checkpoint setting."""


def split_at_cursor(text: str) -> tuple[str, str, int, int]:
    """Cut the line containing CURSOR_AFTER right after it; return (document, line text before the cursor, line, column)."""
    anchor = text.index(CURSOR_AFTER) + len(CURSOR_AFTER)
    line_end = text.index("\n", anchor)
    document = text[:anchor] + text[line_end:]
    line = text.count("\n", 0, anchor)
    line_start = text.rindex("\n", 0, anchor) + 1
    # The example is ASCII up to the cursor, so a str column equals a UTF-16 column here.
    return document, text[line_start:anchor], line, anchor - line_start


async def request_suggestion(server_command: list[str], example: Path) -> int:
    document, before_cursor, line, column = split_at_cursor(example.read_text(encoding="utf-8"))
    errors: list[str] = []
    client = LanguageClient("tiny-copilot-demo", "0.1.0")

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show_message(params: types.ShowMessageParams) -> None:
        print(f"server: {params.message}", file=sys.stderr)
        if params.type == types.MessageType.Error:
            errors.append(params.message)

    await client.start_io(*server_command)
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(), process_id=None))
    client.initialized(types.InitializedParams())
    uri = example.resolve().as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=document))
    )
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=column),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )

    # The model loads in the background; until then the server returns an empty list.
    started = time.monotonic()
    result = await client.text_document_inline_completion_async(params)
    while not (result and result.items) and not errors and time.monotonic() - started < READY_TIMEOUT_S:
        await asyncio.sleep(POLL_INTERVAL_S)
        result = await client.text_document_inline_completion_async(params)

    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    if errors:
        print("The server could not load its model; see the message above.", file=sys.stderr)
        return 1
    print(f"\n{example.name}, line {line + 1}, cursor after {before_cursor.strip()!r}:\n")
    if not result or not result.items:
        print(f"{before_cursor}|   (no suggestion)")
    else:
        suggestion = str(result.items[0].insert_text)
        first, *rest = suggestion.split("\n")
        # Grey like ghost text on a terminal; plain text when the output goes to a file or a pipe.
        grey, reset = (GREY, RESET) if sys.stdout.isatty() else ("", "")
        print(f"{before_cursor}{grey}{first}{reset}")
        for extra in rest:
            print(f"{grey}{extra}{reset}")
        print(f"\nsuggestion: {suggestion!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tiny_copilot.server.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder to serve (default: the shipped model)")
    parser.add_argument("--example", type=Path, default=EXAMPLE, help="Python file to complete in (default: examples/example.py)")
    args = parser.parse_args(argv)

    server = [sys.executable, "-m", "tiny_copilot.server.cli", "--stdio"]
    if args.checkpoint is not None:
        server += ["--checkpoint", str(args.checkpoint)]
    code = asyncio.run(request_suggestion(server, args.example))
    print()
    print(EDITOR_HELP)
    return code


if __name__ == "__main__":
    sys.exit(main())
