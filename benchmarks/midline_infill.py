"""What accepting a suggestion does to a line when the cursor sits inside it, with text after it.

The line-completion evaluation removes the whole rest of a line, so its cases have no text after
the cursor on its line. Here, in files the model did not train on, part of a line is cut out and the
cursor put where it started; the text after it stays, as when a user edits inside a line. Two kinds
of cases, drawn at random:
- "rest of a word": the cursor inside an identifier of 4 or more characters, the identifier's rest
  cut, other text after it (typing a name before `(args)` or ` = value`);
- "random span": up to MAX_SPAN_CHARS characters from a random point, split by what follows the
  cursor: only closing brackets, quotes and `;:,` ("closers"), or other text.
The server's Completer suggests, and the suggestion is applied as an editor applies it: its text
replaces the characters that its range covers right of the cursor. Counted per case:
- shown: a suggestion came;
- restored: the accepted line equals the original line;
- better / worse: edit similarity of the accepted line to the original line is higher / lower than
  that of the line without the suggestion (accepting helped / did harm, often by doubling text).
Greedy decoding makes a run reproducible, so two runs compare post-processing rules.

    .venv/bin/python benchmarks/midline_infill.py [--checkpoint DIR] [--files FILE ...] [--cases N]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tiny_copilot.model.checkpoint import load_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.engine import Engine
from tiny_copilot.server.completion import Completer
from tiny_copilot.server.postprocess import LINE_END_CHARS
from tiny_copilot.server.settings import ServerSettings
from tiny_copilot.training.eval_metrics import edit_similarity

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_FILES = sorted(str(path) for folder in ("server", "model", "training") for path in (REPOSITORY / folder).glob("*.py"))
MIN_LINE_CHARS = 12
"""Shortest line (stripped) that cases are drawn from."""
MAX_SPAN_CHARS = 24
"""Maximum length, in characters, of a span cut out of a line."""
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")


@dataclass(frozen=True)
class Case:
    document: str
    offset: int
    """Cursor: where the span was, a str index of `document`."""
    original_line: str
    line_start: int
    kind: str
    """"rest of a word", "span, closers" or "span, other text"."""


def draw_span_cases(texts: list[str], count: int, rng: random.Random) -> list[Case]:
    """Cut a random span out of random lines; the span ends before the line's last non-blank character."""
    lines = []
    for text in texts:
        start = 0
        for line in text.split("\n"):
            if len(line.strip()) >= MIN_LINE_CHARS:
                lines.append((text, start, line))
            start += len(line) + 1
    cases = []
    for text, line_start, line in rng.sample(lines, min(count, len(lines))):
        indent = len(line) - len(line.lstrip())
        last = len(line.rstrip()) - 1
        begin = rng.randint(indent, last - 1)
        end = rng.randint(begin + 1, min(last, begin + MAX_SPAN_CHARS))
        rest = line[end:]
        kind = "span, closers" if all(char in LINE_END_CHARS for char in rest.strip()) else "span, other text"
        document = text[: line_start + begin] + text[line_start + end :]
        cases.append(Case(document, line_start + begin, line, line_start, kind))
    return cases


def draw_word_cases(texts: list[str], count: int, rng: random.Random) -> list[Case]:
    """Cut the rest of random identifiers that have other text after them on their line."""
    spots = []
    for text in texts:
        for match in IDENTIFIER.finditer(text):
            line_end = text.find("\n", match.end())
            rest = text[match.end() : len(text) if line_end < 0 else line_end].strip()
            if any(char not in LINE_END_CHARS for char in rest):
                spots.append((text, match))
    cases = []
    for text, match in rng.sample(spots, min(count, len(spots))):
        begin = rng.randint(match.start() + 1, match.end() - 1)
        line_start = text.rfind("\n", 0, begin) + 1
        line_end = text.find("\n", begin)
        line = text[line_start : len(text) if line_end < 0 else line_end]
        cases.append(Case(text[:begin] + text[match.end() :], begin, line, line_start, "rest of a word"))
    return cases


def accepted_line(case: Case, text: str, replace_chars: int) -> str:
    """Return the cursor's line after the editor applies the suggestion."""
    line_end = case.document.find("\n", case.offset)
    line_end = len(case.document) if line_end < 0 else line_end
    before = case.document[case.line_start : case.offset]
    after = case.document[case.offset + replace_chars : line_end]
    return before + text + after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="held-out Python files (default: this repository's code)")
    parser.add_argument("--cases", type=int, default=300, help="cursors of each kind (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print N cases where accepting did harm")
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint or shipped_checkpoint_path())
    settings, _ = ServerSettings.from_json({})
    completer = Completer(Engine(checkpoint.model, checkpoint.tokenizer), settings)
    texts = [Path(name).read_text(encoding="utf-8") for name in args.files]
    rng = random.Random(args.seed)
    cases = draw_word_cases(texts, args.cases, rng) + draw_span_cases(texts, args.cases, rng)

    counts: dict[str, dict[str, int]] = {}
    harmful = []
    for case in cases:
        suggestion = completer.complete(case.document, case.offset, language_id="python")
        without = accepted_line(case, "", 0)
        row = counts.setdefault(case.kind, {"cases": 0, "shown": 0, "restored": 0, "better": 0, "worse": 0})
        row["cases"] += 1
        if suggestion is None:
            continue
        line = accepted_line(case, suggestion.text, suggestion.replace_suffix_chars)
        row["shown"] += 1
        row["restored"] += line == case.original_line
        gain = edit_similarity(line, case.original_line) - edit_similarity(without, case.original_line)
        row["better"] += gain > 0
        row["worse"] += gain < 0
        if gain < 0:
            harmful.append((case.original_line.strip(), without.strip(), line.strip()))

    counts["all"] = {key: sum(row[key] for row in counts.values()) for key in ("cases", "shown", "restored", "better", "worse")}
    print(f"{len(cases)} cursors inside lines of {len(args.files)} files, seed {args.seed}")
    print(f"{'case':<18} {'cases':>6} {'shown':>7} {'restored':>9} {'better':>7} {'worse':>7}")
    for kind, row in counts.items():
        shown = max(row["shown"], 1)
        print(
            f"{kind:<18} {row['cases']:>6} {row['shown'] / row['cases']:>7.1%} {row['restored'] / shown:>9.1%} "
            f"{row['better'] / shown:>7.1%} {row['worse'] / shown:>7.1%}"
        )
    print("restored, better and worse are shares of the suggestions shown")
    for original, without, line in harmful[: args.show]:
        print(f"\noriginal: {original}\nedited:   {without}\naccepted: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
