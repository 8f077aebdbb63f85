"""The server's copy of each open document, kept in step with the client's edits.

pygls 2.1.1 keeps its own copies, but splits lines with `str.splitlines` (which also breaks at form
feeds and U+2028) and clamps a column past the end of a line to one before its end, so an edit on
such a line lands in the wrong place. These documents follow the LSP rules through `positions`.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

from lsprotocol import types

from . import positions
from .positions import PositionEncoding

log = logging.getLogger(__name__)

_revisions = itertools.count(1)
"""Source of document revisions, shared by every document, so that a URI closed and opened again never
repeats a revision that a running request recorded."""


@dataclass
class Document:
    uri: str
    language_id: str
    version: int
    text: str
    revision: int = field(default_factory=lambda: next(_revisions))
    """Unique per text: it changes on every edit and differs between documents. So a result computed
    before an edit, or before the URI was closed and opened again, is recognised even if the client
    reuses a version."""
    _starts: list[int] | None = field(default=None, repr=False)

    @property
    def starts(self) -> list[int]:
        """Offsets where the lines start, computed once per text."""
        if self._starts is None:
            self._starts = positions.line_starts(self.text)
        return self._starts

    def offset_at(self, position: types.Position, encoding: PositionEncoding) -> int:
        return positions.offset_at(self.text, self.starts, position.line, position.character, encoding)

    def position_at(self, offset: int, encoding: PositionEncoding) -> types.Position:
        line, col_units = positions.position_at(self.text, self.starts, offset, encoding)
        return types.Position(line=line, character=col_units)

    def apply_change(self, change: types.TextDocumentContentChangeEvent, encoding: PositionEncoding) -> None:
        """Apply one content change: a whole new text, or a replaced range (clamped into the text)."""
        if isinstance(change, types.TextDocumentContentChangeWholeDocument):
            self._set_text(change.text)
            return
        start = self.offset_at(change.range.start, encoding)
        end = self.offset_at(change.range.end, encoding)
        if end < start:
            log.warning("%s: change range ends before it starts (%s); applying it as an insertion", self.uri, change.range)
            end = start
        self._set_text(self.text[:start] + change.text + self.text[end:])

    def apply_changes(self, changes: list[types.TextDocumentContentChangeEvent], encoding: PositionEncoding) -> None:
        """Apply the changes of one didChange in order, as if one by one.

        Each change needs the line starts of the text before it, which cost a scan of the whole text.
        A replace-all or multi-cursor edit can arrive as thousands of changes ordered from the bottom
        up. A run of range changes that each end on a line above the previous one's start is therefore
        applied at once, with offsets from the text before the run. This is exact because an edit on a
        later line never moves an earlier line. Other orders take one scan per change.
        """
        index = 0
        while index < len(changes):
            # A position past the last line is clamped onto the last line, so it could edit an earlier line.
            line_count = len(self.starts)
            run_end = index + 1
            while run_end < len(changes) and _is_above(changes[run_end], changes[run_end - 1], line_count):
                run_end += 1
            if run_end - index == 1:
                self.apply_change(changes[index], encoding)
            else:
                self._apply_descending_run(changes[index:run_end], encoding)  # type: ignore[arg-type]
            index = run_end

    def _apply_descending_run(self, run: list[types.TextDocumentContentChangePartial], encoding: PositionEncoding) -> None:
        pieces: list[str] = []
        copied_to = 0
        for change in reversed(run):
            start = self.offset_at(change.range.start, encoding)
            end = self.offset_at(change.range.end, encoding)
            pieces += [self.text[copied_to:start], change.text]
            copied_to = end
        pieces.append(self.text[copied_to:])
        self._set_text("".join(pieces))

    def _set_text(self, text: str) -> None:
        self.text = text
        self.revision = next(_revisions)
        self._starts = None


def _is_above(change: types.TextDocumentContentChangeEvent, previous: types.TextDocumentContentChangeEvent, line_count: int) -> bool:
    """Return whether both are range changes within the document's `line_count` lines, neither range is
    reversed, and `change` ends on a line above the one where `previous` starts."""
    if not isinstance(change, types.TextDocumentContentChangePartial) or not isinstance(previous, types.TextDocumentContentChangePartial):
        return False
    for item in (change, previous):
        if _key(item.range.start) > _key(item.range.end) or item.range.end.line >= line_count:
            return False
    return change.range.end.line < previous.range.start.line


def _key(position: types.Position) -> tuple[int, int]:
    return position.line, position.character


class DocumentStore:
    """Open documents by URI; a document is dropped on didClose, so the store holds only what the client has open."""

    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}

    def open(self, item: types.TextDocumentItem) -> Document:
        document = Document(uri=item.uri, language_id=item.language_id, version=item.version, text=item.text)
        self._documents[item.uri] = document
        return document

    def change(self, params: types.DidChangeTextDocumentParams, encoding: PositionEncoding) -> Document | None:
        document = self._documents.get(params.text_document.uri)
        if document is None:
            log.warning("didChange for %s, which is not open; ignoring it", params.text_document.uri)
            return None
        document.apply_changes(list(params.content_changes), encoding)
        document.version = params.text_document.version
        return document

    def close(self, uri: str) -> None:
        if self._documents.pop(uri, None) is None:
            log.warning("didClose for %s, which is not open", uri)

    def get(self, uri: str) -> Document | None:
        return self._documents.get(uri)

    def revision(self, uri: str) -> int | None:
        """Current revision of `uri`, or None once it is closed; safe to read from the inference thread."""
        document = self._documents.get(uri)
        return None if document is None else document.revision

    def __len__(self) -> int:
        return len(self._documents)
