#!/usr/bin/env bash
# Install what the VS Code end-to-end test needs and build the extension's .vsix:
#   - code-server (VS Code in a browser) from npm into .tools/code-server,
#   - the extension's npm packages (playwright-core among them) from package-lock.json,
#   - build/tiny-copilot.vsix, rebuilt only when a source file is newer.
# It is idempotent and takes about a second when everything is already in place.
# The first run downloads from the npm registry only; see the notes in install_code_server.
set -euo pipefail

extension_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo_dir="$(cd "$extension_dir/../.." && pwd)"
tools_dir="${TINY_COPILOT_TOOLS_DIR:-$repo_dir/.tools}"
code_server_dir="$tools_dir/code-server"

# code-server 4.100.3 (VS Code 1.100.3) is the newest release that runs on Node 20;
# later releases declare engines.node 22 or 24.
CODE_SERVER_VERSION=4.100.3
# code-server depends on @vscode/ripgrep 1.15.11, whose postinstall downloads this ripgrep
# release from GitHub unless the archive is already in its cache folder under $TMPDIR.
RIPGREP_PACKAGE_VERSION=1.15.11
RIPGREP_RELEASE=v13.0.0-10

say() { printf 'install-test-deps: %s\n' "$*" >&2; }

installed_code_server_version() {
    local manifest="$code_server_dir/node_modules/code-server/package.json"
    [[ -f $manifest && -x $code_server_dir/node_modules/.bin/code-server ]] || return 0
    node -p 'require(process.argv[1]).version' "$manifest"
}

# Put Debian's ripgrep where @vscode/ripgrep looks for its cached download, so that its
# postinstall does not need api.github.com. Only x86_64 is mapped; elsewhere it downloads.
seed_ripgrep_cache() {
    local tmp_dir=$1 target
    case "$(uname -m)" in
        x86_64) target=x86_64-unknown-linux-musl ;;
        *) say "no ripgrep pre-seeding for $(uname -m); @vscode/ripgrep will download it"; return ;;
    esac
    if ! command -v rg >/dev/null; then
        say "ripgrep is not installed, so @vscode/ripgrep will try to download it from GitHub."
        say "Without network access to GitHub, install it first: apt-get install ripgrep"
        return
    fi
    local cache_dir="$tmp_dir/vscode-ripgrep-cache-$RIPGREP_PACKAGE_VERSION"
    mkdir -p "$cache_dir" "$tmp_dir/rg-package"
    cp "$(command -v rg)" "$tmp_dir/rg-package/rg"
    tar czf "$cache_dir/ripgrep-$RIPGREP_RELEASE-$target.tar.gz" -C "$tmp_dir/rg-package" rg
}

install_code_server() {
    if [[ "$(installed_code_server_version)" == "$CODE_SERVER_VERSION" ]]; then
        return
    fi
    say "installing code-server $CODE_SERVER_VERSION into $code_server_dir (about a minute)"
    if [[ ! -f /usr/include/gssapi/gssapi.h ]]; then
        say "warning: Kerberos headers are missing; if kerberos cannot download a prebuilt binary,"
        say "its source build fails. Install them with: apt-get install libkrb5-dev"
    fi

    local tmp_dir
    tmp_dir="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand tmp_dir now: it is local to this function
    trap "rm -rf '$tmp_dir'" EXIT
    seed_ripgrep_cache "$tmp_dir"

    mkdir -p "$code_server_dir"
    printf '{"private": true, "dependencies": {"code-server": "%s"}}\n' "$CODE_SERVER_VERSION" \
        >"$code_server_dir/package.json"
    # code-server's postinstall refuses to run as root without unsafe-perm, and node-pty's
    # postinstall runs `npx node-gyp`, which waits for a confirmation unless npm_config_yes is set.
    (
        cd "$code_server_dir"
        TMPDIR="$tmp_dir" npm_config_unsafe_perm=true npm_config_yes=true \
            npm install --no-audit --no-fund --foreground-scripts --loglevel=warn
    )
    [[ "$(installed_code_server_version)" == "$CODE_SERVER_VERSION" ]] || {
        say "code-server $CODE_SERVER_VERSION is still missing after npm install; see the npm output above"
        exit 1
    }
}

install_extension_packages() {
    # npm writes node_modules/.package-lock.json on every install; it is older than
    # package-lock.json only when the lock file changed since.
    local marker="$extension_dir/node_modules/.package-lock.json"
    if [[ -f $marker && ! "$extension_dir/package-lock.json" -nt $marker ]]; then
        return
    fi
    say "installing the extension's npm packages"
    # No package here needs its install script: esbuild finds its binary through an optional
    # dependency, and the one script that would run builds keytar, which vsce does not need
    # for `vsce package`.
    (cd "$extension_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=warn)
}

build_vsix() {
    local vsix="$extension_dir/build/tiny-copilot.vsix"
    if [[ -f $vsix ]] && [[ -z "$(find "$extension_dir/src" "$extension_dir/package.json" \
        "$extension_dir/package-lock.json" "$extension_dir/esbuild.mjs" "$extension_dir/README.md" \
        -newer "$vsix" -print -quit)" ]]; then
        return
    fi
    "$extension_dir/scripts/package.sh"
}

install_code_server
install_extension_packages
build_vsix
