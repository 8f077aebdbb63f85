"""`tiny-copilot train --init`: fine-tuning keeps the checkpoint's tokenizer and shape."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from train_runner import STDLIB, run_train

from tiny_copilot.model.checkpoint import load_checkpoint, shipped_checkpoint_path
from tiny_copilot.training.cli import main

FINE_TUNE_ARGS = (
    "--data", str(STDLIB / "json"), "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "8",
    "--dtype", "float32", "--compile", "off", "--threads", "1", "--max-steps", "5", "--eval-interval", "5",
)  # fmt: skip


def test_init_fine_tunes_keeping_tokenizer(trained_checkpoint: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "tuned"
    run_train(*FINE_TUNE_ARGS, "--init", str(trained_checkpoint), "--out", str(run_dir))

    base = load_checkpoint(trained_checkpoint)
    tuned = load_checkpoint(run_dir / "checkpoint")
    assert tuned.tokenizer.sha256 == base.tokenizer.sha256
    assert tuned.config == base.config
    assert tuned.meta["step"] == 5
    assert tuned.meta["preset"] == f"fine-tuned from {trained_checkpoint}"
    # Started from the base weights, so after 5 small steps they are close to them but not equal.
    base_embed, tuned_embed = base.model.embed.weight, tuned.model.embed.weight
    assert not torch.equal(base_embed, tuned_embed)
    assert (base_embed - tuned_embed).abs().max() < 0.1


def test_init_records_base_corpus_folders(trained_checkpoint: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "tuned"
    run_train(*FINE_TUNE_ARGS, "--max-steps", "1", "--init", str(trained_checkpoint), "--out", str(run_dir))

    base = json.loads((trained_checkpoint / "corpus_manifest.json").read_text())
    base_train_files = [entry for entry in base["files"] if entry["split"] == "train"]
    parent = load_checkpoint(run_dir / "checkpoint").meta["parent"]
    # The model card names every folder any training step read, so the base's folders travel with the fine-tune.
    assert sum(parent["corpus_folders"].values()) == len(base_train_files)
    assert set(parent["corpus_folders"]) == {"/".join(Path(entry["path"]).parts[:2]) for entry in base_train_files}


def test_init_records_base_training_hashes(trained_checkpoint: Path, tmp_path: Path) -> None:
    """Eval of a fine-tune must reject the files its base was trained on, so their hashes travel with it."""
    run_dir = tmp_path / "tuned"
    run_train(*FINE_TUNE_ARGS, "--max-steps", "1", "--init", str(trained_checkpoint), "--out", str(run_dir))

    base = json.loads((trained_checkpoint / "corpus_manifest.json").read_text())
    base_train_hashes = {entry["sha256"] for entry in base["files"] if entry["split"] == "train"}
    tuned_manifest_path = run_dir / "checkpoint" / "corpus_manifest.json"
    tuned = json.loads(tuned_manifest_path.read_text())
    assert set(tuned["earlier_train_sha256"]) == base_train_hashes

    # A resumed run keeps the list, and a fine-tune of the fine-tune adds its own train split to it.
    run_train(*FINE_TUNE_ARGS, "--max-steps", "2", "--resume", "--out", str(run_dir))
    assert json.loads(tuned_manifest_path.read_text())["earlier_train_sha256"] == tuned["earlier_train_sha256"]
    second_dir = tmp_path / "tuned-again"
    run_train(*FINE_TUNE_ARGS, "--max-steps", "1", "--init", str(run_dir / "checkpoint"), "--out", str(second_dir))
    second = json.loads((second_dir / "checkpoint" / "corpus_manifest.json").read_text())
    tuned_train_hashes = {entry["sha256"] for entry in tuned["files"] if entry["split"] == "train"}
    assert set(second["earlier_train_sha256"]) == base_train_hashes | tuned_train_hashes


def test_init_may_train_a_longer_context(trained_checkpoint: Path, tmp_path: Path) -> None:
    base = load_checkpoint(trained_checkpoint)
    longer = 2 * base.config.max_seq_len
    run_dir = tmp_path / "longer"
    run_train(*FINE_TUNE_ARGS, "--max-steps", "2", "--init", str(trained_checkpoint), "--seq-len", str(longer), "--out", str(run_dir))

    tuned = load_checkpoint(run_dir / "checkpoint")
    assert tuned.config.max_seq_len == longer
    assert dataclasses.replace(tuned.config, max_seq_len=base.config.max_seq_len) == base.config
    # The card of a fine-tuned model names the command that trained its starting point.
    assert tuned.meta["parent"]["command"] == base.meta["command"]
    assert tuned.meta["parent"]["tokens_seen"] == base.meta["tokens_seen"]


def test_init_rejects_shape_options(trained_checkpoint: Path, capsys) -> None:
    assert main(["train", "--init", str(trained_checkpoint), "--d-model", "64", "--dry-run"]) == 2
    assert "--init keeps the checkpoint's shape and tokenizer" in capsys.readouterr().err


def test_dry_run_shows_the_init_checkpoints_shape(untrained_checkpoint: Path, capsys) -> None:
    """--dry-run must describe the model that --init would train, not the default preset."""
    base = load_checkpoint(untrained_checkpoint)
    assert main(["train", "--init", str(untrained_checkpoint), "--seq-len", "32", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint {untrained_checkpoint}: {dataclasses.replace(base.config, max_seq_len=32)}" in out
    assert f"parameters: {base.model.num_parameters():,} " in out


def test_dry_run_reports_a_missing_init_checkpoint(tmp_path: Path, capsys) -> None:
    assert main(["train", "--init", str(tmp_path / "nowhere"), "--dry-run"]) == 2
    assert "checkpoint folder" in capsys.readouterr().err


def test_init_default_fine_tunes_shipped_model(tmp_path: Path) -> None:
    shipped = shipped_checkpoint_path()
    if not (shipped / "config.json").is_file():
        pytest.skip("no default model is installed")
    run_dir = tmp_path / "tuned"
    # Options after FINE_TUNE_ARGS override it: the shipped model is 3.4M parameters with a 1024-token context.
    run_train(*FINE_TUNE_ARGS, "--init", "default", "--max-steps", "2", "--batch-size", "2", "--eval-batches", "1", "--out", str(run_dir))

    tuned = load_checkpoint(run_dir / "checkpoint")
    assert tuned.tokenizer.sha256 == load_checkpoint(shipped).tokenizer.sha256
    assert tuned.meta["step"] == 2


def test_init_default_without_shipped_model_says_so(tmp_path: Path, capsys) -> None:
    if (shipped_checkpoint_path() / "config.json").is_file():
        pytest.skip("the default model is installed, so --init default has no error to show")
    assert main(["train", *FINE_TUNE_ARGS, "--init", "default", "--out", str(tmp_path / "run")]) == 1
    assert "no default model is installed" in capsys.readouterr().err


def test_fresh_run_refuses_folder_with_checkpoint(trained_checkpoint: Path, capsys) -> None:
    assert main(["train", *FINE_TUNE_ARGS, "--out", str(trained_checkpoint.parent)]) == 1
    assert "already contains a run with a checkpoint; pass --resume" in capsys.readouterr().err
