"""`tiny-copilot models`: the runs table, JSON output and the presets table."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tiny_copilot.model.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT
from tiny_copilot.training.cli import main
from tiny_copilot.training.train_config import TrainConfig


def test_models_lists_trained_run(trained_checkpoint: Path, capsys) -> None:
    runs_dir = trained_checkpoint.parent.parent
    meta = load_checkpoint(trained_checkpoint).meta

    assert main(["models", "--runs-dir", str(runs_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].split() == ["NAME", "PRESET", "PARAMS", "STEP", "VAL", "BPB", "SAVED", "CHECKPOINT"]
    row = next(line for line in lines[1:] if line.startswith("run "))
    assert f" {meta['step']} " in row
    assert f"{meta['val']['bpb']:.3f}" in row
    assert row.endswith(str(trained_checkpoint))


def test_models_json_has_every_column(trained_checkpoint: Path, capsys) -> None:
    assert main(["models", "--runs-dir", str(trained_checkpoint.parent.parent), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)

    run = next(model for model in listing["models"] if model["name"] == "run")
    assert run["path"] == str(trained_checkpoint)
    assert run["preset"] == "small*"
    assert run["parameters"] == load_checkpoint(trained_checkpoint).model.num_parameters()
    assert run["step"] > 0
    assert run["saved_at"]


def test_models_skips_broken_run_with_reason(trained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(trained_checkpoint, tmp_path / "good" / "checkpoint")
    broken = tmp_path / "broken" / "checkpoint"
    shutil.copytree(trained_checkpoint, broken)
    (broken / "config.json").write_text("{", encoding="utf-8")

    assert main(["models", "--runs-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()

    names = [line.split()[0] for line in captured.out.splitlines()[1:]]
    assert "good" in names
    assert "broken" not in names
    assert "config.json is not valid JSON" in captured.err


def test_models_says_how_to_train_when_empty(tmp_path: Path, capsys) -> None:
    (tmp_path / "none").mkdir()
    assert main(["models", "--runs-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "tiny-copilot train --time-budget 10m" in out
    # The shipped model is still listed, so the line must not claim that there are no models at all.
    assert "no runs of your own" in out


def test_models_default_runs_folder_may_be_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "fresh-install"))
    assert main(["models"]) == 0
    assert "no runs of your own" in capsys.readouterr().out


def test_models_rejects_missing_runs_dir(tmp_path: Path, capsys) -> None:
    # A typo in --runs-dir printed "no runs of your own under ...", as if the folder were empty.
    missing = tmp_path / "rnus"
    assert main(["models", "--runs-dir", str(missing)]) == 2
    error = capsys.readouterr().err
    assert f"--runs-dir {missing} not found" in error


def test_models_rejects_file_as_runs_dir(tmp_path: Path, capsys) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me\n", encoding="utf-8")
    assert main(["models", "--runs-dir", str(taken)]) == 2
    assert f"--runs-dir {taken} is a file, not a folder" in capsys.readouterr().err


def test_models_run_folder_as_runs_dir_names_parent(trained_checkpoint: Path, capsys) -> None:
    run_dir = trained_checkpoint.parent
    assert main(["models", "--runs-dir", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert f"--runs-dir {run_dir} is a training run folder" in error
    assert f"tiny-copilot models --runs-dir {run_dir.parent}" in error


def _save_run(runs_dir: Path, name: str, tokenizer: CodeTokenizer, meta: dict) -> Path:
    checkpoint_dir = runs_dir / name / "checkpoint"
    model = GPT(ModelConfig(vocab_size=512, d_model=32, n_layers=1, n_heads=2, max_seq_len=64))
    save_checkpoint(checkpoint_dir, model, tokenizer, {"step": 3, **meta})
    return checkpoint_dir


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + " "))


def test_models_shows_no_date_without_saved_at(small_tokenizer: CodeTokenizer, tmp_path: Path, capsys) -> None:
    checkpoint_dir = _save_run(tmp_path, "undated", small_tokenizer, {"preset": "tiny"})
    file_time = time.mktime((2001, 2, 3, 4, 5, 6, 0, 0, -1))
    for path in checkpoint_dir.iterdir():
        os.utime(path, (file_time, file_time))

    assert main(["models", "--runs-dir", str(tmp_path)]) == 0
    row = _row(capsys.readouterr().out, "undated")

    assert "2001" not in row
    assert row.split()[5] == "-"
    assert main(["models", "--runs-dir", str(tmp_path), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert next(m for m in listing["models"] if m["name"] == "undated")["saved_at"] is None


def test_models_shows_recorded_saved_at(small_tokenizer: CodeTokenizer, tmp_path: Path, capsys) -> None:
    _save_run(tmp_path, "dated", small_tokenizer, {"preset": "tiny", "saved_at": "2026-01-02 03:04:05"})

    assert main(["models", "--runs-dir", str(tmp_path)]) == 0

    assert "2026-01-02 03:04:05" in _row(capsys.readouterr().out, "dated")


def test_shipped_model_date_comes_from_config(tmp_path: Path, capsys) -> None:
    shipped = shipped_checkpoint_path()
    if not (shipped / "config.json").is_file():
        pytest.skip("no default model is installed")
    recorded = json.loads((shipped / "config.json").read_text(encoding="utf-8")).get("saved_at") or "-"

    assert main(["models", "--runs-dir", str(tmp_path)]) == 0

    assert f"  {recorded}  " in _row(capsys.readouterr().out, "default (shipped)")


def test_models_explains_changed_preset(small_tokenizer: CodeTokenizer, tmp_path: Path, capsys) -> None:
    training_config = TrainConfig(preset="small", seq_len=512, n_layers=3).to_dict()
    _save_run(tmp_path, "changed", small_tokenizer, {"preset": "small*", "training_config": training_config})
    _save_run(tmp_path, "plain", small_tokenizer, {"preset": "tiny", "training_config": TrainConfig(preset="tiny").to_dict()})
    _save_run(tmp_path, "unknown", small_tokenizer, {"preset": "medium*"})

    assert main(["models", "--runs-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert "* changed: the small preset with --n-layers 3 --seq-len 512" in lines
    assert "* unknown: the medium preset with a changed shape (see its config.json)" in lines
    assert not any(line.startswith("* plain") for line in lines)
    assert main(["models", "--runs-dir", str(tmp_path), "--json"]) == 0
    by_name = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert by_name["changed"]["shape_options"] == "--n-layers 3 --seq-len 512"
    assert by_name["plain"]["shape_options"] is None


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        ("fine-tuned from /home/ada/runs/v3/checkpoint", "fine-tuned from v3"),
        ("fine-tuned from /home/ada/models/mine", "fine-tuned from mine"),
        ("fine-tuned from default", "fine-tuned from default"),
    ],
)
def test_models_names_fine_tune_base_by_run(
    small_tokenizer: CodeTokenizer, tmp_path: Path, capsys, recorded: str, shown: str
) -> None:
    _save_run(tmp_path, "tuned", small_tokenizer, {"preset": recorded})

    assert main(["models", "--runs-dir", str(tmp_path), "--json"]) == 0

    listing = json.loads(capsys.readouterr().out)
    assert next(m for m in listing["models"] if m["name"] == "tuned")["preset"] == shown
