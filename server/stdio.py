"""The server's standard input, with a size limit on each message body.

pygls reads a body with one `read(Content-Length)` call, and Python allocates the whole length before
reading. A header that claims 100 GB therefore ended the server with a MemoryError. Bodies over the
limit are read in chunks and dropped here. The read loop then gets a body that is not JSON, so the
client receives the usual parse error (id null) and the server keeps serving.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest body read. A didOpen of a 5 MB file stays under 31 MB even if JSON escapes every byte as
six characters (\\u0001), so real messages stay below it."""

MAX_HEADER_LINE_BYTES = 64 * 1024
"""A header line longer than this is returned in pieces, none of which is a valid header."""

_DROP_CHUNK_BYTES = 1024 * 1024
_NOT_JSON = b"\x00"
"""Replacement for an oversized body: any bytes that `json.loads` rejects."""


class BoundedInput:
    """Wrap a binary stream for pygls' reader: `readline` and `read` with bounded memory."""

    def __init__(self, stream: BinaryIO, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._stream = stream
        self.max_message_bytes = max_message_bytes

    def readline(self) -> bytes:
        return self._stream.readline(MAX_HEADER_LINE_BYTES)

    def read(self, size: int) -> bytes:
        if size <= self.max_message_bytes:
            return self._stream.read(size)
        dropped = self._drop(size)
        log.warning(
            "dropped a message body of %d bytes (Content-Length %d): over the limit of %d bytes; "
            "split the content or check the client's Content-Length header",
            dropped, size, self.max_message_bytes,
        )  # fmt: skip
        # Empty bytes would end pygls' read loop as the end of input does. So a body cut short by the
        # end of input also becomes a parse error here, and the next readline then ends the loop.
        return _NOT_JSON

    def _drop(self, size: int) -> int:
        """Read and discard `size` bytes, or up to the end of input; return how many were read."""
        left = size
        while left > 0:
            chunk = self._stream.read(min(left, _DROP_CHUNK_BYTES))
            if not chunk:
                break
            left -= len(chunk)
        return size - left
