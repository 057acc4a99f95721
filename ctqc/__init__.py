"""ctqc — quality control for synthetic medical images.

Images inside ctqc are float32 tensors N×1×H×W in [-1, 1]; see ``ctqc.data``.
Heavy modules (torch, sklearn, ...) are imported inside functions so that
``ctqc --help`` stays fast.
"""

__version__ = "0.1.0"
