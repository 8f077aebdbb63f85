"""Decoding speed of the engine: the plain cached forward against the optimized path, in one run.

Four measurements, each taking plain and optimized turns in alternation so that both see the same
machine load:
1. milliseconds per decoded token with 256, 512 and 1024 positions in the KV cache (the timed step
   writes the last of them);
2. prefill: a few new tokens on top of a cache of about 1k tokens, and a whole 1k-token prompt;
3. the optimized step with the weights as nn.Linear stores them, (out, in), against the (in, out)
   copies that `GPT.decoding_weights` makes;
4. the optimized step run back to back against the same step after a pause as long as the typing
   replay's time between keystrokes (80 ms), which is how a language server runs it;
5. a typing replay through `Completer.complete`, in process without stdio. Files of this repository
   are typed at a cursor with text before and after it, so the prompt fills the token budgets
   (about 1k tokens at --max-seq-len 1024). Suggestions are accepted as in `tiny-copilot eval`.
   Both engines serve every request, and the run counts requests where their texts differ.

"Plain" is the engine as it was before `GPT.next_token_logits`: every step through `GPT.forward`
with a cache, and a token-healing mask found by scanning the vocabulary. The model is the shipped
one (or --checkpoint) rebuilt with --max-seq-len positions; RoPE has no learned positions, so the
weights load unchanged. Times are wall-clock and CPU time of this thread: on a shared machine the
CPU time leaves out the time other processes ran, so compare ratios, and absolute numbers only
between runs on the same machine and load.

    .venv/bin/python benchmarks/decode_speed.py
    .venv/bin/python benchmarks/decode_speed.py --checkpoint RUN/checkpoint --chars 0
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from tiny_copilot.model.checkpoint import load_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.engine import Engine
from tiny_copilot.model.tokenizer import CodeTokenizer
from tiny_copilot.model.transformer import GPT, DecodingWeights
from tiny_copilot.server.completion import CompletionStats, Completer
from tiny_copilot.server.settings import ServerSettings
from tiny_copilot.training.eval_typing import replay

REPOSITORY = Path(__file__).resolve().parent.parent
REPLAY_FILES = ("server/lsp.py", "server/postprocess.py", "server/prompt.py", "training/eval_run.py")
CONTEXTS = (256, 512, 1024)
PREFILL_CONTEXT = 1000
MIN_PREFIX_CHARS = 4000
SECTIONS = ("pause",)
"""Measurements that --only can pick; the others run only in a full run."""
PAUSE_S = 0.08
"""Idle time before a paused step: benchmarks/typing_replay.py types a key every 80 ms."""
"""Typing starts at a line this far into the file, so the prefix budget is full (~3.5 characters per token)."""


class PlainEngine(Engine):
    """The engine's decoding before the optimization, kept here as the baseline."""

    def _next_logits(self, ids_BT: torch.Tensor, every_position: bool = False) -> torch.Tensor:
        logits_TV = self.model(ids_BT, cache=self.cache, last_only=not every_position)[0]
        return logits_TV if every_position else logits_TV[-1]

    def _healing_mask(self, healing_prefix: str) -> torch.Tensor:
        return _scanned_healing_mask(self.tokenizer, healing_prefix.encode("utf-8"), self.model.config.vocab_size)


@lru_cache(maxsize=256)
def _scanned_healing_mask(tokenizer: CodeTokenizer, removed: bytes, vocab_size: int) -> torch.Tensor:
    mask_V = torch.zeros(vocab_size, dtype=torch.bool)
    matches = [i for i, b in enumerate(tokenizer.token_bytes) if b.startswith(removed)]
    if not matches:
        raise ValueError(f"no token starts with {removed!r}; token healing cannot apply here")
    mask_V[matches] = True
    return mask_V


