import socket

import pytest

from tiny_copilot.training.eval_sandbox import SandboxLimits, network_isolation, run_python


def test_sandbox_passes_a_clean_program():
    result = run_python("assert sum(range(4)) == 6\n")
    assert result.status == "passed"
    assert result.returncode == 0


def test_sandbox_reports_a_failing_assertion():
    result = run_python("assert 1 == 2, 'wrong'\n")
    assert result.status == "failed"
    assert "AssertionError: wrong" in result.stderr_tail


def test_sandbox_kills_an_infinite_loop():
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout"
    assert result.returncode is None
    assert result.elapsed_s < 5


def test_sandbox_kills_a_forked_child_on_timeout():
    program = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nwhile True:\n    pass\n"
    result = run_python(program, SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout"


def test_sandbox_stops_a_memory_hog():
    result = run_python("hog = bytearray(2 * 1024**3)\n", SandboxLimits(memory_mb=256))
    assert result.status == "failed"
    assert "MemoryError" in result.stderr_tail


def test_sandbox_runs_in_a_temporary_folder(tmp_path):
    program = "import os\nopen('left_behind.txt', 'w').write('x')\nprint(os.getcwd())\nassert 'tiny-copilot-sandbox-' in os.getcwd()\n"
    result = run_python(program)
    assert result.status == "passed", result.stderr_tail
    assert not (tmp_path / "left_behind.txt").exists()


def test_sandbox_blocks_network_when_available():
    if network_isolation() == "none":
        pytest.skip("this system allows no network namespace, so the sandbox cannot cut the network")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"

        isolated = run_python(program)
        open_network = run_python(program, SandboxLimits(isolate_network=False))

    assert isolated.status == "failed"
    assert "OSError" in isolated.stderr_tail
    assert open_network.status == "passed", "the same program must reach the port without isolation"


def test_sandbox_limits_reject_invalid_values():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=1)
