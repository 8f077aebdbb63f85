"""TrainConfig: durations, validation, the flags derived from it, resume rules, schedule and presets."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from tiny_copilot.model.config import PRESETS, preset_config
from tiny_copilot.model.transformer import GPT
from tiny_copilot.training.cli import build_parser, main
from tiny_copilot.training.loop import lr_multiplier, progress_of
from tiny_copilot.training.train_config import (
    DEFAULT_SEQ_LEN,
    DEFAULT_TIME_BUDGET_S,
    TrainConfig,
    flag_of,
    keep_resumed_dtype,
    parse_duration_s,
    resume_config,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1.5h", 5400), ("45", 45), ("10min", 600), (" 2 M ", 120), (".5m", 30)],
)
def test_parse_duration_accepts_units(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "-5s", "0", "m", "1h30m", "ten minutes"])
def test_parse_duration_rejects_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s(text)


def test_cli_reports_invalid_time_budget(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "--time-budget", "10x"])
    assert exit_info.value.code == 2
    assert "invalid duration '10x'; write a number with an optional unit s, m or h" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--time-budget", "-5m"], ["--time-budget", "-.5h"], ["--time-budget=-5m"]])
def test_cli_negative_time_budget_error(argv: list[str], capsys) -> None:
    # Without the rewrite, argparse treats "-5m" as an unknown option and reports "expected one argument".
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv, "--dry-run"])
    assert exit_info.value.code == 2
    assert "must be greater than zero" in capsys.readouterr().err


def test_every_config_field_has_a_flag() -> None:
    parser = build_parser()
    flags = {option for action in parser._subparsers._group_actions[0].choices["train"]._actions for option in action.option_strings}
    for field in dataclasses.fields(TrainConfig):
        assert flag_of(field.name) in flags, field.name


def test_train_help_states_budget_scope_and_units(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "not counted in --time-budget" in help_text
    assert "90s, 15m, 2h or plain seconds" in help_text
    assert "optimizer steps between checkpoints" in help_text
    assert "training context in tokens" in help_text
    assert "sequences per micro-batch" in help_text


def test_flags_parse_into_config() -> None:
    args = build_parser().parse_args(
        ["train", "--data", "a", "b", "--exclude", "*.pyi", "--exclude", "tests/", "--time-budget", "2m", "--d-model", "96"]
    )
    from tiny_copilot.training.train_cli import config_from_args

    config = TrainConfig(**config_from_args(args))
    assert config.data_paths == (str(Path("a").absolute()), str(Path("b").absolute()))
    assert config.exclude_globs == ("*.pyi", "tests/")
    assert config.time_budget_s == 120
    assert config.model_config().d_model == 96


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fim_rate": 1.5}, "--fim-rate must be between 0.0 and 1.0"),
        ({"batch_size": 0}, "--batch-size must be a positive integer"),
        ({"d_model": 100, "n_heads": 3}, "--d-model 100 must be divisible by twice --n-heads 3"),
        ({"lr": 0.0}, "--lr must be a finite number > 0"),
        ({"preset": "huge"}, "--preset 'huge' is unknown"),
        ({"init_checkpoint": "default", "d_model": 64}, "--init keeps the checkpoint's shape"),
        ({"time_budget_s": -1.0}, "--time-budget must be a positive number"),
    ],
)
def test_config_rejects_invalid_values(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


# One invalid command line per check in TrainConfig.__post_init__, with the option it must name.
INVALID_TRAIN_OPTIONS = [
    *((["--" + name.replace("_", "-"), "0"], "--" + name.replace("_", "-")) for name in (
        "vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "max_steps", "threads", "batch_size", "grad_accum",
        "eval_interval", "eval_batches", "checkpoint_interval", "log_interval", "sample_tokens", "lr",
    )),
    (["--vocab-size", "10"], "--vocab-size must be from 260 to 65536"),
    (["--vocab-size", "70000"], "--vocab-size must be from 260 to 65536"),
    (["--seq-len", "40000"], "--seq-len must be at most 32768, got 40000"),
    (["--warmup-steps", "-1"], "--warmup-steps"),
    *((["--" + name.replace("_", "-"), "1.5"], "--" + name.replace("_", "-")) for name in (
        "fim_rate", "min_lr_ratio", "decay_fraction", "beta1", "beta2",
    )),
    (["--weight-decay", "-0.1"], "--weight-decay"),
    (["--grad-clip", "-1"], "--grad-clip"),
    *(([option, value], option) for option in ("--lr", "--weight-decay", "--grad-clip") for value in ("nan", "inf")),
    (["--d-model", "100"], "--d-model 100"),
    (["--n-heads", "5"], "--n-heads 5"),
    (["--init", "default", "--n-layers", "3"], "--n-layers"),
]  # fmt: skip


@pytest.mark.parametrize(("arguments", "option"), INVALID_TRAIN_OPTIONS)
def test_train_errors_name_the_option(arguments: list[str], option: str, capsys) -> None:
    assert main(["train", *arguments, "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert option in error
    assert "TrainConfig" not in error
    field_names = [field.name for field in dataclasses.fields(TrainConfig) if "_" in field.name]
    assert not [name for name in field_names if name in error], error


def test_default_time_budget_applies_without_limits() -> None:
    assert TrainConfig().stop_time_s == DEFAULT_TIME_BUDGET_S
    assert TrainConfig(max_steps=10).stop_time_s is None
    assert TrainConfig(max_steps=10, time_budget_s=5.0).stop_time_s == 5.0


def test_resume_config_applies_allowed_overrides() -> None:
    saved = TrainConfig(max_steps=100, lr=1e-3).to_dict()
    config = resume_config(saved, {"max_steps": 200, "threads": 1, "lr": 1e-3})
    assert config.max_steps == 200
    assert config.threads == 1


def test_resume_config_rejects_changed_schedule() -> None:
    saved = TrainConfig(max_steps=100, lr=1e-3).to_dict()
    with pytest.raises(ValueError, match=r"--lr 0.002 \(the run has 0.001\)"):
        resume_config(saved, {"lr": 2e-3})


def test_config_round_trips_through_dict() -> None:
    config = TrainConfig(data_paths=("x",), exclude_globs=("*.c",), max_steps=5, schedule="wsd")
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_warmup_rises_linearly_to_peak() -> None:
    config = TrainConfig(max_steps=1000, warmup_steps=100)
    assert lr_multiplier(config, 0, 0.0) == pytest.approx(0.01)
    assert lr_multiplier(config, 49, 0.0) == pytest.approx(0.5)
    assert lr_multiplier(config, 99, 0.0) == pytest.approx(1.0)


def test_warmup_is_capped_at_a_tenth_of_max_steps() -> None:
    config = TrainConfig(max_steps=50, warmup_steps=100)
    assert lr_multiplier(config, 4, 0.0) == pytest.approx(1.0)


def test_cosine_decays_to_min_lr_ratio() -> None:
    config = TrainConfig(max_steps=1000, warmup_steps=0, min_lr_ratio=0.1)
    assert lr_multiplier(config, 500, 0.5) == pytest.approx(0.55)
    assert lr_multiplier(config, 1000, 1.0) == pytest.approx(0.1)


def test_wsd_is_flat_then_linear() -> None:
    config = TrainConfig(max_steps=1000, warmup_steps=0, schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.1)
    assert lr_multiplier(config, 500, 0.5) == 1.0
    assert lr_multiplier(config, 800, 0.8) == 1.0
    assert lr_multiplier(config, 900, 0.9) == pytest.approx(0.55)
    assert lr_multiplier(config, 1000, 1.0) == pytest.approx(0.1)


def test_progress_takes_the_larger_fraction() -> None:
    config = TrainConfig(max_steps=100, time_budget_s=60.0)
    assert progress_of(config, 50, 15.0) == 0.5
    assert progress_of(config, 10, 45.0) == 0.75
    assert progress_of(config, 200, 0.0) == 1.0


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_sizes_are_between_1m_and_10m(preset: str, capsys) -> None:
    assert main(["train", "--preset", preset, "--dry-run"]) == 0
    output = capsys.readouterr().out
    expected = GPT(preset_config(preset, max_seq_len=DEFAULT_SEQ_LEN)).num_parameters()
    print(f"{preset}: {expected:,} parameters")

    assert f"parameters: {expected:,}" in output
    assert 1_000_000 <= expected <= 10_000_000


def test_models_lists_presets_with_exact_counts(capsys) -> None:
    assert main(["models", "--presets"]) == 0
    output = capsys.readouterr().out
    for preset in PRESETS:
        with torch.device("meta"):
            count = GPT(preset_config(preset)).num_parameters()
        assert f"{count:,}" in output, preset


def test_flops_formula_counts_attention() -> None:
    from tiny_copilot.training.speed import model_flops_per_token

    config = preset_config("tiny", max_seq_len=256)
    assert model_flops_per_token(config, 1_000_000, 256) == 6e6 + 12 * 4 * 128 * 256
    assert not math.isnan(model_flops_per_token(config, 1, 1))


@pytest.mark.parametrize(
    ("run_dtype", "given", "trained", "expected", "noted"),
    [
        ("auto", {}, "bfloat16", "bfloat16", True),
        ("auto", {}, "float32", "float32", True),
        ("auto", {"dtype": "auto"}, "bfloat16", "auto", False),
        ("auto", {"dtype": "float32"}, "bfloat16", "auto", False),
        ("float32", {}, "bfloat16", "float32", False),
        ("auto", {}, None, "auto", False),
    ],
)
def test_resume_keeps_trained_dtype(run_dtype: str, given: dict, trained: str | None, expected: str, noted: bool) -> None:
    config = TrainConfig(dtype=run_dtype)

    resumed, note = keep_resumed_dtype(config, given, trained)

    assert resumed.dtype == expected
    assert (note is not None) is noted


@pytest.mark.parametrize("below", ["", "run"])
def test_out_that_is_a_file_is_reported(tmp_path: Path, below: str, capsys) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me\n", encoding="utf-8")
    out = taken / below if below else taken
    assert main(["train", "--data", str(tmp_path), "--max-steps", "1", "--out", str(out)]) == 2
    assert f"{taken} is a file, not a folder; pass a folder path to --out" in capsys.readouterr().err
    assert taken.read_text(encoding="utf-8") == "keep me\n"
