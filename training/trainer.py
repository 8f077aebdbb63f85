"""The training run: data, model, optimizer, execution plan, then the optimisation loop.

One call, `train(config, run_dir, resume)`, does everything and returns a TrainOutcome. Under torchrun each
process calls it; rank 0 prepares the data first, and only rank 0 writes the run folder. The data
sampler is a function of the step, so resuming from a checkpoint replays the same batches in the same
order, and the schedule depends only on the step and the time already spent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import tokenizers
import torch
from torch.nn.parallel import DistributedDataParallel

from tiny_copilot.model.checkpoint import CheckpointError, Checkpoint, load_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.config import ModelConfig
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

from . import distributed
from .batches import BatchConfig, BatchSampler, ValidationBatches
from .data import MANIFEST_FILE
from .data import TOKENIZER_FILE as DATA_TOKENIZER_FILE
from .data import PreparedData, TokenFile, prepare_data, reopen_prepared_data
from .eval_data import earlier_training_hashes, own_training_hashes
from .loop import LoopContext, progress_of, run_loop
from .runs import MetricsLog, load_optimizer_state, read_training_state, resolve_checkpoint_dir
from .speed import PROBE_ROWS, ExecutionPlan, choose_execution, default_threads, resolve_device
from .train_config import TrainConfig
from .validate import ValidationResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    run_dir: Path
    checkpoint_dir: Path | None
    """The final checkpoint; None when the run stopped before it could save one."""
    step: int
    interrupted: bool
    val: ValidationResult | None
    tokens_per_s: float
    mfu: float
    val_step: int | None = None
    """The step at which `val` was measured; before `step` when the run was interrupted."""


def train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    command: str = "",
    say: Callable[[str], None] = print,
) -> TrainOutcome:
    """Train per `config` into `run_dir`; with `resume`, continue the checkpoint saved there.

    `say` receives the lines a learner reads (data statistics, the plan, evaluations); it is called on
    rank 0 only. Raises CheckpointError for an unusable checkpoint and ValueError for unusable data.
    """
    # 1. Processes, device and threads.
    device = resolve_device(config.device, _local_rank())
    group = distributed.init_process_group(device.type)
    if not group.is_main:
        say = _silent
    if device.type == "cpu":
        threads = config.threads or default_threads(group.local_world_size)
        # Threads beyond the cores cannot run at once. With --threads 100000 the tokenizer's thread
        # pool failed to start and the process panicked with a Rust backtrace.
        cores = default_threads(1)
        if threads > cores:
            say(f"--threads {threads} is more than the {cores} CPU cores this process may use; using {cores}")
            threads = cores
        torch.set_num_threads(threads)
    else:
        torch.cuda.set_device(device)  # NCCL and the default CUDA stream follow the current device
    run_dir = Path(distributed.broadcast_from_main(group, str(run_dir)))
    try:
        outcome = _train(config, run_dir, resume, command, say, device, group)
        # Rank 0 writes files after the last collective, so the ranks wait for each other here.
        # NOTE: once in CI, rank 1 aborted during teardown ("terminate called without an active
        # exception"). This barrier is meant to prevent that, but the cause was not confirmed.
        distributed.barrier(group)
        return outcome
    finally:
        distributed.destroy_process_group(group)


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    command: str,
    say: Callable[[str], None],
    device: torch.device,
    group: distributed.ProcessGroup,
) -> TrainOutcome:
    # 2. Starting point: a checkpoint to resume or fine-tune, or nothing.
    start_checkpoint = _starting_checkpoint(config, run_dir, resume)
    start_state = read_training_state(start_checkpoint.path) if resume and start_checkpoint else None
    if start_state is not None and progress_of(config, start_state.step, start_state.elapsed_s) >= 1.0:
        raise ValueError(
            f"the run in {run_dir} already finished at step {start_state.step} after {start_state.elapsed_s:.0f} s; "
            "pass a larger --max-steps or --time-budget to continue it"
        )
    if group.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    say(f"run folder: {run_dir}")

    # 3. Data: rank 0 builds the corpus, tokenizer and token files; the other ranks then open them.
    model_config = config.model_config() if start_checkpoint is None else start_checkpoint.config
    if start_checkpoint is not None and config.seq_len is not None:
        model_config = dataclasses.replace(model_config, max_seq_len=config.seq_len)
    data = None
    if group.is_main:
        saved_corpus = (start_checkpoint.meta.get("corpus") or {}) if start_checkpoint and start_state else {}
        data = _prepare_or_reopen(config, model_config, run_dir, start_checkpoint, saved_corpus, say)
        if saved_corpus.get("manifest_sha256") not in (None, data.corpus.manifest_sha256):
            say("warning: the corpus changed since the run started, so the resumed run trains on different batches")
    distributed.barrier(group)
    data = data or _open_prepared(run_dir / "data", start_checkpoint)
    tokenizer_sha256 = distributed.broadcast_from_main(group, data.tokenizer.sha256)
    if data.tokenizer.sha256 != tokenizer_sha256:
        raise ValueError(f"rank {group.rank} opened another tokenizer than rank 0 in {run_dir / 'data'}; rerun the command")
    if data.tokenizer.vocab_size > model_config.vocab_size:
        raise ValueError(
            f"the tokenizer has {data.tokenizer.vocab_size} tokens but the model only {model_config.vocab_size} "
            "embeddings; pass --vocab-size of at least the tokenizer's size"
        )

    # 4. Model and optimizer; a resumed run also restores the optimizer moments.
    if start_checkpoint and start_checkpoint.config == model_config:
        model = start_checkpoint.model
    elif start_checkpoint:
        # Only the context length differs: the rotary tables are rebuilt for it, the weights carry over.
        model = GPT(model_config)
        model.load_state_dict(start_checkpoint.model.state_dict())
        say(f"context length {start_checkpoint.config.max_seq_len} -> {model_config.max_seq_len} tokens")
    else:
        torch.manual_seed(config.seed)
        model = GPT(model_config)
    model.to(device).train()
    optimizer = build_optimizer(model, config, fused=device.type == "cuda")
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    start_step, elapsed_s, tokens_seen = 0, 0.0, 0
    if start_state is not None and start_checkpoint is not None:
        load_optimizer_state(start_checkpoint.path, model, optimizer)
        start_step, elapsed_s, tokens_seen = start_state.step, start_state.elapsed_s, start_state.tokens_seen
        if group.is_main:
            dropped = metrics.truncate_after(start_step)
            say(f"resuming at step {start_step} ({elapsed_s:.0f} s spent); dropped {dropped} metrics rows written after it")
    elif group.is_main and metrics.path.exists():
        metrics.path.unlink()  # a fresh run in a reused folder starts a fresh curve
    say(
        f"model: {model.num_parameters():,} parameters (d_model {model_config.d_model}, {model_config.n_layers} layers, "
        f"{model_config.n_heads} heads, vocab {model_config.vocab_size}, context {model_config.max_seq_len})"
    )

    # 5. Batches: a pure function of (seed, step, rank), so a resume replays the same data order.
    seq_len = model_config.max_seq_len
    sampler = BatchSampler(data.train, data.tokenizer, BatchConfig(config.batch_size, seq_len, config.fim_rate, seed=config.seed))
    val_batches = None
    if data.val.n_tokens >= 2:
        val_batches = ValidationBatches(data.val, data.tokenizer, config.batch_size, seq_len, max_batches=config.eval_batches)
    else:
        say("no validation split (the corpus is too small); validation loss and bits per byte are skipped")

    # 6. Execution plan, measured on a real batch; the clock of the time budget starts here.
    clock_start = time.perf_counter()
    plan, trained = _plan_execution(model, sampler, config, device, group, start_step)
    say(f"execution: {device.type}, {group.world_size} process(es), {plan.threads} thread{'' if plan.threads == 1 else 's'} each; {plan.reason}")
    if group.is_distributed:
        trained = DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None)

    context = LoopContext(
        config=config,
        run_dir=run_dir,
        model=model,
        trained=trained,
        optimizer=optimizer,
        tokenizer=data.tokenizer,
        sampler=sampler,
        val_batches=val_batches,
        plan=plan,
        group=group,
        metrics=metrics,
        say=say,
        meta_base=_meta_base(config, data, command, model, _lineage(start_checkpoint, resume))
        if isinstance(data, PreparedData)
        else {},
        earlier_train_sha256=_earlier_training_hashes(start_checkpoint, resume, data.corpus.manifest)
        if isinstance(data, PreparedData)
        else [],
    )
    with _StopOnSignal() as stop:
        result = run_loop(context, start_step, elapsed_s, tokens_seen, clock_start, stop)
    return TrainOutcome(
        run_dir, result.checkpoint_dir, result.step, result.interrupted, result.val, result.tokens_per_s, result.mfu, result.val_step
    )


def build_optimizer(model: GPT, config: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices (linear layers, embedding) and none on norm gains."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused or None)


def _starting_checkpoint(config: TrainConfig, run_dir: Path, resume: bool) -> Checkpoint | None:
    if resume:
        checkpoint_dir = resolve_checkpoint_dir(run_dir)
        if not checkpoint_dir.is_dir():
            raise CheckpointError(
                f"nothing to resume in {run_dir}: it has no checkpoint folder; start a new run without --resume"
            )
        return load_checkpoint(checkpoint_dir)
    if resolve_checkpoint_dir(run_dir).is_dir():
        raise ValueError(
            f"{run_dir} already contains a run with a checkpoint; pass --resume to continue it, "
            "or choose another folder with --out"
        )
    if config.init_checkpoint == "default":
        path = shipped_checkpoint_path()
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"no default model is installed with this tiny-copilot (looked in {path}); "
                "pass a checkpoint folder to --init instead (list them with `tiny-copilot models`)"
            )
        return load_checkpoint(path)
    if config.init_checkpoint is not None:
        return load_checkpoint(Path(config.init_checkpoint).expanduser())
    return None


def _plan_execution(
    model: GPT,
    sampler: BatchSampler,
    config: TrainConfig,
    device: torch.device,
    group: distributed.ProcessGroup,
    start_step: int,
) -> tuple[ExecutionPlan, torch.nn.Module]:
    full_x_BT, full_y_BT = (t.to(device) for t in sampler.batch_for_step(start_step, group.rank, group.world_size))

    def probe_step(module: torch.nn.Module, dtype: torch.dtype | None, full_batch: bool) -> None:
        rows = full_x_BT.shape[0] if full_batch else PROBE_ROWS
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with autocast:
            loss = module(full_x_BT[:rows], full_y_BT[:rows])
        loss.backward()
        model.zero_grad(set_to_none=True)

    if group.is_distributed and config.compile == "auto":
        # Each rank would measure on its own and might decide differently; DDP needs one choice.
        config = dataclasses.replace(config, compile="off")
    expected_run_s = config.stop_time_s if config.max_steps is None else None
    tune_threads = config.threads is None and not group.is_distributed
    plan, trained = choose_execution(model, probe_step, config, device, expected_run_s, tune_threads)
    if group.is_distributed:
        chosen = distributed.broadcast_from_main(group, plan.dtype_name)
        if chosen != plan.dtype_name:
            plan = dataclasses.replace(plan, autocast_dtype=None if chosen == "float32" else torch.bfloat16)
    return plan, trained


def _prepare_or_reopen(
    config: TrainConfig,
    model_config: ModelConfig,
    run_dir: Path,
    start_checkpoint: Checkpoint | None,
    saved_corpus: dict[str, Any],
    say: Callable[[str], None],
) -> PreparedData:
    """Prepare the run's data, or for a resumed run whose corpus is gone, reopen the token files it left."""
    work_dir = run_dir / "data"
    try:
        return prepare_data(
            config.data_paths,
            config.exclude_globs,
            vocab_size=model_config.vocab_size,
            work_dir=work_dir,
            tokenizer=start_checkpoint.tokenizer if start_checkpoint else None,
            log=say,
        )
    except FileNotFoundError as exc:
        saved_sha256 = saved_corpus.get("manifest_sha256")
        if not saved_sha256 or start_checkpoint is None:
            raise
        reopened = reopen_prepared_data(work_dir, start_checkpoint.tokenizer, saved_sha256)
        if reopened is None:
            raise FileNotFoundError(
                f"{exc}. The token files in {work_dir} are missing, damaged or from another corpus, so they cannot "
                f"stand in for it: restore the corpus at {', '.join(config.data_paths) or 'its old place'} to resume, "
                "or start a new run"
            ) from exc
        say(
            f"warning: the run's corpus is no longer at {', '.join(config.data_paths)}; resuming from the token "
            f"files in {work_dir}, which hold it already tokenized"
        )
        say(f"token files: train {reopened.train.n_tokens:,} tokens, val {reopened.val.n_tokens:,} tokens")
        return reopened


