"""The README's settings table must list exactly the server's settings, with their defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tiny_copilot.server.settings import settings_schema

ROOT = Path(__file__).resolve().parent.parent


def settings_rows(readme: Path) -> dict[str, str]:
    text = readme.read_text(encoding="utf-8")
    table = text.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0]
    return {match[0]: match[1] for match in re.findall(r"^\| `(\w+)` \| [^|]+ \| `([^`]*)` \|", table, re.MULTILINE)}


def test_readme_settings_match_server_defaults() -> None:
    rows = settings_rows(ROOT / "README.md")

    expected = {entry["name"]: json.dumps(entry["default"]) for entry in settings_schema()}
    assert rows == expected


def test_chinese_readme_lists_the_same_settings() -> None:
    assert settings_rows(ROOT / "README.zh-CN.md").keys() == settings_rows(ROOT / "README.md").keys()
