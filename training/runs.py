"""Run folders: where a training run keeps its checkpoint, training state and metrics, and how to list them.

Layout of one run folder:
    checkpoint/          a model folder that `load_checkpoint` reads, plus the training state:
        optimizer.safetensors   AdamW moments and step counts, and the torch RNG state
        training_state.json     step, elapsed time, optimizer hyperparameters, parameter names
    metrics.jsonl        one JSON object per line: training rows and validation rows, by step
    loss.png             training and validation curves

The weights and the training state are written into one temporary folder that replaces the old
checkpoint by renames, so after a crash at any moment the weights and the state that resumes them
always belong to the same step. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import platformdirs
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from tiny_copilot.model.checkpoint import (
    CONFIG_FILE,
    CheckpointError,
    copy_file_mode,
    read_checkpoint_meta,
    replace_folder,
    save_checkpoint,
    shipped_checkpoint_path,
    write_tensors,
)
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"
STATE_VERSION = 1
DATA_DIR = "data"
"""Corpus manifest, tokenizer and token files, as `trainer.train` prepares them."""
RUN_FILES = (DATA_DIR, METRICS_FILE, PLOT_FILE, f"{CHECKPOINT_DIR}.staging")
"""Entries that a run writes before its first checkpoint."""


def default_runs_dir() -> Path:
    """Return the folder that contains runs when --out is not given: <user data folder>/tiny-copilot/runs."""
    return platformdirs.user_data_path("tiny-copilot") / "runs"


def new_run_dir(preset: str, runs_dir: Path | None = None) -> Path:
    """Return an unused folder path named after the preset and the local time; it is not created."""
    base = runs_dir or default_runs_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{preset}-{stamp}"
    suffix = 2
    while path.exists():
        path = base / f"{preset}-{stamp}-{suffix}"
        suffix += 1
    return path


@dataclass(frozen=True)
class RunDirBefore:
    """State of a run folder before a command wrote to it, for `remove_unused_run_files`."""

    created: tuple[Path, ...]
    """The run folder and its ancestors that did not exist yet, deepest first; empty when it existed."""
    entries: frozenset[str]
    """Names in the run folder when it existed."""


def snapshot_run_dir(run_dir: Path) -> RunDirBefore:
    """Record which folders up to `run_dir`, and which entries in it, exist now."""
    created = []
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            break
        created.append(folder)
    entries = frozenset(entry.name for entry in run_dir.iterdir()) if not created and run_dir.is_dir() else frozenset()
    return RunDirBefore(tuple(created), entries)


def remove_unused_run_files(run_dir: Path, before: RunDirBefore) -> list[Path]:
    """Delete what a run that saved no checkpoint wrote into `run_dir`; return the paths removed.

    Without a checkpoint, the prepared data and metrics can be neither resumed nor listed, so a folder
    that this command created goes entirely, with the parent folders it created. In a folder that
    existed before, only the RUN_FILES that are new go, and other files are never touched. Nothing is
    removed once a checkpoint exists.
    """
    if not run_dir.is_dir() or resolve_checkpoint_dir(run_dir).is_dir():
        return []
    if before.created and before.created[0] == run_dir:
        shutil.rmtree(run_dir)
        removed = [run_dir]
        for parent in before.created[1:]:
            try:
                parent.rmdir()
            except OSError:  # not empty: something else was written there meanwhile
                break
            removed.append(parent)
        return removed
    removed = []
    for name in RUN_FILES:
        path = run_dir / name
        if name in before.entries or not path.exists():
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed


@dataclass(frozen=True)
class TrainingState:
    """Progress of a run at a checkpoint; with the optimizer tensors it is enough to continue exactly."""

    step: int
    """Optimizer steps completed."""
    elapsed_s: float
    """Seconds of the time budget already spent."""
    tokens_seen: int
    """Training tokens consumed by all processes together."""
    training_config: dict[str, Any]
    """TrainConfig.to_dict() of the run."""


def save_run_checkpoint(
    run_dir: Path,
    model: GPT,
    tokenizer: CodeTokenizer,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Write weights, config, tokenizer and training state to `run_dir/checkpoint` atomically; return that path.

    `extra_json` maps further file names to JSON objects saved in the same folder (the corpus manifest,
    so that a checkpoint copied on its own can still be evaluated on held-out files).
    """
    final = run_dir / CHECKPOINT_DIR
    staging = run_dir / f"{CHECKPOINT_DIR}.staging"
    old = run_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(staging, ignore_errors=True)
    for leftover in run_dir.glob(f"{CHECKPOINT_DIR}*.tmp-*"):
        # save_checkpoint names its temporary folder after the process id, so a save killed by
        # kill -9 left one that no later process would ever replace.
        shutil.rmtree(leftover, ignore_errors=True)

    try:
        _write_staging(staging, model, tokenizer, meta, optimizer, state, extra_json)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a full disk needs the space back
        raise

    replace_folder(staging, final, old)
    return final


