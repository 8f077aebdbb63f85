"""Special tokens and the fill-in-the-middle (FIM) format, owned here for training and serving alike.

Formats (sentinels shown as <pre>, <suf>, <mid>, <eot>):
    PSM: <pre> prefix <suf> suffix <mid> middle <eot>
    SPM: <pre> <suf> suffix <mid> prefix middle <eot>
SPM keeps prefix and middle contiguous, so a server that prompts with `<pre><suf> suffix <mid> prefix`
only appends tokens while the user types, and its KV cache stays valid. Training mixes both orders.
The three pieces are tokenized separately, as at serving time, where the cursor splits the text.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

END_OF_TEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_MIDDLE = "<|fim_middle|>"

# Order fixes the ids 0..3 in every tokenizer we train.
SPECIAL_TOKENS: tuple[str, ...] = (END_OF_TEXT, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)

FimOrder = Literal["psm", "spm"]
Encode = Callable[[str], list[int]]


class SpecialIds:
    """Ids of the special tokens in one tokenizer."""

    def __init__(self, token_to_id: Callable[[str], int | None]) -> None:
        ids = {}
        for token in SPECIAL_TOKENS:
            token_id = token_to_id(token)
            if token_id is None:
                raise ValueError(f"tokenizer has no special token {token}; retrain it with `tiny-copilot train`")
            ids[token] = token_id
        self.end_of_text = ids[END_OF_TEXT]
        self.prefix = ids[FIM_PREFIX]
        self.suffix = ids[FIM_SUFFIX]
        self.middle = ids[FIM_MIDDLE]

    def all(self) -> frozenset[int]:
        return frozenset((self.end_of_text, self.prefix, self.suffix, self.middle))


def spm_prompt(specials: SpecialIds, prefix_ids: Sequence[int], suffix_ids: Sequence[int]) -> list[int]:
    """Build the serving prompt in SPM order; the model continues with the middle."""
    return [specials.prefix, specials.suffix, *suffix_ids, specials.middle, *prefix_ids]


def psm_prompt(specials: SpecialIds, prefix_ids: Sequence[int], suffix_ids: Sequence[int]) -> list[int]:
    """Build a prompt in PSM order; the model continues with the middle."""
    return [specials.prefix, *prefix_ids, specials.suffix, *suffix_ids, specials.middle]


def fim_document(
    text: str,
    encode: Encode,
    specials: SpecialIds,
    rng: random.Random,
    order: FimOrder,
) -> list[int]:
    """Cut `text` at two uniform random character positions and return the FIM training tokens.

    Character-level cuts teach the model to complete from any cursor, including inside a word.
    The result ends with <eot>, so the model learns where the middle stops.
    """
    a, b = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
    prefix_ids, middle_ids, suffix_ids = encode(text[:a]), encode(text[a:b]), encode(text[b:])
    if order == "spm":
        prompt = spm_prompt(specials, prefix_ids, suffix_ids)
    else:
        prompt = psm_prompt(specials, prefix_ids, suffix_ids)
    return [*prompt, *middle_ids, specials.end_of_text]


def plain_document(text: str, encode: Encode, specials: SpecialIds) -> list[int]:
    """Return the left-to-right training tokens of `text`, ended by <eot>."""
    return [*encode(text), specials.end_of_text]


def training_document(
    text: str,
    encode: Encode,
    specials: SpecialIds,
    rng: random.Random,
    fim_rate: float,
    spm_rate: float = 0.5,
) -> list[int]:
    """Return the tokens of one training document: FIM with probability `fim_rate`, else left to right."""
    if rng.random() >= fim_rate:
        return plain_document(text, encode, specials)
    order: FimOrder = "spm" if rng.random() < spm_rate else "psm"
    return fim_document(text, encode, specials, rng, order)
