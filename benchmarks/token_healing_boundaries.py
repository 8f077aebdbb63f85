"""How often the prompt ends where tokenizing the whole file would also put a token boundary.

A prompt that ends inside a word ends in a token fragment that training rarely saw before the next
token. For random cursors in held-out standard-library files, this counts the prompts whose prefix
tokens equal the first tokens of the whole text. With healing, the backed-off text must also start
the next token of the whole text. Counts are split by the character before the cursor.

    .venv/bin/python benchmarks/token_healing_boundaries.py
"""

from __future__ import annotations

import random
import sys
import sysconfig
from collections import Counter
from pathlib import Path

from tiny_copilot.server.prompt import PromptBudget, build_prompt
from tiny_copilot.training.tokenizer_train import train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TRAIN_PACKAGES = ("json", "collections", "email", "asyncio")
CURSORS = 3000


def cursor_kind(text: str, offset: int) -> str:
    before, after = text[offset - 1], text[offset]
    if before == "\n":
        return "after newline"
    if before in " \t":
        return "after space/tab, text next" if not after.isspace() else "inside whitespace"
    if (before.isalnum() or before == "_") and (after.isalnum() or after == "_"):
        return "mid-word"
    return "after word end" if before.isalnum() or before == "_" else "after punctuation"


def main() -> int:
    train = [path.read_text(encoding="utf-8") for package in TRAIN_PACKAGES for path in sorted((STDLIB / package).glob("*.py"))]
    held_out = [path.read_text(encoding="utf-8") for path in [*sorted((STDLIB / "logging").glob("*.py")), STDLIB / "argparse.py", STDLIB / "textwrap.py"]]
    budget = PromptBudget(prefix_tokens=200, suffix_tokens=0, max_new_tokens=16)
    for pre_tokenizer in ("gpt4", "gpt2"):
        tokenizer = train_tokenizer(train, vocab_size=4096, pre_tokenizer=pre_tokenizer)
        rng = random.Random(0)
        natural: Counter[tuple[str, bool]] = Counter()
        total: Counter[tuple[str, bool]] = Counter()
        for _ in range(CURSORS):
            text = rng.choice(held_out)
            offset = rng.randrange(200, len(text) - 1)
            for healing in (False, True):
                prompt = build_prompt(tokenizer, text, offset, budget, token_healing=healing)
                prefix_ids = prompt.ids[prompt.ids.index(tokenizer.specials.middle) + 1 :]
                whole = tokenizer.encode(text[prompt.prefix_start : offset + 50])
                matches = whole[: len(prefix_ids)] == prefix_ids
                next_token = tokenizer.decode(whole[len(prefix_ids) : len(prefix_ids) + 1])
                key = (cursor_kind(text, offset), healing)
                natural[key] += matches and next_token.startswith(prompt.healing_prefix)
                total[key] += 1
        print(f"{pre_tokenizer} pre-tokenizer, 4096-token BPE, {CURSORS} cursors:")
        for kind, healing in sorted(total):
            share = natural[kind, healing] / total[kind, healing]
            print(f"  {kind:28} healing {'on ' if healing else 'off'}: {share:6.1%} of {total[kind, healing]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
