"""Interrupting and resuming real `tiny-copilot train` runs: kill -9, Ctrl-C, and broken checkpoints."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from train_runner import RUN_TIMEOUT_S, STDLIB, TINY_RUN_ARGS, metrics_rows, run_train, train_command

from tiny_copilot.model.checkpoint import shipped_checkpoint_path
from tiny_copilot.training.cli import main
from tiny_copilot.training.corpus import split_fraction
from tiny_copilot.training.eval_data import held_out_from_manifest

RESUME_ARGS = ("--max-steps", "150", "--checkpoint-interval", "10", "--eval-interval", "50", "--log-interval", "1")
CHECKPOINT_INTERVAL = 10
POLL_S = 0.02


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    run_train(*TINY_RUN_ARGS, *RESUME_ARGS, "--out", str(run_dir))
    return run_dir


@pytest.fixture
def keep_torch_threads():
    """In-process runs set torch's thread count; give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _start_until_step(run_dir: Path, min_step: int) -> subprocess.Popen[str]:
    """Start a run and return once metrics.jsonl shows `min_step` completed steps."""
    process = subprocess.Popen(
        train_command(*TINY_RUN_ARGS, *RESUME_ARGS, "--out", str(run_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + RUN_TIMEOUT_S
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            pytest.fail(f"the run ended (exit code {process.returncode}) before step {min_step}:\n{stdout}\n{stderr}")
        if metrics.exists():
            rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.endswith("}")]
            if any(row["kind"] == "train" and row["step"] >= min_step for row in rows):
                return process
        time.sleep(POLL_S)
    process.kill()
    pytest.fail(f"the run did not reach step {min_step} within {RUN_TIMEOUT_S} s")


def _assert_same_weights(a: Path, b: Path) -> None:
    weights_a, weights_b = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), f"{name} differs"


def test_resume_after_kill_matches_uninterrupted(tmp_path: Path, uninterrupted_run: Path) -> None:
    run_dir = tmp_path / "run"
    process = _start_until_step(run_dir, 25)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    last_step_before_kill = metrics_rows(run_dir, "train")[-1]["step"]

    result = run_train("--resume", "--out", str(run_dir))

    resumed_at = int(re.search(r"resuming at step (\d+)", result.stdout).group(1))
    assert resumed_at % CHECKPOINT_INTERVAL == 0
    assert 0 <= last_step_before_kill - resumed_at <= CHECKPOINT_INTERVAL
    rows = metrics_rows(run_dir, "train")
    assert [row["step"] for row in rows] == list(range(1, 151))
    straight = metrics_rows(uninterrupted_run, "train")
    assert [row["loss"] for row in rows] == [row["loss"] for row in straight]
    _assert_same_weights(run_dir / "checkpoint", uninterrupted_run / "checkpoint")


def test_ctrl_c_saves_then_resume_matches(tmp_path: Path, uninterrupted_run: Path) -> None:
    run_dir = tmp_path / "run"
    process = _start_until_step(run_dir, 15)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)

    assert process.returncode == 130, stderr
    assert "continue with: tiny-copilot train --resume" in stdout
    # Ctrl-C skips the final evaluation, so the summary shows an older figure and names its step.
    summary = re.search(r"interrupted at step (\d+), val [\d.]+ bits/byte \(measured at step (\d+)\)", stdout)
    assert summary is not None, stdout
    assert int(summary[2]) < int(summary[1])
    saved = json.loads((run_dir / "checkpoint" / "training_state.json").read_text(encoding="utf-8"))
    # The checkpoint is written at the step where the signal arrived, not at the last interval.
    assert saved["step"] == metrics_rows(run_dir, "train")[-1]["step"]

    run_train("--resume", "--out", str(run_dir))
    _assert_same_weights(run_dir / "checkpoint", uninterrupted_run / "checkpoint")


