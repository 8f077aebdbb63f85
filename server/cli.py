"""`tiny-copilot-lsp`: the completion server over stdio.

stdout carries only LSP messages; logs go to stderr or --log-file. Exit codes follow the LSP:
0 after shutdown + exit (or end of input after shutdown), 1 when exit or the end of input comes
without shutdown, or when the editor process disappears.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .lsp import ServerOptions, build_server
from .stdio import BoundedInput

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tiny-copilot-lsp",
        description="Serve inline code completions from a tiny-copilot model over the Language Server Protocol (stdio).",
    )
    parser.add_argument(
        "--stdio", action="store_true", help="communicate over stdin/stdout (the only transport; accepted because editor clients pass it)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint folder to serve; overrides the editor's tinyCopilot.checkpoint setting (default: the shipped model)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v logs lifecycle events, -vv every request and LSP message, including document text",
    )
    parser.add_argument("--log-file", type=Path, help="append logs to this file instead of stderr")
    parser.add_argument(
        "--debug-commands",
        action="store_true",
        help="offer the workspace/executeCommand tinyCopilot.debug.documentState, which tests and benchmarks "
        "read the server's state with (implied by -vv)",
    )
    return parser.parse_args(argv)


def configure_logging(verbosity: int, log_file: Path | None) -> None:
    """Log at WARNING, INFO (-v) or DEBUG (-vv); pygls stays at WARNING below -vv because it logs whole messages."""
    handler: logging.Handler
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def serve(argv: list[str] | None = None) -> int:
    """Run the server until exit or the end of input; return the process exit code."""
    args = parse_args(argv)
    # Sleeping, not spinning, OpenMP waits: with the editor and a build busy, a spinning thread waits
    # for a sibling that is not running. torch loads later, on the inference thread, and reads this then.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        configure_logging(args.verbose, args.log_file)
    except OSError as exc:
        print(f"tiny-copilot-lsp: cannot open the log file {args.log_file}: {exc.strerror}; "
              "pass --log-file a path in an existing, writable folder", file=sys.stderr)  # fmt: skip
        return 2
    options = ServerOptions(checkpoint=args.checkpoint, debug_commands=args.debug_commands or args.verbose >= 2)
    server = build_server(options)
    log.info("tiny-copilot-lsp %s starting (pid %d)", server.version, os.getpid())

    # Anything a library prints must not corrupt the protocol stream, so print() goes to stderr.
    protocol_stdout = sys.stdout.buffer
    sys.stdout = sys.stderr
    stdin = BoundedInput(sys.stdin.buffer, on_dropped=server.report_dropped_message)
    server.start_io(stdin, protocol_stdout)  # type: ignore[arg-type]

    protocol = server.tiny_protocol
    if protocol.exit_code is not None:
        code = protocol.exit_code
    else:
        code = 0 if protocol.shutdown_received else 1
        log.info("input closed %s shutdown", "after" if code == 0 else "without")
    log.info("exiting with code %d", code)
    server.worker.close()
    return code


def main() -> None:
    code = serve()
    logging.shutdown()
    # os._exit, because a generation still running on the daemon inference thread must not delay
    # the exit, and pygls' thread pool may hold a thread blocked reading a stdin the client keeps open.
    os._exit(code)


if __name__ == "__main__":
    main()
