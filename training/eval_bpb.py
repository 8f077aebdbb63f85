"""Left-to-right bits per byte of held-out files, per language."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

from .eval_data import EvalFile
from .eval_metrics import bits_per_byte


@torch.inference_mode()
def text_nll_nats(model: GPT, tokenizer: CodeTokenizer, text: str) -> tuple[float, int]:
    """Return (summed NLL in nats of every token of `text`, UTF-8 bytes of `text`).

    The file is preceded by the end-of-text token, as documents are in training, and that token is
    context only. A file longer than the model's context is scored in windows that overlap by half a
    context, so every token after the first window still sees half a context of history.
    """
    ids = [tokenizer.specials.end_of_text, *tokenizer.encode(text)]
    context = model.config.max_seq_len
    overlap = context // 2
    total_nats = 0.0
    next_target = 1
    while next_target < len(ids):
        start = max(0, next_target - 1 - overlap)
        end = min(start + context, len(ids) - 1)
        inputs_BT = torch.tensor([ids[start:end]])
        targets_BT = torch.tensor([ids[start + 1 : end + 1]])
        # Targets already scored by the previous window are context only.
        targets_BT[0, : next_target - (start + 1)] = -1
        logits_BTV = model(inputs_BT)
        total_nats += float(F.cross_entropy(logits_BTV[0].float(), targets_BT[0], ignore_index=-1, reduction="sum"))
        next_target = end + 1
    return total_nats, len(text.encode("utf-8"))


def bits_per_byte_by_language(
    model: GPT, tokenizer: CodeTokenizer, files: list[EvalFile], max_chars_per_file: int
) -> dict[str, dict[str, float | int]]:
    """Score each file's first `max_chars_per_file` characters; return bpb, files and bytes per language."""
    totals: dict[str, list[float]] = {}
    for eval_file in files:
        nats, n_bytes = text_nll_nats(model, tokenizer, eval_file.text[:max_chars_per_file])
        language_totals = totals.setdefault(eval_file.language, [0.0, 0, 0])
        language_totals[0] += nats
        language_totals[1] += n_bytes
        language_totals[2] += 1
    return {
        language: {"bits_per_byte": bits_per_byte(nats, int(n_bytes)), "bytes": int(n_bytes), "files": int(n_files)}
        for language, (nats, n_bytes, n_files) in sorted(totals.items())
        if n_bytes > 0
    }
