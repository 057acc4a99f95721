"""Run a ctqc command under torchrun while recording, per rank, what it writes and the weights it holds.

Usage (from a test): ``torchrun --nproc_per_node=2 tests/ddp_probe.py <ctqc arguments>`` with
``CTQC_PROBE_DIR`` set. Each rank writes ``rank<r>.json`` there at exit:

- ``writes``: every path the rank created, opened for writing, renamed or made a directory
  (``open``/``os.open`` with O_CREAT/``os.replace``/``os.rename``/``os.mkdir``);
- ``gan_states``: a hash of G's and D's parameters and buffers at every GAN checkpoint;
- ``classifier_states``: a hash of every finished classifier's weights.

Equal hashes across ranks show that gradients were averaged (each rank saw other images).
"""

from __future__ import annotations

import atexit
import builtins
import hashlib
import json
import os
import sys
from pathlib import Path

RANK = int(os.environ.get("RANK", "0"))
OUT = Path(os.environ["CTQC_PROBE_DIR"])
record: dict = {"rank": RANK, "writes": [], "gan_states": [], "classifier_states": []}


def _note(path) -> None:
    record["writes"].append(os.path.abspath(os.fsdecode(path)))


_open, _os_open, _replace, _rename, _mkdir = builtins.open, os.open, os.replace, os.rename, os.mkdir


def _patched_open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
        _note(file)
    return _open(file, mode, *args, **kwargs)


def _patched_os_open(path, flags, *args, **kwargs):
    if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
        _note(path)
    return _os_open(path, flags, *args, **kwargs)


def _patched_replace(src, dst, *args, **kwargs):
    _note(dst)
    return _replace(src, dst, *args, **kwargs)


def _patched_rename(src, dst, *args, **kwargs):
    _note(dst)
    return _rename(src, dst, *args, **kwargs)


def _patched_mkdir(path, *args, **kwargs):
    _note(path)
    return _mkdir(path, *args, **kwargs)


builtins.open, os.open, os.replace, os.rename, os.mkdir = _patched_open, _patched_os_open, _patched_replace, _patched_rename, _patched_mkdir


def _digest(*modules) -> str:
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def _instrument() -> None:
    import classify.training
    import gan.trainer

    save_state = gan.trainer._save_state

    def save_state_probe(path, G, D, *args, **kwargs):
        record["gan_states"].append({"path": str(path), "digest": _digest(G, D)})
        return save_state(path, G, D, *args, **kwargs)

    gan.trainer._save_state = save_state_probe

    fit = classify.training.fit_classifier

    def fit_probe(*args, **kwargs):
        result = fit(*args, **kwargs)
        record["classifier_states"].append({"digest": _digest(result.model), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run})
        return result

    classify.training.fit_classifier = fit_probe


def _dump() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"rank{RANK}.json"
    with _open(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh)


if __name__ == "__main__":
    _instrument()
    atexit.register(_dump)
    from ctqc.cli import main

    sys.argv = ["ctqc", *sys.argv[1:]]
    main()
