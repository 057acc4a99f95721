"""The data stage: load and check the real images, split them, and create a run directory."""

from __future__ import annotations

from dataclasses import dataclass

from ctqc.config import Config
from ctqc.data import LabelledImages, load_dataset
from ctqc.rundir import RunDir
from ctqc.splits import Splits


@dataclass(frozen=True)
class PreparedRun:
    run: RunDir
    data: LabelledImages
    splits: Splits


def prepare_run(config: Config, pipeline: bool = False) -> PreparedRun:
    """Validate everything first, then create the run with ``config.yaml``, ``splits.csv``, ``manifest.json``.

    Bad input raises :class:`~ctqc.errors.UserError` before anything is written. ``pipeline``
    marks a run made by ``ctqc run`` (which a later ``ctqc run`` may resume).
    """
    data = load_dataset(config.data)
    splits = Splits.make(data, config.split, config.split_seed)
    summary = data_summary(data)
    with RunDir.create(config, summary) as run:
        if pipeline:
            manifest = run.manifest()
            manifest["pipeline"] = True
            run._write_manifest(manifest)
        with run.stage("data") as outputs:
            splits.save(run.path / "splits.csv")
            outputs += ["config.yaml", "splits.csv"]
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
