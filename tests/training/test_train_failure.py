"""A `tiny-copilot train` that fails leaves no unusable run folder behind and prints how to go on."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from tiny_copilot.training.cli import main

from train_runner import TINY_RUN_ARGS


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """In-process runs set torch's thread count; give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def corpora(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "no-source").mkdir()
    (tmp_path / "no-source" / "notes.md").write_text("# not code\n", encoding="utf-8")
    return {"missing path": tmp_path / "missing", "no usable file": tmp_path / "no-source"}


@pytest.mark.parametrize("case", ["missing path", "no usable file"])
def test_failed_run_in_default_folder_leaves_nothing(case: str, corpora: dict[str, Path], tmp_path: Path, monkeypatch, capsys) -> None:
    data_home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))

    assert main(["train", "--data", str(corpora[case]), "--max-steps", "1"]) == 1

    error = capsys.readouterr().err
    assert "error:" in error
    assert "because the run saved no checkpoint" in error
    assert not data_home.exists(), sorted(data_home.rglob("*"))


@pytest.mark.parametrize("case", ["missing path", "no usable file"])
def test_failed_run_removes_folders_it_created(case: str, corpora: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "new" / "nested" / "run"

    assert main(["train", "--data", str(corpora[case]), "--max-steps", "1", "--out", str(out)]) == 1

    assert not (tmp_path / "new").exists()
    assert f"removed {out} because the run saved no checkpoint" in capsys.readouterr().err


def test_failed_run_keeps_existing_folder_and_its_files(corpora: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's file\n", encoding="utf-8")

    assert main(["train", "--data", str(corpora["no usable file"]), "--max-steps", "1", "--out", str(out)]) == 1

    assert sorted(path.name for path in out.iterdir()) == ["notes.txt"]


def test_failed_run_keeps_data_that_was_there(corpora: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "retry"
    (out / "data").mkdir(parents=True)
    (out / "data" / "tokenizer.json").write_text("{}", encoding="utf-8")

    assert main(["train", "--data", str(corpora["missing path"]), "--max-steps", "1", "--out", str(out)]) == 1

    assert (out / "data" / "tokenizer.json").is_file()


def test_unwritable_out_is_reported(tmp_path: Path, monkeypatch, capsys) -> None:
    source = tmp_path / "src" / "app.py"
    source.parent.mkdir()
    source.write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    out = tmp_path / "read-only" / "run"
    real_mkdir = Path.mkdir

    # Tests run as root, where permissions cannot make a folder read-only, so the mkdir fails by patch.
    def mkdir(path: Path, *args, **kwargs) -> None:
        if path == out:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)

    assert main(["train", "--data", str(source.parent), "--max-steps", "1", "--out", str(out)]) == 1

    error = capsys.readouterr().err
    assert f"cannot write {out} (Read-only file system)" in error
    assert "make the folder writable, or pass --out a folder you can write to" in error
    assert "Traceback" not in error


def test_disk_full_keeps_last_checkpoint(tmp_path: Path, monkeypatch, capsys) -> None:
    from tiny_copilot.training import loop

    out = tmp_path / "run"
    real_save = loop.save_run_checkpoint
    saves = []

    def save_until_full(run_dir: Path, *args, **kwargs) -> Path:
        saves.append(run_dir)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "checkpoint.tmp"))
        return real_save(run_dir, *args, **kwargs)

    monkeypatch.setattr(loop, "save_run_checkpoint", save_until_full)

    rc = main(["train", *TINY_RUN_ARGS, "--max-steps", "2", "--checkpoint-interval", "1", "--out", str(out)])

    error = capsys.readouterr().err
    assert rc == 1
    assert f"cannot write {out / 'checkpoint.tmp'} (No space left on device)" in error
    assert f"the checkpoint in {out / 'checkpoint'} is intact, so free disk space" in error
    assert f"tiny-copilot train --resume --out {out}" in error
    assert "Traceback" not in error
    # The progress bar is closed first, so the message starts its own line.
    assert any(line.startswith("tiny-copilot train: error: cannot write") for line in error.split("\n"))
    assert (out / "checkpoint" / "model.safetensors").is_file()
