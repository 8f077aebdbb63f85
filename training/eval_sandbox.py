"""Run untrusted Python (model-written HumanEval programs) in a limited child process.

Each program runs in a fresh interpreter (`python -I -S`) with a temporary folder as its working
directory, an empty environment, CPU-time, address-space, file-size and core-dump limits set with
`resource.setrlimit`, and a wall-clock timeout after which its whole process group is killed. Where
the kernel allows unprivileged user namespaces, the child also moves into a new network namespace, in
which even loopback is down, so it cannot reach any host. This is a containment layer for model output
that is merely wrong, not a security boundary against a determined attacker: the program can still
read files that the user can read.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

NetworkIsolation = Literal["unshare(2)", "unshare -rn", "none"]
SandboxStatus = Literal["passed", "failed", "timeout"]

# Exit status of the child when it was asked to isolate the network and could not.
_ISOLATION_FAILED_RC = 97
_STDERR_TAIL_CHARS = 2000

# Runs inside the child before the program: network namespace first (unshare needs no memory to
# speak of), then the limits, then the program itself with `__name__ == "__main__"`.
_CHILD_SOURCE = r"""
import ctypes, resource, sys
path, memory_bytes, cpu_s, file_bytes, isolate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if isolate == "1":
    CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        sys.stderr.write("sandbox: unshare(CLONE_NEWUSER|CLONE_NEWNET) failed, errno %d\n" % ctypes.get_errno())
        sys.exit(97)
resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
with open(path, encoding="utf-8") as handle:
    source = handle.read()
del ctypes, resource, handle, path, memory_bytes, cpu_s, file_bytes, isolate
exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed run."""

    timeout_s: float = 5.0
    """Wall-clock limit; the process group is killed after it."""
    memory_mb: int = 512
    """Address-space limit (RLIMIT_AS) of the child, in MiB."""
    file_size_mb: int = 16
    """Largest file the child may write (RLIMIT_FSIZE), in MiB."""
    isolate_network: bool = True
    """Move the child into a new network namespace when the system allows it."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"SandboxLimits.timeout_s must be > 0, got {self.timeout_s}")
        # The interpreter itself needs some address space before the program runs.
        if self.memory_mb < 64:
            raise ValueError(f"SandboxLimits.memory_mb must be >= 64, got {self.memory_mb}")
        if self.file_size_mb < 1:
            raise ValueError(f"SandboxLimits.file_size_mb must be >= 1, got {self.file_size_mb}")


@dataclass(frozen=True)
class SandboxResult:
    status: SandboxStatus
    returncode: int | None
    """Exit status of the child; None when it was killed after the timeout."""
    stderr_tail: str
    elapsed_s: float


def run_python(source: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `source` as a Python program in the sandbox; "passed" means it exited with status 0."""
    isolation = network_isolation() if limits.isolate_network else "none"
    with tempfile.TemporaryDirectory(prefix="tiny-copilot-sandbox-") as workdir:
        program = Path(workdir) / "program.py"
        program.write_text(source, encoding="utf-8")
        command = _child_command(program, limits, isolation)
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _, stderr = process.communicate()
            return SandboxResult("timeout", None, _tail(stderr), time.perf_counter() - started)
        elapsed_s = time.perf_counter() - started

    if process.returncode == _ISOLATION_FAILED_RC and b"sandbox: unshare" in stderr:
        raise RuntimeError(f"the sandbox could not isolate the network although the probe said it could: {_tail(stderr)}")
    status: SandboxStatus = "passed" if process.returncode == 0 else "failed"
    return SandboxResult(status, process.returncode, _tail(stderr), elapsed_s)


@lru_cache(maxsize=1)
def network_isolation() -> NetworkIsolation:
    """Probe once which way of cutting the network works here: unshare(2), the unshare tool, or none."""
    probe = SandboxLimits(timeout_s=10.0)
    with tempfile.TemporaryDirectory(prefix="tiny-copilot-probe-") as workdir:
        program = Path(workdir) / "program.py"
        program.write_text("pass\n", encoding="utf-8")
        for method in ("unshare(2)", "unshare -rn"):
            if method == "unshare -rn" and shutil.which("unshare") is None:
                continue
            command = _child_command(program, probe, method)
            try:
                done = subprocess.run(command, cwd=workdir, capture_output=True, timeout=probe.timeout_s)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                log.info("sandbox network isolation: %s", method)
                return method
            log.info("sandbox network isolation %s is unavailable: %s", method, _tail(done.stderr))
    log.warning("no network namespace is available; sandboxed programs keep network access")
    return "none"


def _child_command(program: Path, limits: SandboxLimits, isolation: NetworkIsolation) -> list[str]:
    # CPU time gets one second more than the wall clock, so a busy loop ends by the timeout first
    # and is reported as "timeout" rather than as a SIGXCPU failure.
    cpu_s = int(limits.timeout_s) + 1
    arguments = [
        str(program),
        str(limits.memory_mb * 1024 * 1024),
        str(cpu_s),
        str(limits.file_size_mb * 1024 * 1024),
        "1" if isolation == "unshare(2)" else "0",
    ]
    command = [sys.executable, "-I", "-S", "-c", _CHILD_SOURCE, *arguments]
    if isolation == "unshare -rn":
        command = ["unshare", "-rn", *command]
    return command


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended between the timeout and the kill


def _tail(stderr: bytes) -> str:
    return stderr.decode("utf-8", errors="replace")[-_STDERR_TAIL_CHARS:]
