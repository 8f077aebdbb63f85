"""Line completion on held-out files: the cursor at a random point inside a line, the rest of it removed.

The document sent to the completer is the file without the rest of that line (the lines below stay,
as in an editor), and the reference is the removed rest. Cursor points are drawn with a seeded
`random.Random`, between the line's indentation and its last non-blank character, so the reference
always has something to predict.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .eval_data import EvalFile
from .eval_metrics import edit_similarity, exact_match, first_line, mean, percentile

Suggest = Callable[[str, int, "str | None"], str]
"""(document text, cursor offset as a str index, language id) -> suggested text, "" for none."""

LSP_LANGUAGE_IDS = {"python": "python", "c": "c", "cpp": "cpp", "text": "plaintext"}


@dataclass(frozen=True)
class LineCase:
    file: str
    language: str
    document: str
    offset: int
    """Cursor position in `document`, a str index."""
    reference: str
    """The removed rest of the line."""


def sample_line_cases(files: list[EvalFile], cases_per_file: int, rng: random.Random) -> list[LineCase]:
    """Draw up to `cases_per_file` cursor points per file, at most one per line."""
    cases = []
    for eval_file in files:
        lines = []
        start = 0
        for line in eval_file.text.split("\n"):
            if line.strip():
                lines.append((start, line))
            start += len(line) + 1
        for line_start, line in sorted(rng.sample(lines, min(cases_per_file, len(lines)))):
            indent = len(line) - len(line.lstrip())
            column = rng.randint(indent, len(line.rstrip()) - 1)
            cursor = line_start + column
            cases.append(
                LineCase(
                    file=eval_file.name,
                    language=eval_file.language,
                    document=eval_file.text[:cursor] + eval_file.text[line_start + len(line) :],
                    offset=cursor,
                    reference=line[column:],
                )
            )
    return cases


def evaluate_line_completion(suggest: Suggest, cases: list[LineCase]) -> dict[str, Any]:
    """Ask `suggest` at every case; return exact match, edit similarity and latency per language."""
    records = []
    for case in cases:
        started = time.perf_counter()
        prediction = first_line(suggest(case.document, case.offset, LSP_LANGUAGE_IDS.get(case.language)))
        records.append(
            {
                "file": case.file,
                "language": case.language,
                "reference": case.reference,
                "prediction": prediction,
                "exact_match": exact_match(prediction, case.reference),
                "edit_similarity": edit_similarity(prediction, case.reference),
                "latency_ms": (time.perf_counter() - started) * 1000,
            }
        )

    by_language: dict[str, dict[str, Any]] = {}
    for language in sorted({r["language"] for r in records}):
        chosen = [r for r in records if r["language"] == language]
        latencies = [r["latency_ms"] for r in chosen]
        by_language[language] = {
            "cases": len(chosen),
            "exact_match": mean([float(r["exact_match"]) for r in chosen]),
            "edit_similarity": mean([r["edit_similarity"] for r in chosen]),
            "latency_ms_p50": percentile(latencies, 50),
            "latency_ms_p95": percentile(latencies, 95),
        }
    overall = {
        "cases": len(records),
        "exact_match": mean([float(r["exact_match"]) for r in records]),
        "edit_similarity": mean([r["edit_similarity"] for r in records]),
    }
    return {"overall": overall, "by_language": by_language, "records": records}
