"""The language server: capabilities, lifecycle and thin handlers for each LSP method.

Methods: inlineCompletion (ghost text, continuing the suggest widget's selected item when the client
names one) and completion (the same suggestion as a completion item),
incremental document sync, didChangeConfiguration, and, with -vv only, the diagnostic command
`tinyCopilot.debug.documentState` (workspace/executeCommand), which returns the server's copy of a
document and the text around a position, so tests can compare it with the client's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from . import positions
from .documents import DocumentStore
from .inference import InferenceWorker, JobCancelled
from .loading import LoadedModel, ModelLoadError, ModelSlot, load_model
from .protocol import UNDECODABLE_BODY_ERRORS, TinyCopilotProtocol, quiet_pygls_tracebacks
from .settings import SETTINGS_SECTION, ServerSettings
from .suggestions import Suggester, cursor_context

log = logging.getLogger(__name__)

SERVER_NAME = "tiny-copilot"
SERVER_VERSION = "0.1.0"
DEBUG_DOCUMENT_COMMAND = "tinyCopilot.debug.documentState"
PARENT_POLL_S = 2.0
"""How often the server checks that the editor process is still alive."""


@dataclass(frozen=True)
class ServerOptions:
    """Options set on the command line for the lifetime of the server."""

    checkpoint: Path | None = None
    """--checkpoint; it overrides the `checkpoint` setting."""
    debug_commands: bool = False
    """Register the diagnostic command that returns document text (only at -vv)."""


class TinyCopilotServer(LanguageServer):
    def __init__(self, options: ServerOptions) -> None:
        super().__init__(SERVER_NAME, SERVER_VERSION, protocol_cls=TinyCopilotProtocol)
        quiet_pygls_tracebacks()
        self.options = options
        self.settings = ServerSettings()
        self.documents = DocumentStore()
        self.worker = InferenceWorker()
        self.slot = ModelSlot()
        self.suggester = Suggester(self.documents, self.worker, self.slot)
        self.pending_warnings: list[str] = []
        self._background: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        """The event loop, recorded at initialize, for messages from other threads."""

    @property
    def tiny_protocol(self) -> TinyCopilotProtocol:
        assert isinstance(self.protocol, TinyCopilotProtocol)
        return self.protocol

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls' read loop sends undecodable bodies here; JSON-RPC wants a parse error response.
        if isinstance(error, UNDECODABLE_BODY_ERRORS):
            self.tiny_protocol.send_parse_error(error)
            return
        super().report_server_error(error, source)

    def start_task(self, coroutine: Any) -> None:
        """Run a background coroutine on the event loop, keeping a reference until it ends."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def report_dropped_message(self, size_bytes: int, limit_bytes: int) -> None:
        """Warn the editor that a message over the size limit was dropped; callable from any thread.

        Most likely the editor opened a file that large. Its didOpen is lost, so the file gets no
        suggestions, and without this message the user would not learn why.
        """
        if self._loop is None:
            return  # before initialize no message can be shown; the reader has logged the drop
        message = (
            f"the editor sent a message of {size_bytes / 2**20:.0f} MB, over the limit of "
            f"{limit_bytes / 2**20:.0f} MB, and it was dropped. A file that large gets no suggestions."
        )
        self._loop.call_soon_threadsafe(self.show, types.MessageType.Warning, message)

    def show(self, kind: types.MessageType, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"tiny-copilot: {message}"))

    # Settings and model loading.

    def apply_settings(self, data: object, announce: bool = True) -> None:
        """Replace the settings from editor JSON; warn about invalid entries; reload the model if needed."""
        settings, warnings = ServerSettings.from_json(data)
        for warning in warnings:
            log.warning("settings: %s", warning)
            if announce:
                self.show(types.MessageType.Warning, warning)
            else:
                self.pending_warnings.append(warning)
        previous, self.settings = self.settings, settings
        if not announce:
            return  # the model loads after `initialized`
        if self.options.checkpoint is None and settings.checkpoint != previous.checkpoint:
            log.info("checkpoint setting changed to %s; reloading the model", settings.checkpoint)
            self.start_task(self.load_model())
        elif settings != previous and self.slot.model is not None:
            self.start_task(self._update_model_settings(settings))

    async def load_model(self) -> None:
        """Load the model on the inference thread, reporting progress; failures become a message.

        When the folder of the `checkpoint` setting cannot be loaded, the server reports the failure
        and keeps the model it was serving, or else loads the shipped one, so that a typo in a setting
        does not leave the editor without suggestions. A --checkpoint given on the command line has no
        fallback.
        """
        self.slot.generation += 1
        generation = self.slot.generation
        previous = self.slot.model or self.slot.last_served
        self.slot.last_served = previous
        self.slot.loading, self.slot.model = True, None
        token = await self._create_progress(generation)
        if token is not None:
            self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title="tiny-copilot", message="loading the model"))
        settings = self.settings
        try:
            model = await self.worker.run(partial(load_model, self.options.checkpoint, settings))
            self.slot.error = None
        except JobCancelled:
            log.info("model loading cancelled: the server is shutting down")
            return
        except Exception as exc:  # noqa: BLE001 - the server stays up to serve a later, working checkpoint
            if isinstance(exc, ModelLoadError):
                log.error("cannot load the model: %s", exc)
                problem = f"cannot load the model: {str(exc).rstrip('.')}"  # a ". Still serving" may follow
            else:
                log.exception("loading the model failed")
                problem = f"loading the model failed: {exc!r}; see the server log"
            self.slot.error = problem
            model = await self._fallback_model(previous, settings)
            if model is None:
                self.show(types.MessageType.Error, f"{problem}.")
            elif model is previous:
                self.show(types.MessageType.Error, f"{problem}. Still serving {model.path}.")
            else:
                self.show(types.MessageType.Error, f"{problem}. Serving the shipped model until the setting names a folder that loads.")
        if generation == self.slot.generation:
            self.slot.model, self.slot.loading = model, False
            self.slot.last_served = None
            if model is not None and self.settings != settings:
                # Settings other than the checkpoint changed while the model was loading.
                self.start_task(self._update_model_settings(self.settings))
        if token is not None:
            # The Neovim plugin's :checkhealth reads these two messages (model_state in its init.lua).
            done = "model ready" if model is not None else "model not loaded"
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=done))

    async def _fallback_model(self, previous: LoadedModel | None, settings: ServerSettings) -> LoadedModel | None:
        """Return the model to serve after the `checkpoint` setting's folder failed to load, or None."""
        if self.options.checkpoint is not None or settings.checkpoint is None:
            return None  # the failed folder came from --checkpoint, or was the shipped model itself
        if previous is not None:
            return previous
        shipped = dataclasses.replace(settings, checkpoint=None)
        try:
            return await self.worker.run(partial(load_model, None, shipped))
        except JobCancelled:
            return None
        except Exception:  # noqa: BLE001 - the first failure is what the user is told about
            log.exception("loading the shipped model failed too, so no model is served")
            return None

    async def _create_progress(self, generation: int) -> str | None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return None
        token = f"tiny-copilot-load-{generation}"
        try:
            await self.work_done_progress.create_async(token)
        except (JsonRpcException, asyncio.TimeoutError) as exc:
            log.warning("window/workDoneProgress/create failed, so no progress is shown: %s", exc)
            return None
        return token

    async def _update_model_settings(self, settings: ServerSettings) -> None:
        model = self.slot.model
        if model is None:
            return
        updated = await self.worker.run(lambda is_cancelled: model.with_settings(settings))
        if self.slot.model is model:
            self.slot.model = updated

    async def pull_settings(self) -> None:
        """Ask for our section with workspace/configuration (clients that send no settings)."""
        params = types.ConfigurationParams(items=[types.ConfigurationItem(section=SETTINGS_SECTION)])
        try:
            values = await self.workspace_configuration_async(params)
        except JsonRpcException as exc:
            log.warning("workspace/configuration failed: %s", exc)
            return
        # lsprotocol structures the array as a tuple; a result that failed validation stays as sent.
        if not isinstance(values, (list, tuple)):
            log.warning("workspace/configuration returned %.80s, not an array; using the default settings", json.dumps(values))
            values = None
        self.apply_settings(values[0] if values else None)

    async def watch_parent(self, pid: int) -> None:
        """Exit when the editor process `pid` is gone, even if it left our stdin open."""
        while True:
            await asyncio.sleep(PARENT_POLL_S)
            if not _process_alive(pid):
                log.warning("editor process %d is gone; exiting", pid)
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os._exit(1)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists but belongs to another user
    return True


