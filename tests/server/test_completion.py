"""Completer against a real checkpoint: cache reuse while typing, determinism, cancellation, edge cursors.

The untrained checkpoint has random weights, so these tests check plumbing, not suggestion quality.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.engine import Engine, GenerationCancelled
from tiny_copilot.model.transformer import GPT
from tiny_copilot.server.completion import Completer, Suggestion
from tiny_copilot.server.loading import DOCUMENT_CACHES, document_caches
from tiny_copilot.server.settings import ServerSettings
from tiny_copilot.server.tab_indent import REGION_GRID_CHARS


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
    """Type 80 characters of a real file; almost every prompt token must come from the cache."""
    cursor = len(source) // 2
    typed = source[cursor : cursor + 80]
    before, after = source[:cursor], source[cursor + 80 :]

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


def line_end_after(source: str, offset: int) -> int:
    """A cursor at a line end, where a suggestion may run to the end of the line.

    Mid-line, a suggestion ends after one word, which can come before the steps that these tests count.
    """
    return source.index("\n", offset)


def test_cancellation_raises(completer: Completer, source: str):
    with pytest.raises(GenerationCancelled):
        completer.complete(source, line_end_after(source, 100), "python", is_cancelled=lambda: True)


def test_cancellation_after_some_steps(completer: Completer, source: str):
    checks = []

    def cancel_on_third_check() -> bool:
        checks.append(True)
        return len(checks) >= 3

    with pytest.raises(GenerationCancelled):
        completer.complete(source, line_end_after(source, 100), "python", is_cancelled=cancel_on_third_check)
    assert len(checks) == 3


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("def f():\n    return 1\n", 22),  # end of the document
        ("x = '😀😀'  # 😀\ny = 2\n", 6),  # between two emoji
        ("x = '😀😀'  # 😀\ny = 2\n", 14),
        ("def f():\n\n\n", 10),
        ("x = 1\n\t\t", 8),
    ],
)
def test_edge_cursors_do_not_fail(completer: Completer, text: str, offset: int):
    suggestion = completer.complete(text, offset, "python")
    if suggestion is not None:
        assert suggestion.text.strip()
        assert "\r" not in suggestion.text
        assert suggestion.replace_suffix_chars >= 0
    assert completer.last_stats is not None


@pytest.mark.parametrize(("text", "offset"), [("", 0), ("\n\n\n", 1), ("\t\t", 2), ("  \n", 3)])
def test_blank_document_gets_nothing(completer: Completer, text: str, offset: int):
    # With no code to continue, the shipped model offered "eturn a new value to be able" in an empty
    # file and "    # XXX: This is not against the same way to avoid" in one of blank lines.
    assert completer.complete(text, offset, "python") is None
    assert completer.last_stats is None, "a blank document must not run the model"


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


@pytest.fixture(scope="module")
def trained_completer(trained_checkpoint: Path) -> Completer:
    checkpoint = load_checkpoint(trained_checkpoint)
    return Completer(Engine(checkpoint.model, checkpoint.tokenizer), ServerSettings(max_new_tokens=24))


HELD_OUT = Path(textwrap.__file__).read_text(encoding="utf-8")  # not in the fixture's training packages


def held_out_cursors() -> list[int]:
    """Cursors of each kind the stop rules tell apart: line ends, blank lines in blocks, mid-word, before ")"."""
    cursors = [match.end() for match in re.finditer(r":\n +", HELD_OUT)][:6]  # after a block opener
    cursors += [match.start() for match in re.finditer(r"\n", HELD_OUT)][100:400:50]  # line ends
    cursors += [match.start() + len("return ") + 2 for match in re.finditer(r"return \w{5}", HELD_OUT)][:4]  # mid-word
    cursors += [match.start() + 1 for match in re.finditer(r"\(\w+\)", HELD_OUT)][:4]  # inside brackets
    return cursors


def test_trained_suggestions_obey_stop_rules(trained_completer: Completer):
    for offset in held_out_cursors():
        suggestion = trained_completer.complete(HELD_OUT, offset, "python")
        if suggestion is None:
            continue
        line_start = HELD_OUT.rfind("\n", 0, offset) + 1
        lines = (HELD_OUT[line_start:offset] + suggestion.text).split("\n")
        assert suggestion.text.strip(), f"whitespace-only suggestion at {offset}"
        if suggestion.mode == "single":
            assert len(lines) == 1, f"single-line suggestion with a newline at {offset}"
        else:
            first_indent = len(lines[0]) - len(lines[0].lstrip())
            assert len(lines) <= trained_completer.settings.max_lines
            assert all(line.strip() for line in lines[1:]), f"blank line in suggestion at {offset}"
            assert all(len(line) - len(line.lstrip()) >= first_indent for line in lines[1:]), f"dedent at {offset}"


def test_trained_suggestions_are_deterministic(trained_completer: Completer):
    cursors = held_out_cursors()
    first = [_texts(trained_completer.complete(HELD_OUT, offset, "python")) for offset in cursors]
    second = [_texts(trained_completer.complete(HELD_OUT, offset, "python")) for offset in cursors]
    assert first == second
    assert any(result is not None for result in first), "the trained model suggested nothing anywhere"


def test_trained_healing_mid_word(trained_completer: Completer):
    offset = re.search(r"return \w{5}", HELD_OUT).start() + len("return ") + 2  # two letters into the word
    trained_completer.complete(HELD_OUT, offset, "python")
    stats = trained_completer.last_stats
    assert stats is not None
    assert stats.healing_prefix, "a cursor inside a word backs off its last token"
    assert HELD_OUT[:offset].endswith(stats.healing_prefix)


def with_tabs(text: str) -> str:
    """Re-indent 4-space indentation with tabs, keeping any remainder of spaces."""
    return re.sub(r"(?m)^ +", lambda match: "\t" * (len(match.group()) // 4) + " " * (len(match.group()) % 4), text)


def test_tab_document_matches_spaced_twin(trained_completer: Completer):
    """The prompt shows the tab-indented file with spaces, and the suggestion comes back with tabs."""
    # Multi-line suggestions at every line end, so that some lines of suggestions carry indentation.
    completer = Completer(trained_completer.engine, ServerSettings(max_new_tokens=24, multiline="always"))
    tabbed_document = with_tabs(HELD_OUT)
    compared = multi_line = 0
    # Farther in, the text before the converted region keeps its tabs, so the prompt window starts
    # at another grid point than in the spaced file, and the suggestions may differ.
    for offset in [cursor for cursor in held_out_cursors() if cursor < REGION_GRID_CHARS]:
        spaced = completer.complete(HELD_OUT, offset, "python")
        tabbed = completer.complete(tabbed_document, len(with_tabs(HELD_OUT[:offset])), "python")
        assert (spaced is None) == (tabbed is None), f"at {offset}: {_texts(spaced)} against {_texts(tabbed)}"
        if spaced is None or tabbed is None:
            continue
        compared += 1
        assert tabbed.text.replace("\t", "    ") == spaced.text
        assert tabbed.replace_suffix_chars == spaced.replace_suffix_chars
        for line in tabbed.text.split("\n")[1:]:
            multi_line += line.startswith("\t")
            assert not line.startswith("    "), f"spaces instead of tabs in {tabbed.text!r}"
    assert compared >= 5
    assert multi_line > 0, "no indented line in any suggestion to check the tabs of"


def test_document_caches_fit_memory_budget() -> None:
    shipped_shape = GPT(ModelConfig(vocab_size=512, d_model=192, n_layers=6, n_heads=6, max_seq_len=1024))
    long_context = GPT(ModelConfig(vocab_size=512, d_model=192, n_layers=6, n_heads=6, max_seq_len=32768))

    assert document_caches(shipped_shape) == DOCUMENT_CACHES
    # 302 MB for one cache: one document keeps it, as before per-document caches.
    assert document_caches(long_context) == 1


def test_loading_warms_up_the_model(untrained_checkpoint: Path, monkeypatch):
    from tiny_copilot.server.loading import load_model

    generated: list[int] = []
    generate = Engine.generate

    def counting_generate(self, *args, **kwargs):
        result = generate(self, *args, **kwargs)
        generated.append(len(result.token_ids))
        return result

    monkeypatch.setattr(Engine, "generate", counting_generate)
    load_model(untrained_checkpoint, ServerSettings(), lambda: False)
    assert generated and generated[0] >= 1, "the warm-up ran no forward pass"
