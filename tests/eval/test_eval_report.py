"""The evaluation report: how far each missed target is, and the ablations quoted beside it."""

import json

import pytest

from tiny_copilot.training.eval_ablations import ABLATIONS_FORMAT, ablation_lines, read_ablations
from tiny_copilot.training.eval_report import markdown_lines, target_checks
from tiny_copilot.training.eval_run import EvalConfig, _config_summary

WEIGHTS = "ab" * 32


def _results() -> dict:
    return {
        "checkpoint": {"path": "/models/a", "parameters": 1000, "step": 5},
        "held_out": {"source": "validation split", "files": 2, "files_by_language": {"python": 2}, "left_out": {}},
        "config": {"seed": 0},
        "timing_s": {"total": 1.0},
        "line_completion": {"overall": {"exact_match": 0.27, "edit_similarity": 61.0}, "by_language": {}},
        "humaneval": {
            "summary": {
                "tasks": 3, "exact_match": 0.05, "edit_similarity": 40.0, "pass_rate": 2 / 3, "timeouts": 0,
                "empty_hole_pass_rate": 1 / 3, "empty_hole_timeouts": 1, "tasks_where_empty_fails": 2,
                "pass_rate_where_empty_fails": 0.5, "gain_over_empty_hole": 1 / 3,
                "sandbox": {"timeout_s": 5.0, "memory_mb": 512, "network_isolation": "none"},
                "published_exact_match": {"SantaCoder (1.1B)": 0.44},
            }
        },
    }  # fmt: skip


def _variant(name: str, line_em: float, line_es: float, gained: int = 0, lost: int = 0, humaneval_em: float | None = None) -> dict:
    return {
        "name": name,
        "same_as": [],
        "settings": {},
        "budget": {"prefix_tokens": 346, "suffix_tokens": 115, "max_new_tokens": 48},
        "line": {"cases": 200, "exact_match": line_em, "edit_similarity": line_es, "by_language": {}, "gained": gained, "lost": lost},
        "humaneval": None if humaneval_em is None else {"tasks": 100, "exact_match": humaneval_em, "gained": 0, "lost": 0},
    }


def _write_ablations(path, weights_sha256: str, variants: list[dict]) -> None:
    entry = {
        "checkpoint": {"path": "/models/a", "weights_sha256": weights_sha256},
        "held_out": {"source": "validation split"},
        "line_cases": 200,
        "humaneval_tasks": 100,
        "variants": variants,
    }
    path.write_text(json.dumps({"format": ABLATIONS_FORMAT, "seed": 3, "checkpoints": [entry]}), encoding="utf-8")


def test_target_checks_give_the_gap_of_missed_targets():
    targets = target_checks(_results())

    assert targets["line_exact_match"]["met"] is False
    assert targets["line_exact_match"]["gap"] == pytest.approx(0.03)
    assert targets["line_edit_similarity"]["met"] is True
    assert targets["line_edit_similarity"]["gap"] is None
    assert targets["humaneval_exact_match"]["gap"] == pytest.approx(0.20)
    assert targets["typing_keystrokes_saved"]["met"] is None
    assert targets["typing_keystrokes_saved"]["gap"] is None


def test_report_says_how_far_each_missed_target_is():
    results = _results()
    results["targets"] = target_checks(results)

    lines = markdown_lines(results, {})

    assert "| line completion exact match | 0.3 | 0.27 | **no** | 0.03 (90% of the target) |" in lines
    assert "| line completion edit similarity | 60 | 61 | yes |  |" in lines
    assert "| HumanEval single-line exact match | 0.25 | 0.05 | **no** | 0.2 (20% of the target) |" in lines


def test_report_shows_empty_hole_baseline():
    results = _results()
    results["targets"] = target_checks(results)

    text = "\n".join(markdown_lines(results, {}))

    assert "pass rate 0.667" in text
    assert "With the hole left empty, 0.333 of the tasks pass (1 timeouts)" in text
    assert "On the 2 tasks whose tests fail with an empty hole, the model's pass rate is 0.5" in text
    assert "gain over the empty hole on all tasks is +0.333" in text
    assert "- **empty_hole_pass_rate**: " in text
    assert "- **pass_rate_where_empty_fails**: " in text


def test_report_quotes_the_best_ablation(tmp_path):
    (tmp_path / "ablations").mkdir()
    _write_ablations(
        tmp_path / "ablations" / "ablations.json",
        WEIGHTS,
        [
            _variant("server defaults", 0.27, 61.0, humaneval_em=0.05),
            _variant("token healing off", 0.22, 50.0, gained=2, lost=12, humaneval_em=0.04),
            _variant("no suffix", 0.285, 60.0, gained=6, lost=3, humaneval_em=0.01),
        ],
    )
    report_dir = tmp_path / "shipped"
    results = _results()
    results["targets"] = target_checks(results)
    results["ablations"] = read_ablations(tmp_path / "ablations" / "ablations.json", WEIGHTS, report_dir, required=False)

    text = "\n".join(markdown_lines(results, {}))

    assert "## What the ablations measured" in text
    assert "From [../ablations/ablations.md](../ablations/ablations.md): validation split, 200 line completion cases" in text
    assert (
        "- **line completion exact match** (target 0.3, measured here 0.27): server defaults 0.27; best variant "
        "`no suffix` 0.285 (+0.015; 6 cases gained, 3 lost), which is still 0.015 short of the target."
    ) in text
    assert (
        "- **HumanEval single-line exact match** (target 0.25, measured here 0.05): server defaults 0.05; no variant "
        "beats them (the best other is `token healing off` at 0.04)."
    ) in text
    assert "line completion edit similarity** (" not in text  # met, so not quoted
    assert "No measured variant reaches any of these targets" in text


