"""Training throughput of a preset: float32 eager against the configuration `tiny-copilot train` chooses.

Both configurations run the full training step (forward, backward, gradient clipping, AdamW) on
random token batches of the same shape, so only the execution choices differ. MFU is model FLOP/s
(6 N + 12 L D T per token, see training/speed.py) over the peak matmul FLOP/s of the fastest dtype
this machine offers, measured in the same run.

    .venv/bin/python benchmarks/train_throughput.py                  # small preset, 16 x 256 tokens
    .venv/bin/python benchmarks/train_throughput.py --compile off    # skip the ~40 s compile

Results go to stdout and to benchmarks/results/train_throughput.json (read by benchmarks/report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

# Set before torch loads, exactly as `tiny-copilot train` does (see training/train_cli.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from tiny_copilot.model.config import DEFAULT_PRESET, PRESETS
from tiny_copilot.model.transformer import GPT
from tiny_copilot.training.speed import PROBE_ROWS, ExecutionPlan, choose_execution, default_threads, measure_peak, model_flops_per_token
from tiny_copilot.training.train_config import DEFAULT_TIME_BUDGET_S, TrainConfig
from tiny_copilot.training.trainer import build_optimizer

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"
WARMUP_STEPS = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="sequences per step")
    parser.add_argument("--seq-len", type=int, default=TrainConfig().context_len, help="tokens per sequence")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration, after 2 warm-up steps")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="compile choice of the chosen configuration")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores; the chosen configuration may halve them)")
    parser.add_argument("--json-out", type=Path, default=RESULTS, help="where to write the rows as JSON")
    args = parser.parse_args()

    threads = args.threads or default_threads(1)
    torch.set_num_threads(threads)
    config = TrainConfig(
        preset=args.preset, seq_len=args.seq_len, batch_size=args.batch_size, compile=args.compile, threads=args.threads
    )
    torch.manual_seed(0)
    model = GPT(config.model_config())
    x_BT = torch.randint(0, model.config.vocab_size, (args.batch_size, args.seq_len))
    device = torch.device("cpu")
    peak_flops, peak_dtype = measure_peak(device)
    flops_per_token = model_flops_per_token(model.config, model.num_parameters(), args.seq_len)
    print(f"{args.preset}: {model.num_parameters():,} parameters, batch {args.batch_size} x {args.seq_len} tokens, "
          f"{flops_per_token / 1e6:.1f} MFLOP per token; peak matmul {peak_flops / 1e9:.0f} GFLOP/s ({peak_dtype})")  # fmt: skip

    # 1. Baseline: float32, eager, every core.
    baseline_plan = ExecutionPlan(device, None, False, False, "float32 eager", peak_flops, peak_dtype, threads)
    rows = [_measure("float32 eager", model, model, baseline_plan, x_BT, config, args.steps, flops_per_token)]

    # 2. What `tiny-copilot train --time-budget 10m` would choose, measured the same way.
    def probe_step(module: torch.nn.Module, dtype: torch.dtype | None, full_batch: bool) -> None:
        n_rows = x_BT.shape[0] if full_batch else PROBE_ROWS
        with torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext():
            loss = module(x_BT[:n_rows], x_BT[:n_rows])
        loss.backward()
        model.zero_grad(set_to_none=True)

    started = time.perf_counter()
    plan, trained = choose_execution(model, probe_step, config, device, DEFAULT_TIME_BUDGET_S, tune_threads=args.threads is None)
    print(f"chosen in {time.perf_counter() - started:.0f} s: {plan.reason}")
    rows.append(_measure("chosen", model, trained, plan, x_BT, config, args.steps, flops_per_token))

    # A peak is a maximum: other processes only ever lower a measurement, so both rows use the highest.
    torch.set_num_threads(threads)
    peak_flops = max(peak_flops, plan.peak_flops, measure_peak(device)[0])
    for row in rows:
        row["mfu"] = row["model_gflops"] * 1e9 / peak_flops
    print(f"peak matmul used for MFU: {peak_flops / 1e9:.0f} GFLOP/s")

    print(f"\n{'configuration':<16} {'threads':>7} {'dtype':>9} {'compiled':>8} {'step ms':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'MFU':>6}")
    for row in rows:
        print(f"{row['name']:<16} {row['threads']:>7} {row['dtype']:>9} {str(row['compile']):>8} {row['step_ms']:>8.0f} "
              f"{row['tokens_per_s']:>9,.0f} {row['model_gflops']:>8.1f} {100 * row['mfu']:>5.1f}%")  # fmt: skip
    ratio = rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"]
    print(f"chosen / float32 eager: {ratio:.2f}x")

    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    report = {"load_average_1m": os.getloadavg()[0], "peak_flops": peak_flops, "peak_dtype": peak_dtype, "speedup": ratio, "rows": rows}
    args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json_out}")
    return 0


def _measure(
    name: str,
    model: GPT,
    trained: torch.nn.Module,
    plan: ExecutionPlan,
    x_BT: torch.Tensor,
    config: TrainConfig,
    steps: int,
    flops_per_token: float,
) -> dict[str, Any]:
    """Time full training steps and return one result row; the median step is reported, robust to load spikes."""
    torch.set_num_threads(plan.threads)
    optimizer = build_optimizer(model, config, fused=False)
    durations = []
    for index in range(WARMUP_STEPS + steps):
        started = time.perf_counter()
        with plan.autocast():
            loss = trained(x_BT, x_BT)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= WARMUP_STEPS:
            durations.append(time.perf_counter() - started)

    step_s = statistics.median(durations)
    tokens_per_s = x_BT.numel() / step_s
    return {
        "name": name,
        "preset": config.preset,
        "device": "cpu",
        "threads": plan.threads,
        "dtype": plan.dtype_name,
        "compile": plan.compiled,
        "batch_size": x_BT.shape[0],
        "seq_len": x_BT.shape[1],
        "step_ms": step_s * 1000,
        "tokens_per_s": tokens_per_s,
        "model_gflops": flops_per_token * tokens_per_s / 1e9,
        "mfu": flops_per_token * tokens_per_s / plan.peak_flops,
    }


if __name__ == "__main__":
    raise SystemExit(main())
