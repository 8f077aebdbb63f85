"""Prompt windows, budgets and token healing, with real tokenizers of both pre-tokenizer families."""

from __future__ import annotations

import re

import pytest

from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.server.prompt import (
    FIM_SENTINEL_TOKENS,
    MIN_PREFIX_TOKENS,
    PromptBudget,
    build_prompt,
    fit_budgets,
    grid_step_chars,
    prefix_window,
    suffix_window,
)
from tiny_copilot.training.tokenizer_train import train_tokenizer


@pytest.fixture(scope="module")
def gpt4_tokenizer(small_python_texts: list[str]) -> CodeTokenizer:
    """The project's default pre-tokenizer (GPT-4 split pattern), small vocabulary."""
    return train_tokenizer(small_python_texts, vocab_size=512, pre_tokenizer="gpt4")


@pytest.fixture(params=["gpt2", "gpt4"])
def tokenizer(request: pytest.FixtureRequest, small_tokenizer: CodeTokenizer) -> CodeTokenizer:
    if request.param == "gpt2":
        return small_tokenizer
    return request.getfixturevalue("gpt4_tokenizer")


@pytest.fixture(scope="module")
def long_text(small_python_texts: list[str]) -> str:
    return "\n".join(small_python_texts)


def prompt_pieces(tokenizer: CodeTokenizer, ids: list[int]) -> tuple[str, str]:
    """Decode an SPM prompt into (suffix text, prefix text)."""
    specials = tokenizer.specials
    assert ids[:2] == [specials.prefix, specials.suffix]
    middle = ids.index(specials.middle)
    return tokenizer.decode(ids[2:middle]), tokenizer.decode(ids[middle + 1 :])


BUDGET = PromptBudget(prefix_tokens=200, suffix_tokens=60, max_new_tokens=16)


def test_fit_budgets_keeps_budgets_that_fit():
    assert fit_budgets(700, 250, 48, 1024) == PromptBudget(700, 250, 48)


def test_fit_budgets_shrinks_to_context():
    budget = fit_budgets(768, 256, 48, 512)
    total = budget.prefix_tokens + budget.suffix_tokens + budget.max_new_tokens + FIM_SENTINEL_TOKENS
    assert total == 512
    assert budget.max_new_tokens == 48
    assert budget.prefix_tokens > 2 * budget.suffix_tokens > 0


def test_fit_budgets_keeps_minimum_prefix():
    budget = fit_budgets(768, 256, 500, 128)
    assert budget.prefix_tokens >= MIN_PREFIX_TOKENS
    assert budget.prefix_tokens + budget.suffix_tokens + budget.max_new_tokens + FIM_SENTINEL_TOKENS <= 128


def test_fit_budgets_rejects_tiny_context():
    with pytest.raises(ValueError, match="too short"):
        fit_budgets(768, 256, 48, 8)


def test_prompt_is_spm_with_document_pieces(tokenizer: CodeTokenizer, long_text: str):
    offset = len(long_text) // 2
    prompt = build_prompt(tokenizer, long_text, offset, BUDGET, token_healing=False)
    suffix, prefix = prompt_pieces(tokenizer, prompt.ids)

    assert prefix == long_text[prompt.prefix_start : offset]
    assert suffix == long_text[offset : prompt.suffix_end]
    assert prompt.prefix_tokens <= BUDGET.prefix_tokens
    assert prompt.suffix_tokens <= BUDGET.suffix_tokens
    assert len(prompt.ids) == prompt.prefix_tokens + prompt.suffix_tokens + FIM_SENTINEL_TOKENS


def test_prefix_window_starts_at_newline(tokenizer: CodeTokenizer, long_text: str):
    for offset in range(5000, len(long_text), 7919):
        start, ids = prefix_window(tokenizer, long_text, offset, BUDGET.prefix_tokens)
        assert long_text[start] == "\n", f"window at cursor {offset} starts mid-line"
        assert len(ids) <= BUDGET.prefix_tokens
        # Window moves are coarse but never leave most of the budget unused.
        assert len(ids) > BUDGET.prefix_tokens // 3


def test_suffix_window_ends_at_line_end(tokenizer: CodeTokenizer, long_text: str):
    for offset in range(1000, len(long_text) - 5000, 7919):
        end, ids = suffix_window(tokenizer, long_text, offset, BUDGET.suffix_tokens)
        assert 0 < len(ids) <= BUDGET.suffix_tokens
        assert long_text[end] == "\n" or long_text[end - 1] == "\n", f"suffix at cursor {offset} ends mid-line"
        assert tokenizer.decode(ids) == long_text[offset:end]


def test_typing_extends_prompt(tokenizer: CodeTokenizer, long_text: str):
    """Type 400 characters of real code into the middle of a long file, one at a time."""
    cursor = len(long_text) // 2
    typed = long_text[cursor : cursor + 400]
    before, after = long_text[:cursor], long_text[cursor + 400 :]

    previous_ids: list[int] | None = None
    previous_start = None
    window_moves = 0
    for count in range(len(typed) + 1):
        text = before + typed[:count] + after
        prompt = build_prompt(tokenizer, text, cursor + count, BUDGET, token_healing=False)
        if previous_ids is not None:
            if prompt.prefix_start != previous_start:
                window_moves += 1
            else:
                common = 0
                while common < len(previous_ids) and prompt.ids[common] == previous_ids[common]:
                    common += 1
                # Only the tokens of the last word and the whitespace before it may change.
                previous_text = tokenizer.decode(previous_ids)
                last_word_start = re.search(r"\s*\S*$", previous_text).start()
                assert len(tokenizer.decode(previous_ids[:common])) >= last_word_start, f"early tokens changed at {count}"
                assert tokenizer.decode(prompt.ids).startswith(previous_text)
        previous_ids, previous_start = prompt.ids, prompt.prefix_start

    assert window_moves <= len(typed) // grid_step_chars(BUDGET.prefix_tokens) + 1