def _write_staging(
    staging: Path,
    model: GPT,
    tokenizer: CodeTokenizer,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    extra_json: dict[str, Any] | None,
) -> None:
    save_checkpoint(staging, model, tokenizer, meta)
    tensors, optimizer_json = _optimizer_to_flat(model, optimizer)
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    write_tensors(tensors, staging / OPTIMIZER_FILE)
    state_json = {
        "version": STATE_VERSION,
        "step": state.step,
        "elapsed_s": state.elapsed_s,
        "tokens_seen": state.tokens_seen,
        "training_config": state.training_config,
        "optimizer": optimizer_json,
    }
    (staging / STATE_FILE).write_text(json.dumps(state_json, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    copy_file_mode(staging / STATE_FILE, staging / OPTIMIZER_FILE)
    for name, data in (extra_json or {}).items():
        (staging / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for name in (OPTIMIZER_FILE, STATE_FILE, *(extra_json or {})):
        with open(staging / name, "rb") as handle:
            os.fsync(handle.fileno())


def resolve_checkpoint_dir(run_dir: Path) -> Path:
    """Return the run's checkpoint folder, or the `.old` copy that an interrupted save left behind."""
    final = run_dir / CHECKPOINT_DIR
    old = run_dir / f"{CHECKPOINT_DIR}.old"
    if not final.exists() and old.is_dir():
        return old
    return final


def resume_checkpoint_dir(run_dir: Path) -> Path:
    """Return the checkpoint folder that `--resume --out run_dir` continues from.

    Raises CheckpointError naming what `run_dir` is instead (missing, a model checkpoint folder, a run
    that stopped before its first save, some other folder) and the command that fits it.
    """
    checkpoint_dir = resolve_checkpoint_dir(run_dir)
    if checkpoint_dir.is_dir():
        return checkpoint_dir
    if not run_dir.exists():
        raise CheckpointError(f"--resume: {run_dir} does not exist; pass a run folder with --out (`tiny-copilot models` lists them)")
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume: {run_dir} is a file, not a run folder; pass a run folder with --out")
    if (run_dir / CONFIG_FILE).is_file():
        raise CheckpointError(_resume_of_checkpoint_message(run_dir))
    if any((run_dir / name).exists() for name in RUN_FILES):
        raise CheckpointError(
            f"--resume: the run in {run_dir} stopped before its first checkpoint, so there is nothing to resume; "
            f"start it again without --resume (same --out)"
        )
    raise CheckpointError(
        f"--resume: {run_dir} is not a run folder (it has no {CHECKPOINT_DIR}/ folder); pass a run folder with --out "
        "(`tiny-copilot models` lists them), or start a new run without --resume"
    )


def _resume_of_checkpoint_message(checkpoint_dir: Path) -> str:
    """Explain that `checkpoint_dir` is a model checkpoint folder, not a run, and what to pass instead."""
    if (checkpoint_dir / STATE_FILE).is_file() and checkpoint_dir.name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old"):
        return (
            f"--resume: {checkpoint_dir} is the checkpoint folder of the run {checkpoint_dir.parent}; "
            f"pass the run folder: --resume --out {checkpoint_dir.parent}"
        )
    if checkpoint_dir.resolve() == shipped_checkpoint_path().resolve():
        init = "default"
        what = "the default model installed with tiny-copilot"
    else:
        init = str(checkpoint_dir)
        what = "a model checkpoint folder (weights, config and tokenizer, no training state)"
    return (
        f"--resume: {checkpoint_dir} is {what}, not a training run, so there is nothing to resume; "
        f"to train it further on your code, start a new run from it: tiny-copilot train --init {init} --out NEW_RUN_FOLDER"
    )


def read_training_state(checkpoint_dir: Path) -> TrainingState:
    """Read training_state.json; raise CheckpointError when it is missing or invalid."""
    data = _read_state_json(checkpoint_dir)
    try:
        return TrainingState(
            step=int(data["step"]),
            elapsed_s=float(data["elapsed_s"]),
            tokens_seen=int(data["tokens_seen"]),
            training_config=dict(data["training_config"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise unusable_state_error(checkpoint_dir, f"{checkpoint_dir / STATE_FILE} is incomplete ({exc!r})") from exc


def load_optimizer_state(checkpoint_dir: Path, model: GPT, optimizer: torch.optim.Optimizer) -> None:
    """Restore AdamW moments, step counts and the torch RNG state saved beside the weights."""
    data = _read_state_json(checkpoint_dir)
    try:
        tensors = load_file(str(checkpoint_dir / OPTIMIZER_FILE))
    except (SafetensorError, OSError) as exc:
        raise unusable_state_error(checkpoint_dir, f"{checkpoint_dir / OPTIMIZER_FILE} is missing or corrupt ({exc})") from exc
    optimizer_json = data.get("optimizer")
    if not isinstance(optimizer_json, dict):
        raise unusable_state_error(checkpoint_dir, f"{checkpoint_dir / STATE_FILE} has no optimizer section")
    optimizer.load_state_dict(_optimizer_from_flat(model, optimizer, tensors, optimizer_json, checkpoint_dir))
    if "rng.torch_cpu" in tensors:
        torch.set_rng_state(tensors["rng.torch_cpu"])


def _optimizer_to_flat(model: GPT, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON, naming parameters."""
    names = {id(p): n for n, p in model.named_parameters()}
    state_dict = optimizer.state_dict()
    groups = []
    index_to_name = {}
    for group, live_group in zip(state_dict["param_groups"], optimizer.param_groups):
        for index, param in zip(group["params"], live_group["params"]):
            index_to_name[index] = names[id(param)]
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()})
    tensors = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            tensors[f"state/{index_to_name[index]}/{key}"] = value.detach().to("cpu").contiguous()
    return tensors, {"param_groups": groups, "param_names": index_to_name}


def _optimizer_from_flat(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    optimizer_json: dict[str, Any],
    checkpoint_dir: Path,
) -> dict[str, Any]:
    live = optimizer.state_dict()
    names = {id(p): n for n, p in model.named_parameters()}
    saved_groups = optimizer_json["param_groups"]
    if len(saved_groups) != len(live["param_groups"]):
        raise unusable_state_error(
            checkpoint_dir,
            f"{checkpoint_dir / STATE_FILE}: {len(saved_groups)} parameter groups saved, the optimizer has "
            f"{len(live['param_groups'])}, so the training state comes from another version of tiny-copilot",
        )
    by_name: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if key.startswith("state/"):
            name, field = key.removeprefix("state/").rsplit("/", 1)
            by_name.setdefault(name, {})[field] = tensor
    state: dict[int, dict[str, torch.Tensor]] = {}
    groups = []
    for saved, live_group, live_params in zip(saved_groups, live["param_groups"], optimizer.param_groups):
        for index, param in zip(live_group["params"], live_params["params"]):
            entry = by_name.get(names[id(param)])
            if entry is None:
                continue
            for key, tensor in entry.items():
                if tensor.dim() > 0 and tensor.shape != param.shape:
                    raise unusable_state_error(
                        checkpoint_dir,
                        f"{checkpoint_dir / OPTIMIZER_FILE}: {key} of {names[id(param)]} has shape {tuple(tensor.shape)}, "
                        f"the parameter has {tuple(param.shape)}, so the training state belongs to another model",
                    )
            state[index] = entry

        restored = {k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"}
        groups.append({**restored, "params": live_group["params"]})

    expected = set(names.values())
    saved_names = set(optimizer_json.get("param_names", {}).values())
    if saved_names and saved_names != expected:
        raise unusable_state_error(
            checkpoint_dir,
            f"{checkpoint_dir / OPTIMIZER_FILE} contains state for parameters {sorted(saved_names ^ expected)[:3]} "
            "that this model does not match, so the training state belongs to another model",
        )
    return {"state": state, "param_groups": groups}


def unusable_state_error(checkpoint_dir: Path, problem: str) -> CheckpointError:
    """Return the error for a run whose weights may be fine but whose training state cannot be resumed.

    The message gives the `--init` command that trains on from those weights with the run's data, so a
    damaged training_state.json or optimizer.safetensors does not cost the training done so far.
    """
    command = ["tiny-copilot", "train", "--init", str(checkpoint_dir)]
    try:
        training_config = read_checkpoint_meta(checkpoint_dir).get("training_config", {})
    except CheckpointError:
        training_config = {}
    data_paths = training_config.get("data_paths") or []
    if data_paths:
        command += ["--data", *map(str, data_paths)]
    for pattern in training_config.get("exclude_globs") or []:
        command += ["--exclude", str(pattern)]
    return CheckpointError(
        f"{problem}; resume is not possible. To keep the weights, start a new run from them, with a fresh "
        f"optimizer state and learning-rate schedule: {shlex.join(command)} --out NEW_RUN_FOLDER"
    )


def _read_state_json(checkpoint_dir: Path) -> dict[str, Any]:
    path = checkpoint_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"{path} not found: {checkpoint_dir} contains a model but no training state, so it cannot be resumed; "
            f"to train it further, start a new run from it: tiny-copilot train --init {checkpoint_dir} --out NEW_RUN_FOLDER"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise unusable_state_error(checkpoint_dir, f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise unusable_state_error(
            checkpoint_dir,
            f"{path}: training state version {data.get('version') if isinstance(data, dict) else None!r} is not "
            f"supported (expected {STATE_VERSION})",
        )
    return data


class MetricsLog:
    """metrics.jsonl: appended one row at a time and flushed, so a killed run keeps every row it wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> int:
        """Drop rows whose step is past `step` (written after the checkpoint a resume starts from); return how many."""
        if not self.path.exists():
            return 0
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1  # a line cut short by a kill
                continue
            if row.get("step", 0) > step:
                dropped += 1
            else:
                kept.append(line)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)
        return dropped

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


@dataclass(frozen=True)
class RunSummary:
    """One row of `tiny-copilot models`."""

    name: str
    preset: str
    """Preset name, with a `*` when shape options changed it, or "fine-tuned from ..."."""
    parameters: int | None
    step: int | None
    val_bpb: float | None
    saved_at: str | None
    """Local time of the save as recorded in config.json; None when the checkpoint does not record it."""
    path: Path
    shape_options: str | None = None
    """The options that changed the preset, such as "--seq-len 512", when `preset` ends with `*`."""


SHAPE_OPTION_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "seq_len")
"""TrainConfig fields that change a preset's shape, so that the preset is shown with a `*`."""


def summarize_checkpoint(name: str, checkpoint_dir: Path) -> RunSummary:
    """Summarize a checkpoint folder from its config.json alone; raise CheckpointError when unreadable.

    Only what config.json records is shown. File times give when the files were copied or cloned,
    not when the model was trained, so a checkpoint without `saved_at` has no date.
    """
    meta = read_checkpoint_meta(checkpoint_dir)
    val = meta.get("val") or {}
    preset = _short_preset(str(meta.get("preset", "?")))
    return RunSummary(
        name=name,
        preset=preset,
        parameters=meta.get("parameters"),
        step=meta.get("step"),
        val_bpb=val.get("bpb"),
        saved_at=meta.get("saved_at") or None,
        path=checkpoint_dir,
        shape_options=_shape_options(meta) if preset.endswith("*") else None,
    )


FINE_TUNED_PREFIX = "fine-tuned from "


def _short_preset(preset: str) -> str:
    """Name a fine-tune's starting checkpoint by its run folder, not by the full path it had when trained.

    The path is the trainer's own: the shipped model's read "/work/runs/v3/checkpoint", which does not
    exist on a user's machine and made the table twice as wide.
    """
    if not preset.startswith(FINE_TUNED_PREFIX):
        return preset
    start = PurePath(preset[len(FINE_TUNED_PREFIX) :])
    run = start.parent if start.name == "checkpoint" and start.parent.name else start
    return FINE_TUNED_PREFIX + (run.name or str(start))


def _shape_options(meta: dict[str, Any]) -> str | None:
    from .train_config import flag_of

    config = meta.get("training_config")
    if not isinstance(config, dict):
        return None
    given = [f"{flag_of(name)} {config[name]}" for name in SHAPE_OPTION_FIELDS if config.get(name) is not None]
    return " ".join(given) or None


def list_runs(runs_dir: Path) -> tuple[list[RunSummary], list[str]]:
    """Summarize every run under `runs_dir`, newest first; also return one problem line per unreadable run."""
    summaries, problems = [], []
    if not runs_dir.is_dir():
        return summaries, problems
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        checkpoint_dir = resolve_checkpoint_dir(run_dir)
        if not checkpoint_dir.is_dir():
            # --runs-dir may name any folder, so one with none of the entries a run writes is not a run.
            if any((run_dir / name).exists() for name in RUN_FILES):
                problems.append(f"{run_dir}: no checkpoint yet (the run stopped before its first save)")
            continue
        try:
            summaries.append(summarize_checkpoint(run_dir.name, checkpoint_dir))
        except (CheckpointError, OSError) as exc:
            problems.append(f"{run_dir}: {exc}")
    summaries.sort(key=lambda s: s.saved_at or "", reverse=True)
    return summaries, problems
