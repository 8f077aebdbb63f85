"""Prepare training data in one call: corpus, tokenizer, and memory-mapped token files, cached in a folder.

Contract for the training loop:
    data = prepare_data(paths, excludes, vocab_size=4096, work_dir=run_dir / "data")
    data.tokenizer                      # CodeTokenizer; its vocab_size may be below the requested size
    data.train, data.val                # TokenFile: uint16 token ids, each document ended by <|endoftext|>
    data.corpus.manifest                # write it into the run folder
    BatchSampler(data.train, data.tokenizer, BatchConfig(...)).batch_for_step(step, rank, world_size)
    ValidationBatches(data.val, data.tokenizer, batch_size, seq_len)      # see training.batches

Files in `work_dir`:
    corpus_manifest.json                the corpus manifest (also returned)
    tokenizer.json, tokenizer.meta.json the trained tokenizer, reused while the corpus and options match
    {train,val}.tokens.u16              token ids, native-endian uint16
    {train,val}.starts.i64              token offset of each document's first token, int64
    tokens.json                         corpus manifest sha256 + tokenizer sha256 the token files belong to
Token files are rebuilt whenever either hash differs, and reused otherwise. `tokens.json` is removed
before a rebuild and written last, so an interrupted rebuild is never mistaken for a finished one.
Progress and statistics of every stage go to `log` (print by default).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..model.tokenizer import CodeTokenizer
from .corpus import DEFAULT_VAL_FRACTION, Corpus, Split, build_corpus, describe_corpus, manifest_sha256
from .corpus_rules import FileRules
from .tokenizer_train import (
    AWKWARD_SAMPLES,
    DEFAULT_MAX_TRAIN_BYTES,
    DEFAULT_PRE_TOKENIZER,
    DEFAULT_VOCAB_SIZE,
    MAX_VOCAB_SIZE,
    PreTokenizerName,
    TokenizerReport,
    check_round_trip,
    describe_tokenizer,
    measure_tokenizer,
    train_tokenizer,
)

TOKEN_FILES_FORMAT = 1
TOKENIZER_CACHE_FORMAT = 1
TOKEN_DTYPE = np.uint16
START_DTYPE = np.int64
MANIFEST_FILE = "corpus_manifest.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_META_FILE = "tokenizer.meta.json"
TOKENS_META_FILE = "tokens.json"
# Texts per encode_batch call: large enough to keep both tokenizer threads busy, small enough to bound memory.
_ENCODE_CHUNK_TEXTS = 256

Log = Callable[[str], None]


@dataclass(frozen=True)
class TokenFile:
    """The token ids of one split, memory-mapped read-only."""

    path: Path
    tokens: np.ndarray
    """uint16 ids of all documents back to back; each document ends with the end-of-text id."""
    starts: np.ndarray
    """int64 offset of each document's first token in `tokens`."""

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_documents(self) -> int:
        return int(self.starts.shape[0])

    @classmethod
    def open(cls, folder: Path, split: Split) -> TokenFile:
        tokens_path, starts_path = _token_paths(folder, split)
        return cls(tokens_path, _map(tokens_path, TOKEN_DTYPE), _map(starts_path, START_DTYPE))


@dataclass(frozen=True)
class PreparedData:
    corpus: Corpus
    tokenizer: CodeTokenizer
    tokenizer_report: TokenizerReport
    """Bytes per token per language, measured on the validation split (on train if it is empty)."""
    train: TokenFile
    val: TokenFile
    work_dir: Path


