"""The typing replay through a real `tiny-copilot-lsp` process."""

from pathlib import Path

from tiny_copilot.training.eval_data import EvalFile
from tiny_copilot.training.eval_replay import ReplayLimits, ReplaySpan, run_typing_replay

EARLIER_LOAD_MS = 98765


def test_replay_ignores_server_log_of_earlier_run(untrained_checkpoint: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "replay"
    workdir.mkdir()
    earlier = f"2026-01-01 00:00:00,000 INFO tiny_copilot.server.loading: loaded /old (1 parameters) in {EARLIER_LOAD_MS} ms\n"
    (workdir / "server.log").write_text(earlier, encoding="utf-8")
    text = "import os\n\n\ndef main():\n    return os.getcwd()\n"
    span = ReplaySpan(EvalFile("example.py", "python", text, "0" * 64), text[:24], text[24:])

    result = run_typing_replay(untrained_checkpoint, [span], workdir, ReplayLimits(max_files=1, max_chars_per_file=40))

    load_ms = result["cold_start"]["model_load_ms"]
    assert load_ms is not None
    assert load_ms != EARLIER_LOAD_MS
    assert str(EARLIER_LOAD_MS) not in (workdir / "server.log").read_text(encoding="utf-8")
