"""Fill-in-the-middle prompts from document text and a cursor offset.

The prompt is SPM-ordered, `<pre><suf> suffix <mid> prefix`, so while the user types only the end of
the prompt changes and the engine reuses its KV cache for everything before the edit.

Window rules, chosen so that typing keeps almost every prompt token cached:
- The prefix window starts at a newline found at or after a point of a coarse character grid (step
  `grid_step_chars`, about a third of the budget in tokens). The start is the first grid point whose
  window fits the token budget, so it depends only on the text before the cursor and moves by a whole
  grid step once the window outgrows the budget, never on every keystroke.
- The suffix window depends only on the text after the cursor, which typing before it leaves
  unchanged. It ends at a line end within its budget.
- Each side is cut by characters first (at most `MAX_CHARS_PER_TOKEN` per budget token), so one
  request tokenizes a few kilobytes however large the file is.

Token healing: a cursor inside a word leaves the prompt ending in a token fragment that training
rarely put at a boundary (`pri` in `pri|`, or a lone space in `x = |`). `build_prompt` backs that text
off into `Prompt.healing_prefix`, and the engine makes the first generated token start with it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from tiny_copilot.model.fim import spm_prompt
from tiny_copilot.model.tokenizer import CodeTokenizer

from .encoding_cache import EncodingCache, Offsets

MAX_CHARS_PER_TOKEN = 5
"""Characters read per budget token before tokenizing; code averages ~3.4 (4096-token BPE), so
the first cut rarely loses text the budget could hold."""

FIM_SENTINEL_TOKENS = 3
"""Tokens that `spm_prompt` adds around the prefix and suffix: <pre>, <suf> and <mid>."""

CURSOR_LINE_RESERVE = 0.125
"""Share of the prefix budget kept for the cursor's line when the window start is chosen."""

MIN_PREFIX_TOKENS = 16
"""Smallest prefix budget that `fit_budgets` leaves; below it suggestions are noise."""


@dataclass(frozen=True)
class PromptBudget:
    """Token budgets of one prompt, already fitted to the model's context."""

    prefix_tokens: int
    suffix_tokens: int
    max_new_tokens: int


@dataclass(frozen=True)
class Prompt:
    """A tokenized SPM prompt and where its windows lie in the document."""

    ids: list[int]
    prefix_start: int
    """str index in the document where the prefix window starts."""
    suffix_end: int
    """str index in the document where the suffix window ends (exclusive)."""
    prefix_tokens: int
    """Prefix tokens in `ids`, after the healing back-off."""
    suffix_tokens: int
    healing_prefix: str
    """Text cut from the end of the prefix that the first generated token must start with; "" when none."""


def fit_budgets(prefix_tokens: int, suffix_tokens: int, max_new_tokens: int, max_seq_len: int) -> PromptBudget:
    """Shrink the budgets so sentinels, prefix, suffix and new tokens fit `max_seq_len` together.

    `max_new_tokens` keeps its value while `MIN_PREFIX_TOKENS` still fit beside it; prefix and
    suffix then shrink in proportion. Raise ValueError when the context cannot hold a prompt at all.
    """
    room = max_seq_len - FIM_SENTINEL_TOKENS
    if room < MIN_PREFIX_TOKENS + 1:
        raise ValueError(f"model context of {max_seq_len} tokens is too short for a prompt; use a model with max_seq_len >= 64")

    max_new_tokens = min(max_new_tokens, room - MIN_PREFIX_TOKENS)
    prompt_room = room - max_new_tokens
    if prefix_tokens + suffix_tokens > prompt_room:
        scaled_suffix = suffix_tokens * prompt_room // (prefix_tokens + suffix_tokens)
        suffix_tokens = min(scaled_suffix, prompt_room - MIN_PREFIX_TOKENS)
        prefix_tokens = prompt_room - suffix_tokens
    return PromptBudget(prefix_tokens, suffix_tokens, max_new_tokens)


