"""Checkpoint folders: model.safetensors + config.json + tokenizer.json, verified on load.

Weights are read with safetensors only; nothing here unpickles. Saving writes a sibling temporary
folder and swaps it in with renames, so a crash at any moment leaves either the old or the new
checkpoint readable (after a crash between the two renames, the old one waits at `<dir>.old`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as serialize_tensors

from .config import ModelConfig
from .tokenizer import CodeTokenizer
from .transformer import GPT, parameter_shapes

FORMAT_NAME = "tiny-copilot-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"


class CheckpointError(Exception):
    """Error for a checkpoint folder that is missing, corrupt or inconsistent. The message states how to fix it."""


@dataclass
class Checkpoint:
    path: Path
    model: GPT
    tokenizer: CodeTokenizer
    config: ModelConfig
    meta: dict[str, Any]
    """Everything in config.json besides the model config: step, corpus summary, command, versions."""


def shipped_checkpoint_path() -> Path:
    """Folder of the default model that is installed with the package."""
    return Path(str(resources.files("tiny_copilot.model").joinpath("shipped")))


def replace_folder(staged: Path, path: Path, old: Path) -> None:
    """Move the complete folder `staged` to `path` with two renames.

    Between them the previous `path` waits at `old`, where `load_checkpoint` looks when a crash
    lands there, so a checkpoint is always loadable.
    """
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(staged, path)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    path: Path,
    model: GPT,
    tokenizer: CodeTokenizer,
    meta: dict[str, Any],
    weights_dtype: torch.dtype = torch.float32,
) -> None:
    """Write a checkpoint folder atomically; `meta` goes into config.json beside the model config."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f"{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    try:
        state = {k: v.detach().to("cpu", weights_dtype).contiguous() for k, v in _unwrap(model).state_dict().items()}
        write_tensors(state, tmp / WEIGHTS_FILE)
        (tmp / TOKENIZER_FILE).write_text(tokenizer.json_text, encoding="utf-8")
        copy_file_mode(tmp / TOKENIZER_FILE, tmp / WEIGHTS_FILE)
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model": _unwrap(model).config.to_dict(),
            "tokenizer_sha256": tokenizer.sha256,
            "weights_dtype": str(weights_dtype).removeprefix("torch."),
            **meta,
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_folder(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk needs the space back
        raise

    replace_folder(tmp, path, old)


def write_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write `tensors` to a safetensors file; a failed write raises OSError with its errno (ENOSPC, EROFS).

    `save_file` of safetensors 0.8 reports a full disk as a SafetensorError without an errno, so the
    bytes are serialized in memory and written by Python.
    """
    data = serialize_tensors(tensors)
    with open(path, "wb") as handle:
        handle.write(data)


def load_checkpoint(path: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Checkpoint:
    """Load and verify a checkpoint folder; raise CheckpointError saying what is wrong and what to do."""
    path = Path(path).expanduser()
    if not path.exists() and path.with_name(f"{path.name}.old").is_dir():
        path = path.with_name(f"{path.name}.old")  # a save was interrupted between its two renames
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "not found"
        raise CheckpointError(
            f"checkpoint folder {path} {problem}; pass the folder that `tiny-copilot train` wrote "
            "(list them with `tiny-copilot models`)"
        )
    if not (path / CONFIG_FILE).exists() and (path / "checkpoint" / CONFIG_FILE).is_file():
        raise CheckpointError(f"{path} is a training run folder; pass its checkpoint folder {path / 'checkpoint'}")
    for name in (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            problem = "is not a file" if (path / name).exists() else "is missing"
            raise CheckpointError(f"{path / name} {problem}; copy the whole checkpoint folder or retrain")

    config_data = _read_config(path)
    tokenizer = _read_tokenizer(path)
    if tokenizer.sha256 != config_data.get("tokenizer_sha256"):
        raise CheckpointError(
            f"{path / TOKENIZER_FILE} does not belong to this model: its sha256 {tokenizer.sha256[:12]}... "
            f"differs from {str(config_data.get('tokenizer_sha256'))[:12]}... in {CONFIG_FILE}; "
            "restore the tokenizer.json saved with these weights"
        )
    try:
        config = ModelConfig.from_dict(config_data["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path / CONFIG_FILE}: invalid model config ({exc}); retrain or restore the file") from exc
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model only {config.vocab_size} embeddings; "
            "the tokenizer comes from another run"
        )

    # Compare shapes with the file's header before allocating: a damaged config.json could otherwise
    # ask for a model of hundreds of gigabytes and end the process with an out-of-memory error.
    _check_weight_names_and_shapes(path / WEIGHTS_FILE, config)
    model = GPT(config)
    _load_weights(model, path / WEIGHTS_FILE)
    model.to(device=device, dtype=dtype).eval()
    meta = {k: v for k, v in config_data.items() if k not in ("model",)}
    return Checkpoint(path=path, model=model, tokenizer=tokenizer, config=config, meta=meta)


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """Read config.json only, for listings that must not load weights."""
    return _read_config(Path(path))


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path / CONFIG_FILE} is missing; copy the whole checkpoint folder or retrain") from exc
    except OSError as exc:
        raise CheckpointError(f"{path / CONFIG_FILE} cannot be read ({exc.strerror}); check its permissions or restore it") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / CONFIG_FILE} is not valid JSON ({exc}); restore it or retrain") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path / CONFIG_FILE} is not a tiny-copilot checkpoint config (no \"format\": \"{FORMAT_NAME}\"); "
            "pass a checkpoint folder that `tiny-copilot train` wrote, or restore the file"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {data.get('format_version')} is not supported "
            f"(this tiny-copilot reads version {FORMAT_VERSION}); upgrade tiny-copilot or retrain"
        )
    return data


def _read_tokenizer(path: Path) -> CodeTokenizer:
    try:
        return CodeTokenizer.from_file(path / TOKENIZER_FILE)
    except Exception as exc:  # tokenizers raises a bare Exception for malformed JSON
        raise CheckpointError(f"{path / TOKENIZER_FILE} cannot be read ({exc}); restore it from the same run") from exc


def _check_weight_names_and_shapes(weights_path: Path, config: ModelConfig) -> None:
    """Compare the tensor names and shapes in the file's header with `config`'s, reading no tensor data."""
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            found = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({exc}); restore it or retrain") from exc
    # Every block has tensors of its own, so more blocks than tensors cannot match. Listing the shapes
    # of a damaged n_layers of 10**9 would take minutes and hundreds of gigabytes.
    if config.n_layers > len(found):
        raise CheckpointError(
            f"{weights_path} contains {len(found)} tensors, too few for n_layers {config.n_layers} in {CONFIG_FILE}; "
            "the weights and config come from different runs"
        )
    expected = parameter_shapes(config)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path} does not match {CONFIG_FILE}: missing {missing[:3]}, unexpected {unexpected[:3]}; "
            "the weights and config come from different runs"
        )
    for name, shape in found.items():
        if shape != expected[name]:
            raise CheckpointError(
                f"{weights_path}: {name} has shape {shape}, config expects {expected[name]}; "
                "the weights and config come from different runs"
            )


def _load_weights(model: GPT, weights_path: Path) -> None:
    """Load checked weights into `model`: load_checkpoint has compared their names and shapes already."""
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path} is corrupt or truncated ({exc}); restore it or retrain") from exc
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{weights_path}: {name} contains NaN or infinite values, so the file is damaged or the "
                "training run diverged; restore the file or use an earlier checkpoint"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})


def _unwrap(model: torch.nn.Module) -> GPT:
    """Return the GPT inside DistributedDataParallel or torch.compile wrappers."""
    while not isinstance(model, GPT):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def copy_file_mode(reference: Path, target: Path) -> None:
    """Give `target` the permission bits of `reference`, a file written with `open` under the user's umask.

    safetensors 0.8 creates its files with mode 0600, so other users could not read a checkpoint's
    weights even where they can read the JSON files beside them.
    """
    os.chmod(target, reference.stat().st_mode & 0o777)


def _fsync_folder(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
