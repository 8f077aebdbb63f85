import pytest
import torch

from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.transformer import GPT


@pytest.fixture()
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=300, d_model=64, n_layers=3, n_heads=4, max_seq_len=128)).eval()


def test_cached_decoding_matches_full_forward(model: GPT) -> None:
    idx = torch.randint(0, 300, (1, 40))
    full = model(idx)

    cache = model.new_cache()
    pieces = [model(idx[:, :9], cache=cache), model(idx[:, 9:25], cache=cache)]
    pieces += [model(idx[:, i : i + 1], cache=cache) for i in range(25, 40)]

    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-4, atol=1e-5)
    assert cache.length == 40


def test_truncated_cache_extends_like_fresh_prefill(model: GPT) -> None:
    idx = torch.randint(0, 300, (1, 30))
    other = torch.randint(0, 300, (1, 12))
    cache = model.new_cache()
    model(idx, cache=cache)

    cache.truncate(18)
    extended = model(other, cache=cache)
    reference = model(torch.cat([idx[:, :18], other], dim=1))[:, 18:]

    torch.testing.assert_close(extended, reference, rtol=1e-4, atol=1e-5)


def test_cache_rejects_overflow(model: GPT) -> None:
    cache = model.new_cache()
    model(torch.zeros(1, 120, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        model(torch.zeros(1, 9, dtype=torch.long), cache=cache)
