#!/usr/bin/env bash
# Build build/tiny-copilot.vsix: type-check, bundle with esbuild, package with vsce.
# Run `npm ci --ignore-scripts` once before, or use scripts/install-test-deps.sh, which does both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

npx --no-install tsc --noEmit -p .
node esbuild.mjs
mkdir -p build
# --no-dependencies: esbuild already put vscode-languageclient into dist/extension.js.
npx --no-install vsce package --no-dependencies --allow-missing-repository \
    --out build/tiny-copilot.vsix
