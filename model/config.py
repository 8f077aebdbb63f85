"""Model configuration and the size presets, declared once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


MAX_SEQ_LEN = 32768
"""Maximum context length, in tokens, that a config may declare. The rotary tables and the KV cache are
allocated for the whole context up front (302 MB of float32 KV cache for the small preset at this length).
The weights do not record the length, so without this limit a damaged config.json could request any
amount of memory."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only Transformer (pre-norm, RoPE, tied embeddings, no biases)."""

    vocab_size: int
    """Rows of the embedding table; the tokenizer's ids must all be below it."""
    d_model: int = 192
    """Width of the residual stream."""
    n_layers: int = 6
    """Number of Transformer blocks."""
    n_heads: int = 6
    """Attention heads per block; d_model must be divisible by it."""
    max_seq_len: int = 1024
    """Longest sequence, in tokens, that training and the KV cache allow."""
    mlp_ratio: int = 4
    """Hidden width of the MLP as a multiple of d_model."""
    rope_theta: float = 10000.0
    """Base of the rotary position embedding frequencies."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.max_seq_len > MAX_SEQ_LEN:
            raise ValueError(f"ModelConfig.max_seq_len must be at most {MAX_SEQ_LEN}, got {self.max_seq_len}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"ModelConfig head_dim ({self.head_dim}) must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; this checkpoint needs a newer tiny-copilot")
        return cls(**data)


# Presets are sized by compute: on a 2-core CPU, ~1M parameters suits a 10-minute run and ~3M an hour;
# the 5-10M sizes want a GPU. Each preset fixes its tokenizer's vocabulary size, because the embedding
# table is a large share of the parameters at this scale.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"vocab_size": 4096, "d_model": 128, "n_layers": 4, "n_heads": 4},
    "small": {"vocab_size": 4096, "d_model": 192, "n_layers": 6, "n_heads": 6},
    "medium": {"vocab_size": 8192, "d_model": 256, "n_layers": 8, "n_heads": 8},
}

DEFAULT_PRESET = "small"


def preset_config(name: str, **overrides: int) -> ModelConfig:
    """Build the ModelConfig of preset `name`, with any field replaced by `overrides`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