def grid_step_chars(budget_tokens: int) -> int:
    """Return how far, in characters, the prefix window start moves when it must move."""
    # One character per budget token: at ~3.4 characters per token a move drops about 30% of the
    # window, so a re-prefill happens about once per `budget_tokens` characters typed.
    return max(64, budget_tokens)


def build_prompt(
    tokenizer: CodeTokenizer,
    text: str,
    offset: int,
    budget: PromptBudget,
    token_healing: bool = True,
    cache: EncodingCache | None = None,
) -> Prompt:
    """Build the SPM prompt for a cursor at str index `offset` of `text` (LF line endings).

    `cache`, when given, carries tokenizations from the previous call so that only the changed
    lines are tokenized again. The prompt is the same with or without it.
    """
    if not 0 <= offset <= len(text):
        raise ValueError(f"cursor offset {offset} is outside the document of {len(text)} characters")

    prefix_start, prefix_ids = prefix_window(tokenizer, text, offset, budget.prefix_tokens, cache)
    healing_prefix = ""
    if token_healing:
        prefix_ids, healing_prefix = heal_prefix(tokenizer, text, prefix_start, offset, prefix_ids)
    suffix_end, suffix_ids = suffix_window(tokenizer, text, offset, budget.suffix_tokens, cache)

    return Prompt(
        ids=spm_prompt(tokenizer.specials, prefix_ids, suffix_ids),
        prefix_start=prefix_start,
        suffix_end=suffix_end,
        prefix_tokens=len(prefix_ids),
        suffix_tokens=len(suffix_ids),
        healing_prefix=healing_prefix,
    )


