import pytest
import torch

from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.transformer import GPT, apply_rotary, rotary_tables, rotate_halves


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


def test_rotate_halves_matches_apply_rotary() -> None:
    torch.manual_seed(1)
    x_BHTK = torch.randn(2, 4, 7, 16)
    cos_TK, sin_TK = rotary_tables(16, 32, 10000.0)
    cos_TK, sin_TK = cos_TK[5:12], sin_TK[5:12]

    rotated = rotate_halves(x_BHTK, torch.cat((cos_TK, cos_TK), -1), torch.cat((-sin_TK, sin_TK), -1))

    assert torch.equal(rotated, apply_rotary(x_BHTK, cos_TK, sin_TK))


@torch.inference_mode()
def test_next_token_logits_matches_cached_forward(model: GPT) -> None:
    """Prefill from empty, a multi-token chunk onto a cache, then single steps, as the engine calls it."""
    idx = torch.randint(0, 300, (1, 40))
    full = model(idx)
    plain_cache, fast_cache = model.new_cache(), model.new_cache()
    weights = model.decoding_weights()

    for start, end in [(0, 9), (9, 25)] + [(i, i + 1) for i in range(25, 40)]:
        plain = model(idx[:, start:end], cache=plain_cache, last_only=True)[:, -1]
        fast = model.next_token_logits(idx[:, start:end], fast_cache, weights)
        torch.testing.assert_close(fast, plain, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(fast, full[:, end - 1], rtol=1e-4, atol=1e-5)

    assert fast_cache.length == plain_cache.length == 40
    for layer in range(model.config.n_layers):
        torch.testing.assert_close(fast_cache.keys[layer][:, :, :40], plain_cache.keys[layer][:, :, :40], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(fast_cache.values[layer][:, :, :40], plain_cache.values[layer][:, :, :40], rtol=1e-6, atol=1e-6)


@torch.inference_mode()
def test_next_token_logits_after_truncate(model: GPT) -> None:
    idx = torch.randint(0, 300, (1, 30))
    other = torch.randint(0, 300, (1, 5))
    cache = model.new_cache()
    model.next_token_logits(idx, cache)

    cache.truncate(18)
    extended = model.next_token_logits(other, cache)
    reference = model(torch.cat([idx[:, :18], other], dim=1))[:, -1]

    torch.testing.assert_close(extended, reference, rtol=1e-4, atol=1e-5)
    assert cache.length == 23


def test_next_token_logits_rejects_overflow(model: GPT) -> None:
    cache = model.new_cache()
    model.next_token_logits(torch.zeros(1, 120, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        model.next_token_logits(torch.zeros(1, 9, dtype=torch.long), cache)
    assert cache.length == 120
