"""The `trained_checkpoint` fixture is a real run of `tiny-copilot train`; check what that run left behind."""

from __future__ import annotations

import json
from pathlib import Path

from train_runner import TINY_RUN_ARGS, run_train

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.training.runs import OPTIMIZER_FILE, STATE_FILE


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_trained_checkpoint_loads_with_metadata(trained_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(trained_checkpoint)
    meta = checkpoint.meta

    assert checkpoint.config.d_model == 64
    assert meta["step"] > 0
    assert meta["parameters"] == checkpoint.model.num_parameters()
    assert meta["command"].startswith("tiny-copilot train --data ")
    assert set(meta["versions"]) >= {"python", "torch", "tokenizers"}
    assert meta["training_config"]["seq_len"] == 256
    assert meta["corpus"]["manifest_sha256"]
    assert meta["val"]["bpb"] > 0


def test_trained_run_writes_state_metrics_and_plot(trained_checkpoint: Path) -> None:
    run_dir = trained_checkpoint.parent

    assert (trained_checkpoint / OPTIMIZER_FILE).is_file()
    assert (trained_checkpoint / STATE_FILE).is_file()
    assert (trained_checkpoint / "corpus_manifest.json").is_file()
    assert (run_dir / "loss.png").stat().st_size > 1000
    rows = _rows(run_dir)
    assert any(row["kind"] == "train" for row in rows)
    assert any(row["kind"] == "val" for row in rows)


def test_trained_run_lowers_validation_bpb(trained_checkpoint: Path) -> None:
    val = [row for row in _rows(trained_checkpoint.parent) if row["kind"] == "val"]

    assert val[0]["step"] == 0
    assert val[-1]["step"] > 0
    # A random model scores about log2(512) / 2.2 bytes per token = 4 bits per byte; 30 s of training
    # must cut that clearly.
    assert val[-1]["val_bpb"] < val[0]["val_bpb"] - 0.5


def test_threads_above_core_count_are_lowered(tmp_path: Path) -> None:
    """--threads 100000 once made the tokenizer's thread pool fail to start and panic with a backtrace."""
    result = run_train(*TINY_RUN_ARGS, "--threads", "100000", "--max-steps", "1", "--out", str(tmp_path / "run"))

    assert "--threads 100000 is more than the" in result.stdout
    assert "panicked" not in result.stderr
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").is_file()
