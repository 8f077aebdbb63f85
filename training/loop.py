"""The optimisation loop: schedule, training steps, evaluations, checkpoints, metrics and the progress bar.

Step numbers count completed optimizer steps: a metrics row, evaluation or checkpoint "at step s" comes
after s steps. At a step that is a multiple of several intervals the order is: training row, evaluation,
checkpoint, so a run resumed from the checkpoint at step s keeps every row up to s and repeats none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT

from . import distributed
from .batches import BatchSampler, ValidationBatches
from .eval_data import EARLIER_TRAINING_KEY
from .plot import write_loss_plot
from .runs import PLOT_FILE, TrainingState, save_run_checkpoint
from .speed import ExecutionPlan, measure_peak, model_flops_per_token
from .train_config import TrainConfig
from .validate import ValidationResult, sample_completion, validate

CORPUS_MANIFEST_FILE = "corpus_manifest.json"


@dataclass
class LoopContext:
    """Everything the loop reads; built once by `trainer.train`."""

    config: TrainConfig
    run_dir: Path
    model: GPT
    """The plain model: evaluated, sampled and saved."""
    trained: torch.nn.Module
    """The module the training step calls: the model, compiled and/or wrapped in DistributedDataParallel."""
    optimizer: torch.optim.Optimizer
    tokenizer: CodeTokenizer
    sampler: BatchSampler
    val_batches: ValidationBatches | None
    plan: ExecutionPlan
    group: distributed.ProcessGroup
    metrics: Any
    say: Callable[[str], None]
    meta_base: dict[str, Any] = field(default_factory=dict)
    earlier_train_sha256: list[str] = field(default_factory=list)
    """SHA-256 of the files that the checkpoints this run started from were trained on, written into the
    checkpoint's corpus manifest so that `tiny-copilot eval` rejects them as held-out data."""


@dataclass(frozen=True)
class LoopResult:
    checkpoint_dir: Path | None
    step: int
    interrupted: bool
    val: ValidationResult | None
    tokens_per_s: float
    mfu: float
    val_step: int | None = None
    """The step at which `val` was measured: an interrupted run skips the final evaluation."""