def prefix_window(
    tokenizer: CodeTokenizer, text: str, offset: int, budget_tokens: int, cache: EncodingCache | None = None
) -> tuple[int, list[int]]:
    """Return the start of the prefix window and the ids of `text[start:offset]` (at most `budget_tokens`).

    The start is the first grid point (moved to the next newline) whose complete lines, up to the
    cursor's line, fit the budget less `CURSOR_LINE_RESERVE` of it. Typing on the cursor's line leaves
    those lines alone, so the start stays put even where a keystroke merges or splits tokens.
    """
    if offset == 0 or budget_tokens == 0:
        return offset, []
    step = grid_step_chars(budget_tokens)
    lowest = max(0, offset - budget_tokens * MAX_CHARS_PER_TOKEN)
    grid_point = -(-lowest // step) * step  # the first grid point at or after the character cut
    line_start = text.rfind("\n", 0, offset) + 1
    lines_budget = budget_tokens - int(budget_tokens * CURSOR_LINE_RESERVE)

    # Tokenize the widest window once. A later window start reuses its tokens when one of them
    # starts exactly there, as one does at a newline after a non-space character.
    wide_start = _newline_at_or_after(text, grid_point, offset) if lowest > 0 else 0
    wide_ids, wide_offsets = _encode(tokenizer, cache, "prefix", text[wide_start:offset])
    token_starts = [wide_start + start for start, _ in wide_offsets]
    tokens_before_line = bisect.bisect_left(token_starts, line_start)

    start = wide_start
    while True:
        index = bisect.bisect_left(token_starts, start)
        if tokens_before_line - index <= lines_budget and len(wide_ids) - index <= budget_tokens:
            if index < len(token_starts) and token_starts[index] == start:
                ids = wide_ids[index:]
            else:
                # The usual case with GPT-4-style pre-tokenizers, which end a token with the newline
                # (`):\n`). A slot of its own lets typing re-tokenize only the cursor's lines.
                ids, _ = _encode(tokenizer, cache, "prefix window", text[start:offset])
            if len(ids) <= budget_tokens:
                return start, ids
        grid_point += step
        if grid_point >= offset:
            # Only text of several tokens per character (non-ASCII) gets here, because a grid point
            # lies less than `step` = budget characters before the cursor. NOTE: this start moves
            # with every keystroke.
            return token_starts[-budget_tokens], wide_ids[-budget_tokens:]
        start = _newline_at_or_after(text, grid_point, offset)


def suffix_window(
    tokenizer: CodeTokenizer, text: str, offset: int, budget_tokens: int, cache: EncodingCache | None = None
) -> tuple[int, list[int]]:
    """Return the end of the suffix window and the ids of `text[offset:end]` (at most `budget_tokens`).

    The result depends only on `text[offset:]`, so typing before the cursor keeps it unchanged.
    """
    if budget_tokens == 0 or offset == len(text):
        return offset, []
    char_end = min(len(text), offset + budget_tokens * MAX_CHARS_PER_TOKEN)
    if char_end < len(text):
        newline = text.rfind("\n", offset, char_end)
        char_end = newline if newline > offset else char_end

    ids, offsets = _encode(tokenizer, cache, "suffix", text[offset:char_end])
    if len(ids) <= budget_tokens:
        return char_end, ids

    # Keep whole lines: end at the last token boundary next to a newline that still fits. Some
    # pre-tokenizers (GPT-4's) end a token with the newline, others (GPT-2's) start the next one with it.
    window = text[offset:char_end]
    keep = budget_tokens
    for count in range(budget_tokens, 0, -1):
        token_end = offsets[count - 1][1]
        if window[token_end - 1] == "\n" or (token_end < len(window) and window[token_end] == "\n"):
            keep = count
            break
    return offset + offsets[keep - 1][1], ids[:keep]


def heal_prefix(
    tokenizer: CodeTokenizer, text: str, prefix_start: int, offset: int, prefix_ids: list[int]
) -> tuple[list[int], str]:
    """Back off the end of the prefix that training rarely saw at a token boundary.

    Return the shortened prefix ids and the backed-off text. Rules:
    - a prefix ending in a space or tab (`x = |`, indentation) backs off that one character, because
      training text tokenizes a space together with the word after it (" x") and the
      indentation run without its last space;
    - any other prefix backs off its last token when that token is valid UTF-8 on its own. So `pri|`
      can become `print` and `foo(|` can become `foo(x`. A trailing newline can join the next
      line's indentation as it does in training, where GPT-2 splits "\n    def" as "\n   ", " def".
    benchmarks/token_healing_boundaries.py measures how often each rule makes the prompt end where
    tokenizing the whole file would also put a token boundary.
    """
    if not prefix_ids:
        return prefix_ids, ""
    last_char = text[offset - 1]
    if last_char in " \t":
        return _back_off_last_char(tokenizer, text, prefix_start, offset, prefix_ids), last_char

    token_bytes = tokenizer.token_bytes[prefix_ids[-1]]
    try:
        token_text = token_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return prefix_ids, ""  # part of a multi-byte character: no token boundary to move
    if not text.endswith(token_text, prefix_start, offset):
        return prefix_ids, ""
    return prefix_ids[:-1], token_text


def _encode(tokenizer: CodeTokenizer, cache: EncodingCache | None, slot: str, text: str) -> tuple[list[int], Offsets]:
    if cache is not None:
        return cache.encode(slot, text)
    encoding = tokenizer.inner.encode(text, add_special_tokens=False)
    return encoding.ids, encoding.offsets


def _newline_at_or_after(text: str, position: int, offset: int) -> int:
    """Return the index of the first newline in `text[position:offset]`, or `position` when there is none."""
    newline = text.find("\n", position, offset)
    return newline if newline >= 0 else position


def _back_off_last_char(
    tokenizer: CodeTokenizer, text: str, prefix_start: int, offset: int, prefix_ids: list[int]
) -> list[int]:
    """Return the ids of `text[prefix_start:offset - 1]`, re-tokenizing only the trailing whitespace run."""
    kept = len(prefix_ids)
    whitespace_chars = 0
    while kept > 0:
        piece = tokenizer.token_bytes[prefix_ids[kept - 1]]
        if not piece or piece.strip(b" \t\n") != b"":
            break
        kept -= 1
        whitespace_chars += len(piece)  # whitespace bytes are ASCII, one character each
    if whitespace_chars == 0:
        # The last token mixes text and whitespace (a tokenizer without whitespace splitting).
        return tokenizer.encode(text[prefix_start : offset - 1])
    return prefix_ids[:kept] + tokenizer.encode(text[offset - whitespace_chars : offset - 1])
