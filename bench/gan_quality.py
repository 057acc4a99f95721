"""Train the GANs of a preset on the demo data and draw what they learned.

Runs ``ctqc train`` (default preset unless --config), then writes
- ``docs/gan_samples.png``: EMA samples per class next to real training images;
- ``docs/gan_quality.png``: the trainer's quality signal (KID and nearest-
  neighbour distance to the validation images) and losses over epochs.
Prints the training time and the first/last quality values (last line).

    python bench/gan_quality.py [--config default] [--set gan.epochs=...] [--run DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent.parent / "docs"


def read_stats(path: Path) -> tuple[list[dict], list[dict]]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["kind"] == "quality"], [r for r in records if r["kind"] == "loss"]


def plot_quality(units: dict[str, Path], out: Path) -> dict[str, tuple[float, float]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    summary = {}
    for (name, stats), colour in zip(units.items(), ("#0072B2", "#D55E00", "#009E73", "#CC79A7")):
        quality, loss = read_stats(stats)
        epochs = [q["epoch"] for q in quality]
        kid = [q["kid_val"] for q in quality]
        axes[0].plot(epochs, kid, marker="o", ms=3, color=colour, label=name)
        axes[1].plot(epochs, [q["nn_val"] for q in quality], marker="o", ms=3, color=colour, label=name)
        axes[2].plot([r["epoch"] for r in loss], [r["loss_d"] for r in loss], color=colour, alpha=0.8, label=f"{name} D")
        axes[2].plot([r["epoch"] for r in loss], [r["loss_g"] for r in loss], color=colour, alpha=0.8, ls="--", label=f"{name} G")
        summary[name] = (kid[0], kid[-1])
    axes[0].set(title="KID to validation images (×1000, lower is better)", xlabel="epoch", ylabel="KID ×1000")
    axes[1].set(title="Val → nearest sample distance", xlabel="epoch", ylabel="feature distance")
    axes[2].set(title="Losses", xlabel="epoch", ylabel="loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return summary


def sample_grid(run: Path, out: Path, per_row: int = 10) -> None:
    """Rows: real training images and EMA samples for each class (32 px shown at 2×)."""
    import pandas as pd
    from PIL import Image

    index = pd.read_csv(run / "samples" / "index.csv")
    from ctqc.config import load_config
    from ctqc.data import load_dataset
    from ctqc.splits import Splits

    cfg = load_config(run / "config.yaml")
    data = load_dataset(cfg.data)
    train = Splits.load(run / "splits.csv").development(data, 0).train
    rows = []
    for key in cfg.data.classes:
        real = train.images[train.labels == key][:per_row, 0].numpy()
        rows.append(((real + 1) * 127.5).round().astype(np.uint8))
        files = index[(index["label"] == key) & (index["fold"] == 0)]["file"][:per_row]
        rows.append(np.stack([np.asarray(Image.open(run / "samples" / f)) for f in files]))
    size = rows[0].shape[-1]
    canvas = np.full((len(rows) * (size + 2), per_row * (size + 2)), 40, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            canvas[r * (size + 2) : r * (size + 2) + size, c * (size + 2) : c * (size + 2) + size] = img
    Image.fromarray(canvas).resize((canvas.shape[1] * 2, canvas.shape[0] * 2), Image.NEAREST).save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--run", type=Path, help="draw an existing run instead of training")
    args = parser.parse_args()
    if args.run is None:
        from ctqc.config import load_config
        from ctqc.pipeline import run_pipeline

        start = time.perf_counter()
        run = run_pipeline(load_config(args.config, args.overrides), new=True, stages=("train", "generate")).run.path
        print(f"trained {run} in {time.perf_counter() - start:.0f} s")
    else:
        run = args.run.resolve()
    DOCS.mkdir(exist_ok=True)
    units = {p.name: p / "stats.jsonl" for p in sorted((run / "gan" / "fold0").iterdir())}
    summary = plot_quality(units, DOCS / "gan_quality.png")
    sample_grid(run, DOCS / "gan_samples.png")
    print(f"wrote {DOCS / 'gan_samples.png'} and {DOCS / 'gan_quality.png'}")
    print("quality signal KID×1000 first → last: " + ", ".join(f"{k} {a:.1f} → {b:.1f}" for k, (a, b) in summary.items()))


if __name__ == "__main__":
    main()
