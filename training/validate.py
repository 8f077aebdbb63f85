"""Validation loss, bits per byte and the sample completion that the trainer reports at each evaluation."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from tiny_copilot.model.engine import Engine
from tiny_copilot.model.sampler import SamplingConfig
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

from .batches import IGNORE_INDEX, ValidationBatches


@dataclass(frozen=True)
class ValidationResult:
    loss: float
    """Mean loss per target token, in nats."""
    bpb: float
    """Bits per UTF-8 byte of the targets: comparable across tokenizers."""
    tokens: int
    target_bytes: int


@torch.no_grad()
def validate(
    model: GPT,
    batches: ValidationBatches,
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
) -> ValidationResult:
    """Score every validation batch once; the model is left in training mode."""
    model.eval()
    total_nats, total_tokens, total_bytes = 0.0, 0, 0
    for batch in batches:
        x_BT, y_BT = batch.x.to(device), batch.y.to(device)
        n_targets = int((y_BT != IGNORE_INDEX).sum())
        if n_targets == 0:
            continue
        with autocast or contextlib.nullcontext():
            mean_loss = model(x_BT, y_BT)
        total_nats += float(mean_loss) * n_targets
        total_tokens += n_targets
        total_bytes += batch.target_bytes
    model.train()
    if total_tokens == 0 or total_bytes == 0:
        return ValidationResult(float("nan"), float("nan"), 0, 0)
    return ValidationResult(
        loss=total_nats / total_tokens,
        bpb=total_nats / (math.log(2) * total_bytes),
        tokens=total_tokens,
        target_bytes=total_bytes,
    )


def sample_completion(model: GPT, tokenizer: CodeTokenizer, prompt: str, max_new_tokens: int) -> str:
    """Complete `prompt` greedily, as the start of a document, to show a learner what the model has learned."""
    # Training documents follow an end-of-text token, so a prompt at a file's start follows one too.
    prompt_ids = [tokenizer.specials.end_of_text, *tokenizer.encode(prompt)]
    room = model.config.max_seq_len - len(prompt_ids)
    if room < 1:
        return ""
    engine = Engine(model, tokenizer)
    generation = engine.generate(prompt_ids, SamplingConfig(max_new_tokens=min(max_new_tokens, room)))
    model.train()
    return generation.text