@dataclass(frozen=True)
class _OpenedData:
    """The parts of the prepared data that ranks other than 0 use; they read them and write nothing."""

    tokenizer: CodeTokenizer
    train: TokenFile
    val: TokenFile


def _open_prepared(work_dir: Path, start_checkpoint: Checkpoint | None) -> _OpenedData:
    if start_checkpoint is not None:
        tokenizer = start_checkpoint.tokenizer
    else:
        tokenizer = CodeTokenizer.from_file(work_dir / DATA_TOKENIZER_FILE)
    return _OpenedData(tokenizer, TokenFile.open(work_dir, "train"), TokenFile.open(work_dir, "val"))


def _lineage(start_checkpoint: Checkpoint | None, resume: bool) -> dict[str, Any] | None:
    """Return how the starting checkpoint was made, so that a fine-tuned model's card lists every command."""
    if start_checkpoint is None:
        return None
    meta = start_checkpoint.meta
    if resume:
        return meta.get("parent")
    keys = ("command", "step", "tokens_seen", "elapsed_s", "parent")
    lineage = {key: meta.get(key) for key in keys}
    lineage["corpus_folders"] = corpus_folders(start_checkpoint.path / MANIFEST_FILE)
    return lineage


def _earlier_training_hashes(start_checkpoint: Checkpoint | None, resume: bool, corpus_manifest: dict[str, Any]) -> list[str]:
    """Return the SHA-256 of every file that the starting checkpoint and its own starting points trained on.

    A resumed run carries the list of its own checkpoint over, and adds the files that checkpoint trained on
    which are no longer in the train split of `corpus_manifest` (a renamed file can hash into validation).
    A fine-tune adds the starting checkpoint's train split to that checkpoint's list. The result is empty,
    with a warning, when the starting checkpoint has no readable corpus manifest.
    """
    if start_checkpoint is None:
        return []
    manifest_path = start_checkpoint.path / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        hashes = earlier_training_hashes(manifest)
        if resume:
            hashes |= own_training_hashes(manifest) - own_training_hashes(corpus_manifest)
        else:
            hashes |= own_training_hashes(manifest)
    except (OSError, ValueError) as exc:  # ManifestError and JSONDecodeError are ValueErrors
        log.warning(
            "%s has no usable corpus manifest (%s), so `tiny-copilot eval` of this run cannot reject the files "
            "that checkpoint was trained on",
            manifest_path,
            exc,
        )
        return []
    return sorted(hashes)


