"""Replay typing into `tiny-copilot-lsp` as an editor does, and measure latency, cache reuse and usefulness.

For each chosen line of each file, the line's text is removed and then typed back one character at a
time: didChange per keystroke, an inlineCompletion request after each, and $/cancelRequest for the
previous request if it is still open (VS Code's behaviour). It prints:
- latency p50/p95 of answered requests (send to response, over stdio, from this client);
- the server's own p50/p95 from a request's arrival in its handler to the answer, so the rest of the
  latency is the protocol (JSON, pygls, the pipe) on both sides;
- the KV-cache hit rate: prompt tokens reused from the cache / prompt tokens, as the server counts them;
- the share of suggested characters that the user then typed (the common prefix of each suggestion
  with the text that really followed).

Use files that are not in the model's training data; the default is this repository's own code.
Example: python benchmarks/typing_replay.py --checkpoint runs/x/checkpoint --lines 6
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.lsp.client import LanguageClient

from tiny_copilot.server.lsp import DEBUG_DOCUMENT_COMMAND

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_FILES = ("server/positions.py", "server/inference.py", "server/lsp.py", "model/engine.py", "examples/example.py")
MIN_PREFIX_CHARS = 4000
"""Lines start this far into the file, so the prompt has about 1k tokens of context (~3.5 characters per token)."""


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    cancelled: int = 0
    empty: int = 0
    suggested_chars: int = 0
    typed_suggested_chars: int = 0


def pick_lines(text: str, count: int, rng: random.Random) -> list[int]:
    """Pick lines far enough into the file, with at least 12 characters of code."""
    lines = text.split("\n")
    offsets, offset = [], 0
    for line in lines:
        offsets.append(offset)
        offset += len(line) + 1
    candidates = [i for i, line in enumerate(lines) if offsets[i] >= MIN_PREFIX_CHARS and len(line.strip()) >= 12 and line.isascii()]
    if not candidates:
        candidates = [i for i, line in enumerate(lines) if len(line.strip()) >= 12 and line.isascii()]
    return sorted(rng.sample(candidates, min(count, len(candidates))))


def common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


async def replay_line(client: LanguageClient, uri: str, text: str, line_index: int, keystroke_ms: float, results: Results) -> None:
    lines = text.split("\n")
    target = lines[line_index]
    indent = len(target) - len(target.lstrip())
    # The line starts out as its indentation only; the rest is typed.
    start_lines = lines[:line_index] + [target[:indent]] + lines[line_index + 1 :]
    document = "\n".join(start_lines)
    following = target[indent:] + "\n" + "\n".join(lines[line_index + 1 :])
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=document))
    )

    pending: dict[str, tuple[asyncio.Future, float, int]] = {}
    previous_id: str | None = None
    for typed, char in enumerate(target[indent:], start=1):
        column = indent + typed - 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=1 + typed),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(line=line_index, character=column), end=types.Position(line=line_index, character=column)),
                        text=char,
                    )
                ],
            )
        )
        if previous_id is not None and not pending[previous_id][0].done():
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous_id))
        msg_id = f"{uri}-{typed}"
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line_index, character=column + 1),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
        future = asyncio.wrap_future(client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id))
        pending[msg_id] = (future, time.perf_counter(), typed)
        future.add_done_callback(lambda f, sent=time.perf_counter(): setattr(f, "answered_at", time.perf_counter()))
        previous_id = msg_id
        await asyncio.sleep(keystroke_ms / 1000)

    for future, sent, typed in pending.values():
        try:
            result = await future
        except JsonRpcRequestCancelled:
            results.cancelled += 1
            continue
        results.latencies_ms.append((future.answered_at - sent) * 1000)  # type: ignore[attr-defined]
        if not result or not result.items:
            results.empty += 1
            continue
        suggestion = str(result.items[0].insert_text)
        results.suggested_chars += len(suggestion)
        results.typed_suggested_chars += common_prefix(suggestion, following[typed:])
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))


@dataclass
class RunSummary:
    """Figures of one replay against a freshly started server."""

    p50_ms: float
    p95_ms: float
    handler_p50_ms: float
    handler_p95_ms: float
    cache_hit_rate: float
    mean_prompt_tokens: float


async def run(args: argparse.Namespace) -> int:
    summaries = []
    for run_index in range(args.repeat):
        print(f"run {run_index + 1} of {args.repeat}:")
        summaries.append(await run_once(args))
    if len(summaries) > 1:
        # The machine may be shared, so a single run's tail is noisy. Medians over fresh servers are steadier.
        p50 = statistics.median(s.p50_ms for s in summaries)
        p95 = statistics.median(s.p95_ms for s in summaries)
        handler_p50 = statistics.median(s.handler_p50_ms for s in summaries)
        handler_p95 = statistics.median(s.handler_p95_ms for s in summaries)
        hit_rate = statistics.median(s.cache_hit_rate for s in summaries)
        prompt = statistics.median(s.mean_prompt_tokens for s in summaries)
        print(
            f"median over {len(summaries)} runs: latency p50 {p50:.1f} ms, p95 {p95:.1f} ms "
            f"(in the server's handler {handler_p50:.1f} / {handler_p95:.1f} ms), "
            f"KV-cache hit rate {100 * hit_rate:.1f}%, mean prompt {prompt:.0f} tokens"
        )
    return 0


async def run_once(args: argparse.Namespace) -> RunSummary:
    log_file = Path(tempfile.mkdtemp(prefix="typing-replay-")) / "server.log"
    # The diagnostic command reports the server's cache hit rate. -vv would enable it too, but its
    # logging of every message would count in the latencies.
    command = [sys.executable, "-m", "tiny_copilot.server.cli", "--stdio", "-v", "--debug-commands", "--log-file", str(log_file)]
    if args.checkpoint:
        command += ["--checkpoint", str(args.checkpoint)]
    settings = {"multiline": args.multiline}
    if args.threads:
        settings["threads"] = args.threads

    client = LanguageClient("typing-replay", "0.1.0")
    await client.start_io(*command)
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options=settings))
    client.initialized(types.InitializedParams())
    await wait_until_ready(client)

    rng = random.Random(args.seed)
    results = Results()
    for file in args.files:
        text = file.read_text(encoding="utf-8")
        for line_index in pick_lines(text, args.lines, rng):
            await replay_line(client, file.resolve().as_uri(), text, line_index, args.keystroke_ms, results)

    state = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=DEBUG_DOCUMENT_COMMAND, arguments=["untitled:replay-probe", 0, 0])
    )
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    cache_hit_rate = state["cacheHitRate"] if state is not None else float("nan")
    mean_prompt_tokens = state["meanPromptTokens"] if state is not None else float("nan")
    handler = state["handlerLatencyMs"] if state is not None else {}
    handler_ms = (_or_nan(handler.get("p50")), _or_nan(handler.get("p95")))
    return print_report(results, handler_ms, cache_hit_rate, mean_prompt_tokens, log_file)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


async def wait_until_ready(client: LanguageClient, timeout_s: float = 300.0) -> None:
    uri = "untitled:replay-probe"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=""))
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=DEBUG_DOCUMENT_COMMAND, arguments=[uri, 0, 0])
        )
        if state["modelReady"]:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the model did not load; see the server log")


def print_report(
    results: Results, handler_ms: tuple[float, float], cache_hit_rate: float, mean_prompt_tokens: float, log_file: Path
) -> RunSummary:
    latencies = sorted(results.latencies_ms)
    answered = len(latencies)
    print(f"requests answered: {answered}, cancelled: {results.cancelled}, empty answers: {results.empty}")
    p50 = p95 = float("nan")
    if latencies:
        p50 = statistics.median(latencies)
        p95 = latencies[min(answered - 1, int(0.95 * answered))]
        print(f"latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms")
    print(f"in the server's handler: p50 {handler_ms[0]:.1f} ms, p95 {handler_ms[1]:.1f} ms")
    print(f"KV-cache hit rate (reused / prompt tokens): {100 * cache_hit_rate:.1f}%")
    print(f"mean prompt: {mean_prompt_tokens:.0f} tokens (prefix, suffix and fill-in-the-middle tokens)")
    if results.suggested_chars:
        share = results.typed_suggested_chars / results.suggested_chars
        print(f"suggested characters the user then typed: {100 * share:.1f}% of {results.suggested_chars}")
    print(f"server log: {log_file}")
    return RunSummary(p50, p95, *handler_ms, cache_hit_rate, mean_prompt_tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--files", type=Path, nargs="+", default=[REPOSITORY / f for f in DEFAULT_FILES], help="Python files to replay")
    parser.add_argument("--lines", type=int, default=4, help="lines typed per file")
    parser.add_argument("--keystroke-ms", type=float, default=80.0, help="pause between keystrokes, in milliseconds")
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0: the server's default)")
    parser.add_argument("--multiline", default="never", choices=("auto", "always", "never"), help="multiline setting sent to the server")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the lines")
    parser.add_argument("--repeat", type=int, default=3, help="replays, each against a fresh server; medians are printed")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
