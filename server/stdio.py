"""The server's standard input, with bounded memory for headers and message bodies.

pygls reads a body with one `read(Content-Length)` call, and Python allocates the whole length before
reading. A header that claimed 100 GB therefore ended the server with a MemoryError, and one with more
than 4,300 digits with a ValueError from `int()`. Here bodies over the limit are read in chunks and
dropped. The read loop then gets a body that is not JSON, so the client receives the usual parse error
(id null) and the server keeps serving. A client that announces more than it sends looks the same
as a slow one, so the warning is logged as soon as the header arrives.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest body read. A didOpen of a 5 MB file stays under 31 MB even if JSON escapes every byte as
six characters (\\u0001), so real messages stay below it."""

MAX_HEADER_LINE_BYTES = 64 * 1024
"""A header line longer than this is dropped: LSP defines only Content-Length and Content-Type."""

_CONTENT_LENGTH = re.compile(rb"Content-Length: (\d+)\r\n")
_LENIENT_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?\n", re.IGNORECASE)
"""A Content-Length line as HTTP allows it (any case, optional blanks) or ended by a bare "\n". pygls
2.1.1 matches only the exact form above, so it skipped such a header, and the message was lost
without any response."""
_HEADER_NAME = b"Content-Length: "
_MAX_LENGTH_DIGITS = 15
"""Longer values are replaced by this many nines before pygls converts them with `int()`."""
_DROPPED_HEADER = b"X-Dropped-Header: too-long\r\n"
"""Stands in for a dropped header line: not blank, so the headers go on, and not a Content-Length."""

_DROP_CHUNK_BYTES = 1024 * 1024
_NOT_JSON = b"\x00"
"""Replacement for an oversized body: any bytes that `json.loads` rejects."""


class BoundedInput:
    """Wrap a binary stream for pygls' reader: `readline` and `read` with bounded memory."""

    def __init__(
        self,
        stream: BinaryIO,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        on_dropped: Callable[[int, int], None] | None = None,
    ) -> None:
        """`on_dropped(size_bytes, limit_bytes)` runs on the reading thread after a body is dropped."""
        self._stream = stream
        self.max_message_bytes = max_message_bytes
        self.on_dropped = on_dropped

    def readline(self) -> bytes:
        line = self._stream.readline(MAX_HEADER_LINE_BYTES)
        if len(line) >= MAX_HEADER_LINE_BYTES and not line.endswith(b"\n"):
            # Skip to the line's end, so that its last piece is not taken for the blank line that ends
            # the headers.
            skipped = len(line) + self._skip_line()
            log.warning("dropped a header line of %d bytes: over the limit of %d bytes", skipped, MAX_HEADER_LINE_BYTES)
            return _DROPPED_HEADER
        match = _CONTENT_LENGTH.fullmatch(line)
        if match is None:
            # A wrong Content-Length (too small, too large) or a header without one leaves the reader out
            # of step: the rest of one body and the next header then arrive as one line. Bodies do not end
            # in a newline, so every later header would be glued to a body and missed. Start again at the
            # last header found inside the line, so that only the messages already mangled are lost.
            start = line.rfind(_HEADER_NAME)
            if start > 0:
                resynced = _CONTENT_LENGTH.fullmatch(line, start)
                if resynced is not None:
                    log.warning("skipped %d bytes before a Content-Length header: the previous message was framed wrongly", start)
                    line, match = line[start:], resynced
        if match is None:
            match = _LENIENT_CONTENT_LENGTH.fullmatch(line)
            if match is None:
                return line
            line = b"Content-Length: %s\r\n" % match[1]
        digits = match[1]
        if len(digits) > _MAX_LENGTH_DIGITS or int(digits) > self.max_message_bytes:
            log.warning(
                "a message announces a body of %s bytes, over the limit of %d bytes: it will be read and "
                "dropped, and if the client sends less, later messages are read as part of it",
                digits[:20].decode() + ("..." if len(digits) > 20 else ""), self.max_message_bytes,
            )  # fmt: skip
        if len(digits) > _MAX_LENGTH_DIGITS:
            return b"Content-Length: %s\r\n" % (b"9" * _MAX_LENGTH_DIGITS)
        return line

    def read(self, size: int) -> bytes:
        if size <= self.max_message_bytes:
            return self._stream.read(size)
        dropped = self._drop(size)
        log.warning("dropped a message body of %d bytes (Content-Length %d)", dropped, size)
        if self.on_dropped is not None:
            self.on_dropped(size, self.max_message_bytes)
        # Empty bytes would end pygls' read loop as the end of input does. So a body cut short by the
        # end of input also becomes a parse error here, and the next readline then ends the loop.
        return _NOT_JSON

    def _skip_line(self) -> int:
        """Read up to and including the next newline, or to the end of input; return the bytes read."""
        skipped = 0
        while True:
            piece = self._stream.readline(MAX_HEADER_LINE_BYTES)
            skipped += len(piece)
            if not piece or piece.endswith(b"\n"):
                return skipped

    def _drop(self, size: int) -> int:
        """Read and discard `size` bytes, or up to the end of input; return how many were read."""
        left = size
        while left > 0:
            chunk = self._stream.read(min(left, _DROP_CHUNK_BYTES))
            if not chunk:
                break
            left -= len(chunk)
        return size - left