def warmup_steps(config: TrainConfig) -> int:
    """Warmup length in steps: --warmup-steps, capped at a tenth of --max-steps."""
    if config.max_steps is not None:
        return min(config.warmup_steps, config.max_steps // 10)
    return config.warmup_steps


def progress_of(config: TrainConfig, step: int, elapsed_s: float) -> float:
    """Fraction of the run done, 0 to 1: the larger of the step and time fractions that apply."""
    fractions = [0.0]
    if config.max_steps is not None:
        fractions.append(step / config.max_steps)
    if config.stop_time_s is not None:
        fractions.append(elapsed_s / config.stop_time_s)
    return min(1.0, max(fractions))


def lr_multiplier(config: TrainConfig, step: int, progress: float) -> float:
    """Learning rate of step `step` as a fraction of --lr: linear warmup times the decay at `progress`."""
    warmup = warmup_steps(config)
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    floor = config.min_lr_ratio
    if config.schedule == "cosine":
        decay = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay_start = 1.0 - config.decay_fraction
        if progress <= decay_start or config.decay_fraction == 0.0:
            decay = 1.0
        else:
            decay = 1.0 - (1.0 - floor) * (progress - decay_start) / config.decay_fraction
    return warm * decay


def _warn_if_warmup_outlasts_budget(ctx: LoopContext, step: int, step_s: float, elapsed_s: float) -> None:
    """Warn when the time budget ends before the learning-rate warmup does, as in a short fine-tune."""
    config = ctx.config
    warmup = warmup_steps(config)
    if config.max_steps is not None or config.stop_time_s is None or warmup == 0:
        return
    steps_left = max(0.0, config.stop_time_s - elapsed_s) / step_s
    if step + steps_left < warmup:
        ctx.say(
            f"warning: at {step_s * 1000:.0f} ms per step the time budget allows about {step + steps_left:.0f} steps, "
            f"fewer than the {warmup} warmup steps, so the learning rate never reaches --lr; pass a longer "
            "--time-budget or a smaller --warmup-steps"
        )


def run_loop(
    ctx: LoopContext,
    start_step: int,
    elapsed_offset_s: float,
    tokens_seen: int,
    clock_start: float,
    stop: Any,
) -> LoopResult:
    """Train from `start_step` until the step limit, the time budget or a stop request (`stop.requested`)."""
    config, group, main = ctx.config, ctx.group, ctx.group.is_main
    seq_len = ctx.model.config.max_seq_len
    tokens_per_step = config.batch_size * config.grad_accum * seq_len * group.world_size
    flops_per_token = model_flops_per_token(ctx.model.config, ctx.model.num_parameters(), seq_len)

    def elapsed() -> float:
        return elapsed_offset_s + time.perf_counter() - clock_start

    step = start_step
    val: ValidationResult | None = None
    val_step: int | None = None
    last_eval_s = 0.0
    if step == 0 and ctx.val_batches is not None:
        val, last_eval_s = _evaluate(ctx, step, elapsed())
        val_step = step

    bar = tqdm(
        total=100.0,
        initial=round(100 * progress_of(config, step, elapsed()), 1),
        disable=not main,
        file=sys.stderr,
        bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
        dynamic_ncols=True,
        mininterval=1.0,
    )
    window_loss, window_steps, window_s = torch.zeros((), device=ctx.plan.device), 0, 0.0
    tokens_per_s, mfu = 0.0, 0.0
    checkpoint_dir, saved_step, interrupted = None, None, False
    try:
        while True:
            # 1. Stop at the step limit, before the time budget runs out (keeping room for the final
            # evaluation), or on Ctrl-C; all ranks agree so that none waits in a collective forever.
            at_limit = config.max_steps is not None and step >= config.max_steps
            stop_time = config.stop_time_s
            out_of_time = stop_time is not None and elapsed() + last_eval_s >= stop_time
            out_of_time_any, interrupted_any = distributed.max_over_ranks(
                group, [float(out_of_time), float(stop.requested)], ctx.plan.device
            )
            if at_limit or out_of_time_any or interrupted_any:
                interrupted = bool(interrupted_any) and not (at_limit or out_of_time_any)
                break

            # 2. One optimizer step.
            progress = progress_of(config, step, elapsed())
            lr = config.lr * lr_multiplier(config, step, progress)
            started = time.perf_counter()
            loss, grad_norm = _train_step(ctx, step, lr)
            step += 1
            tokens_seen += tokens_per_step
            window_loss += loss
            window_steps += 1
            window_s += time.perf_counter() - started
            if main and step == start_step + 2:
                # The second step is timed because the first one includes compilation.
                _warn_if_warmup_outlasts_budget(ctx, step, time.perf_counter() - started, elapsed())

            # 3. Metrics row and progress bar.
            if step % config.log_interval == 0 and main:
                tokens_per_s = tokens_per_step * window_steps / window_s
                mfu = flops_per_token * tokens_per_s / (ctx.plan.peak_flops * group.world_size)
                train_loss = float(window_loss) / window_steps
                ctx.metrics.append(
                    {
                        "kind": "train",
                        "step": step,
                        "loss": round(train_loss, 5),
                        "lr": lr,
                        "grad_norm": round(float(grad_norm), 4),
                        "tokens": tokens_seen,
                        "elapsed_s": round(elapsed(), 2),
                        "tokens_per_s": round(tokens_per_s, 1),
                        "mfu": round(mfu, 4),
                    }
                )
                bar.set_postfix_str(
                    f"step {step} loss {train_loss:.3f} {tokens_per_s / 1000:.1f}k tok/s MFU {100 * mfu:.0f}%", refresh=False
                )
                window_loss.zero_()
                window_steps, window_s = 0, 0.0
            bar.update(round(100 * progress_of(config, step, elapsed()), 1) - bar.n)

            # 4. Evaluation and checkpoint at their intervals.
            if step % config.eval_interval == 0 and ctx.val_batches is not None:
                val, last_eval_s = _evaluate(ctx, step, elapsed())
                val_step = step
            if step % config.checkpoint_interval == 0:
                checkpoint_dir = _save(ctx, step, elapsed(), tokens_seen, val)
                saved_step = step
    finally:
        # Also on an error, so that its message starts a line of its own rather than follow the bar.
        bar.close()

    # 5. Final evaluation (unless the user is waiting on Ctrl-C), checkpoint and plot.
    if not interrupted and ctx.val_batches is not None and step % config.eval_interval != 0:
        val, _ = _evaluate(ctx, step, elapsed())
        val_step = step
    if saved_step != step:
        checkpoint_dir = _save(ctx, step, elapsed(), tokens_seen, val)
    return LoopResult(checkpoint_dir, step, interrupted, val, tokens_per_s, mfu, val_step)


def _train_step(ctx: LoopContext, step: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one optimizer step of `grad_accum` micro-batches; return the mean loss and the gradient norm."""
    config, plan = ctx.config, ctx.plan
    for group in ctx.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=plan.device)
    for micro in range(config.grad_accum):
        x_BT, y_BT = ctx.sampler.batch_for_step(step * config.grad_accum + micro, ctx.group.rank, ctx.group.world_size)
        x_BT, y_BT = x_BT.to(plan.device, non_blocking=True), y_BT.to(plan.device, non_blocking=True)
        # Gradients are all-reduced only on the last micro-batch; the others accumulate locally.
        last = micro == config.grad_accum - 1
        no_sync = getattr(ctx.trained, "no_sync", None)
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            with plan.autocast():
                loss = ctx.trained(x_BT, y_BT)
            (loss / config.grad_accum).backward()
        loss_sum += loss.detach()

    if config.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), config.grad_clip)
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), float("inf"))
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    return loss_sum / config.grad_accum, grad_norm


def _evaluate(ctx: LoopContext, step: int, elapsed_s: float) -> tuple[ValidationResult | None, float]:
    """Validate and print a sample on rank 0 while the others wait; return the result and its seconds."""
    started = time.perf_counter()
    result = None
    if ctx.group.is_main:
        _refresh_peak(ctx)
    if ctx.group.is_main and ctx.val_batches is not None:
        result = validate(ctx.model, ctx.val_batches, ctx.plan.device, ctx.plan.autocast())
        ctx.metrics.append(
            {
                "kind": "val",
                "step": step,
                "val_loss": round(result.loss, 5),
                "val_bpb": round(result.bpb, 5),
                "elapsed_s": round(elapsed_s, 2),
            }
        )
        completion = sample_completion(ctx.model, ctx.tokenizer, ctx.config.sample_prompt, ctx.config.sample_tokens)
        ctx.say(f"--- step {step}: val loss {result.loss:.3f} nats/token, {result.bpb:.3f} bits/byte; greedy sample:")
        ctx.say(format_sample(ctx.config.sample_prompt, completion))
        ctx.say("---")
        write_loss_plot(ctx.metrics.read(), ctx.run_dir / PLOT_FILE)
    distributed.barrier(ctx.group)
    return result, time.perf_counter() - started


def format_sample(prompt: str, completion: str) -> str:
    """Return the prompt and the model's greedy continuation, as printed after each validation.

    An untrained model often continues with whitespace only, which would print as blank lines, and a
    model may generate nothing at all. Both cases are spelled out.
    """
    if completion.strip():
        return prompt + completion
    if not completion:
        return f"{prompt}[empty: the model generated no text]"
    return f"{prompt}[{len(completion)} characters of whitespace only]"


def _refresh_peak(ctx: LoopContext) -> None:
    """Measure the peak matmul FLOP/s again and keep the highest value seen.

    Other processes on a shared CPU make any single measurement too low, which inflated MFU above 100 %
    in a 1-hour run whose start-up measurement fell into a busy moment. The maximum over the run is the
    better estimate of what the cores can do.
    """
    if ctx.plan.device.type != "cpu":
        return
    peak_flops, peak_dtype = measure_peak(ctx.plan.device)
    if peak_flops > ctx.plan.peak_flops:
        ctx.plan = dataclasses.replace(ctx.plan, peak_flops=peak_flops, peak_dtype=peak_dtype)


def _save(
    ctx: LoopContext, step: int, elapsed_s: float, tokens_seen: int, val: ValidationResult | None
) -> Path | None:
    """Write the checkpoint and training state on rank 0; return its folder (None on other ranks)."""
    path = None
    if ctx.group.is_main:
        meta = {
            **ctx.meta_base,
            "step": step,
            "tokens_seen": tokens_seen,
            "elapsed_s": round(elapsed_s, 2),
            "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "execution": {"device": str(ctx.plan.device), "dtype": ctx.plan.dtype_name, "compiled": ctx.plan.compiled},
            "val": None if val is None else {"loss": val.loss, "bpb": val.bpb, "tokens": val.tokens},
        }
        state = TrainingState(step, elapsed_s, tokens_seen, ctx.config.to_dict())
        manifest = ctx.run_dir / "data" / CORPUS_MANIFEST_FILE
        extra = {}
        if manifest.is_file():
            corpus_manifest = json.loads(manifest.read_text(encoding="utf-8"))
            if ctx.earlier_train_sha256:
                corpus_manifest[EARLIER_TRAINING_KEY] = ctx.earlier_train_sha256
            extra[CORPUS_MANIFEST_FILE] = corpus_manifest
        path = save_run_checkpoint(ctx.run_dir, ctx.model, ctx.tokenizer, meta, ctx.optimizer, state, extra)
    distributed.barrier(ctx.group)
    return path