def build_server(options: ServerOptions) -> TinyCopilotServer:
    server = TinyCopilotServer(options)
    _register_lifecycle(server)
    _register_documents(server)
    _register_completion(server)
    if options.debug_commands:
        _register_debug_command(server)
    return server


def _register_lifecycle(server: TinyCopilotServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: TinyCopilotServer, params: types.InitializeParams) -> None:
        ls._loop = asyncio.get_running_loop()
        ls.suggester.encoding = positions.normalize_encoding(ls.workspace.position_encoding)
        log.info("client %s; position encoding %s", params.client_info, ls.suggester.encoding)
        ls.apply_settings(params.initialization_options, announce=False)

    @server.feature(types.INITIALIZED)
    def initialized(ls: TinyCopilotServer, params: types.InitializedParams) -> None:
        for warning in ls.pending_warnings:
            ls.show(types.MessageType.Warning, warning)
        ls.pending_warnings.clear()
        parent_pid = ls.process_id or os.getppid()
        ls.start_task(ls.watch_parent(parent_pid))
        ls.start_task(ls.load_model())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: TinyCopilotServer, params: types.DidChangeConfigurationParams) -> None:
        workspace = ls.client_capabilities.workspace
        if params.settings is None and workspace is not None and workspace.configuration:
            ls.start_task(ls.pull_settings())
        else:
            ls.apply_settings(params.settings)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: TinyCopilotServer, params: None) -> None:
        log.info("shutdown requested; cache hit rate %.1f%%", 100 * ls.suggester.cache_stats.hit_rate)
        ls.worker.close()


