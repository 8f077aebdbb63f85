#!/usr/bin/env bash
# Assemble a corpus about three times the shipped one, for training on a GPU: the shipped corpus
# (scripts/build-shipped-corpus.sh) plus more permissively licensed Python from PyPI wheels and
# more Boost libraries. Sources and licences are listed in benchmarks/model_card.py.
#
#   scripts/build-large-corpus.sh OUT_DIR
#
# The shipped corpus holds 10.7M training tokens: a GPU trains through that in about a minute, so a
# run of several minutes would repeat it many times over. Boost's sort, lockfree, icl, polygon and
# tokenizer libraries stay out, because the evaluation of code from other projects uses them.
set -euo pipefail

out=${1:?usage: scripts/build-large-corpus.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/build-shipped-corpus.sh" "$out"
out=$(cd "$out" && pwd)  # absolute: later steps copy from inside other folders
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && apt-get download libboost1.74-dev >/dev/null)
dpkg-deb -x "$work"/libboost1.74-dev_*.deb "$work/root"
boost=$work/root/usr/include/boost
# Only Boost libraries whose own #include <...> lines name a standard header at least a quarter of the
# time. With 29 libraries, standard headers made up 17% of the corpus's #include <...> lines (29% in
# the shipped corpus), and a model fine-tuned on it for 50 minutes completed `#include <` with
# `boost/geometry/core/access.hpp>`. With these 12 the share is 29% again.
for lib in outcome variant2 static_string nowide program_options property_tree regex date_time histogram \
           process beast random; do
    mkdir -p "$out/cpp/boost-more/$lib"
    cp -r "$boost/$lib/." "$out/cpp/boost-more/$lib/"
done

# Each wheel's licence was read from its METADATA and LICENSE file and is listed in benchmarks/model_card.py.
wheels=(sympy==1.13.3 Django==5.1.4 SQLAlchemy==2.0.36 Twisted==24.11.0 Pygments==2.18.0 requests==2.32.3
        flask==3.1.0 werkzeug==3.1.3 jinja2==3.1.4 click==8.1.7 rich==13.9.4 attrs==24.2.0)
(cd "$work" && pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --dest wheels "${wheels[@]}")
for spec in "${wheels[@]}"; do
    name=${spec%%==*}
    wheel=$(ls "$work"/wheels/ | grep -i "^${name}-")
    mkdir -p "$work/unpacked/$name"
    python3 -m zipfile -e "$work/wheels/$wheel" "$work/unpacked/$name"
    # Every top-level package of the wheel (attrs ships attr/ and attrs/), not its metadata folder.
    # Test folders are left out, as for the shipped corpus: they are mostly assertions on fixed values.
    (cd "$work/unpacked/$name" && find . -mindepth 2 -name '*.py' -not -path './*.dist-info/*' \
        -not -path '*/tests/*' -not -path '*/test/*' -print0 | xargs -0 cp --parents -t "$out/python")
done
echo "build-large-corpus: wrote $(find "$out" -type f | wc -l) files to $out"
