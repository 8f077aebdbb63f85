"""Speculative greedy decoding: where guesses come from, and that they do not change the generated tokens."""

import sysconfig
from pathlib import Path

import pytest

from tiny_copilot.model.checkpoint import load_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.drafts import DraftProposer
from tiny_copilot.model.engine import Engine
from tiny_copilot.model.fim import spm_prompt
from tiny_copilot.model.sampler import SamplingConfig

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SPECIALS = frozenset({0, 1, 2, 3})


def test_previous_generation_continues_its_prompt() -> None:
    previous = [10, 11, 12, 13, 14, 15]
    proposer = DraftProposer([10, 11], previous, SPECIALS)
    assert proposer.propose(3) == [12, 13, 14]

    proposer.append(12)
    assert proposer.propose(10) == [13, 14, 15]

    # A token the previous generation did not have ends that source for the rest of the call.
    proposer.append(99)
    assert proposer.propose(3) == []


def test_previous_ignored_for_other_prompt() -> None:
    proposer = DraftProposer([10, 20], [10, 11, 12, 13], SPECIALS)
    assert proposer.propose(3) == []


def test_repeated_ngram_proposes_what_followed_it() -> None:
    prompt = [40, 41, 42, 43, 44, 45, 50, 40, 41]
    proposer = DraftProposer(prompt, [], SPECIALS)
    # The last 3 tokens (50, 40, 41) never occurred before, so nothing is proposed yet.
    assert proposer.propose(4) == []
    proposer.append(42)
    # (40, 41, 42) occurred at the start, followed by 43, 44, 45, 50.
    assert proposer.propose(3) == [43, 44, 45]


def test_latest_ngram_occurrence_wins() -> None:
    proposer = DraftProposer([7, 8, 9, 1000, 7, 8, 9, 2000, 7, 8], [], SPECIALS)
    proposer.append(9)
    assert proposer.propose(1) == [2000]
    for token in (2000, 7, 8, 9):
        proposer.append(token)
    # The context ends with (7, 8, 9) again. Its latest earlier occurrence is the one just generated.
    assert proposer.propose(2) == [2000, 7]


def test_guesses_stop_before_special_tokens() -> None:
    proposer = DraftProposer([5, 6], [5, 6, 7, 8, 0, 9], SPECIALS)
    assert proposer.propose(6) == [7, 8]


def test_no_guess_when_asked_for_none() -> None:
    proposer = DraftProposer([10, 11], [10, 11, 12], SPECIALS)
    assert proposer.propose(0) == []


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(shipped_checkpoint_path())


def _prompts(tokenizer) -> list[list[int]]:
    """FIM prompts cut from real code, as the server builds them while a user types."""
    source = (STDLIB / "argparse.py").read_text(encoding="utf-8")
    prompts = []
    for cursor in range(20_000, 60_000, 6_000):
        prefix_ids = tokenizer.encode(source[:cursor])[-500:]
        suffix_ids = tokenizer.encode(source[cursor:])[:120]
        prompts.append(spm_prompt(tokenizer.specials, prefix_ids, suffix_ids))
    return prompts


def test_speculative_equals_plain_greedy(shipped) -> None:
    tokenizer = shipped.tokenizer
    plain = Engine(shipped.model, tokenizer, speculative=False)
    speculative = Engine(shipped.model, tokenizer)
    accepted = 0
    for prompt in _prompts(tokenizer):
        for max_new_tokens in (1, 5, 24):
            config = SamplingConfig(max_new_tokens=max_new_tokens)
            expected = plain.generate(prompt, config)
            got = speculative.generate(prompt, config)
            assert got.token_ids == expected.token_ids, tokenizer.decode(prompt[-20:])
            assert (got.text, got.stop_reason) == (expected.text, expected.stop_reason)
            accepted += got.accepted_draft_tokens
    # Otherwise this test would pass with speculation turned off.
    assert accepted > 0


def test_typed_suggestion_rest_is_guessed(shipped) -> None:
    """After the user types the first token of a suggestion, the next call reuses the rest as guesses."""
    tokenizer = shipped.tokenizer
    engine = Engine(shipped.model, tokenizer)
    prompt = _prompts(tokenizer)[0]
    first = engine.generate(prompt, SamplingConfig(max_new_tokens=12))
    if len(first.token_ids) < 4:
        pytest.skip("the model ended the suggestion at once")

    second = engine.generate(prompt + first.token_ids[:1], SamplingConfig(max_new_tokens=len(first.token_ids) - 1))

    assert second.token_ids == first.token_ids[1:]
    assert second.accepted_draft_tokens >= len(second.token_ids) // 2


def test_stops_and_context_end_honoured(shipped) -> None:
    tokenizer = shipped.tokenizer
    plain = Engine(shipped.model, tokenizer, speculative=False)
    speculative = Engine(shipped.model, tokenizer)
    prompt = _prompts(tokenizer)[1]
    # Cut at the second character of the output: guesses checked past the cut must not leak.
    config = SamplingConfig(max_new_tokens=30)
    expected = plain.generate(prompt, config, stop_rule=lambda text: 2 if len(text) > 2 else None)
    got = speculative.generate(prompt, config, stop_rule=lambda text: 2 if len(text) > 2 else None)
    assert (got.text, got.stop_reason) == (expected.text, expected.stop_reason)

    # A prompt 5 tokens short of the context: guesses must not run past its end.
    max_seq_len = shipped.model.config.max_seq_len
    source = (STDLIB / "argparse.py").read_text(encoding="utf-8")
    long_prompt = tokenizer.encode(source)[: max_seq_len - 5]
    expected = plain.generate(long_prompt, config)
    got = speculative.generate(long_prompt, config)
    assert got.token_ids == expected.token_ids
    assert got.stop_reason == expected.stop_reason
    assert len(speculative.cached_ids) <= max_seq_len
