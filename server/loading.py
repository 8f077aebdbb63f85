"""Loading the model in the background, with $/progress and a clear message when it fails.

Importing torch takes about a second, so nothing here imports it at module level. The server sends
the `initialize` response first, and torch is imported on the inference thread when `initialized`
starts the load.
Until a model is ready, `ModelSlot.model` is None and requests get an empty result.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .inference import IsCancelled, JobCancelled
from .settings import ServerSettings

if TYPE_CHECKING:
    from .completion import Completer, Suggestion

log = logging.getLogger(__name__)

DOCUMENT_CACHES = 4
"""Documents whose KV cache and prompt tokenization the server keeps, the latest used. Switching back
to one of them reuses its cached prompt: alternating between two files took about 165 ms per request
with one cache, against 17 ms staying in one file (shipped model, 2-core AMD EPYC)."""

KV_CACHE_BUDGET_BYTES = 96 * 2**20
"""Memory for all documents' KV caches together; fewer documents keep one when a model needs more.
A cache is allocated for the model's whole context: 9.4 MB for the shipped model, 16.8 MB for the
medium preset at 1024 tokens, 302 MB for the small preset at 32768 tokens (one cache then)."""


def document_caches(model: Any) -> int:
    """Return how many documents keep a KV cache for `model` (a GPT) within `KV_CACHE_BUDGET_BYTES`."""
    c = model.config
    cache_bytes = 2 * c.n_layers * c.max_seq_len * c.d_model * model.embed.weight.element_size()
    return max(1, min(DOCUMENT_CACHES, KV_CACHE_BUDGET_BYTES // cache_bytes))


WARM_UP_TEXT = "x = 1\n"
"""Document completed once after loading, so that the first forward pass is not the first keystroke's."""


class ModelLoadError(Exception):
    """The checkpoint cannot be served; the message names the folder and the fix."""


@dataclass
class LoadedModel:
    """A checkpoint ready to serve, touched only on the inference thread."""

    path: Path
    completer: Completer
    engine: Any
    """The `tiny_copilot.model.engine.Engine` whose KV cache the completer reuses."""

    def complete(
        self, text: str, offset: int, language_id: str | None, is_cancelled: IsCancelled, uri: str | None = None
    ) -> Suggestion | None:
        """Run the completer with document `uri`'s caches; a generation stopped by `is_cancelled` raises JobCancelled."""
        from tiny_copilot.model.engine import GenerationCancelled

        try:
            return self.completer.complete(text, offset, language_id=language_id, is_cancelled=is_cancelled, cache_key=uri)
        except GenerationCancelled:
            raise JobCancelled() from None

    def forget(self, uri: str) -> None:
        """Drop what the caches hold of document `uri` (on the inference thread, like `complete`)."""
        self.completer.forget(uri)

    def with_settings(self, settings: ServerSettings) -> LoadedModel:
        """Return this model with new settings, keeping the engine and its KV cache."""
        from .completion import Completer

        _set_threads(settings)
        return LoadedModel(self.path, Completer(self.engine, settings), self.engine)


def resolve_checkpoint(cli_checkpoint: Path | None, settings: ServerSettings) -> Path:
    """Pick the checkpoint: --checkpoint, else the `checkpoint` setting, else the shipped model."""
    if cli_checkpoint is not None:
        return cli_checkpoint
    if settings.checkpoint is not None:
        return Path(settings.checkpoint).expanduser()
    from tiny_copilot.model.checkpoint import shipped_checkpoint_path

    return shipped_checkpoint_path()


def checkpoint_origin(cli_checkpoint: Path | None, settings: ServerSettings) -> str:
    """Return a sentence saying where the checkpoint that resolve_checkpoint picks was chosen."""
    if cli_checkpoint is not None:
        return "The folder comes from the --checkpoint option of tiny-copilot-lsp."
    if settings.checkpoint is not None:
        return "The folder comes from the checkpoint setting (tinyCopilot.checkpoint in VS Code)."
    return "It is the model shipped with tiny-copilot; reinstalling the package restores it."


def load_model(cli_checkpoint: Path | None, settings: ServerSettings, is_cancelled: IsCancelled) -> LoadedModel:
    """Import torch, load and verify the checkpoint, and warm the model up (runs on the inference thread).

    Raises ModelLoadError when the checkpoint is missing or broken, and JobCancelled when `is_cancelled`
    turns true during the warm-up (the server is shutting down).
    """
    started = time.perf_counter()
    from tiny_copilot.model.checkpoint import CheckpointError, load_checkpoint
    from tiny_copilot.model.engine import Engine, GenerationCancelled

    from .completion import Completer

    _set_threads(settings)
    path = resolve_checkpoint(cli_checkpoint, settings)
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        # The error message already gives the repair, so only the folder's origin is added.
        raise ModelLoadError(f"{exc}. {checkpoint_origin(cli_checkpoint, settings)}") from exc

    engine = Engine(checkpoint.model, checkpoint.tokenizer, cache_slots=document_caches(checkpoint.model))
    completer = Completer(engine, settings)
    # The first forward pass allocates buffers and takes several times longer than later ones, so
    # running it here keeps that cost out of the first keystroke's latency. The warm-up checks for
    # cancellation only between decoding steps, and it may stop after one token, so check around it too.
    # The text must hold code: the completer does not run the model for a blank document.
    try:
        if is_cancelled():
            raise GenerationCancelled()
        completer.complete(WARM_UP_TEXT, len(WARM_UP_TEXT), language_id=None, is_cancelled=is_cancelled)
        if is_cancelled():
            raise GenerationCancelled()
    except GenerationCancelled:
        raise JobCancelled() from None
    engine.reset()
    log.info(
        "loaded %s (%d parameters) in %.0f ms with %d threads",
        path,
        sum(p.numel() for p in checkpoint.model.parameters()),
        (time.perf_counter() - started) * 1000,
        settings.effective_threads(),
    )
    return LoadedModel(path, completer, engine)


def _set_threads(settings: ServerSettings) -> None:
    import torch

    torch.set_num_threads(settings.effective_threads())


class ModelSlot:
    """The model being served (or None) and the state of its loading, owned by the event loop."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.loading = False
        self.error: str | None = None
        self.generation = 0
        """Counts load requests; a load that finishes after a newer one started is discarded."""
        self.last_served: LoadedModel | None = None
        """The model served before the current load began. `model` is None while a load runs, so a second
        load that starts meanwhile finds here the model to fall back to."""
