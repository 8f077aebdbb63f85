"""Execution choices for training: device, threads, compute dtype, torch.compile, and MFU accounting.

On CPU, threads, dtype and compile are chosen by timing a few forward and backward passes of the real
model on a real batch. Which one wins depends on the CPU's instruction set and on the model's width:
AVX-512 BF16 or AMX make bfloat16 autocast faster, plain AVX2 makes it slower. The probe never steps
the optimizer, so it leaves the weights untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tiny_copilot.model.config import ModelConfig

from .train_config import TrainConfig

log = logging.getLogger(__name__)

COMPILE_MIN_RUN_S = 600.0
"""Shortest run for which compile=auto tries torch.compile: compiling a training step took 35-40 s on a
2-core AMD EPYC (AVX-512 BF16) with torch 2.13 and bought 10-20 %, so shorter runs cannot repay it."""

PROBE_STEPS = 2
"""Timed forward and backward passes per candidate, after one untimed warm-up pass."""

FEWER_THREADS_MIN_SPEEDUP = 1.5
"""Half the threads must be this much faster to be chosen: giving up cores on a single noisy sample
would cost the whole run, while real oversubscription slowed steps 10-20x in measurements here."""

PROBE_MAX_FRACTION = 0.05
"""Share of the time budget that the thread and dtype measurements may use before defaults are kept."""

PROBE_ROWS = 4
"""Sequences per probe pass: enough rows for matmuls shaped like training, few enough that the whole
probe costs about a dozen small passes rather than a dozen full steps."""

BF16_MIN_SPEEDUP = 1.05
"""A faster candidate (bfloat16, compiled, fewer threads) must win by this factor to be chosen; smaller
differences are within timing noise."""


@dataclass(frozen=True)
class ExecutionPlan:
    """Execution settings of the training step, and the peak FLOP/s that MFU divides by."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    """None runs in float32; otherwise forward passes run under autocast to this type."""
    compiled: bool
    fused_adamw: bool
    reason: str
    """One line for the log: what was chosen and the measurements behind it."""
    peak_flops: float
    """Peak matmul FLOP/s of one process, in the fastest dtype this device offers."""
    peak_dtype: str
    threads: int
    """CPU threads of this process (torch.get_num_threads() once the plan is made)."""

    @property
    def dtype_name(self) -> str:
        return "float32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """Map --device to a torch.device; raise ValueError when CUDA is requested but absent."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but torch sees no CUDA device; use --device cpu or auto")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def default_threads(local_world_size: int) -> int:
    """CPU threads per process: the cores this process may use, shared among the local processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_world_size))


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # oneDNN reports bfloat16 support only on CPUs with AVX-512 BF16 or AMX; elsewhere bf16 is emulated.
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def model_flops_per_token(config: ModelConfig, parameters: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 * N + 12 * L * D * T.

    6 * N counts the forward (2) and backward (4) multiply-adds of every parameter; N includes the
    embedding because the tied output head multiplies by the same matrix. 12 * L * D * T adds the
    attention scores and weighted sums (QK^T and AV, forward and backward) over a context of T tokens,
    counted without the causal mask's saving, as is conventional.
    """
    return 6.0 * parameters + 12.0 * config.n_layers * config.d_model * seq_len


def measure_peak_matmul_flops(device: torch.device, dtype: torch.dtype) -> float:
    """Time a large square matmul and return its FLOP/s, the best of a few repeats."""
    size = 8192 if device.type == "cuda" else 2048
    # A private generator leaves the global RNG, saved in checkpoints, untouched.
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    best_s = float("inf")
    for _ in range(4):
        _synchronize(device)
        start = time.perf_counter()
        a @ b
        _synchronize(device)
        best_s = min(best_s, time.perf_counter() - start)
    return 2.0 * size**3 / best_s


