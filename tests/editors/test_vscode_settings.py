"""The VS Code extension declares every server setting in package.json with the server's name,
type and default, and nothing else besides its own client settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tiny_copilot.server.settings import SETTINGS_SECTION, settings_schema

EXTENSION_DIR = Path(__file__).resolve().parents[2] / "editor-clients" / "vscode"

# Settings that only the extension reads (src/settings.ts, CLIENT_SETTING_KEYS).
CLIENT_SETTING_KEYS = {"enable", "serverPath", "pythonPath", "trace.server"}

SCHEMA_KEYWORDS = ("type", "default", "enum", "minimum", "maximum", "description")


def manifest_properties() -> dict[str, dict[str, Any]]:
    manifest = json.loads((EXTENSION_DIR / "package.json").read_text(encoding="utf-8"))
    return manifest["contributes"]["configuration"]["properties"]


def declared_server_settings() -> dict[str, dict[str, Any]]:
    prefix = SETTINGS_SECTION + "."
    return {
        name.removeprefix(prefix): prop
        for name, prop in manifest_properties().items()
        if name.removeprefix(prefix) not in CLIENT_SETTING_KEYS
    }


def test_manifest_settings_all_under_section() -> None:
    outside = [name for name in manifest_properties() if not name.startswith(SETTINGS_SECTION + ".")]
    assert outside == []


def test_manifest_declares_every_server_setting() -> None:
    missing = {entry["name"] for entry in settings_schema()} - set(declared_server_settings())
    assert missing == set(), "run editor-clients/vscode/scripts/sync_settings.py"


def test_manifest_declares_no_unknown_setting() -> None:
    unknown = set(declared_server_settings()) - {entry["name"] for entry in settings_schema()}
    assert unknown == set(), "the server would warn about these keys; remove them or add them to ServerSettings"


def test_manifest_declares_client_settings() -> None:
    declared = {name.removeprefix(SETTINGS_SECTION + ".") for name in manifest_properties()}
    assert CLIENT_SETTING_KEYS <= declared


def test_extension_source_lists_same_client_settings() -> None:
    source = (EXTENSION_DIR / "src" / "settings.ts").read_text(encoding="utf-8")
    match = re.search(r"CLIENT_SETTING_KEYS[^=]*=\s*new Set\(\[(.*?)\]\)", source, re.DOTALL)
    assert match is not None, "CLIENT_SETTING_KEYS not found in src/settings.ts"
    assert set(re.findall(r"'([^']+)'", match.group(1))) == CLIENT_SETTING_KEYS


@pytest.mark.parametrize("entry", settings_schema(), ids=lambda entry: entry["name"])
@pytest.mark.parametrize("keyword", SCHEMA_KEYWORDS)
def test_manifest_setting_matches_server(entry: dict[str, Any], keyword: str) -> None:
    declared = declared_server_settings().get(entry["name"])
    assert declared is not None, f"{SETTINGS_SECTION}.{entry['name']} is missing from package.json"
    assert declared.get(keyword) == entry.get(keyword)


def test_array_settings_declare_string_items() -> None:
    for entry in settings_schema():
        if entry["type"] == "array":
            assert declared_server_settings()[entry["name"]].get("items") == {"type": "string"}, entry["name"]
