"""Metric definitions of `tiny-copilot eval`, written once; the markdown report quotes METRIC_DEFINITIONS.

Every comparison of a suggestion with the reference goes through `exact_match` and `edit_similarity`
here, so line completion and HumanEval infilling use the same whitespace rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METRIC_DEFINITIONS: dict[str, str] = {
    "bits_per_byte": (
        "Sum over the file's tokens of the negative log-likelihood in nats, divided by ln 2 times the file's "
        "UTF-8 byte count. Tokens are scored left to right; the end-of-text token that starts each file is "
        "context only and is not scored."
    ),
    "first_line": "A suggestion is cut at its first line break; only that first line is compared.",
    "exact_match": (
        "The first line of the suggestion equals the reference after trailing whitespace (spaces, tabs, CR) "
        "is removed from both. Leading whitespace is compared, because indentation is code."
    ),
    "edit_similarity": (
        "Levenshtein ratio on the same normalised lines, 0-100: 100 * (1 - d / (len(a) + len(b))), where d "
        "is the edit distance with insertions and deletions costing 1 and a substitution costing 2 (the "
        "`ratio` of python-Levenshtein and rapidfuzz). Two empty lines score 100."
    ),
    "pass_rate": (
        "Share of HumanEval infilling tasks whose function, with the suggested line put in the hole, passes "
        "the problem's tests in the sandbox."
    ),
    "empty_hole_pass_rate": (
        "Share of HumanEval infilling tasks whose tests pass with the hole left empty (the removed line "
        "replaced by nothing), run in the same sandbox and the same run as the model's programs. The tests "
        "do not need the removed line of these tasks, so any suggestion that keeps the program valid passes "
        "them: this is the pass rate of a model that never suggests anything."
    ),
    "pass_rate_where_empty_fails": (
        "The model's pass rate on only the tasks whose tests fail with the hole left empty, so that every "
        "pass counted needs a right line. gain_over_empty_hole is pass_rate minus empty_hole_pass_rate, both "
        "over all tasks."
    ),
    "keystrokes_saved": (
        "Typing replay: 1 - (characters typed by hand + one keystroke per accepted suggestion) / characters in "
        "the replayed text. The indentation at the start of each line is inserted by the simulated editor "
        "(auto-indent) and counts neither as a character to type nor as saved. A suggestion is accepted whole when the user's next characters start with it, "
        "otherwise word by word: up to the suggestion's last word boundary inside the part that matches. It is "
        "accepted only when that saves at least one keystroke (2 or more characters)."
    ),
}


def first_line(text: str) -> str:
    """Return `text` up to (not including) its first line break."""
    return text.split("\n", 1)[0]


def normalize_line(text: str) -> str:
    """Return the first line of `text` without trailing whitespace, as every comparison sees it."""
    return first_line(text).rstrip(" \t\r\f\v")


def exact_match(prediction: str, reference: str) -> bool:
    """Whether the normalised first lines are equal; see METRIC_DEFINITIONS["exact_match"]."""
    return normalize_line(prediction) == normalize_line(reference)


def edit_similarity(prediction: str, reference: str) -> float:
    """Levenshtein ratio (0-100) of the normalised first lines; see METRIC_DEFINITIONS["edit_similarity"]."""
    a, b = normalize_line(prediction), normalize_line(reference)
    if not a and not b:
        return 100.0
    # With substitutions costing 2, the edit distance is len(a) + len(b) - 2 * LCS(a, b).
    return 100.0 * 2 * _longest_common_subsequence(a, b) / (len(a) + len(b))


def pass_rates_against_empty_hole(model_passed: Sequence[bool], empty_passed: Sequence[bool]) -> dict[str, float | int | None]:
    """Compare the model's sandbox results with the empty-hole baseline, task by task.

    Both sequences contain one entry per task, in the same order. A timeout counts as not passed.
    Return pass_rate, empty_hole_pass_rate, tasks_where_empty_fails, pass_rate_where_empty_fails
    and gain_over_empty_hole, as METRIC_DEFINITIONS defines them; a rate over no tasks is None.
    """
    if len(model_passed) != len(empty_passed):
        raise ValueError(f"{len(model_passed)} model results but {len(empty_passed)} empty-hole results; pass one of each per task")
    pass_rate = mean([float(passed) for passed in model_passed])
    empty_hole_pass_rate = mean([float(passed) for passed in empty_passed])
    needing_line = [float(model) for model, empty in zip(model_passed, empty_passed) if not empty]
    return {
        "pass_rate": pass_rate,
        "empty_hole_pass_rate": empty_hole_pass_rate,
        "tasks_where_empty_fails": len(needing_line),
        "pass_rate_where_empty_fails": mean(needing_line),
        "gain_over_empty_hole": None if pass_rate is None or empty_hole_pass_rate is None else pass_rate - empty_hole_pass_rate,
    }


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Convert a summed negative log-likelihood (nats) over `n_bytes` UTF-8 bytes to bits per byte."""
    if n_bytes <= 0:
        raise ValueError(f"bits per byte needs a positive byte count, got {n_bytes}")
    return nll_nats / (math.log(2) * n_bytes)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (0-100, linear interpolation between ranks), or None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0-100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    """Return the arithmetic mean, or None for no values (a report shows "n/a" rather than 0)."""
    return sum(values) / len(values) if values else None


def _longest_common_subsequence(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for char_a in a:
        current = [0]
        for j, char_b in enumerate(b):
            if char_a == char_b:
                current.append(previous[j] + 1)
            else:
                current.append(max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]
