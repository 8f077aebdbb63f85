"""loss.png: training and validation loss against optimizer steps, drawn from metrics.jsonl rows."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_loss_plot(rows: Iterable[dict[str, Any]], path: Path) -> bool:
    """Draw the curves of `rows` into `path` (PNG, replaced atomically); return False when there is nothing to draw.

    Validation is drawn in bits per byte on a second axis, because that is the number to compare
    across tokenizers, while training loss stays in nats per token, the quantity the optimizer minimizes.
    """
    rows = list(rows)
    train = [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train"]
    val = [(r["step"], r["val_loss"], r["val_bpb"]) for r in rows if r.get("kind") == "val"]
    if not train and not val:
        return False

    # Agg renders without a display; importing pyplot only here keeps `--help` fast.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, loss_axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    if train:
        loss_axis.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="tab:blue", linewidth=1)
    if val:
        loss_axis.plot([s for s, _, _ in val], [v for _, v, _ in val], "o-", label="validation loss", color="tab:orange")
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("loss (nats per token)")
    loss_axis.grid(alpha=0.3)
    handles, labels = loss_axis.get_legend_handles_labels()
    if val:
        bpb_axis = loss_axis.twinx()
        bpb_axis.plot([s for s, _, _ in val], [b for _, _, b in val], "s--", label="validation bits/byte", color="tab:green")
        bpb_axis.set_ylabel("validation bits per byte")
        more_handles, more_labels = bpb_axis.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    loss_axis.legend(handles, labels, loc="upper right")
    figure.tight_layout()

    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary)
    plt.close(figure)
    os.replace(temporary, path)
    return True