def corpus_folders(manifest_path: Path) -> dict[str, int] | None:
    """Count the training files of a corpus manifest per folder (the first two parts of each path).

    A fine-tune's run folder keeps only its own manifest, so each earlier stage's folders are recorded
    here, and the model card can name the source and licence of everything the model learned from.
    None when the checkpoint has no manifest beside it.
    """
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    counts: dict[str, int] = {}
    for entry in manifest.get("files", []):
        if entry.get("split") == "train":
            folder = "/".join(Path(entry["path"]).parts[:2])
            counts[folder] = counts.get(folder, 0) + 1
    return dict(sorted(counts.items()))


def _meta_base(
    config: TrainConfig, data: PreparedData, command: str, model: GPT, parent: dict[str, Any] | None
) -> dict[str, Any]:
    manifest = data.corpus.manifest
    corpus_summary = {k: v for k, v in manifest.items() if k != "files"}
    corpus_summary["manifest_sha256"] = data.corpus.manifest_sha256
    corpus_summary["n_files"] = len(manifest.get("files", []))
    corpus_summary["train_tokens"] = data.train.n_tokens
    corpus_summary["val_tokens"] = data.val.n_tokens
    preset = config.preset + ("*" if config.shape_overrides() else "")
    if config.init_checkpoint is not None:
        preset = f"fine-tuned from {config.init_checkpoint}"
    return {
        "preset": preset,
        "parameters": model.num_parameters(),
        "corpus": corpus_summary,
        "command": command,
        "parent": parent,
        "training_config": config.to_dict(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": numpy.__version__,
        },
    }


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _silent(_: str) -> None:
    pass


class _StopOnSignal:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the next step boundary.

    The loop then saves a checkpoint and returns. A second signal raises KeyboardInterrupt at once,
    for a user who does not want to wait for the save.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopOnSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (an embedding application); keep its handlers
                pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "%s received: stopping after this step and saving a checkpoint. Ctrl-C again stops at once "
            "without saving, which loses the steps since the last checkpoint",
            signal.Signals(signum).name,
        )
