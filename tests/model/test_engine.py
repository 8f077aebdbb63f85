import torch
import pytest

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.model.engine import Engine, GenerationCancelled
from tiny_copilot.model.sampler import SamplingConfig


@pytest.fixture()
def engine(untrained_checkpoint) -> Engine:
    checkpoint = load_checkpoint(untrained_checkpoint)
    return Engine(checkpoint.model, checkpoint.tokenizer)


def test_second_call_reuses_common_prefix(engine: Engine) -> None:
    tok = engine.tokenizer
    first = tok.encode("def add(a, b):\n    return a")
    engine.generate(first, SamplingConfig(max_new_tokens=4))

    second = first + tok.encode(" + b")
    result = engine.generate(second, SamplingConfig(max_new_tokens=4))

    assert result.reused_tokens == len(first)
    assert result.prompt_tokens == len(second)


def test_cached_generation_equals_fresh_generation(engine: Engine) -> None:
    tok = engine.tokenizer
    prompt = tok.encode("import json\n\ndef load(path):\n    with open(path) as f:\n        return ")
    engine.generate(prompt[:-5], SamplingConfig(max_new_tokens=8))
    cached = engine.generate(prompt, SamplingConfig(max_new_tokens=8))

    engine.reset()
    fresh = engine.generate(prompt, SamplingConfig(max_new_tokens=8))

    assert cached.reused_tokens > 0
    assert fresh.reused_tokens == 0
    assert cached.token_ids == fresh.token_ids


def test_healing_forces_first_token_to_extend_removed_text(engine: Engine) -> None:
    tok = engine.tokenizer
    result = engine.generate(tok.encode("value = sel"), SamplingConfig(max_new_tokens=3), healing_prefix="f")

    assert result.token_ids
    assert tok.token_bytes[result.token_ids[0]].startswith(b"f")
    assert result.text.startswith("f")


def test_stop_string_cuts_text(engine: Engine) -> None:
    tok = engine.tokenizer
    config = SamplingConfig(max_new_tokens=20)
    unstopped = engine.generate(tok.encode("x = 1\n"), config)
    if len(unstopped.text) < 2:
        pytest.skip("untrained model produced too little text to cut")
    stop = unstopped.text[1]

    stopped = engine.generate(tok.encode("x = 1\n"), SamplingConfig(max_new_tokens=20, stop_strings=(stop,)))

    assert stopped.stop_reason == "stop"
    assert stopped.text == unstopped.text[: unstopped.text.index(stop)]


def test_cancel_check_stops_generation(engine: Engine) -> None:
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(GenerationCancelled):
        engine.generate(engine.tokenizer.encode("def f():"), SamplingConfig(max_new_tokens=50), is_cancelled=cancelled)
    assert len(calls) == 3


def test_prompt_longer_than_context_is_rejected(engine: Engine) -> None:
    with pytest.raises(ValueError, match="exceeds the model context"):
        engine.prefill([5] * (engine.max_seq_len + 1))
