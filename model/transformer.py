"""A small decoder-only Transformer for code.

Shape legend: B batch, T new tokens, S cached plus new tokens, D d_model, H heads, K head_dim,
V vocab_size.

Design: pre-norm blocks with RMSNorm, rotary position embeddings, causal attention through
`scaled_dot_product_attention`, GELU MLP, no biases, input and output embeddings tied (at 1-10M
parameters the embedding table is a large share of the model, so tying saves up to a third of it).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .kv_cache import KVCache


def rotary_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return cos and sin tables shaped (max_seq_len, head_dim / 2)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Return the name and shape of every tensor in `GPT(config).state_dict()`, allocating nothing.

    Building the model on the meta device would give the same. But the first arithmetic on that
    device imports torch._dynamo and sympy (822 modules, 0.7-1.1 s, 76 MB), and the language server
    checks a checkpoint's shapes before every load.
    """
    d_model, hidden = config.d_model, config.mlp_ratio * config.d_model
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (config.vocab_size, d_model)}
    for layer in range(config.n_layers):
        prefix = f"blocks.{layer}."
        shapes[prefix + "attn_norm.weight"] = (d_model,)
        shapes[prefix + "attn.qkv.weight"] = (3 * d_model, d_model)
        shapes[prefix + "attn.proj.weight"] = (d_model, d_model)
        shapes[prefix + "mlp_norm.weight"] = (d_model,)
        shapes[prefix + "mlp.fc.weight"] = (hidden, d_model)
        shapes[prefix + "mlp.proj.weight"] = (d_model, hidden)
    shapes["final_norm.weight"] = (d_model,)
    return shapes


def count_parameters(config: ModelConfig) -> int:
    """Return the parameter count of `GPT(config)`; the tied output head adds none.

    Computed from the shapes in parameter_shapes without listing them, so a mistyped `--n-layers`
    of 10**9 in `train --dry-run` prints a number at once.
    """
    d_model, hidden = config.d_model, config.mlp_ratio * config.d_model
    # Two norms, qkv and the attention projection (4 d^2), and the two MLP matrices.
    per_block = 2 * d_model + 4 * d_model * d_model + 2 * hidden * d_model
    return config.vocab_size * d_model + config.n_layers * per_block + d_model


