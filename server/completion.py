"""The completion core: document text and a cursor in, one suggestion out.

The LSP server, the `tiny-copilot complete` command and the evaluation all call `Completer.complete`,
so they share one code path. Callers convert LSP positions and line endings first: `text` uses "\\n"
line endings and `offset` is a Python str index. One `Completer` owns one `Engine`, whose KV caches
persist between calls, so it serves one request at a time. A caller that completes in several
documents names each with a `cache_key`, so each keeps its own KV cache and tokenization.

Steps of `complete`: build an SPM prompt within the token budgets (server/prompt.py), choose single-
or multi-line mode, generate with the mode's stop rule, then clean the text (server/postprocess.py).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from tiny_copilot.model.engine import Engine
from tiny_copilot.model.sampler import SamplingConfig

from .encoding_cache import EncodingCache
from .postprocess import CursorContext, Mode, choose_mode, cut_index, finalize
from .prompt import MAX_CHARS_PER_TOKEN, PromptBudget, build_prompt, fit_budgets, grid_step_chars
from .settings import ServerSettings
from .tab_indent import spaces_for_tabs

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")
"""A surrogate code point in a `str` is always unpaired, because JSON decoding joins the pairs."""


@dataclass(frozen=True)
class Suggestion:
    """Text to insert at the cursor, with how it was made."""

    text: str
    """Text to insert at the cursor, with "\\n" line endings."""
    replace_suffix_chars: int
    """Characters right after the cursor, on its line, that the insertion replaces (such as an auto-inserted ")")."""
    prompt_tokens: int
    reused_tokens: int
    """Prompt tokens whose keys and values came from the engine's cache."""
    elapsed_ms: float
    """Time spent in `Completer.complete`, prompt building and clean-up included."""
    mode: Mode = "single"
    stop_reason: str = ""
    """The engine's stop reason: "end_of_text", "stop", "max_tokens", "context_full" or "invalid_utf8"."""


@dataclass(frozen=True)
class CompletionStats:
    """Diagnostics of the latest request, kept even when it produced no suggestion."""

    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    healing_prefix: str
    mode: Mode
    stop_reason: str
    prefill_ms: float
    decode_ms: float
    elapsed_ms: float
    draft_tokens: int = 0
    """Guessed tokens checked by speculative decoding."""
    accepted_draft_tokens: int = 0


