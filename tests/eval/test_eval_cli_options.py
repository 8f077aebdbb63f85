"""`tiny-copilot eval` option errors name the option the user typed, before any model work."""

import pytest

from tiny_copilot.training.cli import main


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--limit", "0", "argument --limit: must be 1 or more, got 0"),
        ("--limit", "x", "argument --limit: must be an integer, got 'x'"),
        ("--typing-files", "-2", "argument --typing-files: must be 1 or more, got -2"),
        ("--line-cases", "-1", "argument --line-cases: must be 0 or more, got -1"),
        ("--humaneval-limit", "0", "argument --humaneval-limit: must be 1 or more, got 0"),
    ],
)
def test_bad_count_names_option(option: str, value: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", option, value])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_zero_line_cases_is_allowed(capsys) -> None:
    # 0 skips line completion; the run then fails later, on the missing checkpoint, not on the option.
    assert main(["eval", "--line-cases", "0", "--checkpoint", "/nonexistent/checkpoint"]) == 2
    assert "--line-cases" not in capsys.readouterr().err
