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
