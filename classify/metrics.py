"""Evaluation metrics of a classifier on labelled images (the real test images, in ctqc).

Targets are class indices 0..K-1; ``probs`` is N×K (rows sum to 1).

- accuracy: fraction correct;
- binary (K = 2, positive class = index 1, e.g. haemorrhage): sensitivity =
  recall of the positive class, specificity = recall of the negative class;
- K > 2: sensitivity and specificity are undefined (NaN) — use the per-class
  recalls;
- balanced accuracy: mean per-class recall;
- ROC AUC: of the positive-class probability (binary), macro one-vs-rest (K > 2);
  NaN when the images hold a single class;
- confusion matrix: rows = true class, columns = predicted class.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def classification_metrics(targets: np.ndarray, probs: np.ndarray) -> dict:
    """Metrics of ``probs`` (N×K) against ``targets`` (N,); see the module docstring."""
    from sklearn.metrics import roc_auc_score

    targets = np.asarray(targets, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != targets.shape[0] or probs.shape[1] < 2:
        raise ValueError(f"probs must be N×K with K ≥ 2 and N = {targets.shape[0]}, got {probs.shape}")
    k = probs.shape[1]
    preds = probs.argmax(axis=1)
    cm = confusion_matrix(targets, preds, k)
    support = cm.sum(axis=1)
    recall = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    present = np.unique(targets)
    auc = math.nan
    if len(present) >= 2:
        if k == 2:
            auc = float(roc_auc_score(targets, probs[:, 1]))
        elif len(present) == k:
            auc = float(roc_auc_score(targets, probs / probs.sum(axis=1, keepdims=True), multi_class="ovr", average="macro"))
    return {
        "accuracy": float((preds == targets).mean()) if len(targets) else math.nan,
        "sensitivity": float(recall[1]) if k == 2 else math.nan,
        "specificity": float(recall[0]) if k == 2 else math.nan,
        "balanced_accuracy": float(np.nanmean(recall)) if np.isfinite(recall).any() else math.nan,
        "roc_auc": auc,
        "per_class_recall": [float(r) for r in recall],
        "confusion_matrix": cm.tolist(),
    }


def balanced_accuracy(targets: np.ndarray, preds: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``targets``."""
    cm = confusion_matrix(targets, preds, n_classes)
    support = cm.sum(axis=1)
    ok = support > 0
    return float((np.diag(cm)[ok] / support[ok]).mean()) if ok.any() else math.nan
