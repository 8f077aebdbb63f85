"""JSON-RPC fixes on top of pygls 2.1.1's LanguageServerProtocol.

pygls 2.1.1 sends no response to some requests and the wrong one to others. Each fix below names
the behaviour it replaces:
- a request whose params fail validation raised inside the JSON decoder, so the client got a
  window/showMessage and never a response; it now gets -32602 (invalid params) with its id;
- a body that is not JSON got no response and a logged traceback; it now gets -32700 (parse
  error) with id null and one warning line in the log;
- each JSON-RPC error response (an unknown command) logged a traceback at ERROR; it now logs one
  warning line;
- a message that is not a JSON-RPC object (an array, a number, no "jsonrpc", an id that is not an
  integer or string) raised AttributeError or was served; it now gets -32600 (invalid request);
- a notification method sent with an id (a request) was handled as the notification and never
  answered; it now gets -32600;
- a second `initialize` was served again and replaced the settings; it now gets -32600;
- a $/cancelRequest id or a window/workDoneProgress/cancel token that is a list or an object
  raised TypeError, which showed "Error in server" to the user; it is now logged and ignored;
- a second `initialized` loaded the model again, so no suggestions came until it finished; it is
  now logged and ignored;
- a write to a closed stdout (broken pipe) left the server running, logging tracebacks for every
  message; the server now exits (code 1, or 0 after `shutdown`);
- requests after `shutdown` were dropped silently; they now get -32600;
- requests before `initialize` reached the handlers; they now get -32002 (server not initialized);
- pygls' own didOpen/didChange/didClose keep a second copy of every document that splits lines
  the non-LSP way; they are replaced, and the server keeps its documents in `documents`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import attrs
import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError
from pygls.protocol import LanguageServerProtocol, lsp_method

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002

UNDECODABLE_BODY_ERRORS = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)
"""Exceptions that `json.loads` raises on a message body that is not JSON, not UTF-8, or nested too deep to decode."""

RESPONSE_LOGGER = "pygls.protocol.json_rpc"
"""Logger of pygls 2.1.1's `_send_handler_result`, which logs a traceback at ERROR for every request
whose response is a JSON-RPC error, such as an unknown workspace/executeCommand command."""
READ_LOOP_LOGGER = "pygls.server"
"""Logger that pygls 2.1.1 passes to its read loop (`pygls.io_.run_async`), which logs a traceback to it
for every message it cannot decode."""


class UndecodableBodyFilter(logging.Filter):
    """Drop the read loop's traceback for a body that is not JSON.

    The server replies to such a body with a parse error and logs one warning line (`send_parse_error`),
    so the traceback, which only shows the inside of `json.loads`, adds nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, UNDECODABLE_BODY_ERRORS)


class ErrorResponseFilter(logging.Filter):
    """Turn the traceback logged for a JSON-RPC error response into one warning line.

    Such errors come from the client's request (an unknown command, invalid params), and the client
    already gets the error with its code. Other exceptions keep their traceback, because they are bugs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcException) and not isinstance(error, JsonRpcInternalError):
            record.msg = "request %s failed with error %d: %s"
            record.args = (*record.args, error.code, error.message) if isinstance(record.args, tuple) else ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


def quiet_pygls_tracebacks() -> None:
    """Install UndecodableBodyFilter and ErrorResponseFilter on pygls' loggers once per process."""
    for name, filter_cls in ((READ_LOOP_LOGGER, UndecodableBodyFilter), (RESPONSE_LOGGER, ErrorResponseFilter)):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, filter_cls) for existing in logger.filters):
            logger.addFilter(filter_cls())


@dataclass
class RejectedMessage:
    """A message that failed validation; a request gets an error response with `code`."""

    id: int | str | None
    method: str | None
    is_request: bool
    code: int
    message: str
    jsonrpc: str = "2.0"
    answer: bool = True
    """False for a message that must get no reply, such as a response."""


class TinyCopilotProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_received = False
        self.initialized_received = False
        self.exit_code: int | None = None
        """Set when `exit` arrives: 0 after `shutdown`, else 1 (the LSP rule)."""

    @property
    def shutdown_received(self) -> bool:
        return self._shutdown

    def structure_message(self, data: dict[str, Any]) -> Any:
        """Turn one decoded JSON object into a typed message, or a RejectedMessage saying why not."""
        if "jsonrpc" not in data:
            return data  # a nested object inside params; only whole messages carry "jsonrpc"
        has_id = "id" in data
        method = data.get("method")
        if data.get("jsonrpc") != self.VERSION or (method is not None and not isinstance(method, str)):
            return _rejected(data, INVALID_REQUEST, 'not a JSON-RPC 2.0 message: "jsonrpc" must be "2.0" and "method" a string')
        if method is None and ("result" in data or "error" in data) and not _is_valid_id(data.get("id")):
            # The server never replies to a response, because two peers that each reject the other's
            # reply would loop. A client sends id null in its error response to a message it could not read.
            return RejectedMessage(None, None, False, INVALID_REQUEST, f"a response with id {json.dumps(data.get('id'))[:80]} matches no request", answer=False)
        if has_id and not _is_valid_id(data["id"]):
            return RejectedMessage(None, method, method is not None, INVALID_REQUEST, f"invalid request id {data['id']!r}; use an integer or a string")

        try:
            if has_id and "error" in data:
                return self._converter.structure(data, types.ResponseErrorMessage)
            if has_id and method is not None:
                message_type = self.get_message_type(method)
                # `exit` still ends the server: a reply would come too late to matter.
                if message_type is not None and not _has_id_field(message_type) and method != types.EXIT:
                    # Structured as the notification, the message would lose its id and get no response.
                    return RejectedMessage(data["id"], method, True, INVALID_REQUEST, f"{method} is a notification; send it without an id")
                return self._converter.structure(data, message_type or _GenericRequest)
            if has_id:
                return self._structure_response(data)
            return self._converter.structure(data, self.get_message_type(method or "") or _GenericNotification)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
            return _rejected(data, INVALID_PARAMS, f"invalid params for {method}: {_describe(exc)}")

    def _structure_response(self, data: dict[str, Any]) -> Any:
        """Structure a response to one of the server's requests; an invalid result is passed on untyped.

        Rejecting it would leave the request's future pending forever, and the server waiting on it
        (a `null` result to workspace/configuration stopped every later settings update).
        """
        response_type = self._result_types.pop(data["id"], None) or _GenericResponse
        try:
            response = self._converter.structure(data, response_type)
            # cattrs structures an object as the tuple of its keys where an array is expected.
            if isinstance(getattr(response, "result", None), tuple) and not isinstance(data.get("result"), list):
                raise TypeError(f"expected an array, found {type(data.get('result')).__name__}")
            return response
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("the response to request %r has an invalid result, passed on as is: %s", data["id"], _describe(exc))
            return self._converter.structure(data, _GenericResponse)

    def handle_message(self, message: Any) -> None:
        if isinstance(message, RejectedMessage):
            self._reject(message)
            return
        if not hasattr(message, "jsonrpc"):
            log.warning("ignoring a message that is not a JSON-RPC object: %.80r", message)
            self._send_error(_id_of(message), INVALID_REQUEST, "message must be a JSON-RPC 2.0 object")
            return

        method = getattr(message, "method", None)
        is_request = method is not None and hasattr(message, "id")
        if method == types.INITIALIZE and self.initialize_received:
            log.warning("initialize arrived a second time; rejecting it")
            if is_request:
                self._send_error(message.id, INVALID_REQUEST, "initialize may only be sent once; the server is already initialized")
            return
        if method == types.INITIALIZE:
            self.initialize_received = True
        elif method == types.EXIT:
            self.exit_code = 0 if self._shutdown else 1
        elif method is not None and not self.initialize_received:
            log.warning("%s arrived before initialize", method)
            if is_request:
                self._send_error(message.id, SERVER_NOT_INITIALIZED, f"{method} sent before initialize; send initialize first")
            return
        elif method == types.INITIALIZED and self.initialized_received:
            log.warning("initialized arrived a second time; ignoring it")
            return
        elif method == types.INITIALIZED:
            self.initialized_received = True
        elif method in _ID_FIELD_OF_CANCEL and not _is_valid_id(getattr(message.params, _ID_FIELD_OF_CANCEL[method], None)):
            # lsprotocol lets a list or an object through here, and pygls then fails to hash it.
            field = _ID_FIELD_OF_CANCEL[method]
            log.warning("ignoring %s with an invalid %s: it must be an integer or a string", method, field)
            return
        elif is_request and self._shutdown:
            self._send_error(message.id, INVALID_REQUEST, f"{method} sent after shutdown; the server only accepts exit now")
            return
        super().handle_message(message)

    def _send_data(self, data: Any) -> None:
        try:
            super()._send_data(data)
        except BrokenPipeError:
            # pygls re-raises inside a callback, where nothing stops the server, so it would read on and
            # log a traceback for every later message. With no way to reply, the server can only exit.
            log.error("the client closed the server's output (broken pipe); exiting")
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(0 if self._shutdown else 1)  # the codes of an end of input

    def send_parse_error(self, exc: Exception) -> None:
        """Answer a body that is not valid JSON (JSON-RPC says: id null)."""
        log.warning("received a message that is not valid JSON: %s", exc)
        self._send_error(None, PARSE_ERROR, f"invalid JSON: {exc}")

    def _reject(self, message: RejectedMessage) -> None:
        log.warning("rejected %s: %s", message.method or "a message", message.message)
        # JSON-RPC answers every invalid request, with id null when its id cannot be read.
        if message.answer and (message.is_request or message.code == INVALID_REQUEST):
            self._send_error(message.id, message.code, message.message)

    def _send_error(self, msg_id: int | str | None, code: int, text: str) -> None:
        # A plain dict, because lsprotocol's ResponseErrorMessage drops an id of None when serialized
        # and JSON-RPC requires "id": null for errors that cannot name their request.
        self._send_data({"jsonrpc": self.VERSION, "id": msg_id, "error": {"code": code, "message": text}})

    # pygls' document sync features update its own Workspace copy first; ours only call the server's handlers.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        yield from self._call_user_handler(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        yield from self._call_user_handler(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        yield from self._call_user_handler(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def _call_user_handler(self, method: str, params: Any) -> Any:
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None