def test_ablation_lines_name_a_target_no_variant_measures():
    targets = {"typing_keystrokes_saved": {"name": "typing replay keystrokes saved", "target": 0.25, "measured": 0.2, "met": False}}
    ablations = {"markdown": "a.md", "held_out": "--data", "line_cases": 10, "humaneval_tasks": 0, "seed": 0,
                 "variants": [_variant("server defaults", 0.1, 30.0), _variant("no suffix", 0.2, 40.0)]}  # fmt: skip

    lines = ablation_lines(targets, ablations)

    assert lines[-1].endswith("(target 0.25, measured here 0.2): no ablation measures it.")


def test_ablations_on_other_code_say_so():
    targets = {"line_edit_similarity": {"name": "line completion edit similarity", "target": 60.0, "measured": 50.0, "met": False}}
    ablations = {"markdown": "a.md", "held_out": "validation split", "line_cases": 10, "humaneval_tasks": 0, "seed": 0,
                 "variants": [_variant("server defaults", 0.1, 55.0), _variant("no suffix", 0.1, 56.0)]}  # fmt: skip

    other_code = "\n".join(ablation_lines(targets, ablations, "--data"))
    same_code = "\n".join(ablation_lines(targets, ablations, "validation split"))

    assert "not on this report's held-out code (--data)" in other_code
    assert "not on this report's held-out code" not in same_code


def test_ablation_that_meets_the_target_says_so(tmp_path):
    targets = {"line_edit_similarity": {"name": "line completion edit similarity", "target": 60.0, "measured": 55.0, "met": False}}
    ablations = {"markdown": "a.md", "held_out": "--data", "line_cases": 10, "humaneval_tasks": 0, "seed": 0,
                 "variants": [_variant("server defaults", 0.1, 55.0, gained=0), _variant("no suffix", 0.1, 62.5, gained=4, lost=1)]}  # fmt: skip

    line = ablation_lines(targets, ablations)[-1]

    assert line.endswith("best variant `no suffix` 62.5 (+7.5), which meets the target.")
    assert "cases gained" not in line  # gained and lost count exact-match cases only
    assert not any("No measured variant reaches" in text for text in ablation_lines(targets, ablations))


def test_ablations_of_another_checkpoint_are_not_quoted(tmp_path):
    path = tmp_path / "ablations.json"
    _write_ablations(path, "cd" * 32, [_variant("server defaults", 0.5, 70.0), _variant("no suffix", 0.6, 80.0)])

    ablations = read_ablations(path, WEIGHTS, tmp_path, required=False)
    results = _results()
    results["targets"] = target_checks(results)
    results["ablations"] = ablations
    text = "\n".join(markdown_lines(results, {}))

    assert ablations["variants"] is None
    assert "measures other checkpoints (`/models/a`), not this one" in text
    assert "server defaults 0.5" not in text


def test_read_ablations_without_a_file(tmp_path):
    assert read_ablations(tmp_path / "absent.json", WEIGHTS, tmp_path, required=False) is None
    with pytest.raises(FileNotFoundError, match="absent.json not found"):
        read_ablations(tmp_path / "absent.json", WEIGHTS, tmp_path, required=True)


def test_read_ablations_rejects_another_format(tmp_path):
    path = tmp_path / "ablations.json"
    path.write_text(json.dumps({"format": ABLATIONS_FORMAT + 1, "checkpoints": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="has format 2, expected 1"):
        read_ablations(path, WEIGHTS, tmp_path, required=False)

    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a readable ablations file"):
        read_ablations(path, WEIGHTS, tmp_path, required=False)


def test_config_summary_with_paths_is_json(tmp_path):
    config = EvalConfig(checkpoint=tmp_path / "ckpt", out_dir=tmp_path / "out", ablations=tmp_path / "ablations.json")

    summary = json.loads(json.dumps(_config_summary(config)))

    assert summary["ablations"] == str(tmp_path / "ablations.json")
    assert summary["checkpoint"] == str(tmp_path / "ckpt")


def test_invalid_settings_stop_the_evaluation(tmp_path):
    with pytest.raises(ValueError) as error:
        EvalConfig(checkpoint=tmp_path / "ckpt", out_dir=tmp_path / "out", settings={"maxNewTokens": -1})

    message = str(error.value)
    assert message.startswith("invalid --settings: invalid setting maxNewTokens: -1; expected an integer from 1 to 512")
    # The evaluation stops, so the server's fallback to a default must not be promised.
    assert "default" not in message
