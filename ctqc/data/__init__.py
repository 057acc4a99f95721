"""Real labelled images: loading (folder + CSV, DICOM, .npz, built-in phantoms) and preprocessing.

``load_dataset(cfg.data)`` returns a :class:`LabelledImages` with float32
N×1×S×S images in [-1, 1]; see ``ctqc.splits`` for how stages get at them.
"""

from ctqc.data.dataset import DataSource, LabelledImages
from ctqc.data.sources import load_dataset

__all__ = ["DataSource", "LabelledImages", "load_dataset"]
