"""Run checkpoints: the optimizer state survives a save and load exactly, and listing reads them back."""

from __future__ import annotations

from pathlib import Path

import torch

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.transformer import GPT
from tiny_copilot.training.runs import (
    MetricsLog,
    TrainingState,
    list_runs,
    load_optimizer_state,
    read_training_state,
    save_run_checkpoint,
)
from tiny_copilot.training.train_config import TrainConfig
from tiny_copilot.training.trainer import build_optimizer

CONFIG = ModelConfig(vocab_size=512, d_model=32, n_layers=2, n_heads=2, max_seq_len=32)


def _step(model: GPT, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x_BT = torch.randint(0, CONFIG.vocab_size, (2, 16), generator=generator)
    model(x_BT, x_BT).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_optimizer_decays_matrices_only() -> None:
    model = GPT(CONFIG)
    optimizer = build_optimizer(model, TrainConfig(weight_decay=0.1), fused=False)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1
    assert all(p.dim() == 2 for p in decayed["params"])
    assert plain["weight_decay"] == 0.0
    assert all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_resumed_optimizer_continues_identically(tmp_path: Path, small_tokenizer) -> None:
    torch.manual_seed(0)
    model = GPT(CONFIG)
    optimizer = build_optimizer(model, TrainConfig(), fused=False)
    for seed in range(3):
        _step(model, optimizer, seed)
    state = TrainingState(step=3, elapsed_s=1.5, tokens_seen=96, training_config=TrainConfig().to_dict())
    checkpoint_dir = save_run_checkpoint(tmp_path, model, small_tokenizer, {"step": 3}, optimizer, state)

    restored = load_checkpoint(checkpoint_dir).model.train()
    restored_optimizer = build_optimizer(restored, TrainConfig(), fused=False)
    load_optimizer_state(checkpoint_dir, restored, restored_optimizer)
    _step(model, optimizer, 99)
    _step(restored, restored_optimizer, 99)

    assert read_training_state(checkpoint_dir) == state
    for (name, a), b in zip(model.named_parameters(), restored.parameters()):
        assert torch.equal(a, b), name


def test_save_replaces_checkpoint_without_leftovers(tmp_path: Path, small_tokenizer) -> None:
    model = GPT(CONFIG)
    optimizer = build_optimizer(model, TrainConfig(), fused=False)
    for step in (1, 2):
        state = TrainingState(step=step, elapsed_s=0.0, tokens_seen=0, training_config=TrainConfig().to_dict())
        save_run_checkpoint(tmp_path, model, small_tokenizer, {"step": step}, optimizer, state, {"extra.json": {"a": 1}})

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert (tmp_path / "checkpoint" / "extra.json").is_file()
    assert read_training_state(tmp_path / "checkpoint").step == 2


def test_save_removes_folders_of_killed_saves(tmp_path: Path, small_tokenizer) -> None:
    # kill -9 during a save leaves its staging folders behind, named after that process's id, and each
    # later save of the resumed run (another process id) left them there, a model's size each.
    for leftover in ("checkpoint.staging", "checkpoint.staging.tmp-99999", "checkpoint.tmp-12345"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "model.safetensors").write_bytes(b"partial")
    model = GPT(CONFIG)
    optimizer = build_optimizer(model, TrainConfig(), fused=False)
    state = TrainingState(step=1, elapsed_s=0.0, tokens_seen=0, training_config=TrainConfig().to_dict())

    save_run_checkpoint(tmp_path, model, small_tokenizer, {"step": 1}, optimizer, state)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_metrics_truncate_drops_rows_after_step(tmp_path: Path) -> None:
    metrics = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 6):
        metrics.append({"kind": "train", "step": step, "loss": 1.0 / step})
    with open(metrics.path, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "train", "st')  # a row cut short by kill -9

    assert metrics.truncate_after(3) == 3
    assert [row["step"] for row in metrics.read()] == [1, 2, 3]


def test_list_runs_reports_each_run_and_problems(tmp_path: Path, small_tokenizer) -> None:
    model = GPT(CONFIG)
    optimizer = build_optimizer(model, TrainConfig(), fused=False)
    state = TrainingState(step=7, elapsed_s=0.0, tokens_seen=0, training_config=TrainConfig().to_dict())
    meta = {"step": 7, "preset": "tiny*", "parameters": model.num_parameters(), "val": {"bpb": 2.5}, "saved_at": "2026-01-02 03:04:05"}
    save_run_checkpoint(tmp_path / "good", model, small_tokenizer, meta, optimizer, state)
    (tmp_path / "started" / "data").mkdir(parents=True)
    (tmp_path / "broken" / "checkpoint").mkdir(parents=True)
    (tmp_path / "not-a-run").mkdir()

    summaries, problems = list_runs(tmp_path)

    assert [(s.name, s.preset, s.step, s.val_bpb) for s in summaries] == [("good", "tiny*", 7, 2.5)]
    assert summaries[0].parameters == model.num_parameters()
    assert len(problems) == 2
    assert any("started: no checkpoint yet" in p for p in problems)
    assert not any("not-a-run" in p for p in problems)
    assert any("broken" in p and "config.json" in p for p in problems)
