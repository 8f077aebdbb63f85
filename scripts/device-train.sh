#!/usr/bin/env bash
# Train a model on a borrowed GPU machine that has PyTorch but no network, in one command.
#
# 1. Here, once. This writes .device/ (14 MB), which .gitignore lists:
#        bash scripts/device-train.sh prepare
# 2. On the GPU machine, from the repository root. The outputs go to $OUT:
#        bash scripts/device-train.sh train --preset medium --seq-len 1024 --time-budget 6m
# 3. Back here. FILES is the folder that the outputs came back to:
#        bash scripts/device-train.sh unpack FILES runs/gpu
#        .venv/bin/python scripts/ship-model.py runs/gpu
#
# `train` passes its arguments to `tiny-copilot train` with the large corpus as --data, so the same
# command trains on a CPU or a GPU. The GPU machine's python3 must provide torch, tokenizers,
# safetensors, numpy, matplotlib and tqdm; `prepare` downloads the two other packages that training
# imports as wheels. The checkpoint comes back without the optimizer state (too large to fetch), so
# such a run cannot be resumed here. The outputs are split into parts of at most 15 MB because
# the device tool returns files of at most 16 MB.
# NOTE: not yet run on a CUDA machine. It was checked on a CPU, with a virtual environment that holds
# only the GPU machine's packages, and by tests/training/test_device_script.py.
set -euo pipefail

stash=${DEVICE_STASH:-.device}
python=${PYTHON:-python3}

prepare() {
    mkdir -p "$stash"
    rm -rf "$stash/wheels" "$stash/corpus"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$stash/wheels" pathspec==1.1.1 platformdirs==4.14.9
    bash scripts/build-large-corpus.sh "$stash/corpus"
    tar -C "$stash" -cf - corpus | xz -T0 -6 > "$stash/corpus.tar.xz"
    rm -rf "$stash/corpus"
    echo "device-train: prepared $(du -sh "$stash" | cut -f1) in $stash; carry it with the train command"
}

train() {
    : "${OUT:?device-train: set OUT to the folder where the outputs go}"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    local wheels=()
    shopt -s nullglob
    wheels=("$stash"/wheels/*.whl)
    shopt -u nullglob
    if [ ${#wheels[@]} -gt 0 ]; then
        "$python" -m pip install --quiet --no-index --no-deps --no-compile --target "$work/site" "${wheels[@]}"
    fi
    # Installed, the package maps model/, training/ and server/ to tiny_copilot.*. Links give the same
    # import names without installing its other requirements, which training does not import.
    mkdir -p "$work/pkg/tiny_copilot"
    for part in model training server; do ln -s "$PWD/$part" "$work/pkg/tiny_copilot/$part"; done
    tar -C "$work" -xJf "$stash/corpus.tar.xz"
    export PYTHONPATH="$work/pkg:$work/site" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
    "$python" -c 'import torch; print("torch", torch.__version__, "CUDA available:", torch.cuda.is_available())'
    local status=0
    "$python" -m tiny_copilot.training.cli -v train --data "$work/corpus" --out "$work/run" "$@" 2>&1 |
        tee "$OUT/train.log" || status=$?
    if [ -d "$work/run/checkpoint" ]; then
        # A failed run may still have saved a checkpoint worth keeping, so it comes back either way.
        rm -f "$work/run/checkpoint/optimizer.safetensors"
        # The token files in run/data stay behind: the corpus rebuilds them, and they would not fit.
        tar -C "$work" --exclude=run/data -cf - run | split -b 15M - "$OUT/run.tar.part-"
    fi
    ls -la "$OUT"
    return "$status"
}

unpack() {
    local files=${1:?usage: scripts/device-train.sh unpack FILES_DIR RUN_DIR} dest=${2:?usage: scripts/device-train.sh unpack FILES_DIR RUN_DIR}
    if [ -e "$dest" ]; then
        echo "device-train: $dest already exists. Give a folder that does not exist yet." >&2
        exit 1
    fi
    mkdir -p "$dest"
    cat "$files"/run.tar.part-* | tar -C "$dest" -xf - --strip-components=1
    cp "$files/train.log" "$dest/"
    echo "device-train: unpacked the run into $dest"
}

command=${1:-}
shift || true
case "$command" in
    prepare) prepare ;;
    train) train "$@" ;;
    unpack) unpack "$@" ;;
    *) echo "usage: scripts/device-train.sh prepare | train TRAIN_ARGS... | unpack FILES_DIR RUN_DIR" >&2; exit 2 ;;
esac
