"""Completer against a real checkpoint: cache reuse while typing, determinism, cancellation, edge cursors.

The untrained checkpoint has random weights, so these tests check plumbing, not suggestion quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.model.engine import Engine, GenerationCancelled
from tiny_copilot.server.completion import Completer, Suggestion
from tiny_copilot.server.settings import ServerSettings


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run the model on one thread: on a loaded 2-core machine, 2 threads made each decoding step ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engine(untrained_checkpoint: Path) -> Engine:
    checkpoint = load_checkpoint(untrained_checkpoint)
    return Engine(checkpoint.model, checkpoint.tokenizer)


@pytest.fixture
def completer(engine: Engine) -> Completer:
    engine.reset()
    return Completer(engine, ServerSettings(max_new_tokens=8))


@pytest.fixture(scope="module")
def source(small_python_texts: list[str]) -> str:
    return "\n".join(small_python_texts)


def test_budget_fits_model_context(completer: Completer):
    budget = completer.budget
    assert budget.prefix_tokens + budget.suffix_tokens + budget.max_new_tokens + 3 <= completer.engine.max_seq_len
    assert budget.max_new_tokens == 8


def test_typing_reuses_cache(completer: Completer, source: str):
    """Type 150 characters of a real file; almost every prompt token must come from the cache."""
    cursor = len(source) // 2
    typed = source[cursor : cursor + 150]
    before, after = source[:cursor], source[cursor + 150 :]

    prompt_tokens = reused_tokens = 0
    for count in range(len(typed) + 1):
        completer.complete(before + typed[:count] + after, cursor + count, "python")
        stats = completer.last_stats
        assert stats is not None
        if count > 0:
            prompt_tokens += stats.prompt_tokens
            reused_tokens += stats.reused_tokens
    assert reused_tokens / prompt_tokens > 0.9


def test_same_request_gives_same_suggestion(completer: Completer, source: str):
    offset = len(source) // 3
    first = completer.complete(source, offset, "python")
    completer.complete(source, offset + 500, "python")  # a different request in between moves the cache
    second = completer.complete(source, offset, "python")
    assert _texts(first) == _texts(second)


def test_sampling_repeats_with_seed(engine: Engine, source: str):
    completer = Completer(engine, ServerSettings(max_new_tokens=8, temperature=1.0, seed=7))
    offset = len(source) // 4
    results = {_texts(completer.complete(source, offset, "python")) for _ in range(3)}
    assert len(results) == 1


def test_cancellation_raises(completer: Completer, source: str):
    with pytest.raises(GenerationCancelled):
        completer.complete(source, 100, "python", is_cancelled=lambda: True)


def test_cancellation_after_some_steps(completer: Completer, source: str):
    checks = []

    def cancel_on_third_check() -> bool:
        checks.append(True)
        return len(checks) >= 3

    with pytest.raises(GenerationCancelled):
        completer.complete(source, 100, "python", is_cancelled=cancel_on_third_check)
    assert len(checks) == 3


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("", 0),
        ("def f():\n    return 1\n", 22),  # end of the document
        ("x = '😀😀'  # 😀\ny = 2\n", 6),  # between two emoji
        ("x = '😀😀'  # 😀\ny = 2\n", 14),
        ("\n\n\n", 1),
        ("\t\t", 2),
    ],
)
def test_edge_cursors_do_not_fail(completer: Completer, text: str, offset: int):
    suggestion = completer.complete(text, offset, "python")
    if suggestion is not None:
        assert suggestion.text.strip()
        assert "\r" not in suggestion.text
        assert suggestion.replace_suffix_chars >= 0
    assert completer.last_stats is not None


@pytest.mark.parametrize("offset", [-1, 6])
def test_offset_outside_text_rejected(completer: Completer, offset: int):
    with pytest.raises(ValueError, match="outside the document"):
        completer.complete("x = 1", offset)


def test_disabled_language_gets_nothing(engine: Engine):
    completer = Completer(engine, ServerSettings(enabled_languages=("python",)))
    completer.last_stats = None
    assert completer.complete("# notes\n", 8, "markdown") is None
    assert completer.last_stats is None, "a disabled language must not run the model"


def test_update_settings_refits_budget(completer: Completer):
    completer.update_settings(ServerSettings(max_new_tokens=20, prefix_budget_tokens=100, suffix_budget_tokens=30))
    assert completer.budget.max_new_tokens == 20
    assert completer.budget.prefix_tokens == 100
    assert completer.budget.suffix_tokens == 30


def test_single_line_suggestion_has_no_newline(completer: Completer, source: str):
    completer.update_settings(ServerSettings(max_new_tokens=32, multiline="never"))
    for offset in range(1000, len(source), len(source) // 10):
        suggestion = completer.complete(source, offset, "python")
        if suggestion is not None:
            assert "\n" not in suggestion.text
            assert suggestion.mode == "single"


def _texts(suggestion: Suggestion | None) -> tuple[str, int] | None:
    return None if suggestion is None else (suggestion.text, suggestion.replace_suffix_chars)
