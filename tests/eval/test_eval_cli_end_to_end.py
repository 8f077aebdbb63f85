"""`tiny-copilot eval` from the command line, with tiny limits, on a real checkpoint and run folder.

The trained_checkpoint fixture (a model trained by `tiny-copilot train`) is used when the test suite
has it. Otherwise a run folder is assembled around random weights. That exercises the same plumbing,
but its scores mean nothing.
"""

import json
import shutil
import sysconfig
from pathlib import Path

import pytest

from tiny_copilot.model.checkpoint import save_checkpoint
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.transformer import GPT
from tiny_copilot.training.cli import main
from tiny_copilot.training.corpus import build_corpus

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def run_checkpoint(request, tmp_path_factory, small_tokenizer) -> Path:
    try:
        return request.getfixturevalue("trained_checkpoint")
    except pytest.FixtureLookupError:
        pass
    root = tmp_path_factory.mktemp("eval-run")
    source = root / "source"
    source.mkdir()
    for path in sorted((STDLIB / "json").glob("*.py")) + sorted((STDLIB / "collections").glob("*.py")):
        shutil.copy(path, source / f"{path.parent.name}_{path.name}")
    corpus = build_corpus([source], val_fraction=0.3)
    run = root / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "corpus_manifest.json").write_text(json.dumps(corpus.manifest), encoding="utf-8")
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": step, "train_loss": 6.0 - step / 4}) + "\n" for step in range(8)), encoding="utf-8"
    )
    model = GPT(ModelConfig(vocab_size=512, d_model=64, n_layers=2, n_heads=2, max_seq_len=256))
    save_checkpoint(run / "checkpoint", model, small_tokenizer, {"step": 0})
    return run / "checkpoint"


def _manifest_of(checkpoint: Path) -> dict:
    return json.loads((checkpoint.parent / "data" / "corpus_manifest.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_eval_writes_json_report_and_plots(run_checkpoint, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "eval", "--checkpoint", str(run_checkpoint), "--out", str(out), "--limit", "2", "--line-cases", "2",
            "--humaneval-limit", "3", "--typing-files", "1", "--typing-chars", "24", "--bpb-chars", "3000",
            "--settings", '{"maxNewTokens": 6, "threads": 1}',
        ]
    )  # fmt: skip
    assert code == 0

    results = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert results["held_out"]["source"] == "validation split"
    assert 1 <= results["held_out"]["files"] <= 2
    assert results["bits_per_byte"], "bits per byte needs at least one language"
    assert all(row["bits_per_byte"] > 0 for row in results["bits_per_byte"].values())
    assert results["line_completion"]["overall"]["cases"] >= 2
    assert results["humaneval"]["summary"]["tasks"] == 3
    assert results["completer_settings"]["max_new_tokens"] == 6
    assert results["humaneval"]["summary"]["pass_rate"] is not None

    typing = results["typing"]
    assert typing["model"]["chars"] == typing["baseline_word_completion"]["chars"] > 0
    assert typing["model"]["requests"] >= typing["model"]["keystrokes"]
    assert typing["model"]["latency_ms_p50"] > 0
    assert typing["cold_start"]["first_reply_ms"] > 0
    assert typing["server_memory_kib"]["VmRSS"] > 0
    assert set(results["targets"]) == {
        "line_exact_match", "line_edit_similarity", "humaneval_exact_match", "typing_keystrokes_saved", "typing_ratio_to_baseline",
    }  # fmt: skip

    report = (out / "report.md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## Bits per byte", "## Line completion", "## HumanEval", "## Typing replay", "## Metric definitions"):
        assert heading in report
    for plot in ("latency_histogram.png", "chars_saved_by_position.png", "loss_curves.png"):
        assert (out / plot).stat().st_size > 1000
    assert len((out / "line_completion.jsonl").read_text(encoding="utf-8").splitlines()) == results["line_completion"]["overall"]["cases"]


def test_eval_rejects_a_training_file(run_checkpoint, tmp_path, capsys):
    manifest = _manifest_of(run_checkpoint)
    record = next(r for r in manifest["files"] if r["split"] == "train")
    train_file = Path(manifest["roots"][record["root"]]) / record["path"]

    code = main(["eval", "--checkpoint", str(run_checkpoint), "--out", str(tmp_path / "out"), "--data", str(train_file)])

    assert code == 2
    assert "is in the training corpus of this checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "a rejected evaluation left an empty output folder behind"


@pytest.mark.parametrize("below", ["", "results"])
def test_eval_rejects_out_that_is_file(run_checkpoint, tmp_path, capsys, below):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder\n", encoding="utf-8")
    out = taken / below if below else taken

    code = main(["eval", "--checkpoint", str(run_checkpoint), "--out", str(out), "--skip-typing", "--skip-humaneval"])

    assert code == 2
    error = capsys.readouterr().err
    assert f"cannot create the output folder {out}: {taken} is a file, not a folder" in error
    assert taken.read_text(encoding="utf-8") == "not a folder\n"


def test_eval_rejects_a_checkpoint_without_manifest(untrained_checkpoint, tmp_path, capsys):
    code = main(["eval", "--checkpoint", str(untrained_checkpoint), "--out", str(tmp_path / "out"), "--skip-typing"])
    assert code == 2
    assert "no corpus manifest" in capsys.readouterr().err
