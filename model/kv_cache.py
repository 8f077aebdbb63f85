"""Key/value cache for incremental decoding.

Layout: one preallocated tensor per layer for keys and one for values, each shaped
(batch B, heads H, max_seq_len T, head_dim D). Positions [0, length) are valid. Truncating only
moves `length`, so keeping a common prefix and extending it costs nothing but the new tokens.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        head_dim: int,
        max_seq_len: int,
        batch_size: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (batch_size, n_heads, max_seq_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_seq_len = max_seq_len
        self.length = 0

    def truncate(self, length: int) -> None:
        """Keep the first `length` positions; later writes overwrite the rest."""
        if not 0 <= length <= self.max_seq_len:
            raise ValueError(f"cannot truncate the KV cache to {length}; valid lengths are 0..{self.max_seq_len}")
        self.length = min(self.length, length)

    def write(self, layer: int, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values at [length, length + T) and return all valid keys and values of `layer`.

        `length` itself advances only in `advance`, after every layer has written.
        """
        start = self.length
        end = start + k_BHTD.shape[2]
        if end > self.max_seq_len:
            raise ValueError(f"KV cache overflow: {end} positions needed, {self.max_seq_len} allocated")
        self.keys[layer][:, :, start:end] = k_BHTD
        self.values[layer][:, :, start:end] = v_BHTD
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n_tokens: int) -> None:
        self.length += n_tokens