_ID_FIELD_OF_CANCEL = {types.CANCEL_REQUEST: "id", types.WINDOW_WORK_DONE_PROGRESS_CANCEL: "token"}
"""The field that names what a cancel notification cancels."""


@dataclass
class _GenericRequest:
    id: int | str
    method: str
    jsonrpc: str
    params: Any = None


@dataclass
class _GenericNotification:
    method: str
    jsonrpc: str
    params: Any = None


@dataclass
class _GenericResponse:
    id: int | str
    jsonrpc: str
    result: Any = None


def _has_id_field(message_type: type) -> bool:
    return attrs.has(message_type) and "id" in attrs.fields_dict(message_type)


def _is_valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _id_of(message: Any) -> int | str | None:
    candidate = message.get("id") if isinstance(message, dict) else None
    return candidate if _is_valid_id(candidate) else None


def _rejected(data: dict[str, Any], code: int, text: str) -> RejectedMessage:
    method = data.get("method") if isinstance(data.get("method"), str) else None
    has_id = "id" in data
    is_request = has_id and method is not None
    return RejectedMessage(data["id"] if has_id and _is_valid_id(data["id"]) else None, method, is_request, code, text)


def _describe(exc: Exception) -> str:
    """Describe each invalid field on one line, e.g. "required field missing @ $.params.context"."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="$"))[:500]
    return str(exc)[:500]
