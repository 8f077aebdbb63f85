"""How the VS Code extension finds the language server (src/serverLocator.ts), run in Node:
the configured path, the configured Python, then PATH, with clear errors otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "editor-clients" / "vscode"
ESBUILD = EXTENSION_DIR / "node_modules" / ".bin" / "esbuild"
SYSTEM_PYTHON = Path("/usr/bin/python3")

RUNNER = """
const [modulePath, optionsJson] = process.argv.slice(1);
const { locateServer } = await import(modulePath);
try {
  console.log(JSON.stringify(await locateServer(JSON.parse(optionsJson))));
} catch (error) {
  console.log(JSON.stringify({ errorName: error.name, message: error.message }));
}
"""


@pytest.fixture(scope="module")
def locator_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundle src/serverLocator.ts into an ES module that plain Node can import."""
    if shutil.which("node") is None or not ESBUILD.exists():
        reason = f"needs Node.js and the extension's npm packages (run {EXTENSION_DIR.relative_to(REPO)}/scripts/install-test-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    output = tmp_path_factory.mktemp("locator") / "serverLocator.mjs"
    subprocess.run(
        [str(ESBUILD), "src/serverLocator.ts", "--bundle", "--platform=node", "--format=esm", f"--outfile={output}"],
        cwd=EXTENSION_DIR,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return output


def locate(module: Path, *, server_path: str = "", python_path: str = "", search_path: str = "", home: Path | None = None) -> dict[str, Any]:
    options = {"serverPath": server_path, "pythonPath": python_path, "searchPath": search_path}
    env = dict(os.environ)
    if home is not None:
        env["HOME"] = str(home)
    completed = subprocess.run(
        ["node", "--input-type=module", "-e", RUNNER, module.as_uri(), json.dumps(options)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    return json.loads(completed.stdout)


def make_executable(folder: Path, name: str = "tiny-copilot-lsp", mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_path_search_skips_non_executable(locator_module: Path, tmp_path: Path) -> None:
    make_executable(tmp_path / "first", mode=0o644)
    found = make_executable(tmp_path / "second")
    result = locate(locator_module, search_path=f"{tmp_path / 'missing'}:{tmp_path / 'first'}:{tmp_path / 'second'}")

    assert result == {"command": str(found), "args": [], "origin": "PATH"}


def test_nothing_found_names_install_command(locator_module: Path, tmp_path: Path) -> None:
    result = locate(locator_module, search_path=str(tmp_path))

    assert result["errorName"] == "ServerNotFoundError"
    assert "not on PATH" in result["message"]
    assert "pip install /path/to/tiny-copilot" in result["message"]


def test_server_path_wins_over_path(locator_module: Path, tmp_path: Path) -> None:
    configured = make_executable(tmp_path / "configured")
    make_executable(tmp_path / "on-path")
    result = locate(locator_module, server_path=str(configured), search_path=str(tmp_path / "on-path"))

    assert result == {"command": str(configured), "args": [], "origin": "tinyCopilot.serverPath"}


def test_missing_server_path_is_error(locator_module: Path, tmp_path: Path) -> None:
    make_executable(tmp_path / "on-path")
    missing = tmp_path / "nowhere" / "tiny-copilot-lsp"
    result = locate(locator_module, server_path=str(missing), search_path=str(tmp_path / "on-path"))

    assert result["errorName"] == "ServerNotFoundError"
    assert "tinyCopilot.serverPath" in result["message"]
    assert str(missing) in result["message"]


def test_server_path_expands_home(locator_module: Path, tmp_path: Path) -> None:
    found = make_executable(tmp_path / "bin")
    result = locate(locator_module, server_path="~/bin/tiny-copilot-lsp", home=tmp_path)

    assert result["command"] == str(found)


def test_python_path_runs_server_module(locator_module: Path, tmp_path: Path) -> None:
    result = locate(locator_module, python_path=sys.executable, search_path=str(tmp_path))

    assert result == {
        "command": sys.executable,
        "args": ["-m", "tiny_copilot.server.cli"],
        "origin": "tinyCopilot.pythonPath",
    }


def test_python_without_package_is_error(locator_module: Path, tmp_path: Path) -> None:
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"needs a Python without tiny-copilot at {SYSTEM_PYTHON}")
    has_package = subprocess.run([str(SYSTEM_PYTHON), "-c", "import tiny_copilot.server"], capture_output=True).returncode == 0
    if has_package:
        pytest.skip(f"{SYSTEM_PYTHON} has tiny-copilot installed")
    result = locate(locator_module, python_path=str(SYSTEM_PYTHON), search_path=str(tmp_path))

    assert result["errorName"] == "ServerNotFoundError"
    assert "cannot import tiny_copilot.server.cli" in result["message"]
    assert f'"{SYSTEM_PYTHON}" -m pip install /path/to/tiny-copilot' in result["message"]


def test_missing_python_path_is_error(locator_module: Path, tmp_path: Path) -> None:
    result = locate(locator_module, python_path=str(tmp_path / "python3"))

    assert result["errorName"] == "ServerNotFoundError"
    assert "tinyCopilot.pythonPath" in result["message"]