class Completer:
    """Turns (text, cursor) into a `Suggestion` with one engine; not thread-safe."""

    def __init__(self, engine: Engine, settings: ServerSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.budget = self._fit_budget(settings)
        self._encoding_caches: OrderedDict[Hashable, EncodingCache] = OrderedDict()
        """Per cache key, least recently used first; as many as the engine has KV caches."""
        self.last_stats: CompletionStats | None = None
        """Diagnostics of the latest completed request; None before the first one."""

    def update_settings(self, settings: ServerSettings) -> None:
        """Use `settings` from the next request on; the checkpoint field is the caller's to apply."""
        self.settings = settings
        self.budget = self._fit_budget(settings)

    def complete(
        self,
        text: str,
        offset: int,
        language_id: str | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        cache_key: Hashable = None,
    ) -> Suggestion | None:
        """Suggest text to insert at str index `offset` of `text`; None when nothing is worth showing.

        `cache_key` names the document, so that requests alternating between documents each reuse
        their own document's cached prompt (see `Engine.select_cache`).

        Raise ValueError for an offset outside the text and model.engine.GenerationCancelled when
        `is_cancelled` returns True during generation.
        """
        started = time.perf_counter()
        settings = self.settings
        if not 0 <= offset <= len(text):
            raise ValueError(f"cursor offset {offset} is outside the document of {len(text)} characters")
        if not settings.is_language_enabled(language_id):
            log.debug("completion skipped: language %r is not in enabledLanguages", language_id)
            return None
        if not text or text.isspace():
            # With no code to continue, the model writes noise: the shipped model offered "eturn a new
            # value to be able" in an empty file, the first thing a user sees in a new file.
            log.debug("completion skipped: the document is blank")
            return None

        text = self._replace_surrogates_near(text, offset)
        context = CursorContext.from_text(text, offset, language_id)
        # The prompt shows tab indentation as spaces; the context keeps the document's indent style, so
        # the suggestion gets tabs back.
        before_chars = self.budget.prefix_tokens * MAX_CHARS_PER_TOKEN + grid_step_chars(self.budget.prefix_tokens)
        spaced, spaced_offset = spaces_for_tabs(text, offset, before_chars, self.budget.suffix_tokens * MAX_CHARS_PER_TOKEN)
        if spaced is not text:
            text, offset = spaced, spaced_offset
            context = dataclasses.replace(CursorContext.from_text(text, offset, language_id), indent=context.indent)
        mode = choose_mode(context, settings.multiline)
        self.engine.select_cache(cache_key)
        encoding_cache = self._encoding_cache(cache_key)
        prompt = build_prompt(self.engine.tokenizer, text, offset, self.budget, settings.token_healing, encoding_cache)
        healing = prompt.healing_prefix

        def stop_rule(generated: str) -> int | None:
            # The engine's text starts with the healed text, which sits before the cursor.
            if len(generated) < len(healing):
                return None
            cut = cut_index(generated[len(healing) :], context, mode, settings.max_lines)
            return None if cut is None else cut + len(healing)

        generation = self.engine.generate(
            prompt.ids,
            SamplingConfig(temperature=settings.temperature, max_new_tokens=self.budget.max_new_tokens),
            generator=self._generator(settings),
            healing_prefix=healing,
            stop_rule=stop_rule,
            is_cancelled=is_cancelled,
        )

        insertion = generation.text[len(healing) :] if generation.text.startswith(healing) else ""
        truncated = generation.stop_reason in ("max_tokens", "context_full")
        result = finalize(insertion, context, mode, settings.max_lines, truncated)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.last_stats = CompletionStats(
            prompt_tokens=len(prompt.ids),
            reused_tokens=generation.reused_tokens,
            generated_tokens=len(generation.token_ids),
            healing_prefix=healing,
            mode=mode,
            stop_reason=generation.stop_reason,
            prefill_ms=generation.prefill_ms,
            decode_ms=generation.decode_ms,
            elapsed_ms=elapsed_ms,
            draft_tokens=generation.draft_tokens,
            accepted_draft_tokens=generation.accepted_draft_tokens,
        )
        log.debug(
            "completion: offset %d, mode %s, %d prompt tokens (%d cached), healing %r, %s, "
            "%d of %d guessed tokens kept, %.1f ms",
            offset, mode, len(prompt.ids), generation.reused_tokens, healing, generation.stop_reason,
            generation.accepted_draft_tokens, generation.draft_tokens, elapsed_ms,
        )  # fmt: skip
        if result is None:
            return None
        return Suggestion(
            text=result[0],
            replace_suffix_chars=result[1],
            prompt_tokens=len(prompt.ids),
            reused_tokens=generation.reused_tokens,
            elapsed_ms=elapsed_ms,
            mode=mode,
            stop_reason=generation.stop_reason,
        )

    def forget(self, cache_key: Hashable) -> None:
        """Drop the KV cache and tokenization kept for `cache_key`."""
        self.engine.drop_cache(cache_key)
        self._encoding_caches.pop(cache_key, None)

    def _encoding_cache(self, key: Hashable) -> EncodingCache:
        cache = self._encoding_caches.pop(key, None)
        if cache is None:
            cache = EncodingCache(self.engine.tokenizer)
            while len(self._encoding_caches) >= self.engine.cache_slots:
                self._encoding_caches.popitem(last=False)
        self._encoding_caches[key] = cache
        return cache

    def _replace_surrogates_near(self, text: str, offset: int) -> str:
        """Replace unpaired surrogates with U+FFFD when the prompt windows around `offset` contain one.

        JSON may carry them ("\ud800"), and the tokenizer rejects them with TypeError. U+FFFD keeps the
        length, so `offset` still points at the same place. Only the windows are searched, because a
        search of a whole 5 MB document would add milliseconds to every request.
        """
        start = max(0, offset - self.budget.prefix_tokens * MAX_CHARS_PER_TOKEN)
        end = min(len(text), offset + self.budget.suffix_tokens * MAX_CHARS_PER_TOKEN)
        if text.isascii() or _SURROGATE.search(text, start, end) is None:
            return text
        return _SURROGATE.sub("\ufffd", text)

    def _fit_budget(self, settings: ServerSettings) -> PromptBudget:
        max_seq_len = self.engine.max_seq_len
        budget = fit_budgets(
            settings.prefix_budget_tokens, settings.suffix_budget_tokens, settings.max_new_tokens, max_seq_len
        )
        requested = (settings.prefix_budget_tokens, settings.suffix_budget_tokens, settings.max_new_tokens)
        if (budget.prefix_tokens, budget.suffix_tokens, budget.max_new_tokens) != requested:
            # The defaults suit a 1024-token model; shrinking them for a shorter one is expected.
            defaults = ServerSettings()
            is_default = requested == (defaults.prefix_budget_tokens, defaults.suffix_budget_tokens, defaults.max_new_tokens)
            log.log(
                logging.INFO if is_default else logging.WARNING,
                "token budgets (prefix %d, suffix %d, new %d) exceed the model context of %d tokens; "
                "using prefix %d, suffix %d, new %d",
                *requested, max_seq_len, budget.prefix_tokens, budget.suffix_tokens, budget.max_new_tokens,
            )  # fmt: skip
        return budget

    @staticmethod
    def _generator(settings: ServerSettings) -> torch.Generator | None:
        """Return a generator seeded afresh per request, so sampling repeats for the same text and cursor."""
        if settings.temperature == 0:
            return None
        return torch.Generator().manual_seed(settings.seed)
