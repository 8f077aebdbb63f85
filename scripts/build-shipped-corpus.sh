#!/usr/bin/env bash
# Assemble the corpus the shipped model was trained on, from Debian packages, PyPI wheels and the
# running CPython's standard library. Sources and licences are listed in benchmarks/model_card.py.
#
#   scripts/build-shipped-corpus.sh OUT_DIR
#
# Needs apt-get (Debian 12 "bookworm" package versions), dpkg-deb, pip and CPython 3.11.7 for the
# standard library. Compare the result with model/shipped/corpus_manifest.json: the corpus step of
# `tiny-copilot train` records every file's sha256 there.
set -euo pipefail

out=${1:?usage: scripts/build-shipped-corpus.sh OUT_DIR}
if [ -e "$out" ]; then
    echo "build-shipped-corpus: $out exists; give a new folder so that no stale file ends up in the corpus" >&2
    exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)  # absolute: later steps copy from inside other folders
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

debs=(libboost1.74-dev catch2 libcli11-dev libpython3.11-dev libfmt-dev libglm-dev nlohmann-json3-dev
      librange-v3-dev libspdlog-dev libstb-dev libutfcpp-dev libabsl-dev googletest)
(cd "$work" && apt-get download "${debs[@]}" >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
inc=$work/root/usr/include

copy() {  # copy SOURCE_DIR to OUT/DEST, keeping its tree
    mkdir -p "$out/$2"
    cp -r "$1/." "$out/$2/"
}

for lib in graph algorithm container unordered heap dynamic_bitset circular_buffer multi_array bimap; do
    copy "$inc/boost/$lib" "cpp/boost/$lib"
done
copy "$inc/catch2" cpp/catch2
copy "$inc/CLI" cpp/cli11
copy "$inc/python3.11" cpp/cpython-3.11-include
copy "$inc/fmt" cpp/fmt
copy "$inc/glm" cpp/glm
copy "$inc/nlohmann" cpp/nlohmann-json
copy "$inc/range" cpp/range-v3
copy "$inc/spdlog" cpp/spdlog
copy "$inc/stb" cpp/stb
copy "$inc/utf8cpp" cpp/utfcpp
# Added for the second shipped model: C++ that includes standard headers, not only its own.
copy "$inc/absl" cpp/abseil
copy "$work/root/usr/src/googletest" cpp/googletest

python_lib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
python_version=$(python3 -c 'import platform; print(platform.python_version())')
if [ "$python_version" != 3.11.7 ]; then
    echo "build-shipped-corpus: warning: the shipped corpus used CPython 3.11.7's library, this is $python_version" >&2
fi
mkdir -p "$out/python/cpython-3.11.7-Lib"
(cd "$python_lib" && find . -name '*.py' \
    -not -path './test/*' -not -path '*/tests/*' -not -path './idlelib/*' -not -path './tkinter/*' \
    -not -path './turtledemo/*' -not -path './lib2to3/*' -not -path './ensurepip/*' \
    -not -path './site-packages/*' -print0 |
    xargs -0 cp --parents -t "$out/python/cpython-3.11.7-Lib")

(cd "$work" && pip download --quiet --no-deps --dest wheels networkx==3.6.1 algorithms==1.0.1)
for wheel in networkx algorithms; do
    python3 -m zipfile -e "$work"/wheels/"$wheel"-*.whl "$work/$wheel"
    (cd "$work/$wheel" && find "$wheel" -name '*.py' -not -path '*/tests/*' -print0 |
        xargs -0 cp --parents -t "$out/python")
done
# The wheels' top folders are networkx/ and algorithms/, so they land as python/networkx and python/algorithms.
echo "build-shipped-corpus: wrote $(find "$out" -type f | wc -l) files to $out"
