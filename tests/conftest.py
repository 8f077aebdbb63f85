"""Fixtures shared by every test layer.

`untrained_checkpoint` is a real checkpoint folder (tokenizer trained on a few standard-library files,
random weights) for tests of plumbing that do not need sensible output. `trained_checkpoint` is a tiny
model trained for about 30 s by the real `tiny-copilot train`, for tests that need code-like suggestions.
"""

from __future__ import annotations

import subprocess
import sys
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


# A few standard-library packages: about 1.5 MB of real Python, enough for a tiny model to learn
# indentation, keywords and common identifiers in half a minute. One thread: on a shared 2-core machine
# two OpenMP threads that wait for each other ran validation 20 times slower than one.
TRAINED_CORPUS_PACKAGES = ("json", "collections", "email", "asyncio", "concurrent", "importlib")


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder really trained by `tiny-copilot train` for 300 steps (d_model 64, 2 layers, vocab 512).

    A step count, not a time budget, fixes how much it learns: under a time budget a loaded machine
    once stopped at step 0 and every "trained" test ran on random weights. About 30 s on an idle
    2-core machine. Its suggestions are poor but shaped like code.
    """
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    command = [
        sys.executable, "-m", "tiny_copilot.training.cli", "train",
        "--data", *(str(STDLIB / package) for package in TRAINED_CORPUS_PACKAGES),
        "--d-model", "64", "--n-layers", "2", "--n-heads", "2", "--vocab-size", "512", "--seq-len", "256",
        "--batch-size", "16", "--lr", "3e-3", "--warmup-steps", "20",
        "--max-steps", "300", "--dtype", "float32",
        "--eval-interval", "150", "--eval-batches", "4", "--checkpoint-interval", "150",
        "--compile", "off", "--seed", "1", "--threads", "1",
        "--out", str(run_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"`tiny-copilot train` failed with exit code {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return run_dir / "checkpoint"
