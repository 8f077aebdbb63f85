"""scripts/device-train.sh: `train` on a compressed corpus, then `unpack` gives a run that loads."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tiny_copilot.model.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "device-train.sh"

pytestmark = pytest.mark.slow


def write_corpus_archive(stash: Path, small_python_texts: list[str]) -> None:
    corpus = stash / "corpus" / "python"
    corpus.mkdir(parents=True)
    for index, text in enumerate(small_python_texts[:6]):
        (corpus / f"module_{index}.py").write_text(text, encoding="utf-8")
    with tarfile.open(stash / "corpus.tar.xz", "w:xz") as archive:
        archive.add(stash / "corpus", arcname="corpus")


def test_train_then_unpack_gives_loadable_run(tmp_path: Path, small_python_texts: list[str]) -> None:
    stash, out, run = tmp_path / "stash", tmp_path / "out", tmp_path / "run"
    write_corpus_archive(stash, small_python_texts)
    out.mkdir()
    # This interpreter already has the packages whose wheels `prepare` would fetch, so the stash has no wheels.
    env = {**os.environ, "DEVICE_STASH": str(stash), "OUT": str(out), "PYTHON": sys.executable}
    train_args = ["--preset", "tiny", "--seq-len", "64", "--batch-size", "2", "--max-steps", "2", "--compile", "off", "--threads", "1"]
    trained = subprocess.run(["bash", str(SCRIPT), "train", *train_args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    parts = sorted(out.glob("run.tar.part-*"))
    assert parts, f"no parts in {sorted(p.name for p in out.iterdir())}"
    assert "finished at step 2" in (out / "train.log").read_text(encoding="utf-8")

    unpacked = subprocess.run(["bash", str(SCRIPT), "unpack", str(out), str(run)], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert unpacked.returncode == 0, unpacked.stderr
    assert (run / "metrics.jsonl").is_file()
    assert not (run / "checkpoint" / "optimizer.safetensors").exists()
    assert load_checkpoint(run / "checkpoint").model.config.max_seq_len == 64
