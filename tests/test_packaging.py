"""The wheel that `pip install .` builds: no setuptools warnings, and the shipped model inside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "model", "training", "server")
SHIPPED_FILES = ("model.safetensors", "config.json", "tokenizer.json", "MODEL_CARD.md")


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Build the wheel from a copy of the sources, so no build/ or egg-info lands in the working tree."""
    if not (REPO / "model" / "shipped" / "model.safetensors").is_file():
        pytest.skip("this checkout has no shipped model")
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--verbose", str(source), "-w", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("tiny_copilot-*.whl")
    return wheel, result.stdout + result.stderr


@pytest.mark.slow
def test_wheel_builds_without_package_warnings(built_wheel: tuple[Path, str]) -> None:
    _, output = built_wheel
    assert "absent from the `packages` configuration" not in output
    assert "BuildBackendWarning" not in output


@pytest.mark.slow
def test_wheel_contains_shipped_model(built_wheel: tuple[Path, str]) -> None:
    wheel, _ = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED_FILES:
        assert f"tiny_copilot/model/shipped/{name}" in names


@pytest.mark.slow
def test_installed_wheel_finds_shipped_model(built_wheel: tuple[Path, str], tmp_path: Path) -> None:
    wheel, _ = built_wheel
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S skips site-packages, so the import cannot resolve to the editable install of the working tree.
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from importlib import resources; import tiny_copilot.model; "
        "shipped = resources.files('tiny_copilot.model').joinpath('shipped'); "
        "print(tiny_copilot.model.__file__); print(*sorted(p.name for p in shipped.iterdir()))"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script, str(site)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    module_file, listing = result.stdout.splitlines()
    assert Path(module_file).is_relative_to(site)
    for name in SHIPPED_FILES:
        assert name in listing.split()
