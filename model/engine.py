"""Incremental generation with a KV cache kept between calls.

Boundary: token ids in, token ids and text out. The engine has no notion of documents, cursors or
LSP; the server and the `complete` command build prompts and post-process. Each call reuses the
cached positions that match the new prompt's longest common prefix and prefills only the rest.
An engine keeps one cache per caller-chosen key, such as a document, up to `cache_slots` of them
(see `select_cache`), so switching between files does not prefill each file anew.
One engine serves one caller at a time. It copies the model's weights when it is built (see
`GPT.decoding_weights`), so build a new engine after changing them.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from .drafts import DraftProposer
from .kv_cache import KVCache
from .sampler import SamplingConfig, find_stop, sample_next
from .tokenizer import CodeTokenizer
from .transformer import GPT

MAX_DRAFT_TOKENS = 6
"""Guessed tokens run with each decoding step. With 900 cached positions on one thread of a 2-core
AMD EPYC, a step over 7 tokens took 1.7 times as long as a step over 1, and a step over 9 tokens
2.6 times, so longer guesses rarely pay."""

StopRule = Callable[[str], "int | None"]
"""Given the text generated so far, return where to cut it and stop, or None to go on."""

_REPLACEMENT = "\ufffd"
"""The character the UTF-8 decoder puts in place of bytes that are not UTF-8."""


class GenerationCancelled(Exception):
    """The caller's cancel check returned True between two decoding steps."""


@dataclass
class Generation:
    text: str
    """Generated text, cut before any stop; starts with the healed text when healing was asked."""
    token_ids: list[int]
    prompt_tokens: int
    reused_tokens: int
    """Prompt tokens whose keys and values came from the cache."""
    stop_reason: str
    """One of "end_of_text", "stop", "max_tokens", "context_full", "invalid_utf8" (bytes that are not UTF-8)."""
    prefill_ms: float
    decode_ms: float
    draft_tokens: int = 0
    """Guessed tokens checked by speculative decoding."""
    accepted_draft_tokens: int = 0
    """Guessed tokens that equalled the greedy choice and so cost no decoding step of their own."""


@dataclass
class _CacheSlot:
    """One key's KV cache, the ids it holds, and its last generation's prompt and output."""

    cache: KVCache
    cached_ids: list[int]
    previous_ids: list[int]


