"""`tiny-copilot models`: the runs table, JSON output and the presets table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tiny_copilot.model.checkpoint import load_checkpoint
from tiny_copilot.training.cli import main


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
    assert main(["models", "--runs-dir", str(tmp_path / "none")]) == 0
    assert "tiny-copilot train --time-budget 10m" in capsys.readouterr().out