def test_resume_from_another_folder_finds_relative_data(tmp_path: Path) -> None:
    """`--data` relative to the folder the run started in must still name the corpus when resuming elsewhere."""
    args = list(TINY_RUN_ARGS)
    data = Path(args[args.index("--data") + 1])
    args[args.index("--data") + 1] = data.name
    run_dir = tmp_path / "run"
    first = subprocess.run(
        train_command(*args, "--max-steps", "4", "--out", str(run_dir)),
        cwd=data.parent, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        train_command("--resume", "--out", str(run_dir), "--max-steps", "6"),
        cwd=elsewhere, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "finished at step 6" in resumed.stdout


def test_resume_keeps_renamed_training_file_out_of_eval(tmp_path: Path) -> None:
    # Renaming a file can move it into the validation split, because the split hashes the path. The
    # resumed run's manifest then offered `tiny-copilot eval` a file the model had trained on.
    args = list(TINY_RUN_ARGS)
    corpus = shutil.copytree(args[args.index("--data") + 1], tmp_path / "corpus")
    args[args.index("--data") + 1] = str(corpus)
    run_dir = tmp_path / "run"
    run_train(*args, "--max-steps", "4", "--out", str(run_dir))
    first = json.loads((run_dir / "checkpoint" / "corpus_manifest.json").read_text(encoding="utf-8"))
    trained = next(record for record in first["files"] if record["split"] == "train")
    new_name = next(f"renamed_{i}.py" for i in range(1000) if split_fraction(f"renamed_{i}.py") < 0.05)
    (corpus / trained["path"]).rename(corpus / new_name)

    run_train("--resume", "--out", str(run_dir), "--max-steps", "6")

    resumed = json.loads((run_dir / "checkpoint" / "corpus_manifest.json").read_text(encoding="utf-8"))
    assert any(record["path"] == new_name and record["split"] == "val" for record in resumed["files"])
    held_out = held_out_from_manifest(resumed)
    assert new_name not in {file.name for file in held_out.files}
    assert held_out.left_out.get("in_training_corpus") == 1


def test_resume_after_corpus_removed_uses_token_files(tmp_path: Path) -> None:
    # The run folder contains the tokenized corpus, yet a moved or deleted source folder stopped --resume
    # with "corpus path ... does not exist", and --resume rejected a new --data.
    args = list(TINY_RUN_ARGS)
    corpus = shutil.copytree(args[args.index("--data") + 1], tmp_path / "corpus")
    args[args.index("--data") + 1] = str(corpus)
    run_dir = tmp_path / "run"
    run_train(*args, "--max-steps", "4", "--out", str(run_dir))
    shutil.rmtree(corpus)

    resumed = run_train("--resume", "--out", str(run_dir), "--max-steps", "6")

    assert f"resuming from the token files in {run_dir / 'data'}" in resumed.stdout
    assert "finished at step 6" in resumed.stdout
    saved = json.loads((run_dir / "checkpoint" / "config.json").read_text(encoding="utf-8"))
    first_manifest = json.loads((run_dir / "data" / "corpus_manifest.json").read_text(encoding="utf-8"))
    assert saved["corpus"]["roots"] == first_manifest["roots"]


def test_resume_after_corpus_removed_without_token_files_fails(tmp_path: Path, capsys, keep_torch_threads) -> None:
    args = list(TINY_RUN_ARGS)
    corpus = shutil.copytree(args[args.index("--data") + 1], tmp_path / "corpus")
    args[args.index("--data") + 1] = str(corpus)
    run_dir = tmp_path / "run"
    run_train(*args, "--max-steps", "4", "--out", str(run_dir))
    shutil.rmtree(corpus)
    (run_dir / "data" / "train.tokens.u16").write_bytes(b"")

    assert main(["train", "--resume", "--out", str(run_dir), "--max-steps", "6"]) == 1

    error = capsys.readouterr().err
    assert f"corpus path {str(corpus)!r} does not exist" in error
    assert f"restore the corpus at {corpus}" in error
    assert (run_dir / "checkpoint" / "model.safetensors").is_file()


def test_resume_of_finished_run_asks_for_more_steps(uninterrupted_run: Path, capsys, keep_torch_threads) -> None:
    assert main(["train", "--resume", "--out", str(uninterrupted_run)]) == 1
    assert "already finished at step 150" in capsys.readouterr().err


def test_resume_rejects_changed_model_option(uninterrupted_run: Path, capsys) -> None:
    assert main(["train", "--resume", "--out", str(uninterrupted_run), "--d-model", "64", "--lr", "0.01"]) == 2
    error = capsys.readouterr().err
    assert "--d-model 64 (the run has 32)" in error
    assert "--lr 0.01" in error


@pytest.fixture
def broken_run(tmp_path: Path, uninterrupted_run: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted_run, run_dir)
    return run_dir


def _resume_error(run_dir: Path, capsys) -> str:
    code = main(["train", "--resume", "--out", str(run_dir), "--max-steps", "160"])
    assert code in (1, 2)
    return capsys.readouterr().err


def test_truncated_weights_raise_checkpoint_error(broken_run: Path, capsys, keep_torch_threads) -> None:
    weights = broken_run / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert "model.safetensors is corrupt or truncated" in _resume_error(broken_run, capsys)


def test_foreign_tokenizer_raises_checkpoint_error(broken_run: Path, small_tokenizer, capsys, keep_torch_threads) -> None:
    (broken_run / "checkpoint" / "tokenizer.json").write_text(small_tokenizer.json_text, encoding="utf-8")
    assert "tokenizer.json does not belong to this model" in _resume_error(broken_run, capsys)


def test_invalid_training_state_raises_checkpoint_error(broken_run: Path, capsys, keep_torch_threads) -> None:
    (broken_run / "checkpoint" / "training_state.json").write_text("{ not json", encoding="utf-8")
    assert "training_state.json is not valid JSON" in _resume_error(broken_run, capsys)


def test_missing_training_state_suggests_init(broken_run: Path, capsys, keep_torch_threads) -> None:
    (broken_run / "checkpoint" / "training_state.json").unlink()
    error = _resume_error(broken_run, capsys)
    assert "contains a model but no training state" in error
    assert f"tiny-copilot train --init {broken_run / 'checkpoint'} --out" in error


def test_corrupt_optimizer_state_raises_checkpoint_error(broken_run: Path, capsys, keep_torch_threads) -> None:
    (broken_run / "checkpoint" / "optimizer.safetensors").write_bytes(b"\x00" * 64)
    assert "optimizer.safetensors is missing or corrupt" in _resume_error(broken_run, capsys)


def test_mismatched_optimizer_state_raises_checkpoint_error(broken_run: Path, capsys, keep_torch_threads) -> None:
    path = broken_run / "checkpoint" / "optimizer.safetensors"
    tensors = load_file(str(path))
    tensors["state/embed.weight/exp_avg"] = torch.zeros(3, 3)
    save_file(tensors, str(path))
    error = _resume_error(broken_run, capsys)
    assert "exp_avg of embed.weight has shape (3, 3)" in error
    assert "belongs to another model" in error


def _damage_state(checkpoint: Path, case: str) -> None:
    state_path = checkpoint / "training_state.json"
    state = json.loads(state_path.read_text(encoding="utf-8"))
    if case == "invalid state JSON":
        state_path.write_text("{ not json", encoding="utf-8")
    elif case == "incomplete state":
        state_path.write_text(json.dumps({"version": state["version"]}), encoding="utf-8")
    elif case == "unsupported state version":
        state_path.write_text(json.dumps({**state, "version": 999}), encoding="utf-8")
    elif case == "corrupt optimizer":
        (checkpoint / "optimizer.safetensors").write_bytes(b"\x00" * 64)


@pytest.mark.parametrize("case", ["invalid state JSON", "incomplete state", "unsupported state version", "corrupt optimizer"])
def test_damaged_training_state_suggests_init(broken_run: Path, case: str, capsys, keep_torch_threads) -> None:
    checkpoint = broken_run / "checkpoint"
    _damage_state(checkpoint, case)

    error = _resume_error(broken_run, capsys)

    assert "resume is not possible" in error
    assert f"tiny-copilot train --init {checkpoint} --data {STDLIB / 'json'} --out NEW_RUN_FOLDER" in error


def test_resume_without_checkpoint_says_so(tmp_path: Path, capsys) -> None:
    (tmp_path / "run").mkdir()
    assert main(["train", "--resume", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'run'} is not a run folder (it has no checkpoint/ folder)" in error
    assert "exported" not in error


def test_resume_of_exported_checkpoint_suggests_init(untrained_checkpoint: Path, capsys) -> None:
    assert main(["train", "--resume", "--out", str(untrained_checkpoint)]) == 2
    error = capsys.readouterr().err
    assert f"{untrained_checkpoint} is a model checkpoint folder" in error
    assert "not a training run, so there is nothing to resume" in error
    assert f"tiny-copilot train --init {untrained_checkpoint} --out" in error


def test_resume_of_shipped_model_suggests_init_default(capsys) -> None:
    shipped = shipped_checkpoint_path()
    if not (shipped / "config.json").is_file():
        pytest.skip("no default model is installed")
    assert main(["train", "--resume", "--out", str(shipped)]) == 2
    error = capsys.readouterr().err
    assert f"{shipped} is the default model installed with tiny-copilot" in error
    assert "tiny-copilot train --init default --out" in error


def test_resume_of_run_checkpoint_names_run(uninterrupted_run: Path, capsys) -> None:
    assert main(["train", "--resume", "--out", str(uninterrupted_run / "checkpoint")]) == 2
    error = capsys.readouterr().err
    assert f"is the checkpoint folder of the run {uninterrupted_run}" in error
    assert f"--resume --out {uninterrupted_run}" in error


def test_resume_of_missing_folder_says_so(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", "--out", str(tmp_path / "missing")]) == 2
    assert f"{tmp_path / 'missing'} does not exist" in capsys.readouterr().err


def test_resume_of_run_without_checkpoint_says_so(tmp_path: Path, capsys) -> None:
    (tmp_path / "run" / "data").mkdir(parents=True)
    assert main(["train", "--resume", "--out", str(tmp_path / "run")]) == 2
    assert "stopped before its first checkpoint, so there is nothing to resume" in capsys.readouterr().err


def test_interrupted_save_falls_back_to_old_checkpoint(broken_run: Path, capsys, keep_torch_threads) -> None:
    # A crash between the two renames of a save leaves only checkpoint.old.
    os.replace(broken_run / "checkpoint", broken_run / "checkpoint.old")
    assert "already finished at step 150" in _resume_error_finished(broken_run, capsys)


def _resume_error_finished(run_dir: Path, capsys) -> str:
    assert main(["train", "--resume", "--out", str(run_dir)]) == 1
    return capsys.readouterr().err
