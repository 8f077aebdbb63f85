"""Training under torchrun with two CPU processes on the gloo backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from train_runner import RUN_TIMEOUT_S, TINY_RUN_ARGS, metrics_rows

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.training.runs import read_training_state

STEPS = 6
BATCH_SIZE = 4
SEQ_LEN = 64


def test_two_gloo_processes_train_and_rank_zero_writes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "tiny_copilot.training.cli", "train", *TINY_RUN_ARGS,
        "--device", "cpu", "--max-steps", str(STEPS), "--grad-accum", "2", "--log-interval", "1",
        "--eval-interval", "3", "--checkpoint-interval", "3", "--out", str(run_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    # Each line a learner reads is printed once, by rank 0.
    assert result.stdout.count("run folder:") == 1
    assert "2 process(es)" in result.stdout
    train_rows = metrics_rows(run_dir, "train")
    assert [row["step"] for row in train_rows] == list(range(1, STEPS + 1))
    assert [row["step"] for row in metrics_rows(run_dir, "val")] == [0, 3, 6]

    state = read_training_state(run_dir / "checkpoint")
    assert state.step == STEPS
    assert state.tokens_seen == STEPS * 2 * 2 * BATCH_SIZE * SEQ_LEN  # steps x processes x micro-batches x rows x tokens
    checkpoint = load_checkpoint(run_dir / "checkpoint")
    assert checkpoint.meta["step"] == STEPS
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
