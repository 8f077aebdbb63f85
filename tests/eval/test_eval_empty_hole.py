"""The empty-hole baseline of HumanEval infilling, on hand-made tasks whose right figures are known.

The function is f(x) = (x + 1) * 2 and its test checks f(2) == 6. Removing the line `unused = 0`
leaves the tests passing; removing either line of the computation makes them fail.
"""

import pytest

from tiny_copilot.training.eval_humaneval import InfillTask, evaluate_infilling
from tiny_copilot.training.eval_metrics import pass_rates_against_empty_hole

TEST = "def check(candidate):\n    assert candidate(2) == 6\n"
SOLUTION_WITH_UNUSED_LINE = ["    unused = 0", "    return (x + 1) * 2"]
SOLUTION_IN_TWO_STEPS = ["    y = x + 1", "    return y * 2"]


def _task(name: str, solution: list[str], hole: int) -> InfillTask:
    return InfillTask(
        task_id=f"Hand/{name}",
        prompt="def f(x):\n" + "".join(f"{line}\n" for line in solution[:hole]),
        suffix="\n" + "\n".join(solution[hole + 1 :]) + "\n",
        reference=solution[hole],
        test=TEST,
        entry_point="f",
    )


TASKS = [
    _task("unused", SOLUTION_WITH_UNUSED_LINE, 0),  # the empty hole passes
    _task("return", SOLUTION_IN_TWO_STEPS, 1),  # the empty hole returns None and fails
    _task("assign", SOLUTION_IN_TWO_STEPS, 0),  # the empty hole leaves y undefined and fails
]


def _suggest_from(lines_by_task: dict[str, str]):
    by_document = {(task.document, task.cursor_offset): lines_by_task[task.task_id] for task in TASKS}

    def suggest(text, offset, language_id):
        return by_document[(text, offset)]

    return suggest


def test_task_programs_rebuild_the_solutions():
    assert TASKS[0].program(TASKS[0].reference).startswith("def f(x):\n    unused = 0\n    return (x + 1) * 2\n")
    assert TASKS[2].program("").startswith("def f(x):\n\n    return y * 2\n")


def test_empty_hole_baseline_on_known_tasks():
    suggest = _suggest_from(
        {
            "Hand/unused": "    unused = 1",  # wrong line, but the tests pass anyway
            "Hand/return": "    return y * 2",  # right
            "Hand/assign": "    y = x - 1",  # wrong, and f(2) becomes 2
        }
    )

    result = evaluate_infilling(suggest, TASKS)
    summary = result["summary"]

    assert [r["empty_hole_execution"] for r in result["records"]] == ["passed", "failed", "failed"]
    assert [r["execution"] for r in result["records"]] == ["passed", "passed", "failed"]
    assert summary["exact_match"] == pytest.approx(1 / 3)
    assert summary["pass_rate"] == pytest.approx(2 / 3)
    assert summary["empty_hole_pass_rate"] == pytest.approx(1 / 3)
    assert summary["tasks_where_empty_fails"] == 2
    assert summary["pass_rate_where_empty_fails"] == pytest.approx(1 / 2)
    assert summary["gain_over_empty_hole"] == pytest.approx(1 / 3)
    assert summary["empty_hole_timeouts"] == 0


def test_model_that_suggests_nothing_gains_nothing():
    result = evaluate_infilling(_suggest_from({task.task_id: "" for task in TASKS}), TASKS)
    summary = result["summary"]

    assert summary["pass_rate"] == pytest.approx(1 / 3)
    assert summary["empty_hole_pass_rate"] == pytest.approx(1 / 3)
    assert summary["pass_rate_where_empty_fails"] == 0.0
    assert summary["gain_over_empty_hole"] == 0.0
    assert [r["execution"] for r in result["records"]] == [r["empty_hole_execution"] for r in result["records"]]


def test_empty_hole_is_not_run_without_execution():
    result = evaluate_infilling(_suggest_from({task.task_id: task.reference for task in TASKS}), TASKS, execute=False)
    summary = result["summary"]

    assert summary["exact_match"] == 1.0
    assert summary["pass_rate"] is None
    assert summary["empty_hole_pass_rate"] is None
    assert summary["pass_rate_where_empty_fails"] is None
    assert all("empty_hole_execution" not in r for r in result["records"])


def test_pass_rates_against_empty_hole_known_values():
    figures = pass_rates_against_empty_hole([True, True, False, True], [True, False, False, False])

    assert figures["pass_rate"] == 0.75
    assert figures["empty_hole_pass_rate"] == 0.25
    assert figures["tasks_where_empty_fails"] == 3
    assert figures["pass_rate_where_empty_fails"] == pytest.approx(2 / 3)
    assert figures["gain_over_empty_hole"] == 0.5


def test_pass_rates_when_the_empty_hole_always_passes():
    figures = pass_rates_against_empty_hole([False, True], [True, True])

    assert figures["tasks_where_empty_fails"] == 0
    assert figures["pass_rate_where_empty_fails"] is None
    assert figures["gain_over_empty_hole"] == -0.5


def test_pass_rates_reject_unequal_lengths():
    with pytest.raises(ValueError, match="2 model results but 1 empty-hole results"):
        pass_rates_against_empty_hole([True, False], [True])
