"""Choosing the next token from logits: greedy, temperature, top-k and top-p, with an explicit generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick tokens and when to stop."""

    temperature: float = 0.0
    """0 picks the most likely token (greedy, deterministic); higher values flatten the distribution."""
    top_k: int = 0
    """Keep only the k most likely tokens before sampling; 0 keeps all."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probabilities sum to at least top_p; 1.0 keeps all."""
    max_new_tokens: int = 64
    """Token limit of one generation."""
    stop_strings: tuple[str, ...] = ()
    """Generation stops before the first occurrence of any of these strings."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"SamplingConfig.top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingConfig.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not s for s in self.stop_strings):
            raise ValueError("SamplingConfig.stop_strings must not contain an empty string")


def sample_next(
    logits_V: torch.Tensor,
    config: SamplingConfig,
    generator: torch.Generator | None = None,
    allowed_ids: torch.Tensor | None = None,
) -> int:
    """Pick one token id from `logits_V` (shape V).

    `allowed_ids`, when given, is a boolean mask of shape V; other ids get probability zero.
    Sampling with temperature > 0 draws from `generator`, so a seeded generator repeats itself.
    """
    logits_V = logits_V.float()
    if allowed_ids is not None:
        logits_V = logits_V.masked_fill(~allowed_ids, float("-inf"))
    if config.temperature == 0.0:
        return int(torch.argmax(logits_V))

    logits_V = logits_V / config.temperature
    if config.top_k > 0:
        kth_V = torch.topk(logits_V, min(config.top_k, logits_V.numel())).values[-1]
        logits_V = logits_V.masked_fill(logits_V < kth_V, float("-inf"))
    if config.top_p < 1.0:
        sorted_V, order_V = torch.sort(logits_V, descending=True)
        cumulative_V = torch.softmax(sorted_V, dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already reach top_p; the first one always stays.
        drop_sorted_V = (cumulative_V - torch.softmax(sorted_V, dim=-1)) >= config.top_p
        logits_V = logits_V.masked_fill(drop_sorted_V.scatter(0, order_V, drop_sorted_V), float("-inf"))
    probs_V = torch.softmax(logits_V, dim=-1)
    return int(torch.multinomial(probs_V, 1, generator=generator))


def find_stop(text: str, stop_strings: tuple[str, ...]) -> int | None:
    """Return the index of the earliest stop string in `text`, or None."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(hits) if hits else None
