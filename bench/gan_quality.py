"""Train the GANs of a preset on the demo data, draw what they learned, and score them with a frozen C2ST.

Runs ``ctqc train`` and ``ctqc generate`` (default preset unless --config; the pool of
``gan.n_synthetic`` images per fold, as the demo draws it), then writes
- ``docs/gan_samples.png``: EMA samples per class next to real training images;
- ``docs/gan_quality.png``: the trainer's quality signal (KID and nearest-
  neighbour distance to the validation images) and losses over epochs.
Prints the train stage's wall time (from the run's manifest), the first/last quality
values, and per class the out-of-fold AUC of a **frozen** classifier two-sample test
(:func:`frozen_c2st_auc`) of the pool against the fold's real *training* images of that
class (what the demo's C2ST compares against) and, for information, against its
validation images; then the same AUC per feature group (pixels / FFT / histogram).

The frozen C2ST is the yardstick of issue 17's "AUC ≤ 0.9" target. Its settings are the
constants below — ctqc's C2ST as it was before calibration (commit 72c17b9: standardise,
PCA to 32 dimensions of the standardised pixel block then standardise again, the other
blocks standardised; L2 logistic regression with C = 0.003; 5 folds) — and read nothing
from ``qc.*``, so later filter changes do not move the target. The features are ctqc's
own extractor functions (:data:`ctqc.qc.features.EXTRACTORS`: pixels, log radial power spectrum,
foreground histogram) on the images' own precision (:func:`frozen_features`): a change to them would move it.

    python bench/gan_quality.py [--config default] [--set gan.epochs=...] [--run DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent.parent / "docs"

# The frozen C2ST (see the module docstring): never read from a config.
C2ST_FEATURES = ("pixels", "fft", "histogram")  # ctqc's extractors; the pixel block first
C2ST_C = 0.003  # inverse L2 strength of the logistic regression
C2ST_PCA = 32  # dimensions the standardised pixel block is reduced to
C2ST_FOLDS = 5  # stratified, shuffled with C2ST_SEED
C2ST_SEED = 0


def frozen_c2st_auc(real: np.ndarray, synthetic: np.ndarray, pixel_columns: int | None) -> float:
    """Out-of-fold ROC AUC of the frozen real-vs-synthetic logistic regression.

    ``real`` (n_real × d) and ``synthetic`` (n_syn × d) are feature rows whose first
    ``pixel_columns`` columns are the pixel block (None: there is none). Per fold of a
    :data:`C2ST_FOLDS`-fold stratified shuffled split: standardise; the pixel block → PCA
    to :data:`C2ST_PCA` dimensions (fewer if the fold is smaller) → standardise; then
    ``LogisticRegression(C=C2ST_C)`` (L2, lbfgs). The AUC pools the held-out
    p(synthetic) of all folds: 0.5 = indistinguishable, 1.0 = perfectly separated.
    Raises ValueError (scikit-learn's) when either set has fewer than :data:`C2ST_FOLDS` rows.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([real, synthetic]).astype(np.float64)
    y = np.r_[np.zeros(len(real), int), np.ones(len(synthetic), int)]
    n_components = min(C2ST_PCA, pixel_columns or 0, len(x) - len(x) // C2ST_FOLDS - 1)
    if pixel_columns and n_components > 0:
        pixels = make_pipeline(StandardScaler(), PCA(n_components=n_components, random_state=C2ST_SEED), StandardScaler())
        scale = ColumnTransformer([("pixels", pixels, slice(0, pixel_columns))], remainder=StandardScaler())
    else:
        scale = StandardScaler()
    model = make_pipeline(scale, LogisticRegression(C=C2ST_C, max_iter=2000))
    folds = StratifiedKFold(C2ST_FOLDS, shuffle=True, random_state=C2ST_SEED)
    p = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def frozen_auc(real, synthetic, names) -> float:
    """:func:`frozen_c2st_auc` of ``real`` vs ``synthetic`` images (N×1×S×S in [-1, 1]) on ctqc's feature groups ``names``."""
    (x_real, width), (x_syn, _) = frozen_features(real, names), frozen_features(synthetic, names)
    return frozen_c2st_auc(x_real, x_syn, width)


def frozen_features(images, names) -> tuple[np.ndarray, int | None]:
    """ctqc's extractor functions ``names`` on ``images`` as given, the pixel block first: (matrix, pixel columns or None).

    The extractors as they were when the target was set, on the images' own precision: ctqc's QC puts
    every image on the 8-bit grid first (:func:`ctqc.qc.features.extract`, since the "Comparing at the
    pool's precision" section of bench/RESULTS.md); the yardstick does not, so its figures recorded
    before that change stay comparable.
    """
    from ctqc.qc.features import EXTRACTORS

    ordered = sorted(names, key=lambda n: n != "pixels")
    blocks = [EXTRACTORS[name](images) for name in ordered]
    return np.hstack(blocks), (blocks[0].shape[1] if ordered[0] == "pixels" else None)


def c2st_table(run_path: Path) -> dict[str, dict[str, float]]:
    """Per class of fold 0: frozen C2ST AUC of the pool vs the training images (``train``), vs the
    validation images (``val``), and vs the training images on each feature group alone."""
    from ctqc.qc.units import units_from_run
    from ctqc.run import Run

    table = {}
    for unit in units_from_run(Run.open(run_path)):
        if unit.fold != 0:
            continue
        row = {"train": frozen_auc(unit.reference, unit.synthetic, C2ST_FEATURES), "val": frozen_auc(unit.heldout, unit.synthetic, C2ST_FEATURES)}
        row.update({name: frozen_auc(unit.reference, unit.synthetic, [name]) for name in C2ST_FEATURES})
        table[unit.name] = row
    return table


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
        print(f"trained and generated {run} in {time.perf_counter() - start:.0f} s")
    else:
        run = args.run.resolve()
    seconds = json.loads((run / "manifest.json").read_text())["stages"]["train"]["seconds"]
    print(f"train stage: {seconds:.1f} s (wall, from the manifest)")
    DOCS.mkdir(exist_ok=True)
    units = {p.name: p / "stats.jsonl" for p in sorted((run / "gan" / "fold0").iterdir())}
    summary = plot_quality(units, DOCS / "gan_quality.png")
    sample_grid(run, DOCS / "gan_samples.png")
    print(f"wrote {DOCS / 'gan_samples.png'} and {DOCS / 'gan_quality.png'}")
    print("quality signal KID×1000 first → last: " + ", ".join(f"{k} {a:.1f} → {b:.1f}" for k, (a, b) in summary.items()))
    table = c2st_table(run)
    columns = ["train", "val", *C2ST_FEATURES]
    print(f"frozen C2ST AUC (pool vs real; {'+'.join(C2ST_FEATURES)} unless a group is named; C={C2ST_C}, {C2ST_FOLDS} folds):")
    print(f"{'class':<14}" + "".join(f"{c:>16}" for c in ["vs train", "vs val", *(f"{g} only" for g in C2ST_FEATURES)]))
    for name, row in table.items():
        print(f"{name:<14}" + "".join(f"{row[c]:>16.3f}" for c in columns))


if __name__ == "__main__":
    main()
