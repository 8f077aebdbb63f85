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

    def _set_text(self, text: str) -> None:
        self.text = text
        self.revision = next(_revisions)
        self._starts = None


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
        for change in params.content_changes:
            document.apply_change(change, encoding)
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
