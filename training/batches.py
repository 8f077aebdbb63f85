"""Training batches with fill-in-the-middle, and the fixed validation batches.

Contract:
    sampler = BatchSampler(data.train, data.tokenizer, BatchConfig(batch_size=16, seq_len=256, seed=0))
    x_BT, y_BT = sampler.batch_for_step(step, rank=0, world_size=1)     # int64 tensors
    for batch in ValidationBatches(data.val, data.tokenizer, batch_size=16, seq_len=256, max_batches=50):
        batch.x, batch.y, batch.target_bytes

`batch_for_step` depends only on (config, step, rank), so a resumed run gets the same data in the same
order, and each rank gets different rows. Each row is a random window of seq_len + 1 tokens, wrapping
around the end of the token stream. The window is cut into document segments at <|endoftext|>; each
segment becomes a FIM document with probability `fim_rate` (cut at two random character positions,
PSM or SPM order, built by `model.fim.fim_document`), otherwise it stays as it was. The row is then
truncated or padded back to seq_len + 1; padded targets are -1, which the loss must ignore
(`F.cross_entropy(..., ignore_index=-1)`).

Validation rows are consecutive, non-overlapping windows of the validation stream, left to right with
no FIM, so every token is a target once. `target_bytes` is the UTF-8 byte count of a batch's targets,
for bits per byte = sum of target losses in nats / (ln 2 * target_bytes); special-token targets add
loss but no bytes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..model.fim import FimOrder, fim_document
from ..model.tokenizer import CodeTokenizer
from .data import TokenFile

IGNORE_INDEX = -1


@dataclass(frozen=True)
class BatchConfig:
    """Settings of the training batch sampler."""

    batch_size: int
    """Rows per batch on each rank."""
    seq_len: int
    """Tokens per row fed to the model; each row reads seq_len + 1 tokens for the shifted targets."""
    fim_rate: float = 0.5
    """Probability that a document segment is turned into a fill-in-the-middle example."""
    spm_rate: float = 0.5
    """Share of FIM examples in SPM order (the rest are PSM); serving prompts in SPM order."""
    seed: int = 0
    """With the step and rank, fixes every batch."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"BatchConfig.{name} must be a positive integer, got {value!r}")
        for name in ("fim_rate", "spm_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"BatchConfig.{name} must be in [0, 1], got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"BatchConfig.seed must be a non-negative integer, got {self.seed!r}")


class BatchSampler:
    """Draws the training batch of any (step, rank) from a token file, with FIM applied per document."""

    def __init__(self, tokens: TokenFile, tokenizer: CodeTokenizer, config: BatchConfig) -> None:
        if tokens.n_tokens < 2:
            raise ValueError(
                f"training split {tokens.path} has {tokens.n_tokens} tokens; add more code to the corpus"
            )
        self.tokens = tokens
        self.tokenizer = tokenizer
        self.config = config
        self._end_of_text = tokenizer.specials.end_of_text

    def batch_for_step(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x, y), each (batch_size, seq_len) int64; y is x shifted by one, with -1 at padding."""
        if not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        if not isinstance(world_size, (int, np.integer)) or world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {rank!r}, world_size {world_size!r}")

        rng = np.random.default_rng([self.config.seed, int(step), int(rank)])
        rows_BT1 = np.stack([self._row(rng) for _ in range(self.config.batch_size)])
        x_BT = rows_BT1[:, :-1].copy()
        y_BT = rows_BT1[:, 1:].copy()
        # Padding sits at the end of a row, so a padded input only ever predicts padding (target -1, no
        # loss); it just needs a valid embedding id.
        x_BT[x_BT == IGNORE_INDEX] = self._end_of_text
        return torch.from_numpy(x_BT), torch.from_numpy(y_BT)

    def _row(self, rng: np.random.Generator) -> np.ndarray:
        """Return seq_len + 1 token ids (int64), padded with IGNORE_INDEX."""
        width = self.config.seq_len + 1
        n = self.tokens.n_tokens
        offset = int(rng.integers(0, n))
        if offset + width <= n:
            window = np.asarray(self.tokens.tokens[offset : offset + width], dtype=np.int64)
        else:
            window = np.asarray(self.tokens.tokens[(offset + np.arange(width)) % n], dtype=np.int64)

        if self.config.fim_rate > 0.0:
            window = self._apply_fim(window, random.Random(int(rng.integers(2**63))))
        row = np.full(width, IGNORE_INDEX, dtype=np.int64)
        row[: min(width, len(window))] = window[:width]
        return row

    def _apply_fim(self, window: np.ndarray, rng: random.Random) -> np.ndarray:
        """Rewrite each document segment of `window` as FIM with probability fim_rate; return the new ids."""
        pieces: list[np.ndarray | list[int]] = []
        n_out = 0
        start = 0
        for end in [*np.flatnonzero(window == self._end_of_text).tolist(), len(window)]:
            segment = window[start:end]
            piece: np.ndarray | list[int] = window[start : end + 1]  # with its <|endoftext|>, if the window has it
            start = end + 1
            if len(segment) and rng.random() < self.config.fim_rate:
                # fim_document ends with its own <|endoftext|>, so the piece keeps the document boundary.
                piece = self._fim_segment(segment, len(window) - n_out, rng) or piece
            pieces.append(piece)
            n_out += len(piece)
            if n_out >= len(window):
                break
        return np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])

    def _fim_segment(self, segment: np.ndarray, budget: int, rng: random.Random) -> list[int] | None:
        """Return the FIM tokens of a segment, trimmed to `budget` tokens at the suffix's end where possible."""
        # A window can cut a multi-byte character at its edges. The partial bytes are dropped, because
        # re-encoding U+FFFD would teach the model a character that was never in the code.
        data = b"".join(self.tokenizer.token_bytes[i] for i in segment.tolist())
        text = data.decode("utf-8", errors="ignore")
        if not text:
            return None
        order: FimOrder = "spm" if rng.random() < self.config.spm_rate else "psm"
        ids = fim_document(text, self.tokenizer.encode, self.tokenizer.specials, rng, order)

        # The sentinels and the re-encoding at the cuts make the document longer than the segment. Cutting
        # the overflow from the end of the suffix, which sits just before <|fim_middle|> in both orders,
        # keeps the middle and its closing <|endoftext|> in the row; the model still learns where a middle ends.
        overflow = len(ids) - budget
        if overflow > 0:
            middle_at = ids.index(self.tokenizer.specials.middle)
            suffix_start = ids.index(self.tokenizer.specials.suffix) + 1
            cut = min(overflow, middle_at - suffix_start)
            del ids[middle_at - cut : middle_at]
        return ids


