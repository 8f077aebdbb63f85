"""A time budget that ends before the learning-rate warmup does gets a warning, as in a too-short fine-tune."""

from __future__ import annotations

from pathlib import Path

from train_runner import TINY_RUN_ARGS, run_train

WARNING = "fewer than the 100000 warmup steps"


def test_budget_shorter_than_warmup_warns(tmp_path: Path) -> None:
    result = run_train(*TINY_RUN_ARGS, "--time-budget", "10s", "--warmup-steps", "100000", "--out", str(tmp_path / "run"))

    assert WARNING in result.stdout + result.stderr
    assert "pass a longer --time-budget or a smaller --warmup-steps" in result.stdout + result.stderr


def test_budget_longer_than_warmup_is_quiet(tmp_path: Path) -> None:
    result = run_train(*TINY_RUN_ARGS, "--time-budget", "5s", "--warmup-steps", "2", "--out", str(tmp_path / "run"))

    assert "warmup steps" not in result.stdout + result.stderr
