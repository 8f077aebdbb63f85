"""Helpers for tests that run the real `tiny-copilot train` on a tiny corpus in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

STDLIB = Path(sysconfig.get_paths()["stdlib"])

# The json package (about 50 KB) and a 23k-parameter model: a step takes milliseconds, so the cost of a
# run is mostly importing torch. float32, one thread and no compile make runs bit-for-bit repeatable.
TINY_RUN_ARGS = (
    "--data", str(STDLIB / "json"),
    "--vocab-size", "320", "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--seq-len", "64",
    "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "8",
    "--dtype", "float32", "--compile", "off", "--threads", "1", "--seed", "7",
)  # fmt: skip

RUN_TIMEOUT_S = 600
"""A safety net only: on a 2-core machine shared with other busy processes a 20 s run took 3 minutes."""


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tiny_copilot.training.cli", "train", *args]


def run_train(*args: str, expect_rc: int = 0) -> subprocess.CompletedProcess[str]:
    """Run `tiny-copilot train ARGS` to completion; fail with its output when the exit code differs."""
    result = subprocess.run(train_command(*args), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == expect_rc, f"exit code {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def metrics_rows(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [row for row in rows if kind is None or row["kind"] == kind]