class Engine:
    def __init__(self, model: GPT, tokenizer: CodeTokenizer, speculative: bool = True, cache_slots: int = 1) -> None:
        if cache_slots < 1:
            raise ValueError(f"cache_slots must be at least 1, got {cache_slots}")
        self.model = model.eval()
        self.speculative = speculative
        """Check guessed tokens along with each greedy decoding step (see `generate`)."""
        self.tokenizer = tokenizer
        self.cache_slots = cache_slots
        self.weights = model.decoding_weights()
        self.cache = model.new_cache()
        self.cached_ids: list[int] = []
        self._previous_ids: list[int] = []
        """The last generation's prompt and output: the first source of guesses for the next one."""
        self._cache_key: Hashable = None
        self._idle_slots: OrderedDict[Hashable, _CacheSlot] = OrderedDict()
        """The other keys' caches, least recently used first; the current key's lives in the attributes above."""
        self._special_ids = tokenizer.specials.all()

    @property
    def max_seq_len(self) -> int:
        return self.model.config.max_seq_len

    def reset(self) -> None:
        """Empty every cache."""
        self.cache.truncate(0)
        self.cached_ids = []
        self._previous_ids = []
        self._idle_slots.clear()

    def select_cache(self, key: Hashable) -> None:
        """Make `key`'s cache the one that later calls reuse and extend.

        A key seen before gets its cache back, unless `cache_slots` other keys were used since.
        A new key takes a fresh cache, or the least recently used one's when all slots are taken.
        """
        if key == self._cache_key:
            return
        self._idle_slots[self._cache_key] = _CacheSlot(self.cache, self.cached_ids, self._previous_ids)
        slot = self._idle_slots.pop(key, None)
        if slot is None:
            if len(self._idle_slots) >= self.cache_slots:
                _, slot = self._idle_slots.popitem(last=False)
                slot.cache.truncate(0)
                slot.cached_ids, slot.previous_ids = [], []
            else:
                slot = _CacheSlot(self.model.new_cache(), [], [])
        self._cache_key = key
        self.cache, self.cached_ids, self._previous_ids = slot.cache, slot.cached_ids, slot.previous_ids

    def drop_cache(self, key: Hashable) -> None:
        """Forget what `key`'s cache holds, such as the tokens of a document the editor closed."""
        if key == self._cache_key:
            self.cache.truncate(0)
            self.cached_ids, self._previous_ids = [], []
        else:
            self._idle_slots.pop(key, None)

    @torch.inference_mode()
    def prefill(self, prompt_ids: Sequence[int]) -> tuple[torch.Tensor, int]:
        """Bring the cache to `prompt_ids` and return (logits of the next token, reused token count)."""
        reused, new_ids = self._reuse_cache(prompt_ids)
        ids_BT = torch.tensor([new_ids], dtype=torch.long, device=self.cache.keys[0].device)
        logits_V = self._next_logits(ids_BT)
        self.cached_ids.extend(new_ids)
        return logits_V, reused

    def _reuse_cache(self, prompt_ids: Sequence[int]) -> tuple[int, list[int]]:
        """Keep the cached positions that match `prompt_ids`; return their count and the prompt's other tokens."""
        if not prompt_ids:
            raise ValueError("prompt must contain at least one token")
        if len(prompt_ids) > self.max_seq_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens exceeds the model context of {self.max_seq_len}")
        reused = _common_prefix_length(self.cached_ids, prompt_ids)
        # At least one token must run through the model to produce next-token logits.
        reused = min(reused, len(prompt_ids) - 1)
        self.cache.truncate(reused)
        self.cached_ids = list(prompt_ids[:reused])
        return reused, list(prompt_ids[reused:])

    @torch.inference_mode()
    def generate(
        self,
        prompt_ids: Sequence[int],
        config: SamplingConfig,
        generator: torch.Generator | None = None,
        healing_prefix: str = "",
        stop_rule: StopRule | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> Generation:
        """Continue `prompt_ids`.

        `healing_prefix` is text removed from the end of the prompt ("token healing"): the first new
        token must start with it, so the model can pick the token it would naturally use there.
        `is_cancelled` is checked before every decoding step; when it returns True the call raises
        GenerationCancelled within one step.
        With greedy decoding and `self.speculative`, each decoding step after the prefill also runs up
        to `MAX_DRAFT_TOKENS` guessed tokens (see model.drafts) and keeps those that equal the greedy
        choice. The output is the same as without guesses, except where two logits tie to within
        rounding: a call over several tokens rounds differently from single-token steps.
        """
        started = time.perf_counter()
        reused, feed = self._reuse_cache(prompt_ids)
        device = self.cache.keys[0].device
        healing_V = self._healing_mask(healing_prefix) if healing_prefix else None
        drafts = None
        if self.speculative and config.temperature == 0.0:
            drafts = DraftProposer(prompt_ids, self._previous_ids, self._special_ids)
        decoder = self.tokenizer.incremental_decoder()
        text, new_ids, stop_reason = "", [], "max_tokens"
        guessed = accepted = 0
        prefill_done: float | None = None

        def take(token: int) -> str | None:
            """Add one chosen token to the output; return why generation stops, or None."""
            nonlocal text
            if token in self._special_ids:
                return "end_of_text"
            new_ids.append(token)
            piece = decoder.decode(self.tokenizer.token_bytes[token])
            if _REPLACEMENT in piece:
                # Bytes that are not UTF-8 here, such as a stray continuation byte after an emoji: end
                # before them rather than suggest U+FFFD, which accepting would write into the file.
                # A U+FFFD that the model writes as a valid character ends the text here too.
                text += piece[: piece.index(_REPLACEMENT)]
                return "invalid_utf8"
            text += piece
            cut = _first_cut(text, config.stop_strings, stop_rule)
            if cut is not None:
                text = text[:cut]
                return "stop"
            if len(self.cached_ids) >= self.max_seq_len:
                return "context_full"
            if len(new_ids) >= config.max_new_tokens:
                return "max_tokens"
            return None

        while True:
            if prefill_done is not None and is_cancelled is not None and is_cancelled():
                raise GenerationCancelled()
            draft: list[int] = []
            # The prefill runs no guesses: in replays of typing they made no request faster.
            if drafts is not None and prefill_done is not None:
                room = min(self.max_seq_len - len(self.cached_ids) - len(feed), config.max_new_tokens - len(new_ids))
                draft = drafts.propose(min(MAX_DRAFT_TOKENS, room))
            ids_BT = torch.tensor([feed + draft], dtype=torch.long, device=device)
            # Without guesses only the logits after the last token are needed. With guesses, those after
            # the last fed token and after each guess are needed too: choice i follows guess i - 1.
            logits = self._next_logits(ids_BT, every_position=bool(draft))
            self.cached_ids.extend(feed)
            if prefill_done is None:
                prefill_done = time.perf_counter()
            if draft:
                first_V = logits[len(feed) - 1]
                choices = [sample_next(first_V, config, None, healing_V)]
                choices += logits[len(feed) :].argmax(-1).tolist()
            else:
                choices = [sample_next(logits, config, generator, healing_V)]
            healing_V = None
            matched = 0
            while matched < len(draft) and choices[matched] == draft[matched]:
                matched += 1
            guessed += len(draft)
            accepted += matched

            reason = None
            for i, token in enumerate([*draft[:matched], choices[matched]]):
                # take() checks cached_ids before `token` joins it, as in a single-token step.
                reason = take(token)
                if reason is not None:
                    break
                if drafts is not None:
                    drafts.append(token)
                if i < matched:
                    self.cached_ids.append(token)
            # Rejected guesses leave the cache, and so do accepted ones after a stop.
            self.cache.truncate(len(self.cached_ids))
            if reason is not None:
                stop_reason = reason
                break
            feed = [choices[matched]]
        if stop_reason == "max_tokens":
            # A character cut short by the token limit is dropped, not shown as U+FFFD.
            text += decoder.decode(b"", final=True).split(_REPLACEMENT, 1)[0]
        self._previous_ids = [*prompt_ids, *new_ids]

        return Generation(
            text=text,
            token_ids=new_ids,
            prompt_tokens=len(prompt_ids),
            reused_tokens=reused,
            stop_reason=stop_reason,
            prefill_ms=(prefill_done - started) * 1000,
            decode_ms=(time.perf_counter() - prefill_done) * 1000,
            draft_tokens=guessed,
            accepted_draft_tokens=accepted,
        )

    def _next_logits(self, ids_BT: torch.Tensor, every_position: bool = False) -> torch.Tensor:
        """Append `ids_BT` (batch 1) to the cache and return the logits after them.

        The shape is V for the token after the last one, or (T, V) with `every_position`.
        """
        return self.model.next_token_logits(ids_BT, self.cache, self.weights, every_position)[0]

    def _healing_mask(self, healing_prefix: str) -> torch.Tensor:
        return _healing_mask_cached(self.tokenizer, healing_prefix.encode("utf-8"), self.model.config.vocab_size)


@lru_cache(maxsize=256)
def _healing_mask_cached(tokenizer: CodeTokenizer, removed: bytes, vocab_size: int) -> torch.Tensor:
    """Boolean mask of ids whose bytes start with `removed`."""
    sorted_bytes, sorted_ids = _tokens_in_byte_order(tokenizer)
    # Byte strings that start with `removed` form one run in sorted order, so two binary searches find
    # them in about 20 us. Scanning 4096 tokens took 0.3 ms at every new word typed (2-core AMD EPYC).
    first = bisect.bisect_left(sorted_bytes, removed)
    end = bisect.bisect_right(sorted_bytes, removed, lo=first, key=lambda b: b[: len(removed)])
    if first == end:
        raise ValueError(f"no token starts with {removed!r}; token healing cannot apply here")
    mask_V = torch.zeros(vocab_size, dtype=torch.bool)
    mask_V[sorted_ids[first:end]] = True
    return mask_V


@lru_cache(maxsize=4)
def _tokens_in_byte_order(tokenizer: CodeTokenizer) -> tuple[list[bytes], torch.Tensor]:
    """Return every token's bytes sorted, and the ids in the same order."""
    token_bytes = tokenizer.token_bytes
    order = sorted(range(len(token_bytes)), key=token_bytes.__getitem__)
    return [token_bytes[i] for i in order], torch.tensor(order, dtype=torch.long)


def _first_cut(text: str, stop_strings: tuple[str, ...], stop_rule: StopRule | None) -> int | None:
    cuts = [c for c in (find_stop(text, stop_strings), stop_rule(text) if stop_rule else None) if c is not None]
    return min(cuts) if cuts else None


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