def test_prefix_window_ignores_text_after_cursor(tokenizer: CodeTokenizer, long_text: str):
    offset = len(long_text) // 3
    changed = long_text[:offset] + "x = 1\n" * 50 + long_text[offset + 10 :]
    assert prefix_window(tokenizer, long_text, offset, 200) == prefix_window(tokenizer, changed, offset, 200)


def test_suffix_window_ignores_text_before_cursor(tokenizer: CodeTokenizer, long_text: str):
    offset = len(long_text) // 3
    changed = "import os\n" * 30 + long_text[offset - 5 : offset] + long_text[offset:]
    new_offset = len(changed) - (len(long_text) - offset)
    assert suffix_window(tokenizer, long_text, offset, 60)[1] == suffix_window(tokenizer, changed, new_offset, 60)[1]


def test_prompt_for_huge_file(tokenizer: CodeTokenizer, long_text: str):
    huge = long_text * 20
    prompt = build_prompt(tokenizer, huge, len(huge) - 1000, BUDGET)
    assert prompt.prefix_tokens <= BUDGET.prefix_tokens
    assert prompt.suffix_tokens <= BUDGET.suffix_tokens
    assert len(huge) - 1000 - prompt.prefix_start < BUDGET.prefix_tokens * 6


def test_prompt_for_long_single_line(tokenizer: CodeTokenizer):
    text = "x = [" + ", ".join(str(i) for i in range(3000))
    starts = set()
    for offset in range(len(text) - 20, len(text) + 1):
        prompt = build_prompt(tokenizer, text[:offset], offset, BUDGET, token_healing=False)
        _, prefix = prompt_pieces(tokenizer, prompt.ids)
        assert 0 < prompt.prefix_tokens <= BUDGET.prefix_tokens
        assert text[:offset].endswith(prefix)
        starts.add(prompt.prefix_start)
    assert len(starts) <= 2, "the window start of a long line moves on the character grid only"


def test_prompt_for_long_non_ascii_line(tokenizer: CodeTokenizer):
    text = "s = '" + "😀" * 3000
    prompt = build_prompt(tokenizer, text, len(text), BUDGET, token_healing=False)
    assert 0 < prompt.prefix_tokens <= BUDGET.prefix_tokens


@pytest.mark.parametrize(
    ("text", "healing_prefix"),
    [
        ("import os\nprint(os.pa", "a"),  # the last token of a partial word
        ("x = ", " "),  # a lone space: training puts it before the next word
        ("def f():\n    ", " "),  # indentation: its last space belongs to the next token
        ("if x:\n\t\t", "\t"),
        ("foo(", "("),
        ("x = 1\n", "\n"),  # the newline may join the next line's indentation
        ("", ""),
    ],
)
def test_healing_backs_off_boundary(tokenizer: CodeTokenizer, text: str, healing_prefix: str):
    prompt = build_prompt(tokenizer, text, len(text), BUDGET)
    _, prefix = prompt_pieces(tokenizer, prompt.ids)
    if healing_prefix == "a":
        assert prompt.healing_prefix.endswith("a")  # the tokenizer decides how much of "pa" one token contains
    else:
        assert prompt.healing_prefix == healing_prefix
    assert prefix + prompt.healing_prefix == text


def test_healing_matches_tokenization_without_cursor_text(tokenizer: CodeTokenizer):
    text = "def f():\n    "
    prompt = build_prompt(tokenizer, text, len(text), BUDGET)
    specials = tokenizer.specials
    prefix_ids = prompt.ids[prompt.ids.index(specials.middle) + 1 :]
    assert prefix_ids == tokenizer.encode(text[:-1])


def test_healing_mid_word_off_by_setting(tokenizer: CodeTokenizer):
    prompt = build_prompt(tokenizer, "print(os.pa", 11, BUDGET, token_healing=False)
    assert prompt.healing_prefix == ""


def test_healing_skips_partial_character(tokenizer: CodeTokenizer):
    text = "s = '😀"
    prompt = build_prompt(tokenizer, text, len(text), BUDGET)
    _, prefix = prompt_pieces(tokenizer, prompt.ids)
    assert prefix + prompt.healing_prefix == text
    assert "\ufffd" not in prompt.healing_prefix


@pytest.mark.parametrize("offset", [-1, 4])
def test_prompt_rejects_offset_outside_text(tokenizer: CodeTokenizer, offset: int):
    with pytest.raises(ValueError, match="outside the document"):
        build_prompt(tokenizer, "abc", offset, BUDGET)


def test_prompt_for_empty_document(tokenizer: CodeTokenizer):
    prompt = build_prompt(tokenizer, "", 0, BUDGET)
    specials = tokenizer.specials
    assert prompt.ids == [specials.prefix, specials.suffix, specials.middle]