def prepare_data(
    paths: Sequence[str | os.PathLike[str]],
    excludes: Sequence[str] = (),
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    work_dir: str | os.PathLike[str] = "data",
    tokenizer: CodeTokenizer | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    log: Log = print,
    pre_tokenizer: PreTokenizerName = DEFAULT_PRE_TOKENIZER,
    rules: FileRules = FileRules(),
) -> PreparedData:
    """Build the corpus, train (or keep) the tokenizer and tokenize both splits into `work_dir`.

    Pass `tokenizer` to keep an existing one (fine-tuning a model); `vocab_size` is then ignored.
    Empty `paths` means the Python standard library. Raises what `build_corpus` and `train_tokenizer`
    raise, and ValueError for a given tokenizer whose ids do not fit uint16.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    # 1. Corpus: which files, which split.
    started = time.perf_counter()
    corpus = build_corpus(paths, excludes, val_fraction, rules)
    _write_json(work_dir / MANIFEST_FILE, corpus.manifest)
    for line in describe_corpus(corpus):
        log(line)
    log(f"corpus built in {time.perf_counter() - started:.1f} s (manifest {corpus.manifest_sha256[:12]})")

    # 2. Tokenizer: trained on the train split only, so validation measures unseen text.
    if tokenizer is None:
        tokenizer = _cached_or_trained_tokenizer(corpus, vocab_size, pre_tokenizer, work_dir, log)
    else:
        if tokenizer.vocab_size > MAX_VOCAB_SIZE:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens; token files store ids as uint16 (max 65536)")
        check_round_trip(tokenizer, [*AWKWARD_SAMPLES, *corpus.texts("val")[:16]])
        log(f"tokenizer: keeping the given one ({tokenizer.vocab_size} tokens, sha256 {tokenizer.sha256[:12]})")
    has_val = bool(corpus.texts("val"))
    report = measure_tokenizer(tokenizer, corpus.texts_by_language("val" if has_val else "train"))
    for line in describe_tokenizer(report, "validation" if has_val else "train (no validation split)"):
        log(line)

    # 3. Token files, reused while corpus and tokenizer are unchanged.
    train, val = build_token_files(corpus, tokenizer, work_dir, log)
    return PreparedData(corpus, tokenizer, report, train, val, work_dir)


def reopen_prepared_data(work_dir: Path, tokenizer: CodeTokenizer, expected_manifest_sha256: str) -> PreparedData | None:
    """Open the token files that an earlier `prepare_data` wrote into `work_dir`, without reading the corpus.

    This lets a run resume after its source files moved or were deleted. Returns None unless the corpus
    manifest and the intact token files there come from the corpus with `expected_manifest_sha256` and
    from `tokenizer`. The returned corpus has its manifest but no file texts, and its tokenizer report is
    empty, because the sources are not read.
    """
    manifest = _read_json(work_dir / MANIFEST_FILE)
    if not isinstance(manifest, dict) or manifest_sha256(manifest) != expected_manifest_sha256:
        return None
    key = {"format": TOKEN_FILES_FORMAT, "manifest_sha256": expected_manifest_sha256, "tokenizer_sha256": tokenizer.sha256}
    meta = _read_json(work_dir / TOKENS_META_FILE)
    if meta is None or {k: meta.get(k) for k in key} != key or not _token_files_intact(work_dir, meta):
        return None

    roots = tuple(Path(root) for root in manifest.get("roots", []))
    corpus = Corpus(roots, (), dict(manifest.get("skipped", {})), manifest, expected_manifest_sha256)
    train, val = TokenFile.open(work_dir, "train"), TokenFile.open(work_dir, "val")
    return PreparedData(corpus, tokenizer, measure_tokenizer(tokenizer, {}), train, val, work_dir)


def _cached_or_trained_tokenizer(
    corpus: Corpus, vocab_size: int, pre_tokenizer: PreTokenizerName, work_dir: Path, log: Log
) -> CodeTokenizer:
    key = {
        "format": TOKENIZER_CACHE_FORMAT,
        "manifest_sha256": corpus.manifest_sha256,
        "vocab_size": vocab_size,
        "pre_tokenizer": pre_tokenizer,
        "max_train_bytes": DEFAULT_MAX_TRAIN_BYTES,
    }
    tokenizer_path, meta_path = work_dir / TOKENIZER_FILE, work_dir / TOKENIZER_META_FILE
    if _read_json(meta_path) == key and tokenizer_path.is_file():
        tokenizer = CodeTokenizer.from_file(tokenizer_path)
        log(f"tokenizer: reusing {tokenizer_path} ({tokenizer.vocab_size} tokens)")
        return tokenizer

    started = time.perf_counter()
    train_texts = corpus.texts("train")
    tokenizer = train_tokenizer(train_texts, vocab_size, pre_tokenizer, check_texts=corpus.texts("val"))
    meta_path.unlink(missing_ok=True)
    _write_text(tokenizer_path, tokenizer.json_text)
    _write_json(meta_path, key)
    log(
        f"tokenizer: trained {pre_tokenizer} byte-level BPE, {tokenizer.vocab_size} tokens "
        f"(requested {vocab_size}) on {sum(len(t) for t in train_texts) / 1e6:.1f}M characters "
        f"in {time.perf_counter() - started:.1f} s; round trip checked"
    )
    return tokenizer


def build_token_files(corpus: Corpus, tokenizer: CodeTokenizer, work_dir: Path, log: Log = print) -> tuple[TokenFile, TokenFile]:
    """Tokenize both splits into `work_dir`, or reuse the files there when both hashes match."""
    key = {"format": TOKEN_FILES_FORMAT, "manifest_sha256": corpus.manifest_sha256, "tokenizer_sha256": tokenizer.sha256}
    meta_path = work_dir / TOKENS_META_FILE
    meta = _read_json(meta_path)
    if meta is not None and {k: meta.get(k) for k in key} == key and _token_files_intact(work_dir, meta):
        train, val = TokenFile.open(work_dir, "train"), TokenFile.open(work_dir, "val")
        log(f"token files: reusing {work_dir} (train {train.n_tokens:,} tokens, val {val.n_tokens:,} tokens)")
        return train, val

    meta_path.unlink(missing_ok=True)
    splits: dict[str, dict[str, int]] = {}
    for split in ("train", "val"):
        started = time.perf_counter()
        texts = corpus.texts(split)  # type: ignore[arg-type]
        n_tokens, n_documents = _write_split(tokenizer, texts, work_dir, split)  # type: ignore[arg-type]
        n_bytes = sum(len(text.encode("utf-8")) for text in texts)
        splits[split] = {"tokens": n_tokens, "documents": n_documents, "bytes": n_bytes}
        log(
            f"token files: {split} {n_documents:,} documents, {n_tokens:,} tokens "
            f"({n_bytes / max(1, n_tokens - n_documents):.2f} bytes/token) in {time.perf_counter() - started:.1f} s"
        )
    _write_json(meta_path, {**key, "dtype": "uint16", "splits": splits})
    return TokenFile.open(work_dir, "train"), TokenFile.open(work_dir, "val")


def _write_split(tokenizer: CodeTokenizer, texts: list[str], folder: Path, split: Split) -> tuple[int, int]:
    """Encode `texts` in chunks and append them, each ended by <|endoftext|>; return (tokens, documents)."""
    tokens_path, starts_path = _token_paths(folder, split)
    end_of_text = tokenizer.specials.end_of_text
    starts: list[int] = []
    n_tokens = 0
    with open(tokens_path.with_suffix(".tmp"), "wb") as out:
        for first in range(0, len(texts), _ENCODE_CHUNK_TEXTS):
            for ids in tokenizer.encode_batch(texts[first : first + _ENCODE_CHUNK_TEXTS]):
                starts.append(n_tokens)
                ids.append(end_of_text)
                out.write(np.asarray(ids, dtype=TOKEN_DTYPE).tobytes())
                n_tokens += len(ids)
    os.replace(tokens_path.with_suffix(".tmp"), tokens_path)
    np.asarray(starts, dtype=START_DTYPE).tofile(starts_path.with_suffix(".tmp"))
    os.replace(starts_path.with_suffix(".tmp"), starts_path)
    return n_tokens, len(starts)


def _token_files_intact(folder: Path, meta: dict[str, Any]) -> bool:
    """Return whether both splits' files exist with the sizes that `tokens.json` records."""
    for split in ("train", "val"):
        counts = meta.get("splits", {}).get(split)
        tokens_path, starts_path = _token_paths(folder, split)  # type: ignore[arg-type]
        if counts is None or not tokens_path.is_file() or not starts_path.is_file():
            return False
        if tokens_path.stat().st_size != counts["tokens"] * np.dtype(TOKEN_DTYPE).itemsize:
            return False
        if starts_path.stat().st_size != counts["documents"] * np.dtype(START_DTYPE).itemsize:
            return False
    return True


def _token_paths(folder: Path, split: Split) -> tuple[Path, Path]:
    return folder / f"{split}.tokens.u16", folder / f"{split}.starts.i64"


def _map(path: Path, dtype: type[np.generic]) -> np.ndarray:
    # np.memmap cannot map an empty file; an empty split (one-line corpus) is a plain empty array.
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Replace `path` atomically; skip the write when it already contains `text`.

    Several training processes may call prepare_data on one folder, so each writes its own temporary file.
    """
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
