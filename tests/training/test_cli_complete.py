"""`tiny-copilot complete` prints what the language server's Completer suggests at the same cursor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.model.engine import Engine
from tiny_copilot.server.completion import Completer
from tiny_copilot.server.settings import ServerSettings
from tiny_copilot.training.cli import main
from tiny_copilot.training.complete_cli import cursor_from_location, interpret_escapes

SOURCE = "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n"


def _completer_text(checkpoint: Path, text: str, offset: int, language_id: str | None = None) -> str:
    loaded = load_checkpoint(checkpoint)
    completer = Completer(Engine(loaded.model, loaded.tokenizer), ServerSettings(enabled_languages=("*",)))
    suggestion = completer.complete(text, offset, language_id=language_id)
    return "" if suggestion is None else suggestion.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a\\nb", "a\nb"), ("\\tx", "\tx"), ("é\\n", "é\n"), ("😀", "😀"), ("back\\\\slash", "back\\slash"), ("\\x41", "A")],
)
def test_interpret_escapes(raw: str, expected: str) -> None:
    assert interpret_escapes(raw) == expected


@pytest.mark.parametrize("raw", ["a\\", 'path = "C:\\Users', "\\x4"])
def test_invalid_escape_says_how_to_write_a_backslash(raw: str, capsys) -> None:
    with pytest.raises(ValueError, match=r"write \\\\ for a backslash"):
        interpret_escapes(raw)
    assert main(["complete", "--prompt", raw]) == 2
    assert "write \\\\ for a backslash" in capsys.readouterr().err


def test_train_reports_invalid_sample_prompt_escape(capsys) -> None:
    assert main(["train", "--sample-prompt", "a\\", "--dry-run"]) == 2
    assert "write \\\\ for a backslash" in capsys.readouterr().err


def test_prompt_matches_completer(trained_checkpoint: Path, capsys) -> None:
    prompt = "def dfs(graph, start):\n    "
    expected = _completer_text(trained_checkpoint, prompt, len(prompt), language_id="python")

    assert main(["complete", "--checkpoint", str(trained_checkpoint), "--prompt", "def dfs(graph, start):\\n    "]) == 0
    captured = capsys.readouterr()

    if expected:
        assert captured.out == expected + ("" if expected.endswith("\n") else "\n")
    else:
        assert captured.out == ""
        assert "no suggestion" in captured.err


def test_location_uses_prefix_and_suffix(trained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "example.py"
    path.write_text(SOURCE, encoding="utf-8")
    offset = len("def add(a, b):\n    return ")
    expected = _completer_text(trained_checkpoint, SOURCE, offset, "python")

    assert main(["complete", "--checkpoint", str(trained_checkpoint), f"{path}:2:12"]) == 0
    out = capsys.readouterr().out

    assert out.rstrip("\n") == expected.rstrip("\n")


def test_location_maps_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "crlf.c"
    path.write_bytes(SOURCE.replace("\n", "\r\n").encode("utf-8"))

    cursor = cursor_from_location(f"{path}:2:5")

    assert cursor.text == SOURCE
    assert cursor.text[: cursor.offset] == "def add(a, b):\n    "
    assert cursor.language_id == "c"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("namespace shapes {\nint area(int w, int h);\n}\n", "cpp"),
        ("#include <stddef.h>\nsize_t area(size_t w, size_t h);\n", "c"),
    ],
)
def test_location_in_header_gets_language_by_content(tmp_path: Path, header: str, language: str) -> None:
    path = tmp_path / "shapes.h"
    path.write_text(header, encoding="utf-8")

    assert cursor_from_location(f"{path}:1:1").language_id == language


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("{path}:9:1", "line 9 is outside"),
        ("{path}:2:40", "column 40 is outside line 2"),
        ("{path}:0:1", "line 0 is outside"),
        ("{path}", "invalid location"),
        ("{missing}:1:1", "not found"),
        ("{folder}:1:1", "is a folder, not a file; pass a source file"),
        ("{latin1}:1:1", "is not UTF-8 text (invalid byte 0xe9 at offset 11); save it as UTF-8"),
    ],
)
def test_invalid_location_is_reported(untrained_checkpoint: Path, tmp_path: Path, location: str, message: str, capsys) -> None:
    path = tmp_path / "example.py"
    path.write_text(SOURCE, encoding="utf-8")
    (tmp_path / "latin1.py").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    argument = location.format(path=path, missing=tmp_path / "missing.py", folder=tmp_path, latin1=tmp_path / "latin1.py")

    assert main(["complete", "--checkpoint", str(untrained_checkpoint), argument]) == 2
    assert message in capsys.readouterr().err


def test_prompt_and_location_are_exclusive(untrained_checkpoint: Path, capsys) -> None:
    assert main(["complete", "--checkpoint", str(untrained_checkpoint)]) == 2
    assert main(["complete", "--checkpoint", str(untrained_checkpoint), "--prompt", "x", "a.py:1:1"]) == 2
    assert capsys.readouterr().err.count("give either --prompt TEXT or FILE:LINE:COL") == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-new-tokens", "0"], "--max-new-tokens must be an integer from 1 to 512, got 0"),
        (["--max-new-tokens", "513"], "--max-new-tokens must be an integer from 1 to 512, got 513"),
        (["--temperature", "-1"], "--temperature must be a number from 0 to 2, got -1.0"),
        (["--seed", "-1"], "--seed must be an integer from 0 to 2147483647, got -1"),
    ],
)
def test_invalid_option_is_named(untrained_checkpoint: Path, arguments: list[str], message: str, capsys) -> None:
    assert main(["complete", "--checkpoint", str(untrained_checkpoint), "--prompt", "x", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "ServerSettings" not in error
    assert "max_new_tokens" not in error


def test_unknown_language_is_rejected(untrained_checkpoint: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["complete", "--checkpoint", str(untrained_checkpoint), "--prompt", "fn main() {", "--language", "rust"])

    assert exit_info.value.code == 2
    assert "invalid choice: 'rust' (choose from 'c', 'cpp', 'python')" in capsys.readouterr().err


def test_missing_checkpoint_is_reported(tmp_path: Path, capsys) -> None:
    assert main(["complete", "--checkpoint", str(tmp_path / "nothing"), "--prompt", "x"]) == 1
    assert "not found" in capsys.readouterr().err


def test_sampling_with_seed_repeats(trained_checkpoint: Path, capsys) -> None:
    args = ["complete", "--checkpoint", str(trained_checkpoint), "--prompt", "import ", "--temperature", "0.8", "--seed", "3"]
    outputs = []
    for _ in range(2):
        assert main(args) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
