"""2-D embeddings of real and synthetic features: t-SNE (scikit-learn) and UMAP (umap-learn).

Features are standardised and reduced to at most 32 PCA dimensions first (the
usual practice before t-SNE); both methods are seeded, so the same inputs give
the same coordinates. Plots colour points by class × source and mark rejected
synthetic images, in a colour-blind-safe palette.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctqc import atomic

METHODS = ("tsne", "umap")
#: Fewest points each method embeds; below that a unit's embedding is skipped with a note.
#: t-SNE's perplexity (at most 30) and UMAP's n_neighbors (at most 15) shrink with the set:
#: perplexity = max(1, (n − 1) / 3) < n, n_neighbors = n − 1.
MIN_POINTS = {"tsne": 3, "umap": 4}
# Okabe-Ito colours: real / synthetic per class
PALETTE = ["#0072B2", "#56B4E9", "#D55E00", "#E69F00", "#009E73", "#F0E442", "#CC79A7", "#999999"]


def embed(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray | None:
    """N×d features → N×2 coordinates by ``method`` ("tsne" or "umap"); None when N < ``MIN_POINTS[method]``.

    Small sets are embedded with adapted settings (see :data:`MIN_POINTS`); raises
    ``ValueError`` for an unknown method.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if method not in METHODS:
        raise ValueError(f"unknown embedding {method!r}; choose from {', '.join(METHODS)}")
    n = len(features)
    if n < MIN_POINTS[method]:
        return None
    x = StandardScaler().fit_transform(features)
    x = PCA(n_components=min(32, n - 1, x.shape[1]), random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        init = "pca" if x.shape[1] >= 2 else "random"
        return TSNE(n_components=2, perplexity=max(1.0, min(30.0, (n - 1) / 3)), init=init, random_state=seed).fit_transform(x)
    import umap  # umap-learn; imported lazily: its numba compilation takes seconds

    return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1).fit_transform(x)


def skip_note(method: str, n: int, where: str) -> str:
    """The note recorded when ``embed`` skipped ``method`` for ``where`` (n points)."""
    name = "t-SNE" if method == "tsne" else "UMAP"
    return f"{name} skipped for {where}: {n} image(s), it needs at least {MIN_POINTS[method]}"


def plot_embedding(table, method: str, out: Path, warnings: dict[str, str] | None = None) -> None:
    """Scatter of ``table``'s ``<method>_x/_y`` by class × source; rejected synthetic images drawn as crosses.

    ``warnings``: class name → a diversity warning of the filter (the kept set covers the real images
    less than same-size random subsets do); such a panel gets a red frame and the warning's numbers.
    """
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
        warning = (warnings or {}).get(name)
        if warning:
            ax.text(0.02, 0.02, "diversity warning:\n" + warning.split(":")[0], transform=ax.transAxes, fontsize=7, color="#b00020", va="bottom", wrap=True)
            for spine in ax.spines.values():
                spine.set_edgecolor("#b00020")
                spine.set_linewidth(2.0)
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
