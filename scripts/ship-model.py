#!/usr/bin/env python3
"""Copy a finished training run into model/shipped as the default model.

    .venv/bin/python scripts/ship-model.py RUN_DIR

Writes the weights as bfloat16 (half the size, and the server computes in float32 either way), the
tokenizer, config.json with the run's metadata, the corpus manifest, metrics.jsonl and loss.png. The
optimizer state stays behind. Regenerate the card and the evaluation afterwards: the README's
"The shipped model" section lists the commands.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from tiny_copilot.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "model" / "shipped"
# config.json keys that save_checkpoint writes itself; the run's values must not override them.
WRITTEN_BY_SAVE = ("format", "format_version", "model", "tokenizer_sha256", "weights_dtype")
RUN_FILES = ("metrics.jsonl", "loss.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run folder written by `tiny-copilot train --out`")
    args = parser.parse_args(argv)

    try:
        checkpoint = load_checkpoint(args.run_dir / "checkpoint")
    except CheckpointError as exc:
        print(f"ship-model: {exc}", file=sys.stderr)
        return 1
    missing = [name for name in RUN_FILES if not (args.run_dir / name).is_file()]
    if missing:
        print(f"ship-model: {args.run_dir} has no {', '.join(missing)}; pass the folder that `tiny-copilot train --out` wrote", file=sys.stderr)
        return 1

    meta = {key: value for key, value in checkpoint.meta.items() if key not in WRITTEN_BY_SAVE}
    init = (meta.get("training_config") or {}).get("init_checkpoint")
    if init == "default" or (init is not None and Path(init).resolve() == SHIPPED.resolve()):
        # "fine-tuned from model/shipped" would read as fine-tuned from itself once it is shipped there.
        meta["preset"] = "fine-tuned from the previous shipped model"
    card = SHIPPED / "MODEL_CARD.md"
    card_text = card.read_text(encoding="utf-8") if card.is_file() else None
    save_checkpoint(SHIPPED, checkpoint.model, checkpoint.tokenizer, meta, weights_dtype=torch.bfloat16)
    shutil.copy2(checkpoint.path / "corpus_manifest.json", SHIPPED / "corpus_manifest.json")
    for name in RUN_FILES:
        shutil.copy2(args.run_dir / name, SHIPPED / name)
    if card_text is not None:
        # save_checkpoint replaced the folder; the card stays until model_card.py rewrites it.
        card.write_text(card_text, encoding="utf-8")
    print(f"ship-model: wrote {SHIPPED} from step {checkpoint.meta.get('step')} of {args.run_dir}")
    print("next: benchmarks/ablations.py, tiny-copilot eval --out benchmarks/eval/shipped, benchmarks/model_card.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
