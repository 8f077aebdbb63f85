"""Tokenizer training: special tokens, lossless round trip on awkward code, the self-check, figures."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, normalizers

from tiny_copilot.model.fim import SPECIAL_TOKENS
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.training.tokenizer_train import (
    PRE_TOKENIZERS,
    TokenizerCheckError,
    check_round_trip,
    describe_tokenizer,
    measure_tokenizer,
    train_tokenizer,
)

AWKWARD_CODE = {
    "tabs": "def f(x):\n\tif x:\n\t\treturn x\t# tab\n",
    "crlf": "int main(void)\r\n{\r\n    return 0;\r\n}\r\n",
    "lone_cr": "a = 1\rb = 2\r",
    "emoji": "print('done ✅ 🚀 👩‍💻')\n",
    "trailing_spaces": "x = 1   \ny = 2 \t \n    \n",
    "non_ascii_names": "café = 'naïve'\nπ = 3.14159\n变量 = 'значение'\n",
    "special_spelling": "END = '<|endoftext|>'\nFIM = '<|fim_prefix|><|fim_middle|>'\n",
    "no_final_newline": "return",
    "only_whitespace": " \t \r\n \n",
}


@pytest.fixture(scope="module")
def tokenizer(small_python_texts: list[str]) -> CodeTokenizer:
    return train_tokenizer(small_python_texts, vocab_size=600)


def test_special_tokens_first_in_order(tokenizer: CodeTokenizer) -> None:
    assert [tokenizer.inner.token_to_id(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tokenizer.specials.end_of_text == 0


def test_vocab_size_reached(tokenizer: CodeTokenizer) -> None:
    assert tokenizer.vocab_size == 600


def test_small_corpus_gives_smaller_vocab() -> None:
    tokenizer = train_tokenizer(["x = 1\n"], vocab_size=4096)
    assert 260 <= tokenizer.vocab_size < 300


@pytest.mark.parametrize("name", sorted(AWKWARD_CODE))
def test_round_trip_awkward_code(tokenizer: CodeTokenizer, name: str) -> None:
    text = AWKWARD_CODE[name]
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.specials.all().isdisjoint(ids)


@pytest.mark.parametrize("pre_tokenizer", PRE_TOKENIZERS)
def test_every_pre_tokenizer_round_trips(small_python_texts: list[str], pre_tokenizer: str) -> None:
    tokenizer = train_tokenizer(small_python_texts[:5], vocab_size=400, pre_tokenizer=pre_tokenizer)
    for text in AWKWARD_CODE.values():
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_indentation_learned_as_tokens(tokenizer: CodeTokenizer) -> None:
    line = "        return self._value\n"
    assert len(tokenizer.encode(line)) <= 8


def test_training_is_deterministic(small_python_texts: list[str]) -> None:
    first = train_tokenizer(small_python_texts, vocab_size=500)
    second = train_tokenizer(small_python_texts, vocab_size=500)
    assert first.sha256 == second.sha256


@pytest.mark.parametrize("vocab_size", [0, 259, 65537, 4096.0])
def test_invalid_vocab_size_raises(small_python_texts: list[str], vocab_size: object) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(small_python_texts, vocab_size=vocab_size)  # type: ignore[arg-type]


def test_no_text_raises() -> None:
    with pytest.raises(ValueError, match="non-empty text"):
        train_tokenizer(["", ""], vocab_size=512)


def test_unknown_pre_tokenizer_raises(small_python_texts: list[str]) -> None:
    with pytest.raises(ValueError, match="unknown pre-tokenizer"):
        train_tokenizer(small_python_texts, pre_tokenizer="words")  # type: ignore[arg-type]


def test_check_catches_lossy_tokenizer(tokenizer: CodeTokenizer) -> None:
    lossy = Tokenizer.from_str(tokenizer.json_text)
    lossy.normalizer = normalizers.Lowercase()
    with pytest.raises(TokenizerCheckError, match="round trip changed the text at character 0"):
        check_round_trip(CodeTokenizer.from_json(lossy.to_str()), ["Hello"])


def test_check_runs_on_given_texts(tokenizer: CodeTokenizer) -> None:
    lossy = Tokenizer.from_str(tokenizer.json_text)
    lossy.normalizer = normalizers.Strip()
    broken = CodeTokenizer.from_json(lossy.to_str())
    check_round_trip(broken, ["no_outer_spaces"])
    with pytest.raises(TokenizerCheckError):
        check_round_trip(broken, ["no_outer_spaces", "  indented"])


def test_measure_counts_bytes_and_tokens(tokenizer: CodeTokenizer) -> None:
    texts = {"python": ["def f():\n    return 1\n", "x = 'é'\n"], "c": ["int x;\n"]}
    report = measure_tokenizer(tokenizer, texts)
    assert report.vocab_size == 600
    assert report.n_bytes == {"c": 7, "python": 22 + 9}
    assert report.n_tokens["python"] == sum(len(tokenizer.encode(t)) for t in texts["python"])
    assert report.bytes_per_token["c"] == pytest.approx(7 / report.n_tokens["c"])
    lines = describe_tokenizer(report)
    assert "600 tokens" in lines[0]
    assert any(line.strip().startswith("python") for line in lines)


def test_training_text_capped(small_python_texts: list[str]) -> None:
    joined = "".join(small_python_texts)
    chunks = [joined[i : i + 2000] for i in range(0, len(joined), 2000)]
    capped = train_tokenizer(chunks, vocab_size=2000, max_train_bytes=5000)
    full = train_tokenizer(chunks, vocab_size=2000)
    # 5 kB of text cannot fill 2000 tokens, so the capped tokenizer stops early.
    assert capped.vocab_size < full.vocab_size
    for text in AWKWARD_CODE.values():
        assert capped.decode(capped.encode(text)) == text
