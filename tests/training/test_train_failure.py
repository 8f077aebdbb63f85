"""A `tiny-copilot train` that fails before its first checkpoint leaves no run folder behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_copilot.training.cli import main


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
