import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tiny_copilot.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta, save_checkpoint


@pytest.fixture()
def checkpoint_copy(untrained_checkpoint: Path, tmp_path: Path) -> Path:
    path = tmp_path / "ckpt"
    shutil.copytree(untrained_checkpoint, path)
    return path


def test_round_trip_keeps_weights(checkpoint_copy: Path, tmp_path: Path) -> None:
    original = load_checkpoint(checkpoint_copy)
    save_checkpoint(tmp_path / "again", original.model, original.tokenizer, {"step": 3})
    reloaded = load_checkpoint(tmp_path / "again")

    for name, tensor in original.model.state_dict().items():
        torch.testing.assert_close(reloaded.model.state_dict()[name], tensor)
    assert reloaded.meta["step"] == 3


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_weights_file_follows_umask(checkpoint_copy: Path, tmp_path: Path, umask: int) -> None:
    original = load_checkpoint(checkpoint_copy)
    previous = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "shared", original.model, original.tokenizer, {})
    finally:
        os.umask(previous)

    assert (tmp_path / "shared" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_bfloat16_storage_loads_as_float32(checkpoint_copy: Path, tmp_path: Path) -> None:
    original = load_checkpoint(checkpoint_copy)
    save_checkpoint(tmp_path / "half", original.model, original.tokenizer, {}, weights_dtype=torch.bfloat16)

    reloaded = load_checkpoint(tmp_path / "half")

    assert reloaded.model.embed.weight.dtype == torch.float32
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < (checkpoint_copy / "model.safetensors").stat().st_size


def test_missing_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="tiny-copilot models"):
        load_checkpoint(tmp_path / "nowhere")


def test_file_instead_of_folder_is_named(checkpoint_copy: Path, tmp_path: Path) -> None:
    # Both were reported as "not found" or "missing", though something exists at the path.
    not_a_folder = tmp_path / "model.bin"
    not_a_folder.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.bin is not a folder; pass the folder"):
        load_checkpoint(not_a_folder)

    (checkpoint_copy / "model.safetensors").unlink()
    (checkpoint_copy / "model.safetensors").mkdir()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a file; copy the whole checkpoint folder"):
        load_checkpoint(checkpoint_copy)


def test_truncated_weights_are_reported(checkpoint_copy: Path) -> None:
    weights = checkpoint_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(checkpoint_copy)


def test_tokenizer_from_another_run_is_reported(checkpoint_copy: Path) -> None:
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["tokenizer_sha256"] = "0" * 64
    (checkpoint_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not belong to this model"):
        load_checkpoint(checkpoint_copy)


def test_shape_mismatch_is_reported(checkpoint_copy: Path) -> None:
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["model"]["d_model"] = 32
    config["model"]["n_heads"] = 2
    (checkpoint_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="different runs"):
        load_checkpoint(checkpoint_copy)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vocab_size", 10**12, r"embed\.weight has shape .*different runs"),
        ("n_layers", 10**9, r"too few for n_layers 1000000000 .*different runs"),
    ],
)
def test_oversized_config_is_reported_before_allocating(
    checkpoint_copy: Path, monkeypatch, field: str, value: int, message: str
) -> None:
    """A damaged config.json must be reported before building its model or listing its shapes.

    10**12 embeddings take terabytes; the shapes of 10**9 blocks take minutes and hundreds of GB.
    """
    from tiny_copilot.model import checkpoint

    real_parameter_shapes = checkpoint.parameter_shapes

    def no_model(config):
        raise AssertionError(f"built a model of {config}")

    def parameter_shapes_of_small_models(config):
        assert config.n_layers < 1000, f"listing the shapes of {config.n_layers} blocks"
        return real_parameter_shapes(config)

    monkeypatch.setattr(checkpoint, "GPT", no_model)
    monkeypatch.setattr(checkpoint, "parameter_shapes", parameter_shapes_of_small_models)
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["model"][field] = value
    (checkpoint_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(checkpoint_copy)


def test_oversized_context_is_reported(checkpoint_copy: Path) -> None:
    # The weights do not record the context length, so only the config check can catch it.
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["model"]["max_seq_len"] = 10**10
    (checkpoint_copy / "config.json").write_text(json.dumps(config))

    with pytest.raises(CheckpointError, match=r"max_seq_len must be at most 32768, got 10000000000"):
        load_checkpoint(checkpoint_copy)


def test_garbage_config_is_reported(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(checkpoint_copy)


def test_missing_config_is_called_missing(checkpoint_copy: Path) -> None:
    # `tiny-copilot models` reads config.json alone; it reported "config.json is not valid JSON
    # ([Errno 2] No such file or directory ...)".
    (checkpoint_copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json is missing; copy the whole checkpoint folder"):
        read_checkpoint_meta(checkpoint_copy)


def test_foreign_config_names_the_fix(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a tiny-copilot checkpoint config .*; pass a checkpoint folder"):
        load_checkpoint(checkpoint_copy)


def test_interrupted_swap_falls_back_to_old_copy(checkpoint_copy: Path) -> None:
    old = checkpoint_copy.with_name(checkpoint_copy.name + ".old")
    checkpoint_copy.rename(old)
    assert load_checkpoint(checkpoint_copy).path == old


def test_non_finite_weights_are_reported(checkpoint_copy: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = checkpoint_copy / "model.safetensors"
    state = load_file(str(weights))
    state["embed.weight"][3, 5] = float("nan")
    save_file(state, str(weights))

    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(checkpoint_copy)


def test_run_folder_points_to_its_checkpoint(untrained_checkpoint: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(untrained_checkpoint, run / "checkpoint")

    with pytest.raises(CheckpointError, match="training run folder; pass its checkpoint folder"):
        load_checkpoint(run)
