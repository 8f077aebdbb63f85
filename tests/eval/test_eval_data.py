import json
import shutil
from pathlib import Path

import pytest

from tiny_copilot.training.corpus import build_corpus
from tiny_copilot.training.eval_data import (
    ManifestError,
    OverlapError,
    held_out_from_data,
    held_out_from_manifest,
    training_hashes,
)
from tiny_copilot.training.eval_run import find_manifest


def _source(index: int) -> str:
    return f"def function_{index}(value):\n    total = value * {index}\n    return total + {index}\n"


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for index in range(12):
        (folder / f"module_{index}.py").write_text(_source(index), encoding="utf-8")
    return folder


@pytest.fixture()
def manifest(corpus_dir: Path) -> dict:
    corpus = build_corpus([corpus_dir], val_fraction=0.3)
    splits = {record["split"] for record in corpus.manifest["files"]}
    assert splits == {"train", "val"}, "the fixture needs files in both splits"
    return corpus.manifest


def _paths_of(manifest: dict, split: str) -> list[str]:
    return [record["path"] for record in manifest["files"] if record["split"] == split]


def test_validation_split_is_read_back(manifest):
    held_out = held_out_from_manifest(manifest)
    assert sorted(f.name for f in held_out.files) == sorted(_paths_of(manifest, "val"))
    assert held_out.left_out == {}
    assert all(f.language == "python" for f in held_out.files)
    assert not {f.sha256 for f in held_out.files} & training_hashes(manifest)


def test_changed_and_missing_validation_files_are_left_out(manifest, corpus_dir):
    val_paths = _paths_of(manifest, "val")
    if len(val_paths) < 3:
        pytest.skip("needs three validation files")
    (corpus_dir / val_paths[0]).write_text("x = 'edited after training'\n", encoding="utf-8")
    (corpus_dir / val_paths[1]).unlink()

    held_out = held_out_from_manifest(manifest)

    assert held_out.left_out == {"changed_since_training": 1, "missing": 1}
    assert len(held_out.files) == len(val_paths) - 2


def test_data_folder_leaves_out_training_files(manifest, corpus_dir, tmp_path):
    data = tmp_path / "heldout"
    data.mkdir()
    train_path = _paths_of(manifest, "train")[0]
    shutil.copy(corpus_dir / train_path, data / "renamed_copy.py")  # same content, other name
    (data / "fresh.py").write_text(_source(99), encoding="utf-8")

    held_out = held_out_from_data([data], manifest)

    assert [Path(f.name).name for f in held_out.files] == ["fresh.py"]
    assert held_out.left_out == {"in_training_corpus": 1}


def test_explicit_training_file_is_rejected(manifest, corpus_dir):
    train_file = corpus_dir / _paths_of(manifest, "train")[0]
    with pytest.raises(OverlapError, match="is in the training corpus of this checkpoint"):
        held_out_from_data([train_file], manifest)


def test_data_of_only_training_files_is_rejected(manifest, corpus_dir, tmp_path):
    data = tmp_path / "copies"
    data.mkdir()
    for name in _paths_of(manifest, "train")[:2]:
        shutil.copy(corpus_dir / name, data / name)
    with pytest.raises(OverlapError, match="no held-out file left"):
        held_out_from_data([data], manifest)


def test_empty_validation_split_says_so(tmp_path):
    # A corpus of one one-line file has an empty validation split, and the error blamed "no readable file".
    (tmp_path / "only.py").write_text("x = 1\n", encoding="utf-8")
    manifest = build_corpus([tmp_path]).manifest

    with pytest.raises(ManifestError) as raised:
        held_out_from_manifest(manifest)

    assert "the validation split is empty because the training corpus was too small" in str(raised.value)
    assert "no readable file" not in str(raised.value)
    assert "pass --data with code the model was not trained on" in str(raised.value)


def test_manifest_without_file_hashes_is_rejected(tmp_path):
    (tmp_path / "a.py").write_text(_source(1), encoding="utf-8")
    with pytest.raises(ManifestError, match="no per-file SHA-256 list"):
        held_out_from_data([tmp_path], {"languages": {"python": {}}})


def test_crlf_files_reach_the_completer_with_lf(manifest, tmp_path):
    data = tmp_path / "crlf"
    data.mkdir()
    (data / "windows.py").write_bytes(b"def f():\r\n    return 1\r\n")
    held_out = held_out_from_data([data], manifest)
    assert held_out.files[0].text == "def f():\n    return 1\n"


def test_find_manifest_in_run_folder(tmp_path, manifest):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "data").mkdir()
    (run / "data" / "corpus_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert find_manifest(run / "checkpoint", {}, None) == manifest


def test_find_manifest_reports_where_it_looked(tmp_path):
    with pytest.raises(ManifestError, match="pass --manifest PATH"):
        find_manifest(tmp_path, {}, None)
    with pytest.raises(ManifestError, match="--manifest .* not found"):
        find_manifest(tmp_path, {}, tmp_path / "missing.json")


def test_files_of_earlier_stages_are_not_held_out(manifest, corpus_dir):
    """A fine-tune's manifest lists what its starting checkpoint trained on; eval treats those as trained."""
    val_records = [record for record in manifest["files"] if record["split"] == "val"]
    seen_earlier = val_records[0]
    fine_tune_manifest = {**manifest, "earlier_train_sha256": [seen_earlier["sha256"]]}

    held_out = held_out_from_manifest(fine_tune_manifest)
    assert seen_earlier["path"] not in [f.name for f in held_out.files]
    assert len(held_out.files) == len(val_records) - 1
    assert held_out.left_out == {"in_training_corpus": 1}

    with pytest.raises(OverlapError, match="is in the training corpus of this checkpoint"):
        held_out_from_data([corpus_dir / seen_earlier["path"]], fine_tune_manifest)


def test_malformed_earlier_hash_list_is_rejected(manifest):
    with pytest.raises(ManifestError, match="earlier_train_sha256"):
        held_out_from_manifest({**manifest, "earlier_train_sha256": "not a list"})


def test_many_missing_files_log_a_count(manifest, corpus_dir, caplog):
    """A validation split whose corpus is not on this machine logs a few paths and one count, not a line per file."""
    shutil.rmtree(corpus_dir)
    val_count = len(_paths_of(manifest, "val"))
    assert val_count > 3, "the fixture needs more validation files than are logged one by one"

    with caplog.at_level("WARNING", logger="tiny_copilot.training.eval_data"), pytest.raises(ManifestError, match=f"missing {val_count}"):
        held_out_from_manifest(manifest)

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4, messages
    assert messages[-1] == f"{val_count - 3} more validation files left out as missing"
