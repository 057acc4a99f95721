"""One training of the comparison — an (arm, fold, seed) — as a picklable job, and the code that runs it.

A :class:`TrainingJob` carries everything one training needs as plain data
(numpy arrays, lists, the classifier settings as a JSON dict) so that it can be
sent to a worker process. Its :attr:`~TrainingJob.key` names its unit file
``compare/units/<key>.json`` and its :attr:`~TrainingJob.signature` hashes its
inputs, so a re-run skips a unit only if nothing it was made from changed.

A seed fixes the initial weights, dropout and batch order, and is shared by all
arms of a fold (common random numbers, so paired differences compare like with
like). Validation images select the epoch; test images are used only to
evaluate.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.metrics import classification_metrics
from classify.training import fit_classifier, predict_proba
from ctqc import atomic
from ctqc import distributed as ddp
from ctqc.config import ClassifierConfig, Config
from ctqc.stages.compare.arms import FoldData, build_arm

#: Version of the unit files' content; a unit written under another version is redone.
UNIT_FORMAT = 1
#: The test-set metrics of every training (fractions in [0, 1]).
METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")
#: The first columns of results.csv (per-class recalls and training details follow).
RESULT_COLUMNS = [
    "arm", "fold", "seed", "n_train_real", "n_train_synthetic", "n_val", "n_test",
    "accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc",
    "best_epoch", "epochs_run", "seconds", "degenerate",
]  # fmt: skip


def is_degenerate(*predicted_classes: np.ndarray) -> bool:
    """True when a model predicts one class for every image of any of the given prediction sets (e.g. validation, test)."""
    return any(np.unique(np.asarray(p)).size <= 1 for p in predicted_classes if np.asarray(p).size)


def unit_key(arm: str, fold: int, seed: int) -> str:
    """The name of a unit: ``<arm>__f<fold>__s<seed>``."""
    return f"{arm}__f{fold}__s{seed}"


def training_seed(base_seed: int, fold: int, seed: int) -> int:
    """The torch seed of (fold, seed): shared by all arms (common random numbers)."""
    return int(np.random.SeedSequence([base_seed, fold, seed, 0xC1A5]).generate_state(1)[0] & 0x7FFFFFFF)


@dataclass(frozen=True)
class TrainingJob:
    """Everything one training needs. Images are float32 arrays N×1×S×S; labels are class indices 0..K-1."""

    arm: str
    fold: int
    seed: int
    torch_seed: int
    augment: bool
    train_ids: list[str]  # real image ids and synthetic sample_ids, aligned with train_x
    train_x: np.ndarray
    train_y: np.ndarray
    n_real: int
    n_synthetic: int
    val_ids: list[str]
    val_x: np.ndarray
    val_y: np.ndarray
    test_ids: list[str]
    test_x: np.ndarray
    test_y: np.ndarray
    class_keys: list[int]  # configured class keys, sorted: class index k ↔ class_keys[k]
    class_names: list[str]  # aligned with class_keys
    classifier: dict[str, Any]  # ClassifierConfig as JSON
    device: str
    units_dir: Path
    threads: int  # torch threads of the process that trains it

    @property
    def key(self) -> str:
        return unit_key(self.arm, self.fold, self.seed)

    @property
    def out(self) -> Path:
        """The unit file: ``compare/units/<key>.json``."""
        return self.units_dir / f"{self.key}.json"

    @functools.cached_property
    def signature(self) -> str:
        """24 hex digits of SHA-256 over the settings, the validation/test ids and the images and labels."""
        return self._digest(with_arm=True)

    @functools.cached_property
    def training(self) -> str:
        """The signature without the arm's name: two jobs with the same ``training`` train the same model on the same data.

        E.g. ``original+filtered`` when the filter kept nothing is ``original`` image for image and
        seed for seed; ``ctqc compare`` then trains it once and records it under both arms.
        """
        return self._digest(with_arm=False)

    def _digest(self, with_arm: bool) -> str:
        digest = hashlib.sha256()
        settings = [UNIT_FORMAT, *([self.arm] if with_arm else []), self.fold, self.seed, self.torch_seed, self.augment, self.classifier, self.device, self.val_ids, self.test_ids]
        digest.update(json.dumps(settings).encode())
        for arr in (self.train_x, self.train_y, self.val_x, self.test_x):
            digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()[:24]


def make_job(cfg: Config, fd: FoldData, arm: str, seed: int, keys: list[int], units_dir: Path, threads: int) -> TrainingJob:
    """The job of ``arm`` × ``seed`` in fold ``fd``; refuses a training set holding a validation or test image."""
    arm_data = build_arm(arm, fd, seed, keys, cfg.seed, cfg.classifier.augment)
    leaked = set(arm_data.ids) & (set(fd.val.ids) | set(fd.test.ids))
    if leaked:  # cannot happen by construction; refuse loudly if it ever does
        raise RuntimeError(f"arm {arm}, fold {fd.fold}: validation/test image {sorted(leaked)[0]} in the training set")
    key_array = np.array(keys)
    return TrainingJob(
        arm=arm,
        fold=int(fd.fold),
        seed=int(seed),
        torch_seed=training_seed(cfg.seed, fd.fold, seed),
        augment=arm_data.augment,
        train_ids=list(arm_data.ids),
        train_x=arm_data.images.float().numpy(),
        train_y=arm_data.targets,
        n_real=arm_data.n_real,
        n_synthetic=arm_data.n_synthetic,
        val_ids=list(fd.val.ids),
        val_x=fd.val.images.numpy(),
        val_y=np.searchsorted(key_array, fd.val.labels).astype(np.int64),
        test_ids=list(fd.test.ids),
        test_x=fd.test.images.numpy(),
        test_y=np.searchsorted(key_array, fd.test.labels).astype(np.int64),
        class_keys=keys,
        class_names=[fd.train.class_names[k] for k in keys],
        classifier=cfg.classifier.model_dump(mode="json"),
        device=cfg.device,
        units_dir=units_dir,
        threads=threads,
    )


def train_unit(job: TrainingJob, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train and evaluate one (arm, fold, seed); write its record atomically to ``job.out`` and return it.

    Runs in a worker process (or in-process with one job). ``on_epoch`` gets each epoch's history row.
    """
    torch.set_num_threads(job.threads)
    start = time.perf_counter()
    cfg = ClassifierConfig(**job.classifier)
    n_classes = len(job.class_keys)
    fit = fit_classifier(
        torch.from_numpy(job.train_x),
        torch.from_numpy(job.train_y),
        torch.from_numpy(job.val_x),
        torch.from_numpy(job.val_y),
        cfg,
        n_classes=n_classes,
        seed=job.torch_seed,
        device=job.device,
        augment=job.augment,
        on_epoch=on_epoch,
    )
    probs = predict_proba(fit.model, torch.from_numpy(job.test_x), precision=cfg.precision)
    val_pred = predict_proba(fit.model, torch.from_numpy(job.val_x), precision=cfg.precision).argmax(axis=1)
    metrics = classification_metrics(job.test_y, probs)
    keys = np.array(job.class_keys)
    row = {
        "arm": job.arm,
        "fold": job.fold,
        "seed": job.seed,
        "n_train_real": job.n_real,
        "n_train_synthetic": job.n_synthetic,
        "n_val": int(len(job.val_y)),
        "n_test": int(len(job.test_y)),
        **{m: metrics[m] for m in METRICS},
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "seconds": round(time.perf_counter() - start, 2),
        "degenerate": is_degenerate(val_pred, probs.argmax(axis=1)),  # one class for every validation or test image
        **{f"recall_{name}": r for name, r in zip(job.class_names, metrics["per_class_recall"])},
        "augment": fit.augment,
        "balanced_sampling": fit.balanced,
        "bf16": fit.bf16,
        "train_images_per_second": round(fit.images_per_second, 1),
        "threads": job.threads,
        "torch_seed": job.torch_seed,
    }
    pred = probs.argmax(axis=1)
    predictions = {
        "id": job.test_ids,
        "label": keys[job.test_y].tolist(),
        "pred": keys[pred].tolist(),
        "prob": (probs[:, 1] if n_classes == 2 else probs.max(axis=1)).tolist(),
    }
    if n_classes > 2:
        predictions.update({f"prob_{k}": probs[:, i].tolist() for i, k in enumerate(keys.tolist())})
    record = {
        "format": UNIT_FORMAT,
        "key": job.key,
        "signature": job.signature,
        "row": row,
        "confusion_matrix": metrics["confusion_matrix"],
        "predictions": predictions,
        "train_ids": job.train_ids,
        "history": fit.history,
    }
    if ddp.is_main():  # under torchrun rank 0 alone writes
        atomic.write_json(job.out, record)
    return record


def same_training_record(record: dict, job: TrainingJob) -> dict:
    """``record`` (a trained unit) as ``job``'s own: the same training (:attr:`TrainingJob.training`), filed under ``job``'s arm.

    Its predictions and metrics are the trained unit's, its ``seconds`` 0 and ``same_training_as``
    names the unit that trained; written atomically to ``job.out`` so that a resume finds it.
    """
    copy = {**record, "key": job.key, "signature": job.signature, "row": {**record["row"], "arm": job.arm, "seconds": 0.0}, "same_training_as": record["key"]}
    if ddp.is_main():
        atomic.write_json(job.out, copy)
    return copy