@dataclass(frozen=True)
class ValidationBatch:
    x: torch.Tensor
    """(rows, seq_len) int64 inputs; the last batch may have fewer rows."""
    y: torch.Tensor
    """(rows, seq_len) int64 targets, -1 where the stream ended."""
    target_bytes: int
    """UTF-8 bytes of all targets other than -1."""


class ValidationBatches:
    """The fixed validation batches: the same rows, in the same order, on every pass."""

    def __init__(
        self,
        tokens: TokenFile,
        tokenizer: CodeTokenizer,
        batch_size: int,
        seq_len: int,
        max_batches: int | None = None,
    ) -> None:
        """Cover the whole split, or `max_batches` batches of rows spread evenly over it."""
        BatchConfig(batch_size, seq_len)  # validates both sizes
        if max_batches is not None and max_batches <= 0:
            raise ValueError(f"max_batches must be positive or None, got {max_batches!r}")
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self._end_of_text = tokenizer.specials.end_of_text
        self._token_bytes = np.array([len(b) for b in tokenizer.token_bytes], dtype=np.int64)

        n_rows = math.ceil((tokens.n_tokens - 1) / seq_len) if tokens.n_tokens >= 2 else 0
        if max_batches is not None and n_rows > max_batches * batch_size:
            self.row_starts = np.unique(np.linspace(0, n_rows - 1, max_batches * batch_size).round().astype(np.int64))
        else:
            self.row_starts = np.arange(n_rows, dtype=np.int64)
        self.row_starts *= seq_len

    def __len__(self) -> int:
        return math.ceil(len(self.row_starts) / self.batch_size)

    def __iter__(self) -> Iterator[ValidationBatch]:
        for first in range(0, len(self.row_starts), self.batch_size):
            rows = np.stack([self._row(int(s)) for s in self.row_starts[first : first + self.batch_size]])
            x, y = rows[:, :-1].copy(), rows[:, 1:].copy()
            x[x == IGNORE_INDEX] = self._end_of_text
            target_bytes = int(self._token_bytes[y[y != IGNORE_INDEX]].sum())
            yield ValidationBatch(torch.from_numpy(x), torch.from_numpy(y), target_bytes)

    def _row(self, start: int) -> np.ndarray:
        row = np.full(self.seq_len + 1, IGNORE_INDEX, dtype=np.int64)
        window = self.tokens.tokens[start : start + self.seq_len + 1]
        row[: len(window)] = window
        return row
