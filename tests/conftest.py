"""Fixtures shared by every test layer.

`untrained_checkpoint` is a real checkpoint folder (tokenizer trained on a few standard-library files,
random weights) for tests of plumbing that do not need sensible output.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tiny_copilot.model.checkpoint import save_checkpoint
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.fim import SPECIAL_TOKENS
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="session")
def small_python_texts() -> list[str]:
    files = sorted((STDLIB / "json").glob("*.py")) + sorted((STDLIB / "collections").glob("*.py"))
    return [f.read_text(encoding="utf-8") for f in files]


@pytest.fixture(scope="session")
def small_tokenizer(small_python_texts: list[str]) -> CodeTokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(small_python_texts, trainer)
    return CodeTokenizer.from_json(tokenizer.to_str())


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory, small_tokenizer: CodeTokenizer) -> Path:
    path = tmp_path_factory.mktemp("untrained") / "checkpoint"
    model = GPT(ModelConfig(vocab_size=512, d_model=64, n_layers=2, n_heads=2, max_seq_len=512))
    save_checkpoint(path, model, small_tokenizer, {"step": 0})
    return path
