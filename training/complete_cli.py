"""`tiny-copilot complete`: one suggestion from a checkpoint, through the language server's completion code.

The command builds the same `Completer` as the server (SPM prompt, token healing, stop rules,
clean-up), so what it prints is what an editor would show at that cursor.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_LOCATION = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<column>\d+)$")

SETTING_OPTIONS = {
    "max_new_tokens": "--max-new-tokens",
    "temperature": "--temperature",
    "seed": "--seed",
    "multiline": "--multiline",
}
"""The ServerSettings fields that this command sets from an option, and that option."""


def interpret_escapes(text: str) -> str:
    r"""Turn backslash escapes (\n, \t, \\, \x41, \u00e9) into characters; other characters stay as they are."""
    # Non-Latin-1 characters become \UXXXXXXXX escapes first, so unicode_escape decodes them back unchanged.
    try:
        return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"invalid backslash escape ({exc.reason}) in: {text}\nwrite \\\\ for a backslash, such as C:\\\\Users"
        ) from None


@dataclass(frozen=True)
class CursorInput:
    text: str
    """The document with "\n" line endings."""
    offset: int
    """Python str index of the cursor in `text`."""
    language_id: str | None


def cursor_from_location(location: str) -> CursorInput:
    """Read `FILE:LINE:COL` (1-based; COL counts characters) into a document and cursor; raise ValueError if invalid."""
    match = _LOCATION.match(location)
    if match is None:
        raise ValueError(f"invalid location {location!r}; write FILE:LINE:COL with a 1-based line and column, such as app.py:12:5")
    path = Path(match["path"]).expanduser()
    line, column = int(match["line"]), int(match["column"])
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"file {path} not found") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a file; pass a source file as FILE:LINE:COL") from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise ValueError(f"line {line} is outside {path}, which has {len(lines)} lines")
    if not 1 <= column <= len(lines[line - 1]) + 1:
        raise ValueError(
            f"column {column} is outside line {line} of {path}, which has {len(lines[line - 1])} characters "
            f"(columns 1 to {len(lines[line - 1]) + 1} are valid)"
        )
    offset = sum(len(previous) + 1 for previous in lines[: line - 1]) + column - 1
    return CursorInput(text, offset, _language_of(path, text))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from tiny_copilot.server.settings import MULTILINE_MODES, ServerSettings

    defaults = ServerSettings()
    parser = subparsers.add_parser(
        "complete",
        help="print one completion from a checkpoint",
        description="Print the suggestion that the language server would show. Give either --prompt (the text "
        "before the cursor, nothing after it) or FILE:LINE:COL (the text before the cursor is the prefix, "
        "the text after it the suffix).",
    )
    parser.add_argument("location", nargs="?", metavar="FILE:LINE:COL", help="cursor in a file; 1-based line and column, the column in characters")
    parser.add_argument("--prompt", help="text before the cursor; backslash escapes such as \\n and \\t are interpreted")
    parser.add_argument("--checkpoint", type=Path, metavar="DIR", help="checkpoint folder (default: the model installed with the package)")
    options = SETTING_OPTIONS
    parser.add_argument(options["max_new_tokens"], type=int, default=defaults.max_new_tokens, help=f"maximum tokens to generate (default {defaults.max_new_tokens})")
    parser.add_argument(options["temperature"], type=float, default=defaults.temperature, help="sampling temperature; 0 is greedy and deterministic (default 0)")
    parser.add_argument(options["seed"], type=int, default=defaults.seed, help=f"seed of sampling when --temperature is above 0 (default {defaults.seed})")
    parser.add_argument(options["multiline"], choices=MULTILINE_MODES, default=defaults.multiline, help=f"when to suggest several lines (default {defaults.multiline})")
    from .corpus_rules import LANGUAGE_BY_SUFFIX

    # A checkpoint learns only the languages that the corpus reader accepts.
    languages = sorted(set(LANGUAGE_BY_SUFFIX.values()))
    parser.add_argument(
        "--language",
        choices=languages,
        help=f"LSP language id, one of {', '.join(languages)}, which picks the stop rules (default: from the file suffix; python with --prompt)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if (args.prompt is None) == (args.location is None):
        print("tiny-copilot complete: error: give either --prompt TEXT or FILE:LINE:COL", file=sys.stderr)
        return 2
    try:
        if args.prompt is not None:
            prompt = interpret_escapes(args.prompt).replace("\r\n", "\n")
            # Without a file there is no suffix to tell the language, and with none no stop rules of any
            # language apply. Python is the README's example language.
            cursor = CursorInput(prompt, len(prompt), "python")
        else:
            cursor = cursor_from_location(args.location)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"tiny-copilot complete: error: {exc}", file=sys.stderr)
        return 2

    from tiny_copilot.model.checkpoint import CheckpointError, load_checkpoint, shipped_checkpoint_path
    from tiny_copilot.model.engine import Engine
    from tiny_copilot.server.completion import Completer
    from tiny_copilot.server.settings import InvalidSettingError, ServerSettings

    try:
        from_options = {name: getattr(args, name) for name in SETTING_OPTIONS}
        settings = ServerSettings(**from_options, enabled_languages=("*",))
    except InvalidSettingError as exc:
        print(f"tiny-copilot complete: error: {exc.message_for(SETTING_OPTIONS[exc.field_name])}", file=sys.stderr)
        return 2
    try:
        checkpoint = load_checkpoint(args.checkpoint or shipped_checkpoint_path())
    except CheckpointError as exc:
        print(f"tiny-copilot complete: error: {exc}", file=sys.stderr)
        return 1

    import torch

    torch.set_num_threads(settings.effective_threads())
    completer = Completer(Engine(checkpoint.model, checkpoint.tokenizer), settings)
    suggestion = completer.complete(cursor.text, cursor.offset, language_id=args.language or cursor.language_id)
    if suggestion is None:
        print("(no suggestion: the model proposed nothing worth showing at this cursor)", file=sys.stderr)
        return 0
    sys.stdout.write(suggestion.text + ("" if suggestion.text.endswith("\n") else "\n"))
    return 0


def _language_of(path: Path, text: str) -> str | None:
    """Return the language the corpus gives this file (a .h file by content), or None for other types."""
    from .corpus_rules import source_language

    return source_language(path, text, explicit=False)
