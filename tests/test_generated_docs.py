"""Generated documents must match the files they are generated from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["benchmarks/model_card.py", "benchmarks/report.py"])
def test_generated_document_is_up_to_date(script: str) -> None:
    result = subprocess.run([sys.executable, script, "--check"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_card_lists_earlier_step_folders() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import model_card
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    manifest = {
        "files": [{"path": "python/flask/app.py", "split": "train"}, {"path": "python/flask/cli.py", "split": "val"}],
        "languages": {},
    }
    config = {"parent": {"corpus_folders": {"python/flask": 3, "cpp/boost-more": 760}, "parent": None}}

    earlier = model_card.earlier_folders(config, manifest)
    rows = model_card.source_rows(manifest, earlier)

    assert earlier == {"cpp/boost-more": {1: 760}}
    assert any(row.startswith("| `cpp/boost-more` |") and "760 in step 1 (not in the last corpus)" in row for row in rows)
    assert any(row.startswith("| `python/flask` |") and row.endswith("| 1 | 1 |") for row in rows)
