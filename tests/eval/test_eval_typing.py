import pytest

from tiny_copilot.training.eval_typing import (
    TypingResult,
    WordCompletionSource,
    accepted_length,
    indentation_mask,
    replay,
)


@pytest.mark.parametrize(
    ("suggestion", "upcoming", "expected"),
    [
        ("return x", "return x\n", 8),  # whole suggestion
        ("return y", "return x\n", 7),  # "return " ends at a word boundary
        ("foo(bar, baz)", "foo(bar, qux)", 9),  # "foo(bar, "
        ("counter", "count += 1", 0),  # the match ends inside the suggested word
        ("foo(", "foobar", 3),  # the suggested word "foo" is accepted, "bar" is typed
        ("x", "x + 1", 0),  # one character saves nothing once Tab is counted
        ("ab", "ab", 2),
        ("abc", "ab", 0),  # the file ends inside the suggested word
        ("", "abc", 0),
    ],
)
def test_accepted_length(suggestion, upcoming, expected):
    assert accepted_length(suggestion, upcoming) == expected


class ScriptedSource:
    """Returns suggestions from a table keyed by the document text; records what the replay sent."""

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.text = ""
        self.inserts: list[str] = []

    def open(self, text: str) -> None:
        self.text = text

    def insert(self, text: str) -> None:
        self.inserts.append(text)
        self.text += text

    def suggest(self) -> str:
        return self.script.get(self.text, "")

    def close(self) -> None:
        pass


def test_replay_counts_scripted_suggestions():
    to_type = "total = count + 1\n"
    source = ScriptedSource(
        {
            "to": "tal = count + 1\n",  # accepted whole: 16 characters, one Tab
        }
    )
    result = replay(source, "", to_type)

    assert result.chars == 18
    assert result.typed == 2
    assert result.accepted == 1
    assert result.accepted_chars == 16
    assert result.keystrokes == 3
    assert result.keystrokes_saved == pytest.approx(1 - 3 / 18)
    assert result.requests == 3  # before "t", before "o", after "to"
    assert result.shown == 1
    assert source.inserts == ["t", "o", "tal = count + 1\n"]
    assert source.text == to_type


def test_replay_accepts_up_to_word_boundary_and_continues():
    source = ScriptedSource({"x": " = compute(a)", "x = compute(": "b)"})
    result = replay(source, "", "x = compute(b)")

    # " = compute(" (11 chars) up to the boundary before "a", then "b)" whole.
    assert source.inserts == ["x", " = compute(", "b)"]
    assert result.accepted_chars == 13
    assert result.keystrokes == 3


def test_replay_ignores_suggestions_that_do_not_match():
    source = ScriptedSource({"": "from os", "i": "f x:"})
    result = replay(source, "", "import os")
    assert result.accepted == 0
    assert result.shown == 2
    assert result.keystrokes_saved == 0.0


def test_replay_counts_saved_chars_by_position():
    before = "a" * 90
    source = ScriptedSource({before + "b": "cdefghij"})
    result = replay(source, before, "bcdefghij")
    assert sum(result.chars_by_position) == 9
    assert result.saved_by_position[9] == 8
    assert sum(result.saved_by_position) == 8


def test_word_completion_uses_nearest_earlier_word():
    source = WordCompletionSource()
    source.open("counter = 0\ncount_max = 5\ncou")
    assert source.suggest() == "nt_max"

    source.insert("nter")
    assert source.suggest() == ""  # no earlier word extends "counter"
    source.insert(" ")
    assert source.suggest() == ""  # not inside a word


def test_word_completion_baseline_on_hand_made_buffer():
    text = "value = 1\nvalue += value\n"
    result = replay(WordCompletionSource(), "", text)

    # "value" is typed once by hand (5 keys); in line 2 after "v" the buffer offers "alue" twice.
    # Keystrokes: line 1 = 10, "v" + Tab = 2, " += " = 4, "v" + Tab = 2, "\n" = 1.
    assert result.accepted == 2
    assert result.accepted_chars == 8
    assert result.keystrokes == 19
    assert result.keystrokes_saved == pytest.approx(1 - 19 / 25)


def test_model_and_baseline_compare_on_same_text():
    text = "result = compute(value)\n"
    model = replay(ScriptedSource({"r": "esult = compute(value)\n"}), "", text)
    baseline = replay(WordCompletionSource(), "", text)
    assert model.keystrokes_saved == pytest.approx(1 - 2 / 24)
    assert baseline.keystrokes_saved == 0.0


def test_typing_result_merge_adds_counts():
    first = replay(ScriptedSource({"a": "bc"}), "", "abc")
    second = replay(ScriptedSource({}), "", "xy")
    total = TypingResult()
    total.merge(first)
    total.merge(second)
    assert total.chars == 5
    assert total.keystrokes == first.keystrokes + second.keystrokes
    assert len(total.latencies_ms) == first.requests + second.requests


def test_indentation_mask_marks_line_start_whitespace():
    assert indentation_mask("", "  a b\n\tc\n") == [True, True, False, False, False, False, True, False, False]
    assert indentation_mask("x = 1", "  y") == [False, False, False]  # the cursor is mid-line
    assert indentation_mask("x = 1\n", "  y") == [True, True, False]


def test_replay_auto_indents_without_counting():
    source = ScriptedSource({})
    result = replay(source, "", "if x:\n    pass\n")

    assert source.inserts == list("if x:\n") + ["    "] + list("pass\n")
    assert result.auto_indented == 4
    assert result.chars == 11
    assert result.typed == 11
    assert result.requests == 11  # no request between Enter and the inserted indentation


def test_replay_does_not_count_indentation_as_saved():
    source = ScriptedSource({"if x:": "\n    pass"})
    result = replay(source, "", "if x:\n    pass\n")

    assert result.accepted == 1
    assert result.accepted_chars == 5  # "\n" and "pass"; the four spaces were never the user's to type
    assert result.keystrokes == 5 + 1 + 1  # "if x:", Tab, final "\n"
    assert result.chars == 11
