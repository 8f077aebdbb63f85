"""The greedy sample printed after each validation."""

from __future__ import annotations

from tiny_copilot.training.loop import format_sample


def test_sample_shows_prompt_and_continuation():
    assert format_sample("for i in range(", "10):") == "for i in range(10):"


def test_whitespace_only_sample_is_spelled_out():
    # An untrained model's continuation: printed as is, it would look like nothing was generated.
    assert format_sample("def f(", " \n" * 100) == "def f([200 characters of whitespace only]"


def test_empty_sample_is_not_called_whitespace():
    # The shipped model ends the default prompt's sample at once; "[0 characters of whitespace only]" misled.
    assert format_sample("def f(", "") == "def f([empty: the model generated no text]"
