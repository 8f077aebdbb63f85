"""Rewrite the server settings in package.json from `settings_schema()` in server/settings.py.

Usage: .venv/bin/python editor-clients/vscode/scripts/sync_settings.py [--check]

Server settings appear in package.json as `tinyCopilot.<name>`, one per `ServerSettings` field,
after the client's own settings, which this script leaves as they are. With --check it only
reports whether package.json is up to date (exit status 1 when not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tiny_copilot.server.settings import SETTINGS_SECTION, settings_schema

PACKAGE_JSON = Path(__file__).resolve().parent.parent / "package.json"

CLIENT_SETTING_KEYS = ("enable", "serverPath", "pythonPath", "trace.server")
"""Settings that only the extension reads. They must match CLIENT_SETTING_KEYS in src/settings.ts."""


def server_properties() -> dict[str, dict[str, Any]]:
    """Build the package.json configuration entries for every server setting."""
    properties: dict[str, dict[str, Any]] = {}
    for entry in settings_schema():
        prop: dict[str, Any] = {"type": entry["type"], "default": entry["default"]}
        if entry["type"] == "array":
            prop["items"] = {"type": "string"}
        for keyword in ("enum", "minimum", "maximum"):
            if keyword in entry:
                prop[keyword] = entry[keyword]
        prop["description"] = entry["description"]
        properties[f"{SETTINGS_SECTION}.{entry['name']}"] = prop
    return properties


def synced_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return `manifest` with the client settings kept and the server settings regenerated."""
    old = manifest["contributes"]["configuration"]["properties"]
    client_names = {f"{SETTINGS_SECTION}.{key}" for key in CLIENT_SETTING_KEYS}
    properties = {name: prop for name, prop in old.items() if name in client_names}
    properties.update(server_properties())
    manifest["contributes"]["configuration"]["properties"] = properties
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether package.json is up to date")
    args = parser.parse_args(argv)

    current = PACKAGE_JSON.read_text(encoding="utf-8")
    updated = json.dumps(synced_manifest(json.loads(current)), indent=2, ensure_ascii=False) + "\n"
    if updated == current:
        print(f"{PACKAGE_JSON}: server settings are up to date")
        return 0
    if args.check:
        print(f"{PACKAGE_JSON}: server settings differ from settings_schema(); run {Path(__file__).name} to update")
        return 1
    PACKAGE_JSON.write_text(updated, encoding="utf-8")
    print(f"{PACKAGE_JSON}: server settings rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