def apply_rotary(x_BHTK: torch.Tensor, cos_TK: torch.Tensor, sin_TK: torch.Tensor) -> torch.Tensor:
    half = x_BHTK.shape[-1] // 2
    x1, x2 = x_BHTK[..., :half], x_BHTK[..., half:]
    cos, sin = cos_TK.to(x_BHTK.dtype), sin_TK.to(x_BHTK.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def rotate_halves(x_K: torch.Tensor, cos_K: torch.Tensor, signed_sin_K: torch.Tensor) -> torch.Tensor:
    """Apply rotary embeddings with tables that span the whole head: (cos, cos) and (-sin, sin).

    It gives apply_rotary's result bit for bit with fewer operations: `roll` swaps the halves in place
    of two slices and a `cat`, and x1 * cos + x2 * (-sin) rounds exactly as x1 * cos - x2 * sin.
    `x_K` may be any view whose last dimension is the head; the tables broadcast against it.
    """
    return x_K * cos_K + x_K.roll(x_K.shape[-1] // 2, dims=-1) * signed_sin_K


class LayerWeights(NamedTuple):
    """The tensors of one block that `GPT.next_token_logits` reads, with projections stored (in, out).

    F is the MLP width.
    """

    attn_norm: torch.Tensor
    attn_norm_eps: float | None
    qkv_D3D: torch.Tensor
    attn_proj_DD: torch.Tensor
    mlp_norm: torch.Tensor
    mlp_norm_eps: float | None
    fc_DF: torch.Tensor
    mlp_proj_FD: torch.Tensor


class DecodingWeights(NamedTuple):
    """Every tensor `GPT.next_token_logits` reads, gathered once by `GPT.decoding_weights`."""

    blocks: list[LayerWeights]
    head_DV: torch.Tensor
    """The tied embedding table, transposed, for the output projection."""


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(
        self,
        x_BTD: torch.Tensor,
        cos_TK: torch.Tensor,
        sin_TK: torch.Tensor,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        B, T, D = x_BTD.shape
        q_BTD, k_BTD, v_BTD = self.qkv(x_BTD).split(D, dim=2)
        q_BHTK = apply_rotary(q_BTD.view(B, T, self.n_heads, self.head_dim).transpose(1, 2), cos_TK, sin_TK)
        k_BHTK = apply_rotary(k_BTD.view(B, T, self.n_heads, self.head_dim).transpose(1, 2), cos_TK, sin_TK)
        v_BHTK = v_BTD.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

        start = 0
        k_BHSK, v_BHSK = k_BHTK, v_BHTK
        if cache is not None:
            start = cache.length
            k_BHSK, v_BHSK = cache.write(layer, k_BHTK.to(cache.keys[layer].dtype), v_BHTK.to(cache.values[layer].dtype))
            k_BHSK, v_BHSK = k_BHSK.to(q_BHTK.dtype), v_BHSK.to(q_BHTK.dtype)

        if start == 0:
            y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSK, is_causal=True)
        elif T == 1:
            # One new query may look at every cached position, so no mask is needed.
            y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSK)
        else:
            # is_causal aligns the mask to the top-left corner, which is wrong once a prefix is
            # cached: query i sits at absolute position start + i.
            S = start + T
            query_pos = torch.arange(start, S, device=x_BTD.device)[:, None]
            key_pos = torch.arange(S, device=x_BTD.device)[None, :]
            y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSK, attn_mask=key_pos <= query_pos)

        return self.proj(y_BHTK.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.mlp_ratio * config.d_model, bias=False)
        self.proj = nn.Linear(config.mlp_ratio * config.d_model, config.d_model, bias=False)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x_BTD), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.d_model)
        self.attn = Attention(config)
        self.mlp_norm = nn.RMSNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x_BTD, cos_TK, sin_TK, cache: KVCache | None, layer: int) -> torch.Tensor:
        x_BTD = x_BTD + self.attn(self.attn_norm(x_BTD), cos_TK, sin_TK, cache, layer)
        return x_BTD + self.mlp(self.mlp_norm(x_BTD))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = nn.RMSNorm(config.d_model)
        cos, sin = rotary_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        # Not persistent: the tables are recomputed from the config, so checkpoints hold weights only.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        # The same tables over the whole head, for rotate_halves in next_token_logits.
        self.register_buffer("rope_cos_halves", torch.cat((cos, cos), dim=-1), persistent=False)
        self.register_buffer("rope_sin_halves", torch.cat((-sin, sin), dim=-1), persistent=False)
        self.apply(self._init_weights)
        # Scaled init of the projections that write into the residual stream (GPT-2), so the
        # residual variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Count every parameter once; the tied output head adds none."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int = 1, dtype: torch.dtype | None = None) -> KVCache:
        c = self.config
        weight = self.embed.weight
        return KVCache(c.n_layers, c.n_heads, c.head_dim, c.max_seq_len, batch_size, dtype or weight.dtype, weight.device)

    def forward(
        self,
        idx_BT: torch.Tensor,
        targets_BT: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Return logits (B, T, V), or (B, 1, V) with `last_only`, or the mean loss when `targets_BT` is given.

        With a cache, `idx_BT` holds only the new tokens; they sit at positions
        [cache.length, cache.length + T) and the cache advances by T. Targets equal to -1 are ignored.
        """
        B, T = idx_BT.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_len {self.config.max_seq_len}")
        cos_TK = self.rope_cos[start : start + T]
        sin_TK = self.rope_sin[start : start + T]

        x_BTD = self.embed(idx_BT)
        for layer, block in enumerate(self.blocks):
            x_BTD = block(x_BTD, cos_TK, sin_TK, cache, layer)
        if cache is not None:
            cache.advance(T)
        x_BTD = self.final_norm(x_BTD)

        if targets_BT is not None:
            logits_BTV = F.linear(x_BTD, self.embed.weight)
            return F.cross_entropy(logits_BTV.float().view(B * T, -1), targets_BT.reshape(-1), ignore_index=-1)
        if last_only:
            x_BTD = x_BTD[:, -1:, :]
        return F.linear(x_BTD, self.embed.weight)

    def decoding_weights(self) -> DecodingWeights:
        """Copy the weights that `next_token_logits` reads into the layout it multiplies fastest.

        nn.Linear keeps a weight as (out, in). With contiguous (in, out) copies a decoding step ran 1.26
        times as fast at 1 new token and 1.08-1.13 times at 4 or 7 (one thread of a 2-core AMD EPYC, 900
        cached positions; `benchmarks/decode_speed.py` measures it). At batch 1 a step mostly streams
        weights from memory, and this layout probably lets it read them in order. The copies add one
        float32 copy of the projections to memory (14 MB for the shipped model) and are taken once, so
        later updates to the parameters do not show through: gather again after changing them.
        """
        return DecodingWeights(
            blocks=[
                LayerWeights(
                    attn_norm=block.attn_norm.weight,
                    attn_norm_eps=block.attn_norm.eps,
                    qkv_D3D=_in_out(block.attn.qkv.weight),
                    attn_proj_DD=_in_out(block.attn.proj.weight),
                    mlp_norm=block.mlp_norm.weight,
                    mlp_norm_eps=block.mlp_norm.eps,
                    fc_DF=_in_out(block.mlp.fc.weight),
                    mlp_proj_FD=_in_out(block.mlp.proj.weight),
                )
                for block in self.blocks
            ],
            head_DV=_in_out(self.embed.weight),
        )

    def next_token_logits(
        self,
        idx_BT: torch.Tensor,
        cache: KVCache,
        weights: DecodingWeights | None = None,
        every_position: bool = False,
    ) -> torch.Tensor:
        """Extend `cache` by the T tokens of `idx_BT` and return the logits after the last one, shape (B, V).

        With `every_position`, return the logits after each of the T tokens, shape (B, T, V): the
        engine checks several guessed tokens in one call that way.

        The same math as `forward(idx_BT, cache=cache, last_only=True)[:, -1]`, which the tests check.
        It makes no module calls and about half the tensor operations. At batch 1 on a CPU the
        per-operation overhead is about half of a decoding step of the small model. `weights` comes from
        `decoding_weights()`, gathered once for many steps; None gathers it here, which copies the
        model. Inference only: it runs no module hooks, and autograd through it is not supported.
        """
        B, T = idx_BT.shape
        D, H, K = self.config.d_model, self.config.n_heads, self.config.head_dim
        start = cache.length
        end = start + T
        if end > self.config.max_seq_len:
            raise ValueError(f"sequence of {end} tokens exceeds max_seq_len {self.config.max_seq_len}")
        if weights is None:
            weights = self.decoding_weights()
        cos_11TK = self.rope_cos_halves[start:end].view(1, 1, T, K)
        sin_11TK = self.rope_sin_halves[start:end].view(1, 1, T, K)
        # One query attends to every cached position; several new ones need a mask offset by `start`
        # (is_causal would align it to the top-left corner). Built once, shared by every layer.
        mask_TS = None
        if start > 0 and T > 1:
            positions = torch.arange(end, device=idx_BT.device)
            mask_TS = positions[None, :] <= positions[start:, None]

        x_BTD = F.embedding(idx_BT, self.embed.weight)
        for layer, block in enumerate(weights.blocks):
            h_BTD = F.rms_norm(x_BTD, (D,), block.attn_norm, block.attn_norm_eps)
            qkv_BT3D = h_BTD @ block.qkv_D3D
            if T == 1:
                # With one new token, (B, 1, 3H, K) and (B, 3H, 1, K) are the same memory, so views
                # replace the transposes here and before the output projection.
                qkv_B3HTK = qkv_BT3D.view(B, 3 * H, 1, K)
            else:
                qkv_B3HTK = qkv_BT3D.view(B, T, 3 * H, K).transpose(1, 2)
            # Queries and keys rotate together, in one pass.
            qk_B2HTK = rotate_halves(qkv_B3HTK[:, : 2 * H], cos_11TK, sin_11TK)
            k_BHSK, v_BHSK = cache.write(layer, qk_B2HTK[:, H:], qkv_B3HTK[:, 2 * H :])
            q_BHTK = qk_B2HTK[:, :H]
            if k_BHSK.dtype != q_BHTK.dtype:
                k_BHSK, v_BHSK = k_BHSK.to(q_BHTK.dtype), v_BHSK.to(q_BHTK.dtype)
            if start == 0:
                y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSK, is_causal=True)
            else:
                y_BHTK = F.scaled_dot_product_attention(q_BHTK, k_BHSK, v_BHSK, attn_mask=mask_TS)
            y_BTD = y_BHTK.reshape(B, 1, D) if T == 1 else y_BHTK.transpose(1, 2).reshape(B, T, D)
            x_BTD = x_BTD + y_BTD @ block.attn_proj_DD

            h_BTD = F.rms_norm(x_BTD, (D,), block.mlp_norm, block.mlp_norm_eps)
            x_BTD = x_BTD + F.gelu(h_BTD @ block.fc_DF, approximate="tanh") @ block.mlp_proj_FD
        cache.advance(T)

        norm = self.final_norm
        out = x_BTD if every_position else x_BTD[:, -1]  # (B, T, D) or (B, D)
        return F.rms_norm(out, norm.normalized_shape, norm.weight, norm.eps) @ weights.head_DV


def _in_out(weight_OI: torch.Tensor) -> torch.Tensor:
    """Return a contiguous (in, out) copy of an (out, in) weight."""
    return weight_OI.detach().t().contiguous()