def _register_documents(server: TinyCopilotServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TinyCopilotServer, params: types.DidOpenTextDocumentParams) -> None:
        document = ls.documents.open(params.text_document)
        log.debug("opened %s (%s, %d characters)", document.uri, document.language_id, len(document.text))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TinyCopilotServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.documents.change(params, ls.suggester.encoding)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TinyCopilotServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.close(params.text_document.uri)
        ls.start_task(ls.suggester.forget(params.text_document.uri))


def _register_completion(server: TinyCopilotServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: TinyCopilotServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        selected = params.context.selected_completion_info if params.context else None
        edit = await ls.suggester.suggest(params.text_document.uri, params.position, selected)
        if edit is None:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=edit.text, range=edit.range)])

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def completion(ls: TinyCopilotServer, params: types.CompletionParams) -> types.CompletionList:
        edit = await ls.suggester.suggest(params.text_document.uri, params.position)
        if edit is None:
            return types.CompletionList(is_incomplete=True, items=[])
        item = types.CompletionItem(
            label=_completion_label(edit.text),
            kind=types.CompletionItemKind.Text,
            detail="tiny-copilot",
            insert_text=edit.text,
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(range=edit.range, new_text=edit.text),
            sort_text="0",
        )
        return types.CompletionList(is_incomplete=True, items=[item])


def _completion_label(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else text
    return first_line if len(first_line) <= 60 else first_line[:59] + "…"


def _register_debug_command(server: TinyCopilotServer) -> None:
    @server.command(DEBUG_DOCUMENT_COMMAND)
    def document_state(ls: TinyCopilotServer, uri: str, line: int = 0, character: int = 0) -> dict[str, Any] | None:
        document = ls.documents.get(uri)
        if document is None:
            return None
        context = cursor_context(document, types.Position(line=line, character=character), ls.suggester.encoding)
        stats = ls.worker.stats
        return {
            "text": document.text,
            "version": document.version,
            "encoding": ls.suggester.encoding,
            "lineEnding": context.line_ending,
            "prefix": context.text_lf[: context.offset_lf],
            "suffix": context.text_lf[context.offset_lf :],
            "position": {"line": context.position.line, "character": context.position.character},
            "modelReady": ls.slot.model is not None,
            "modelPath": str(ls.slot.model.path) if ls.slot.model is not None else None,
            "jobsRun": stats.jobs_run,
            "jobsSkipped": stats.jobs_skipped,
            "maxConcurrentJobs": stats.max_concurrent,
            "cacheHitRate": ls.suggester.cache_stats.hit_rate,
            "promptTokens": ls.suggester.cache_stats.prompt_tokens,
            "reusedTokens": ls.suggester.cache_stats.reused_tokens,
            "meanPromptTokens": ls.suggester.cache_stats.mean_prompt_tokens,
            "handlerLatencyMs": {
                "p50": ls.suggester.latency.percentile(50),
                "p95": ls.suggester.latency.percentile(95),
                "requests": len(ls.suggester.latency.samples_ms),
            },
        }
