"""prepare_data: token files, their reuse and invalidation; the sampler and validation batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.training.batches import BatchConfig, BatchSampler, ValidationBatches
from tiny_copilot.training.data import PreparedData, TokenFile, prepare_data

VOCAB_SIZE = 400


def make_project(root: Path, small_python_texts: list[str]) -> Path:
    # Ten files of at most 3 kB keep every prepare_data call well under a second.
    root.mkdir(parents=True)
    for i, text in enumerate(small_python_texts[:10]):
        (root / f"module_{i}.py").write_text(text[:3000], encoding="utf-8")
    (root / "native.c").write_text("int main(void)\r\n{\r\n\treturn 0;\r\n}\r\n", encoding="utf-8", newline="")
    return root


class Messages(list):
    def __call__(self, message: str) -> None:
        self.append(message)

    def mention(self, fragment: str) -> bool:
        return any(fragment in message for message in self)


@pytest.fixture
def project(tmp_path: Path, small_python_texts: list[str]) -> Path:
    return make_project(tmp_path / "project", small_python_texts)


@pytest.fixture
def prepared(project: Path, tmp_path: Path) -> PreparedData:
    return prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=tmp_path / "work", log=Messages())


def decoded_documents(tokens: TokenFile, tokenizer: CodeTokenizer) -> list[str]:
    bounds = [*tokens.starts.tolist(), tokens.n_tokens]
    return [tokenizer.decode(tokens.tokens[a:b].tolist()) for a, b in zip(bounds, bounds[1:])]


def test_token_files_hold_each_document(prepared: PreparedData) -> None:
    for split, tokens in (("train", prepared.train), ("val", prepared.val)):
        texts = prepared.corpus.texts(split)
        assert tokens.tokens.dtype == np.uint16
        assert tokens.n_documents == len(texts)
        assert decoded_documents(tokens, prepared.tokenizer) == texts
        ends = [int(tokens.tokens[start - 1]) for start in tokens.starts.tolist()[1:]] + [int(tokens.tokens[-1])]
        assert ends == [prepared.tokenizer.specials.end_of_text] * len(texts)
        assert int((tokens.tokens == prepared.tokenizer.specials.end_of_text).sum()) == len(texts)


def test_work_dir_has_manifest_and_keys(prepared: PreparedData) -> None:
    manifest = json.loads((prepared.work_dir / "corpus_manifest.json").read_text())
    assert manifest == prepared.corpus.manifest
    meta = json.loads((prepared.work_dir / "tokens.json").read_text())
    assert meta["manifest_sha256"] == prepared.corpus.manifest_sha256
    assert meta["tokenizer_sha256"] == prepared.tokenizer.sha256
    assert meta["splits"]["train"]["tokens"] == prepared.train.n_tokens
    assert CodeTokenizer.from_file(prepared.work_dir / "tokenizer.json").sha256 == prepared.tokenizer.sha256


def test_logs_every_stage(project: Path, tmp_path: Path) -> None:
    messages = Messages()
    prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=tmp_path / "work", log=messages)
    assert messages.mention("python")
    assert messages.mention("bytes/token")
    assert messages.mention("tokenizer: trained")
    assert messages.mention("token files: train")


def test_second_call_reuses_everything(project: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / "work"
    first = prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=Messages())
    stamp = (work_dir / "train.tokens.u16").stat().st_mtime_ns
    messages = Messages()
    second = prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=messages)
    assert messages.mention("tokenizer: reusing")
    assert messages.mention("token files: reusing")
    assert (work_dir / "train.tokens.u16").stat().st_mtime_ns == stamp
    assert second.tokenizer.sha256 == first.tokenizer.sha256
    assert np.array_equal(second.train.tokens, first.train.tokens)


def test_changed_file_rebuilds(project: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / "work"
    first = prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=Messages())
    with open(project / "module_0.py", "a", encoding="utf-8") as f:
        f.write("\nADDED = 'a new line'\n")
    messages = Messages()
    second = prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=messages)
    assert not messages.mention("reusing")
    assert second.corpus.manifest_sha256 != first.corpus.manifest_sha256
    assert decoded_documents(second.train, second.tokenizer) == second.corpus.texts("train")


def test_other_tokenizer_rebuilds_tokens(project: Path, tmp_path: Path, small_tokenizer: CodeTokenizer) -> None:
    work_dir = tmp_path / "work"
    prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=Messages())
    messages = Messages()
    data = prepare_data([project], work_dir=work_dir, tokenizer=small_tokenizer, log=messages)
    assert data.tokenizer is small_tokenizer
    assert messages.mention("keeping the given one")
    assert not messages.mention("token files: reusing")
    assert json.loads((work_dir / "tokens.json").read_text())["tokenizer_sha256"] == small_tokenizer.sha256
    assert decoded_documents(data.train, small_tokenizer) == data.corpus.texts("train")


def test_other_vocab_size_retrains(project: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / "work"
    prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=Messages())
    data = prepare_data([project], vocab_size=VOCAB_SIZE + 50, work_dir=work_dir, log=Messages())
    assert data.tokenizer.vocab_size == VOCAB_SIZE + 50


@pytest.mark.parametrize("damage", ["truncate_tokens", "delete_starts", "delete_meta", "corrupt_meta"])
def test_damaged_files_rebuild(project: Path, tmp_path: Path, damage: str) -> None:
    work_dir = tmp_path / "work"
    first = prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=Messages())
    if damage == "truncate_tokens":
        data = (work_dir / "train.tokens.u16").read_bytes()
        (work_dir / "train.tokens.u16").write_bytes(data[:-2])
    elif damage == "delete_starts":
        (work_dir / "val.starts.i64").unlink()
    elif damage == "delete_meta":
        (work_dir / "tokens.json").unlink()
    else:
        (work_dir / "tokens.json").write_text("{not json")
    messages = Messages()
    second = prepare_data([project], vocab_size=VOCAB_SIZE, work_dir=work_dir, log=messages)
    assert not messages.mention("token files: reusing")
    assert np.array_equal(second.train.tokens, first.train.tokens)
    assert np.array_equal(second.val.starts, first.val.starts)


def test_one_line_corpus_has_empty_validation(tmp_path: Path) -> None:
    snippet = tmp_path / "code.txt"
    snippet.write_text("print('hello, world')", encoding="utf-8")
    data = prepare_data([snippet], vocab_size=300, work_dir=tmp_path / "work", log=Messages())
    assert data.val.n_tokens == 0
    assert len(ValidationBatches(data.val, data.tokenizer, batch_size=2, seq_len=8)) == 0
    x, y = BatchSampler(data.train, data.tokenizer, BatchConfig(2, 64)).batch_for_step(0)
    assert x.shape == (2, 64)


def test_sampler_shapes_and_shift(prepared: PreparedData) -> None:
    sampler = BatchSampler(prepared.train, prepared.tokenizer, BatchConfig(batch_size=8, seq_len=64))
    x, y = sampler.batch_for_step(5)
    assert x.shape == (8, 64)
    assert y.shape == (8, 64)
    assert x.dtype == torch.int64
    assert y.dtype == torch.int64
    real = y[:, :-1] != -1
    assert torch.equal(x[:, 1:][real], y[:, :-1][real])
    assert int(x.max()) < prepared.tokenizer.vocab_size
    assert int(x.min()) >= 0


def test_sampler_without_fim_reads_windows(prepared: PreparedData) -> None:
    sampler = BatchSampler(prepared.train, prepared.tokenizer, BatchConfig(batch_size=8, seq_len=32, fim_rate=0.0))
    x, y = sampler.batch_for_step(0)
    stream = np.concatenate([prepared.train.tokens, prepared.train.tokens[:33]]).astype(np.int64)
    text = stream.tobytes()
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        row = np.concatenate([row_x, row_y[-1:]])
        assert row.tobytes() in text
        assert (row_y != -1).all()


def test_sampler_covers_tiny_stream(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text("x = 1\n", encoding="utf-8")
    data = prepare_data([tmp_path / "tiny.py"], vocab_size=300, work_dir=tmp_path / "work", log=Messages())
    x, y = BatchSampler(data.train, data.tokenizer, BatchConfig(4, 128, fim_rate=0.0)).batch_for_step(0)
    assert x.shape == (4, 128)
    assert (y != -1).all()


def test_sampler_rejects_bad_rank(prepared: PreparedData) -> None:
    sampler = BatchSampler(prepared.train, prepared.tokenizer, BatchConfig(2, 16))
    with pytest.raises(ValueError, match="rank"):
        sampler.batch_for_step(0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="step"):
        sampler.batch_for_step(-1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("seq_len", -4), ("fim_rate", 1.5), ("spm_rate", -0.1), ("seed", -1)],
)
def test_batch_config_rejects_bad_values(field: str, value: object) -> None:
    arguments = {"batch_size": 2, "seq_len": 16, field: value}
    with pytest.raises(ValueError, match=f"BatchConfig.{field}"):
        BatchConfig(**arguments)  # type: ignore[arg-type]


def test_validation_targets_every_token_once(prepared: PreparedData) -> None:
    batches = ValidationBatches(prepared.val, prepared.tokenizer, batch_size=3, seq_len=16)
    targets = np.concatenate([b.y.numpy()[b.y.numpy() != -1] for b in batches])
    assert np.array_equal(targets, prepared.val.tokens[1:].astype(np.int64))
    token_bytes = prepared.tokenizer.token_bytes
    assert sum(b.target_bytes for b in batches) == sum(len(token_bytes[int(t)]) for t in targets)
    assert len(list(batches)) == len(batches)


def test_validation_is_fixed_and_capped(prepared: PreparedData) -> None:
    full = ValidationBatches(prepared.val, prepared.tokenizer, batch_size=2, seq_len=16)
    capped = ValidationBatches(prepared.val, prepared.tokenizer, batch_size=2, seq_len=16, max_batches=3)
    assert len(capped) == 3 < len(full)
    first = [(b.x.clone(), b.y.clone(), b.target_bytes) for b in capped]
    second = list(capped)
    for (x, y, n_bytes), batch in zip(first, second):
        assert torch.equal(x, batch.x)
        assert torch.equal(y, batch.y)
        assert n_bytes == batch.target_bytes
    starts = capped.row_starts
    assert starts[0] == 0
    assert starts[-1] == full.row_starts[-1]
