"""The data stage: load and check the real images, split them, and create a run directory."""

from __future__ import annotations

from dataclasses import dataclass

from ctqc.config import Config
from ctqc.data import LabelledImages, load_dataset
from ctqc.run import Run
from ctqc.splits import Splits


@dataclass(frozen=True)
class PreparedRun:
    run: Run
    data: LabelledImages
    splits: Splits


def prepare_run(config: Config, pipeline: bool = False) -> PreparedRun:
    """Validate everything first, then create the run with ``config.yaml``, ``splits.csv``, ``manifest.json``.

    Bad input raises :class:`~ctqc.errors.UserError` before anything is written. ``pipeline``
    marks a run made by ``ctqc run`` (which a later ``ctqc run`` may resume). The returned
    run already holds the loaded data, config and splits (:meth:`Run.adopt`): nothing is read twice.
    """
    data = load_dataset(config.data)
    splits = Splits.make(data, config.split, config.split_seed)
    summary = data_summary(data)
    with Run.create(config, summary, pipeline=pipeline) as run:
        with run.stage("data") as outputs:
            splits.save(run.layout.splits)
            outputs += [run.layout.rel(run.layout.config), run.layout.rel(run.layout.splits)]
    run.adopt(config, data, splits)
    return PreparedRun(run=run, data=data, splits=splits)


def data_summary(data: LabelledImages) -> dict:
    """What the manifest records about the data: no pixel values, no patient tags."""
    return {
        "fingerprint": data.source.fingerprint,
        "content_hash": data.source.content_hash,
        "kind": data.source.kind,
        "location": data.source.location,
        "n_images": len(data),
        "image_size": int(data.images.shape[-1]),
        "class_counts": data.class_counts(),
        "warnings": list(data.source.warnings),
    }
