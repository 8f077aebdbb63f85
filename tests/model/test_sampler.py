import pytest
import torch

from tiny_copilot.model.sampler import SamplingConfig, find_stop, sample_next


def test_greedy_picks_argmax() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert sample_next(logits, SamplingConfig()) == 1


def test_allowed_mask_excludes_best_token() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    allowed = torch.tensor([True, False, True, True])
    assert sample_next(logits, SamplingConfig(), allowed_ids=allowed) == 2


def test_seeded_generator_repeats_samples() -> None:
    logits = torch.zeros(50)
    config = SamplingConfig(temperature=1.0)
    first = [sample_next(logits, config, torch.Generator().manual_seed(7)) for _ in range(5)]
    second = [sample_next(logits, config, torch.Generator().manual_seed(7)) for _ in range(5)]
    assert first == second


def test_top_k_keeps_only_k_tokens() -> None:
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    config = SamplingConfig(temperature=2.0, top_k=2)
    generator = torch.Generator().manual_seed(0)
    seen = {sample_next(logits, config, generator) for _ in range(200)}
    assert seen == {0, 1}


def test_top_p_keeps_smallest_set_reaching_p() -> None:
    # Probabilities 0.5, 0.3, 0.2: top_p 0.7 needs the first two tokens.
    logits = torch.tensor([0.5, 0.3, 0.2]).log()
    config = SamplingConfig(temperature=1.0, top_p=0.7)
    generator = torch.Generator().manual_seed(0)
    seen = {sample_next(logits, config, generator) for _ in range(300)}
    assert seen == {0, 1}


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", -0.1), ("top_k", -1), ("top_p", 0.0), ("top_p", 1.5), ("max_new_tokens", 0)],
)
def test_config_rejects_invalid_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingConfig(**{field: value})


def test_find_stop_returns_earliest_match() -> None:
    assert find_stop("abc\ndef)", ("\n", ")")) == 3
    assert find_stop("abc", ("\n",)) is None
