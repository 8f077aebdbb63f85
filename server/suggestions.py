"""From an LSP request to an edit: snapshot the document, run the completer, map the result back.

The completer sees LF line endings and Python `str` offsets. The returned edit uses the document's
own line ending and a range on the cursor's line in the negotiated position encoding. A result is
returned only if the document has not changed since the snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types

from . import positions
from .documents import Document, DocumentStore
from .inference import CacheStats, InferenceWorker, JobCancelled, LatencyStats, WorkerClosed
from .loading import LoadedModel, ModelSlot
from .positions import LineEnding, PositionEncoding

if TYPE_CHECKING:
    from .completion import Suggestion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CursorContext:
    """An immutable snapshot of one document around the cursor."""

    uri: str
    revision: int
    language_id: str
    text: str
    """The document as the client has it, with its own line endings."""
    starts: list[int]
    offset: int
    """Cursor as a `str` offset into `text`, clamped into the document."""
    position: types.Position
    """Cursor in client code units, clamped into the document."""
    text_lf: str
    offset_lf: int
    line_ending: LineEnding


def with_selected_item(
    context: CursorContext, selected: types.SelectedCompletionInfo, encoding: PositionEncoding
) -> CursorContext | None:
    """Return `context` as if the completion item that the editor's suggest widget selects were accepted.

    The cursor moves to the end of the item's text. Return None when the item's range is not on the
    cursor's line or does not contain the cursor (Neovim 0.12 sends its visual selection there).
    """
    line = context.position.line
    start, end = selected.range.start, selected.range.end
    if not start.line == end.line == line:
        return None
    start_offset = positions.offset_at(context.text, context.starts, line, start.character, encoding)
    end_offset = positions.offset_at(context.text, context.starts, line, end.character, encoding)
    if not start_offset <= context.offset <= end_offset:
        return None
    item_text = positions.from_lf(positions.to_lf(selected.text), context.line_ending)
    text = context.text[:start_offset] + item_text + context.text[end_offset:]
    offset = start_offset + len(item_text)
    starts = positions.line_starts(text)
    line, col_units = positions.position_at(text, starts, offset, encoding)
    return dataclasses.replace(
        context,
        text=text,
        starts=starts,
        offset=offset,
        position=types.Position(line=line, character=col_units),
        text_lf=positions.to_lf(text),
        offset_lf=positions.offset_to_lf(text, offset),
    )


def cursor_context(document: Document, position: types.Position, encoding: PositionEncoding) -> CursorContext:
    offset = document.offset_at(position, encoding)
    return CursorContext(
        uri=document.uri,
        revision=document.revision,
        language_id=document.language_id,
        text=document.text,
        starts=document.starts,
        offset=offset,
        position=document.position_at(offset, encoding),
        text_lf=positions.to_lf(document.text),
        offset_lf=positions.offset_to_lf(document.text, offset),
        line_ending=positions.detect_line_ending(document.text),
    )


@dataclass(frozen=True)
class Edit:
    """Text to insert at the cursor, replacing `range` (which starts at the cursor, on its line)."""

    text: str
    range: types.Range


def suggestion_edit(context: CursorContext, text_lf: str, replace_suffix_chars: int, encoding: PositionEncoding) -> Edit:
    """Build the edit for a suggestion given with LF line endings."""
    line = context.position.line
    line_end = positions.line_content_end(context.text, context.starts, line)
    end_offset = min(context.offset + max(0, replace_suffix_chars), line_end)
    end_line, end_units = positions.position_at(context.text, context.starts, end_offset, encoding)
    return Edit(
        text=positions.from_lf(text_lf, context.line_ending),
        range=types.Range(start=context.position, end=types.Position(line=end_line, character=end_units)),
    )


def selected_item_edit(
    context: CursorContext, selected: types.SelectedCompletionInfo, text_lf: str, replace_suffix_chars: int
) -> Edit | None:
    """Build the edit that replaces the selected item's range with the item's text and `text_lf` after it.

    The editor shows it only with the item's own range, so a suggestion that replaces text after the
    cursor (an auto-inserted `)`) cannot be expressed, and None is returned for it.
    """
    if replace_suffix_chars > 0:
        return None
    # The item's text stays as the client sent it, line endings included: the edit must start with it.
    return Edit(text=selected.text + positions.from_lf(text_lf, context.line_ending), range=selected.range)


@dataclass
class _SharedGeneration:
    """A generation that every request for the same document revision, cursor and model waits for."""

    key: tuple[object, ...]
    """Revision, cursor offset, model and the selected completion item, if any."""
    task: asyncio.Future[Suggestion | None]
    waiters: int = 0


class Suggester:
    """Serves suggestions for open documents through the single inference worker."""

    def __init__(self, documents: DocumentStore, worker: InferenceWorker, slot: ModelSlot) -> None:
        self.documents = documents
        self.worker = worker
        self.slot = slot
        self.encoding: PositionEncoding = positions.DEFAULT_ENCODING
        self.cache_stats = CacheStats()
        self.latency = LatencyStats()
        """Handler time of the requests that the inference worker completed."""
        self._generations: dict[str, list[_SharedGeneration]] = {}
        """The running generations of each URI, until they end: more than one only for requests at the
        same text and cursor whose prompts differ (one names a selected completion item)."""

    async def forget(self, uri: str) -> None:
        """Drop what the model's caches hold of `uri`, a document the editor closed."""
        model = self.slot.model
        if model is None:
            return
        try:
            await self.worker.run(lambda is_cancelled: model.forget(uri))
        except (JobCancelled, WorkerClosed):
            pass  # the server is shutting down, and the caches go with it

    async def suggest(
        self, uri: str, position: types.Position, selected: types.SelectedCompletionInfo | None = None
    ) -> Edit | None:
        """Return the edit for a suggestion at `position`, or None when there is nothing to suggest.

        None also covers: the document is not open, the model is not ready, a newer request for
        the same document superseded this one, or the document changed while generating.
        Cancelling the awaiting task ($/cancelRequest) stops the generation within one step, unless
        another request for the same text and cursor waits for it too.
        `selected` is the item that the editor's suggest widget selects. The suggestion then continues
        the text with that item accepted, and the edit replaces the item's range with its text and the
        continuation: VS Code shows ghost text beside an open suggest widget only in that form.
        """
        received = time.perf_counter()
        document = self.documents.get(uri)
        if document is None:
            log.debug("no suggestion for %s: the document is not open", uri)
            return None
        model = self.slot.model
        if model is None:
            log.debug("no suggestion for %s: the model is %s", uri, "loading" if self.slot.loading else "not loaded")
            return None

        document_context = cursor_context(document, position, self.encoding)
        context = document_context
        if selected is not None:
            context = with_selected_item(document_context, selected, self.encoding)
            if context is None:
                log.debug("no suggestion for %s: the selected completion item's range does not contain the cursor", uri)
                return None
        started = time.perf_counter()
        line_start = context.starts[context.position.line]
        log.debug("%s %d:%d text before the cursor on its line: %r", uri, position.line, position.character, context.text[line_start : context.offset])
        selected_key = None if selected is None else (selected.text, _range_key(selected.range))
        snapshot = (document_context.revision, document_context.offset)
        generation = self._join_or_start(context, model, selected_key, snapshot)
        generation.waiters += 1
        try:
            # shield: a cancelled request stops the generation only when no other request waits for it.
            suggestion = await asyncio.shield(generation.task)
        except JobCancelled:
            log.debug("%s %d:%d superseded or outdated after %.1f ms", uri, position.line, position.character, _ms_since(started))
            return None
        finally:
            generation.waiters -= 1
            if generation.waiters == 0 and not generation.task.done():
                generation.task.cancel()
        if self.documents.revision(uri) != context.revision:
            log.debug("%s changed while generating; dropping the suggestion", uri)
            return None
        self.latency.add(_ms_since(received))
        if suggestion is None:
            log.debug("%s %d:%d: nothing to suggest (%.1f ms)", uri, position.line, position.character, _ms_since(started))
            return None

        self._log_request(context, suggestion, started)
        if selected is not None:
            return selected_item_edit(document_context, selected, suggestion.text, suggestion.replace_suffix_chars)
        return suggestion_edit(context, suggestion.text, suggestion.replace_suffix_chars, self.encoding)

    def _join_or_start(
        self,
        context: CursorContext,
        model: LoadedModel,
        selected_key: tuple[object, ...] | None,
        snapshot: tuple[int, int],
    ) -> _SharedGeneration:
        """Return the running generation for the same text and cursor, or start one.

        `selected_key` separates prompts built with a selected completion item from those of the document alone.
        `snapshot` is the document revision and cursor offset before the item is applied.

        A client may send textDocument/completion and textDocument/inlineCompletion for the same
        keystroke, as VS Code does with a plain language client. Each new job for a URI supersedes the
        older one, so without sharing, the second request would make the first one return an empty result.
        With the suggest widget open, VS Code's inlineCompletion names the selected item and so needs
        a prompt of its own. Such a job is not outdated by the completion job for the same snapshot,
        so the worker runs both, one after the other.
        """
        uri = context.uri
        key = (context.revision, context.offset, model, selected_key)
        running = self._generations.setdefault(uri, [])
        for current in running:
            if not current.task.done() and current.key == key:
                return current
        task = asyncio.ensure_future(
            self.worker.run(
                lambda is_cancelled: model.complete(context.text_lf, context.offset_lf, context.language_id, is_cancelled, uri),
                key=uri,
                is_stale=lambda: self.documents.revision(uri) != context.revision,
                snapshot=snapshot,
            )
        )
        generation = _SharedGeneration(key, task)
        running.append(generation)

        def forget(_: asyncio.Future) -> None:
            remaining = [other for other in self._generations.get(uri, []) if other is not generation]
            if remaining:
                self._generations[uri] = remaining
            else:
                self._generations.pop(uri, None)

        task.add_done_callback(forget)
        return generation

    def _log_request(self, context: CursorContext, suggestion: Suggestion, started: float) -> None:
        self.cache_stats.add(suggestion.prompt_tokens, suggestion.reused_tokens)
        log.debug(
            "%s %d:%d prompt %d tokens, %d reused, %.1f ms; cache hit rate %.1f%% over %d requests",
            context.uri,
            context.position.line,
            context.position.character,
            suggestion.prompt_tokens,
            suggestion.reused_tokens,
            _ms_since(started),
            100 * self.cache_stats.hit_rate,
            self.cache_stats.requests,
        )


def _range_key(span: types.Range) -> tuple[int, int, int, int]:
    return span.start.line, span.start.character, span.end.line, span.end.character


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
