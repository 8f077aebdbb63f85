"""EncodingCache must give exactly what full tokenization gives, whatever the edit."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.server.encoding_cache import GPT4_SPLIT_PATTERNS, EncodingCache, pre_tokenizer_family
from tiny_copilot.server.prompt import PromptBudget, build_prompt
from tiny_copilot.training.tokenizer_train import train_tokenizer


@pytest.fixture(scope="module")
def gpt4_tokenizer(small_python_texts: list[str]) -> CodeTokenizer:
    return train_tokenizer(small_python_texts, vocab_size=512, pre_tokenizer="gpt4")


@pytest.fixture(params=["gpt2", "gpt4"])
def tokenizer(request: pytest.FixtureRequest, small_tokenizer: CodeTokenizer) -> CodeTokenizer:
    if request.param == "gpt2":
        return small_tokenizer
    return request.getfixturevalue("gpt4_tokenizer")


def full_encoding(tokenizer: CodeTokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    encoding = tokenizer.inner.encode(text, add_special_tokens=False)
    return encoding.ids, list(encoding.offsets)


def test_typing_matches_full_tokenization(tokenizer: CodeTokenizer, small_python_texts: list[str]):
    source = small_python_texts[0][:3000]
    cache = EncodingCache(tokenizer)
    cache.encode("prefix", source[:1500])
    first_encoded_chars = cache.encoded_chars
    for end in range(1501, 1701):
        assert cache.encode("prefix", source[:end]) == full_encoding(tokenizer, source[:end]), f"differs at {end}"
    # Each keystroke re-tokenizes about the last two lines, not the 1500-character window.
    assert (cache.encoded_chars - first_encoded_chars) / 200 < 150


def test_backspace_matches_full_tokenization(tokenizer: CodeTokenizer, small_python_texts: list[str]):
    source = small_python_texts[1][:2000]
    cache = EncodingCache(tokenizer)
    for end in range(2000, 1800, -1):
        assert cache.encode("prefix", source[:end]) == full_encoding(tokenizer, source[:end]), f"differs at {end}"


# Characters that stress pre-tokenizer boundaries: newlines, indentation, punctuation runs, digits, non-ASCII.
PIECES = st.sampled_from(["\n", "\n\n", "    ", "\t", " ", "x", "def", "(", "):", "):\n", "123", "4", "é", "😀", "'", "#", "\r\n", "_a"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.lists(PIECES, min_size=0, max_size=60).map("".join),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 4), st.lists(PIECES, max_size=4).map("".join)), max_size=6),
)
def test_random_edits_match_full_tokenization(tokenizer: CodeTokenizer, base: str, edits: list[tuple[int, int, str]]):
    cache = EncodingCache(tokenizer)
    text = base
    assert cache.encode("slot", text) == full_encoding(tokenizer, text)
    for position, deleted, inserted in edits:
        position %= len(text) + 1
        text = text[:position] + inserted + text[position + deleted :]
        assert cache.encode("slot", text) == full_encoding(tokenizer, text), repr(text)


def test_slots_are_independent(tokenizer: CodeTokenizer):
    cache = EncodingCache(tokenizer)
    first, second = "def f():\n    return 1\n", "x = [\n    1,\n]\n"
    cache.encode("prefix", first)
    assert cache.encode("suffix", second) == full_encoding(tokenizer, second)
    assert cache.encode("prefix", first + "y") == full_encoding(tokenizer, first + "y")


def test_family_recognizes_trained_pre_tokenizers(small_tokenizer: CodeTokenizer, gpt4_tokenizer: CodeTokenizer):
    assert pre_tokenizer_family(small_tokenizer) == "gpt2"
    assert pre_tokenizer_family(gpt4_tokenizer) == "gpt4"


def test_gpt4_patterns_match_training():
    from tiny_copilot.training import tokenizer_train

    trained_patterns = (tokenizer_train._GPT4_PATTERN, tokenizer_train._GPT4_DIGITS_PATTERN)
    assert trained_patterns == GPT4_SPLIT_PATTERNS


def test_unknown_pre_tokenizer_is_encoded_whole(small_python_texts: list[str]):
    tokenizer = train_tokenizer(small_python_texts[:2], vocab_size=300, pre_tokenizer="gpt4")
    tokenizer.json_text = tokenizer.json_text.replace("Isolated", "MergedWithNext")  # a Split this module never proved
    cache = EncodingCache(tokenizer)
    assert cache.family == "other"
    source = small_python_texts[0][:500]
    cache.encode("prefix", source)
    cache.encode("prefix", source + "x")
    assert cache.reused_chars == 0


class CountingInner:
    """Forward to a `tokenizers.Tokenizer` and count the characters given to `encode`."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.encoded_chars = 0

    def encode(self, text: str, **kwargs: object) -> object:
        self.encoded_chars += len(text)
        return self.inner.encode(text, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_prompt_while_typing_matches_uncached_prompt(tokenizer: CodeTokenizer, small_python_texts: list[str]):
    source = max(small_python_texts, key=len)
    cursor = source.index("\n", 6000) + 1
    line_end = source.index("\n", cursor)
    # A budget far below the text before the cursor, so the prefix window starts at a grid point.
    budget = PromptBudget(prefix_tokens=300, suffix_tokens=100, max_new_tokens=16)
    counting = copy.copy(tokenizer)
    counting.inner = inner = CountingInner(tokenizer.inner)
    cache = EncodingCache(counting)
    build_prompt(counting, source, cursor, budget, cache=cache)

    typed_chars = min(line_end - cursor, 40)
    encoded_before = inner.encoded_chars
    for typed in range(1, typed_chars + 1):
        text = source[: cursor + typed] + source[line_end:]
        cached = build_prompt(counting, text, cursor + typed, budget, cache=cache)
        assert cached == build_prompt(tokenizer, text, cursor + typed, budget), f"differs after {typed} characters"

    # Each keystroke tokenizes the cursor's lines again, not the prefix window of about 1,000 characters.
    assert (inner.encoded_chars - encoded_before) / typed_chars < 300