@dataclasses.dataclass
class Timings:
    """Wall-clock and thread CPU milliseconds of repeated runs of one thing."""

    wall_ms: list[float] = dataclasses.field(default_factory=list)
    cpu_ms: list[float] = dataclasses.field(default_factory=list)

    def time(self, run: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), time.thread_time()
        result = run()
        self.cpu_ms.append((time.thread_time() - cpu) * 1000)
        self.wall_ms.append((time.perf_counter() - wall) * 1000)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--max-seq-len", type=int, default=1024, help="positions of the rebuilt model and its KV cache")
    parser.add_argument("--steps", type=int, default=300, help="timed decoding steps per context length and path")
    parser.add_argument("--chars", type=int, default=150, help="characters typed per replay file (0 skips the replay)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the server's default is 1)")
    parser.add_argument("--only", choices=SECTIONS, help="run this measurement alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    checkpoint = load_checkpoint(args.checkpoint or shipped_checkpoint_path())
    model = GPT(dataclasses.replace(checkpoint.model.config, max_seq_len=args.max_seq_len))
    model.load_state_dict(checkpoint.model.state_dict())
    model.eval()
    load_before = os.getloadavg()[0]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} thread(s), load average {load_before:.2f}, {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    print(f"model: {model.num_parameters():,} parameters, max_seq_len {args.max_seq_len}\n")

    tokens = _context_tokens(checkpoint.tokenizer, args.max_seq_len)
    if args.only == "pause":
        _report_pause(model, tokens)
        return 0
    _report_decoding(model, tokens, args.steps)
    _report_prefill(model, tokens)
    _report_layout(model, tokens, args.steps)
    _report_pause(model, tokens)
    if args.chars > 0:
        tokenizer = checkpoint.tokenizer
        # Both without guessed tokens, so this pair measures GPT.next_token_logits alone.
        _report_replay({"plain": PlainEngine(model, tokenizer, speculative=False), "optimized": Engine(model, tokenizer, speculative=False)}, args.chars)
        # Then speculative decoding (model.drafts) on top of the optimized path.
        _report_replay({"optimized": Engine(model, tokenizer, speculative=False), "speculative": Engine(model, tokenizer)}, args.chars)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


def _context_tokens(tokenizer: CodeTokenizer, count: int) -> torch.Tensor:
    """Return `count` tokens of real code (this repository's files) as a (1, count) tensor."""
    ids: list[int] = []
    for name in sorted((REPOSITORY / "model").glob("*.py")) + sorted((REPOSITORY / "server").glob("*.py")):
        ids += tokenizer.encode(name.read_text(encoding="utf-8"))
        if len(ids) >= count:
            return torch.tensor([ids[:count]])
    raise ValueError(f"this repository's model/ and server/ files give only {len(ids)} tokens, {count} needed")


def _plain_step(model: GPT, ids_BT: torch.Tensor, cache, weights: DecodingWeights) -> torch.Tensor:
    return model(ids_BT, cache=cache, last_only=True)[0, -1]


def _optimized_step(model: GPT, ids_BT: torch.Tensor, cache, weights: DecodingWeights) -> torch.Tensor:
    return model.next_token_logits(ids_BT, cache, weights)[0]


PATHS = {"plain": _plain_step, "optimized": _optimized_step}


@torch.inference_mode()
def _report_decoding(model: GPT, tokens: torch.Tensor, steps: int) -> None:
    print("decoding, ms per token (median; CPU time of this thread / wall clock)")
    print(f"{'cached positions':>16}  {'plain':>15}  {'optimized':>15}  {'speed-up':>15}")
    rounds = 10
    weights = model.decoding_weights()
    for context in CONTEXTS:
        context = min(context, model.config.max_seq_len)
        cache = model.new_cache()
        model(tokens[:, : context - 1], cache=cache)
        step_ids = tokens[:, context - 1 : context]
        timings = {name: Timings() for name in PATHS}
        for _ in range(rounds):
            for name, step in PATHS.items():
                for _ in range(max(1, steps // rounds)):
                    timings[name].time(lambda: step(model, step_ids, cache, weights))
                    cache.truncate(context - 1)
        _print_row(f"{context}", timings)


@torch.inference_mode()
def _report_prefill(model: GPT, tokens: torch.Tensor) -> None:
    print("\nprefill, ms per call (median; CPU / wall)")
    print(f"{'new tokens':>16}  {'plain':>15}  {'optimized':>15}  {'speed-up':>15}")
    context = min(PREFILL_CONTEXT, model.config.max_seq_len)
    cache = model.new_cache()
    model(tokens[:, :context], cache=cache)
    weights = model.decoding_weights()
    for new_tokens, repeats in ((2, 100), (8, 60), (context, 4)):
        start = context - new_tokens
        timings = {name: Timings() for name in PATHS}
        for _ in range(repeats):
            for name, step in PATHS.items():
                cache.truncate(start)
                timings[name].time(lambda: step(model, tokens[:, start:context], cache, weights))
        _print_row(f"{new_tokens} on {start}", timings)


@torch.inference_mode()
def _report_layout(model: GPT, tokens: torch.Tensor, steps: int) -> None:
    """Time `next_token_logits` with the weights as nn.Linear keeps them and as `decoding_weights` copies them."""
    print("\nweight layout, ms per step on 900 cached positions (median; CPU / wall)")
    print(f"{'new tokens':>16}  {'(out, in) views':>15}  {'(in, out) copy':>15}  {'speed-up':>15}")
    copies = model.decoding_weights()
    layouts = {"views": _parameter_views(model, copies), "copies": copies}
    context = min(900, model.config.max_seq_len - 8)
    cache = model.new_cache()
    model(tokens[:, :context], cache=cache)
    for new_tokens in (1, 4, 7):
        step_ids = tokens[:, context - new_tokens : context]
        timings = {name: Timings() for name in layouts}
        for _ in range(10):
            for name, weights in layouts.items():
                for _ in range(max(1, steps // 10)):
                    cache.truncate(context - new_tokens)
                    timings[name].time(lambda: model.next_token_logits(step_ids, cache, weights, every_position=True))
        _print_row(f"{new_tokens}", {"plain": timings["views"], "optimized": timings["copies"]})


@torch.inference_mode()
def _report_pause(model: GPT, tokens: torch.Tensor, rounds: int = 60) -> None:
    """Time the first and second step of a request made after a pause against steps run back to back.

    A server waits for the next keystroke between requests. When the thread CPU time grows after the
    pause too, the step itself does more work (probably because its data left the CPU caches), so the
    extra time is not only a wait for a free core.
    """
    print("\npause, ms per 1-token step on 900 cached positions (median; CPU / wall)")
    weights = model.decoding_weights()
    context = min(900, model.config.max_seq_len - 2)
    cache = model.new_cache()
    model(tokens[:, :context], cache=cache)
    step_ids = tokens[:, context : context + 1]
    timings = {name: Timings() for name in ("back to back", "first after pause", "second after pause")}

    def step() -> None:
        cache.truncate(context)
        model.next_token_logits(step_ids, cache, weights)

    for _ in range(rounds):
        for _ in range(3):
            timings["back to back"].time(step)
        time.sleep(PAUSE_S)
        timings["first after pause"].time(step)
        timings["second after pause"].time(step)
    base = timings["back to back"]
    for name, t in timings.items():
        cpu, wall = statistics.median(t.cpu_ms), statistics.median(t.wall_ms)
        ratio = f"{cpu / statistics.median(base.cpu_ms):5.2f}x / {wall / statistics.median(base.wall_ms):5.2f}x"
        print(f"{name:>20}  {cpu:6.2f} / {wall:6.2f}  {ratio}")


def _parameter_views(model: GPT, copies: DecodingWeights) -> DecodingWeights:
    """Return the (out, in) parameters seen through transposed views, so the products are those of F.linear."""
    blocks = [
        weights._replace(
            qkv_D3D=block.attn.qkv.weight.t(),
            attn_proj_DD=block.attn.proj.weight.t(),
            fc_DF=block.mlp.fc.weight.t(),
            mlp_proj_FD=block.mlp.proj.weight.t(),
        )
        for weights, block in zip(copies.blocks, model.blocks, strict=True)
    ]
    return DecodingWeights(blocks=blocks, head_DV=model.embed.weight.t())


def _print_row(label: str, timings: dict[str, Timings]) -> None:
    plain, optimized = timings["plain"], timings["optimized"]
    cells = [f"{statistics.median(t.cpu_ms):6.2f} / {statistics.median(t.wall_ms):6.2f}" for t in (plain, optimized)]
    ratio_cpu = statistics.median(plain.cpu_ms) / statistics.median(optimized.cpu_ms)
    ratio_wall = statistics.median(plain.wall_ms) / statistics.median(optimized.wall_ms)
    print(f"{label:>16}  {cells[0]:>15}  {cells[1]:>15}  {ratio_cpu:5.2f}x / {ratio_wall:5.2f}x")


class TwinSource:
    """A document typed at a cursor with text after it; every request goes to both completers.

    The first completer is the baseline. The second is the candidate, whose suggestions the replay accepts.
    """

    def __init__(self, completers: dict[str, Completer], after: str, timings: dict[str, Timings]) -> None:
        self.completers = completers
        self.baseline, self.candidate = completers
        self.after = after
        self.timings = timings
        self.text = ""
        self.requests = 0
        self.mismatches = 0
        self.stats: list[CompletionStats] = []
        """The candidate's diagnostics of every request."""

    def open(self, text: str) -> None:
        self.text = text

    def insert(self, text: str) -> None:
        self.text += text

    def suggest(self) -> str:
        document, cursor = self.text + self.after, len(self.text)
        names = list(self.completers)
        if self.requests % 2:
            names.reverse()
        suggested = {}
        for name in names:
            completer = self.completers[name]
            suggestion = self.timings[name].time(lambda: completer.complete(document, cursor, "python"))
            suggested[name] = suggestion.text if suggestion is not None else ""
        self.requests += 1
        self.mismatches += suggested[self.baseline] != suggested[self.candidate]
        self.stats.append(self.completers[self.candidate].last_stats)
        return suggested[self.candidate]

    def close(self) -> None:
        pass


def _report_replay(engines: dict[str, Engine], chars: int) -> None:
    """Replay typing with two engines, the baseline first, and compare their latency and suggestions."""
    settings = ServerSettings(multiline="never")
    completers = {name: Completer(engine, settings) for name, engine in engines.items()}
    baseline, candidate = completers
    timings = {name: Timings() for name in completers}
    requests = mismatches = 0
    stats: list[CompletionStats] = []
    for name in REPLAY_FILES:
        text = (REPOSITORY / name).read_text(encoding="utf-8")
        start = text.index("\n", min(MIN_PREFIX_CHARS, len(text) // 2)) + 1
        source = TwinSource(completers, text[start + chars :], timings)
        replay(source, text[:start], text[start : start + chars])
        requests += source.requests
        mismatches += source.mismatches
        stats += source.stats

    prompt_tokens = statistics.median(row.prompt_tokens for row in stats)
    reused = sum(row.reused_tokens for row in stats) / sum(row.prompt_tokens for row in stats)
    print(f"\ntyping replay, {baseline} against {candidate}: {requests} requests over {len(REPLAY_FILES)} files, "
          f"single-line, greedy; median prompt {prompt_tokens:.0f} tokens, {reused:.1%} of prompt tokens from the KV cache")  # fmt: skip
    print(f"{'':>16}  {'p50 CPU / wall':>17}  {'p95 CPU / wall':>17}")
    for name, t in timings.items():
        print(f"{name:>16}  {_percentile(t.cpu_ms, 50):7.1f} / {_percentile(t.wall_ms, 50):7.1f}  "
              f"{_percentile(t.cpu_ms, 95):7.1f} / {_percentile(t.wall_ms, 95):7.1f}")  # fmt: skip
    for share in (50, 95):
        ratio_cpu = _percentile(timings[baseline].cpu_ms, share) / _percentile(timings[candidate].cpu_ms, share)
        ratio_wall = _percentile(timings[baseline].wall_ms, share) / _percentile(timings[candidate].wall_ms, share)
        print(f"{'speed-up p' + str(share):>16}  {ratio_cpu:6.2f}x / {ratio_wall:5.2f}x")
    print(f"requests where the two engines suggested different text: {mismatches}")
    print(f"{candidate}, median per request (wall ms): "
          f"prefill {statistics.median(row.prefill_ms for row in stats):.1f}, "
          f"decode {statistics.median(row.decode_ms for row in stats):.1f} "
          f"for {statistics.median(row.generated_tokens for row in stats):.0f} tokens, "
          f"prompt building and clean-up {statistics.median(row.elapsed_ms - row.prefill_ms - row.decode_ms for row in stats):.1f}")  # fmt: skip
    guessed = sum(row.draft_tokens for row in stats)
    if guessed:
        accepted = sum(row.accepted_draft_tokens for row in stats)
        generated = sum(row.generated_tokens for row in stats)
        print(f"{candidate}: {accepted} of {guessed} guessed tokens accepted ({accepted / guessed:.1%}), so "
              f"{accepted / generated:.1%} of the {generated} generated tokens took no step of their own")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share / 100 * len(ordered)))]


if __name__ == "__main__":
    sys.exit(main())
