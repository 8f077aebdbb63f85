import importlib.util
import json
from pathlib import Path

import pytest

REPORT_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("benchmarks_report", REPORT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _eval_results() -> dict:
    return {
        "checkpoint": {"parameters": 3_400_000},
        "bits_per_byte": {"python": {"bits_per_byte": 1.234, "bytes": 10, "files": 1}},
        "line_completion": {"overall": {"exact_match": 0.315, "edit_similarity": 61.25}},
        "humaneval": {"summary": {"exact_match": 0.2, "pass_rate": 0.1}},
        "typing": {
            "model": {"latency_ms_p50": 21.4, "latency_ms_p95": 48.6, "keystrokes_saved": 0.27},
            "ratio_to_baseline": 2.5,
            "cache": {"hit_rate": 0.95},
            "cold_start": {"first_suggestion_ms": 2500.0},
            "server_memory_kib": {"VmRSS": 204800},
        },
    }


@pytest.fixture()
def layout(tmp_path):
    (tmp_path / "eval" / "shipped").mkdir(parents=True)
    (tmp_path / "eval" / "shipped" / "eval.json").write_text(json.dumps(_eval_results()), encoding="utf-8")
    (tmp_path / "results").mkdir()
    throughput = {"rows": [{"preset": "small", "device": "cpu", "threads": 2, "tokens_per_s": 41234.5, "mfu": 0.183}]}
    (tmp_path / "results" / "train_throughput.json").write_text(json.dumps(throughput), encoding="utf-8")
    return tmp_path


def _readme(report, body: str = "old table") -> str:
    return f"# Benchmarks\n\nintro\n\n{report.BEGIN_MARKER}\n{body}\n{report.END_MARKER}\n\nfooter\n"


def _run(report, layout, *extra):
    return report.main(
        ["--readme", str(layout / "README.md"), "--throughput", str(layout / "results" / "train_throughput.json"),
         "--eval-dir", str(layout / "eval"), *extra]
    )  # fmt: skip


def test_report_fills_table_between_markers(report, layout):
    (layout / "README.md").write_text(_readme(report), encoding="utf-8")
    assert _run(report, layout) == 0

    text = (layout / "README.md").read_text(encoding="utf-8")
    assert "old table" not in text
    assert text.startswith("# Benchmarks\n\nintro\n")
    assert text.endswith("footer\n")
    assert "| small, cpu, threads 2 | 41,234 | 18.3% |" in text
    row = next(line for line in text.splitlines() if line.startswith("| [shipped]"))
    assert "(eval/shipped/report.md)" in row
    assert "3,400,000" in row
    assert "21 / 49" in row
    assert "95.0%" in row
    assert "2.5" in row  # cold start in seconds
    assert "| 200 |" in row  # RSS in MiB
    assert "python 1.23" in row
    assert "31.5%" in row
    assert "61.2" in row
    assert "0.200" in row
    assert "27.0%" in row
    assert "2.50x" in row


def test_report_check_detects_stale_table(report, layout):
    (layout / "README.md").write_text(_readme(report), encoding="utf-8")
    assert _run(report, layout, "--check") == 1
    assert _run(report, layout) == 0
    assert _run(report, layout, "--check") == 0


def test_report_notes_missing_inputs(report, tmp_path):
    (tmp_path / "README.md").write_text(_readme(report), encoding="utf-8")
    assert _run(report, tmp_path) == 0
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "_Missing: no training throughput results at results/train_throughput.json._" in text
    assert "_Missing: no evaluation results under eval._" in text


def test_report_requires_markers(report, layout, capsys):
    (layout / "README.md").write_text("# no markers\n", encoding="utf-8")
    assert _run(report, layout) == 2
    assert "lacks the marker lines" in capsys.readouterr().err


def test_report_reads_a_bare_list_of_rows(report, tmp_path):
    path = tmp_path / "throughput.json"
    path.write_text(json.dumps([{"tokens_per_s": 1.0}]), encoding="utf-8")
    assert report.read_throughput_rows(path) == [{"tokens_per_s": 1.0}]


def test_report_shows_empty_hole_pass_rate(report, layout):
    results = _eval_results()
    results["humaneval"]["summary"]["empty_hole_pass_rate"] = 0.05
    (layout / "eval" / "shipped" / "eval.json").write_text(json.dumps(results), encoding="utf-8")
    (layout / "README.md").write_text(_readme(report), encoding="utf-8")

    assert _run(report, layout) == 0

    row = next(line for line in (layout / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("| [shipped]"))
    assert "| 0.100 (empty hole 0.050) |" in row


def test_report_of_older_eval_omits_baseline(report, layout):
    (layout / "README.md").write_text(_readme(report), encoding="utf-8")
    assert _run(report, layout) == 0

    row = next(line for line in (layout / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("| [shipped]"))
    assert "| 0.100 |" in row
    assert "empty hole" not in row


@pytest.fixture(scope="module")
def model_card():
    spec = importlib.util.spec_from_file_location("benchmarks_model_card", REPORT_SCRIPT.with_name("model_card.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_card_lists_the_empty_hole_baseline(model_card):
    results = _eval_results()
    results["line_completion"]["by_language"] = {}
    results["humaneval"]["summary"].update(
        {"tasks": 1033, "empty_hole_pass_rate": 0.0316, "tasks_where_empty_fails": 1000, "pass_rate_where_empty_fails": 0.0274}
    )
    results["typing"] = {}

    rows = model_card.metric_rows(results)

    assert "| HumanEval single-line infilling pass rate | python | 0.100 |" in rows
    assert "| HumanEval pass rate with the hole left empty (baseline) | python | 0.032 |" in rows
    assert "| HumanEval pass rate on the 1000 tasks that fail with the hole left empty | python | 0.027 |" in rows
