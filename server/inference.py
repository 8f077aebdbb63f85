"""The single inference thread: one job at a time, newer requests supersede older ones.

Handlers run on the asyncio event loop and `await InferenceWorker.run(...)`, so didChange and
$/cancelRequest are read while a generation runs. A job receives an `is_cancelled` callback that the
engine checks before every decoding step; it turns true when
- the awaiting handler is cancelled ($/cancelRequest makes pygls cancel its asyncio task),
- a newer job with the same key (the document URI) arrives: editors such as Neovim's built-in
  inline completion send no $/cancelRequest for the request they stop waiting for. A job with the
  same `snapshot` (the same text and cursor) is not outdated by it and keeps its turn,
- the job's `is_stale` callback returns True because the document changed since the job's snapshot.
A cancelled job that has not started is answered at once, without touching the model.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
IsCancelled = Callable[[], bool]


class JobCancelled(Exception):
    """The job was cancelled or superseded before it started."""


class WorkerClosed(RuntimeError):
    """A job was submitted after `InferenceWorker.close` (the server is shutting down)."""


@dataclass
class _Job(Generic[T]):
    fn: Callable[[IsCancelled], T]
    key: str | None
    is_stale: Callable[[], bool] | None
    snapshot: Hashable | None = None
    future: Future[T] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def is_cancelled(self) -> bool:
        return self.cancelled.is_set() or (self.is_stale is not None and self.is_stale())

    def supersedes(self, older: _Job) -> bool:
        """Return whether this job makes `older` outdated: same key, and not the same snapshot."""
        if self.key is None or older.key != self.key:
            return False
        return self.snapshot is None or older.snapshot != self.snapshot


@dataclass
class WorkerStats:
    """Counters for diagnostics and tests; written by the worker thread only."""

    jobs_run: int = 0
    jobs_skipped: int = 0
    """Jobs cancelled or superseded before they started."""
    max_concurrent: int = 0
    """Most jobs seen running at once; the design promises 1."""


class InferenceWorker:
    """One daemon thread that runs jobs in order; every model call goes through it."""

    def __init__(self, name: str = "tiny-copilot-inference") -> None:
        self.stats = WorkerStats()
        self._queue: deque[_Job] = deque()
        self._running: _Job | None = None
        self._running_count = 0
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    async def run(
        self,
        fn: Callable[[IsCancelled], T],
        key: str | None = None,
        is_stale: Callable[[], bool] | None = None,
        snapshot: Hashable | None = None,
    ) -> T:
        """Run `fn(is_cancelled)` on the worker thread and return its result.

        A job with a `key` cancels every queued or running job with the same key, except those with
        an equal `snapshot` that is not None. Raises
        JobCancelled when the job was cancelled before it started, and whatever `fn` raises
        (the engine raises GenerationCancelled) when it was cancelled while running.
        """
        job = self._submit(fn, key, is_stale, snapshot)
        try:
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.cancelled.set()
            raise

    def close(self) -> None:
        """Cancel queued jobs and let the thread end after the running one."""
        with self._condition:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            if self._running is not None:
                self._running.cancelled.set()
            self._condition.notify_all()
        for job in pending:
            _resolve_cancelled(job)

    def _submit(
        self, fn: Callable[[IsCancelled], T], key: str | None, is_stale: Callable[[], bool] | None, snapshot: Hashable | None
    ) -> _Job[T]:
        job = _Job(fn=fn, key=key, is_stale=is_stale, snapshot=snapshot)
        superseded: list[_Job] = []
        with self._condition:
            if self._closed:
                raise WorkerClosed("the inference worker is closed")
            if key is not None:
                superseded = [queued for queued in self._queue if job.supersedes(queued)]
                for old in superseded:
                    self._queue.remove(old)
                if self._running is not None and job.supersedes(self._running):
                    self._running.cancelled.set()
            self._queue.append(job)
            self._condition.notify()
        for old in superseded:
            _resolve_cancelled(old)
        return job

    def _loop(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if self._closed and not self._queue:
                    return
                job = self._queue.popleft()
                self._running = job
            try:
                self._execute(job)
            finally:
                with self._condition:
                    self._running = None

    def _execute(self, job: _Job) -> None:
        if job.is_cancelled() or not job.future.set_running_or_notify_cancel():
            self.stats.jobs_skipped += 1
            _resolve_cancelled(job)
            return
        self._running_count += 1
        self.stats.max_concurrent = max(self.stats.max_concurrent, self._running_count)
        self.stats.jobs_run += 1
        try:
            job.future.set_result(job.fn(job.is_cancelled))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the awaiting handler
            job.future.set_exception(exc)
        finally:
            self._running_count -= 1


def _resolve_cancelled(job: _Job) -> None:
    if job.future.cancelled() or job.future.done():
        return
    if job.future.running() or job.future.set_running_or_notify_cancel():
        job.future.set_exception(JobCancelled())


@dataclass
class CacheStats:
    """Prompt tokens served from the KV cache, summed over all completed requests."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    requests: int = 0

    def add(self, prompt_tokens: int, reused_tokens: int) -> None:
        self.prompt_tokens += prompt_tokens
        self.reused_tokens += reused_tokens
        self.requests += 1

    @property
    def hit_rate(self) -> float:
        return self.reused_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def mean_prompt_tokens(self) -> float:
        """Prompt length in tokens averaged over completed requests: the context a suggestion was made with."""
        return self.prompt_tokens / self.requests if self.requests else 0.0


LATENCY_SAMPLES = 4096
"""Requests whose handler time `LatencyStats` keeps; older ones are dropped, so memory stays bounded."""


@dataclass
class LatencyStats:
    """Milliseconds from a request's arrival in the handler to its response, over the latest requests."""

    samples_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def add(self, elapsed_ms: float) -> None:
        self.samples_ms.append(elapsed_ms)

    def percentile(self, share: float) -> float | None:
        """Return the `share` (0-100) percentile by rank, or None before the first request."""
        if not self.samples_ms:
            return None
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(share / 100 * len(ordered)))]