def measure_peak(device: torch.device) -> tuple[float, str]:
    """Return the peak matmul FLOP/s of the fastest dtype the device offers, and that dtype's name."""
    peaks = {"float32": measure_peak_matmul_flops(device, torch.float32)}
    if bf16_supported(device):
        peaks["bfloat16"] = measure_peak_matmul_flops(device, torch.bfloat16)
    best = max(peaks, key=peaks.__getitem__)
    log.debug("peak matmul throughput: %s", ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    return peaks[best], best


ProbeStep = Callable[[torch.nn.Module, "torch.dtype | None", bool], None]
"""`probe(module, autocast_dtype, full_batch)`: one forward and backward pass that clears the gradients;
`full_batch` False uses PROBE_ROWS sequences, True the training batch shape (compiled code is
specialised to the first shapes it runs on)."""


def choose_execution(
    model: torch.nn.Module,
    probe: ProbeStep,
    config: TrainConfig,
    device: torch.device,
    expected_run_s: float | None,
    tune_threads: bool,
) -> tuple[ExecutionPlan, torch.nn.Module]:
    """Decide threads, dtype and compile for this run and return the plan and the module to train with.

    `expected_run_s` is the time budget, or None when only a step limit is known. With `tune_threads`,
    the current thread count is timed against half of it and the faster one is kept. Measurements stop
    once they have used PROBE_MAX_FRACTION of the time budget; the remaining choices keep their defaults.
    """
    # The peak is measured with every thread this process may use, before any are given up, so MFU
    # compares against the cores the run was given.
    peak_flops, peak_dtype = measure_peak(device)
    if device.type == "cuda":
        return _cuda_plan(model, config, device, peak_flops, peak_dtype)

    started = time.perf_counter()
    allowance_s = PROBE_MAX_FRACTION * expected_run_s if expected_run_s is not None else None

    def within_allowance() -> bool:
        return allowance_s is None or time.perf_counter() - started < allowance_s

    def step_fn(module: torch.nn.Module, dtype: torch.dtype | None) -> None:
        probe(module, dtype, False)

    def full_step_fn(module: torch.nn.Module, dtype: torch.dtype | None) -> None:
        probe(module, dtype, True)

    notes = []
    if tune_threads and torch.get_num_threads() >= 2:
        notes.append(_choose_threads(model, step_fn))
    dtype, note = _choose_dtype(model, step_fn, config, device, within_allowance())
    notes.append(note)
    trained, compiled, note = _choose_compile(model, full_step_fn, config, dtype, expected_run_s)
    notes.append(note)

    plan = ExecutionPlan(device, dtype, compiled, False, "; ".join(notes), peak_flops, peak_dtype, torch.get_num_threads())
    return plan, trained


def _choose_dtype(
    model: torch.nn.Module,
    step_fn: Callable[[torch.nn.Module, torch.dtype | None], None],
    config: TrainConfig,
    device: torch.device,
    may_measure: bool,
) -> tuple[torch.dtype | None, str]:
    """Return the autocast dtype (None for float32) and a log note."""
    if config.dtype == "bfloat16":
        return torch.bfloat16, "bfloat16 as requested"
    if config.dtype == "float32":
        return None, "float32 as requested"
    if not bf16_supported(device):
        return None, "float32: this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"
    if not may_measure:
        return None, "float32: the start-up measurements already used their share of the time budget"

    times = _time_candidates(step_fn, {"float32": (model, None), "bfloat16": (model, torch.bfloat16)})
    speedup = times["float32"] / times["bfloat16"]
    dtype = torch.bfloat16 if speedup >= BF16_MIN_SPEEDUP else None
    note = (
        f"{'bfloat16 autocast' if dtype else 'float32'}: a step took {times['float32'] * 1000:.0f} ms in float32 "
        f"and {times['bfloat16'] * 1000:.0f} ms in bfloat16 ({speedup:.2f}x)"
    )
    return dtype, note


def _choose_compile(
    model: torch.nn.Module,
    full_step_fn: Callable[[torch.nn.Module, torch.dtype | None], None],
    config: TrainConfig,
    dtype: torch.dtype | None,
    expected_run_s: float | None,
) -> tuple[torch.nn.Module, bool, str]:
    """Return the module to train, whether it is compiled, and a log note."""
    if config.compile == "off":
        return model, False, "not compiled (--compile off)"
    if config.compile == "on":
        return torch.compile(model), True, "compiled as requested"
    if expected_run_s is None or expected_run_s < COMPILE_MIN_RUN_S:
        return model, False, f"not compiled: runs shorter than {COMPILE_MIN_RUN_S:.0f} s cannot repay the compile time"
    return _try_compile(model, full_step_fn, dtype)


def _choose_threads(
    model: torch.nn.Module, step_fn: Callable[[torch.nn.Module, torch.dtype | None], None]
) -> str:
    """Keep all threads or half of them, whichever runs a float32 step faster now; return a log note.

    On a CPU shared with other busy processes, OpenMP threads that wait for a descheduled sibling
    made a step many times slower than fewer threads (20x for validation on a loaded 2-core VM).
    """
    many = torch.get_num_threads()
    few = max(1, many // 2)
    best = {many: float("inf"), few: float("inf")}
    for threads in (many, few):
        torch.set_num_threads(threads)
        step_fn(model, None)
    for _ in range(PROBE_STEPS):
        for threads in (many, few):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            step_fn(model, None)
            best[threads] = min(best[threads], time.perf_counter() - start)
    chosen = few if best[many] >= FEWER_THREADS_MIN_SPEEDUP * best[few] else many
    torch.set_num_threads(chosen)
    return f"{chosen} threads: a step took {best[many] * 1000:.0f} ms with {many} and {best[few] * 1000:.0f} ms with {few}"


def _cuda_plan(
    model: torch.nn.Module, config: TrainConfig, device: torch.device, peak_flops: float, peak_dtype: str
) -> tuple[ExecutionPlan, torch.nn.Module]:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    use_bf16 = config.dtype == "bfloat16" or (config.dtype == "auto" and bf16_supported(device))
    compiled = config.compile != "off"
    trained = torch.compile(model) if compiled else model
    reason = f"CUDA: {'bfloat16 autocast' if use_bf16 else 'float32 with TF32 matmuls'}, fused AdamW, " + (
        "compiled" if compiled else "not compiled (--compile off)"
    )
    plan = ExecutionPlan(
        device, torch.bfloat16 if use_bf16 else None, compiled, True, reason, peak_flops, peak_dtype, torch.get_num_threads()
    )
    return plan, trained


def _time_candidates(
    step_fn: Callable[[torch.nn.Module, torch.dtype | None], None],
    candidates: dict[str, tuple[torch.nn.Module, torch.dtype | None]],
) -> dict[str, float]:
    """Return the best seconds per step of each (module, dtype) candidate, interleaved so load spikes hit all alike."""
    for module, dtype in candidates.values():
        step_fn(module, dtype)
    best = {name: float("inf") for name in candidates}
    for _ in range(PROBE_STEPS):
        for name, (module, dtype) in candidates.items():
            start = time.perf_counter()
            step_fn(module, dtype)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _try_compile(
    model: torch.nn.Module,
    step_fn: Callable[[torch.nn.Module, torch.dtype | None], None],
    dtype: torch.dtype | None,
) -> tuple[torch.nn.Module, bool, str]:
    start = time.perf_counter()
    compiled = torch.compile(model)
    try:
        step_fn(compiled, dtype)
    except Exception as exc:  # inductor needs a working C++ compiler; any failure means eager is the choice
        log.warning("torch.compile failed, training eagerly: %s", exc)
        return model, False, f"not compiled: torch.compile failed ({type(exc).__name__})"
    compile_s = time.perf_counter() - start
    times = _time_candidates(step_fn, {"eager": (model, dtype), "compiled": (compiled, dtype)})
    speedup = times["eager"] / times["compiled"]
    if speedup >= BF16_MIN_SPEEDUP:
        return compiled, True, f"compiled in {compile_s:.0f} s, {speedup:.2f}x faster per step"
    return model, False, f"not compiled: compiling took {compile_s:.0f} s and gained only {speedup:.2f}x"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
