"""2-D embeddings of real and synthetic features: t-SNE (scikit-learn) and UMAP (umap-learn).

Features are standardised and reduced to at most 32 PCA dimensions first (the
usual practice before t-SNE); both methods are seeded, so the same inputs give
the same coordinates. Plots colour points by class × source and mark rejected
synthetic images, in a colour-blind-safe palette.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

METHODS = ("tsne", "umap")
# Okabe-Ito colours: real / synthetic per class
PALETTE = ["#0072B2", "#56B4E9", "#D55E00", "#E69F00", "#009E73", "#F0E442", "#CC79A7", "#999999"]


def embed(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """N×d features → N×2 coordinates by ``method`` ("tsne" or "umap")."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if method not in METHODS:
        raise ValueError(f"unknown embedding {method!r}; choose from {', '.join(METHODS)}")
    n = len(features)
    if n < 5:
        raise ValueError(f"an embedding needs at least 5 points (got {n})")
    x = StandardScaler().fit_transform(features)
    x = PCA(n_components=min(32, n - 1, x.shape[1]), random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    import umap  # umap-learn; imported lazily: its numba compilation takes seconds

    return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1).fit_transform(x)


def plot_embedding(table, method: str, out: Path) -> None:
    """Scatter of ``table``'s ``<method>_x/_y`` by class × source; rejected synthetic images drawn as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(dict.fromkeys(table["class"]))
    fig, axes = plt.subplots(1, len(classes), figsize=(4.2 * len(classes), 4.0), squeeze=False, constrained_layout=True)
    for ax, (k, name) in zip(axes[0], enumerate(classes)):
        part = table[table["class"] == name]
        for source, colour, marker in (("real", PALETTE[(2 * k) % len(PALETTE)], "o"), ("synthetic", PALETTE[(2 * k + 1) % len(PALETTE)], "^")):
            pts = part[part["source"] == source]
            kept = pts[pts["kept"].fillna(True).astype(bool)]
            ax.scatter(kept[f"{method}_x"], kept[f"{method}_y"], s=14, c=colour, marker=marker, alpha=0.8, label=f"{source}" + (" (kept)" if source == "synthetic" else ""))
            if source == "synthetic":
                dropped = pts[~pts["kept"].fillna(True).astype(bool)]
                if len(dropped):
                    ax.scatter(dropped[f"{method}_x"], dropped[f"{method}_y"], s=16, c="#444444", marker="x", alpha=0.7, label="synthetic (rejected)")
        ax.set_title(f"{name}: {'t-SNE' if method == 'tsne' else 'UMAP'}")
        ax.set_xlabel(f"{method} 1 (arbitrary units)")
        ax.set_ylabel(f"{method} 2 (arbitrary units)")
        ax.legend(fontsize=7, loc="best")
    from ctqc import atomic

    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
