import math

import pytest
import torch

from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.transformer import GPT
from tiny_copilot.training.eval_bpb import text_nll_nats
from tiny_copilot.training.eval_metrics import (
    bits_per_byte,
    edit_similarity,
    exact_match,
    first_line,
    normalize_line,
    percentile,
)


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("kitten", "sitting", 100 * 2 * 4 / 13),  # LCS "ittn"; python-Levenshtein's ratio gives 0.6154
        ("abc", "abc", 100.0),
        ("", "", 100.0),
        ("abc", "", 0.0),
        ("abcd", "badc", 100 * 2 * 2 / 8),
        ("return x  ", "return x", 100.0),
    ],
)
def test_edit_similarity_known_values(prediction, reference, expected):
    assert edit_similarity(prediction, reference) == pytest.approx(expected)


def test_edit_similarity_is_symmetric():
    assert edit_similarity("for i in range(n):", "for j in range(m)") == edit_similarity("for j in range(m)", "for i in range(n):")


def test_edit_similarity_compares_first_lines_only():
    assert edit_similarity("x = 1\ny = 2", "x = 1") == 100.0


def test_exact_match_ignores_trailing_whitespace():
    assert exact_match("return x \t\r", "return x")
    assert exact_match("return x", "return x   ")


def test_exact_match_counts_leading_whitespace():
    assert not exact_match("return x", "    return x")
    assert not exact_match(" = 1", "= 1")


def test_exact_match_compares_first_line():
    assert exact_match("a = 1\nb = 2", "a = 1")
    assert not exact_match("\na = 1", "a = 1")


def test_exact_match_counts_inner_whitespace():
    assert not exact_match("a  = 1", "a = 1")


def test_normalize_line_and_first_line():
    assert first_line("ab\ncd") == "ab"
    assert normalize_line("ab \ncd") == "ab"


def test_bits_per_byte_of_uniform_bytes_is_eight():
    n_bytes = 1000
    assert bits_per_byte(n_bytes * math.log(256), n_bytes) == pytest.approx(8.0)


def test_bits_per_byte_rejects_zero_bytes():
    with pytest.raises(ValueError, match="positive byte count"):
        bits_per_byte(1.0, 0)


def _uniform_model(vocab_size: int, max_seq_len: int) -> GPT:
    # Zero embeddings give zero logits at every position, so every token has probability 1/V.
    model = GPT(ModelConfig(vocab_size=vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=max_seq_len))
    with torch.no_grad():
        model.embed.weight.zero_()
    return model.eval()


def test_uniform_model_nll(small_tokenizer):
    model = _uniform_model(512, max_seq_len=512)
    text = "def add(a, b):\n    return a + b\n"
    nats, n_bytes = text_nll_nats(model, small_tokenizer, text)

    n_tokens = len(small_tokenizer.encode(text))
    assert n_bytes == len(text.encode("utf-8"))
    assert nats == pytest.approx(n_tokens * math.log(512), rel=1e-5)


def test_nll_windows_score_tokens_once(small_tokenizer, small_python_texts):
    model = _uniform_model(512, max_seq_len=64)
    text = small_python_texts[0][:1500]
    n_tokens = len(small_tokenizer.encode(text))
    assert n_tokens > 3 * 64, "the text must span several context windows"

    nats, _ = text_nll_nats(model, small_tokenizer, text)

    assert nats == pytest.approx(n_tokens * math.log(512), rel=1e-5)


def test_nll_matches_full_forward(small_tokenizer, untrained_checkpoint):
    from tiny_copilot.model.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(untrained_checkpoint)
    text = "import os\n\nprint(os.getcwd())\n"
    nats, _ = text_nll_nats(checkpoint.model, checkpoint.tokenizer, text)

    ids = [checkpoint.tokenizer.specials.end_of_text, *checkpoint.tokenizer.encode(text)]
    with torch.no_grad():
        logits = checkpoint.model(torch.tensor([ids[:-1]]))[0]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum")
    assert nats == pytest.approx(float(expected), rel=1e-5)


def test_percentile_interpolates_between_ranks():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile([], 50) is None
