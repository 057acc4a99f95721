"""QC speed: ctqc's QC of R real + S synthetic 32×32 images vs plain torch-fidelity, in one run.

    python bench/qc_speed.py [--real 200] [--synthetic 2000] [--extractor inception-bf16] [--skip-plain] [--no-malloc-tuning]

ctqc: Inception features (per-image cache, cold then warm), FID / KID / precision-recall per
class and overall with 200-replicate bootstrap CIs and real-vs-real floors, the C2ST with
per-image scores and its permutation test, and the copy check. Plain reference: one
``torch_fidelity.calculate_metrics(fid, kid, prc)`` call per class plus one overall on the same
images with torch-fidelity's own (fp32) extractor — point estimates only, no CIs, floors,
C2ST or copy check. The last line is the figure: cold and cached seconds, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ctqc import allocator
from ctqc.config import DataConfig, PhantomConfig, load_config
from ctqc.data import load_dataset
from ctqc.qc.scoring import score_units
from ctqc.qc.units import QCUnit


def images(n_per_class: int, seed: int):
    return load_dataset(DataConfig(image_size=32, phantom=PhantomConfig(n_per_class=n_per_class, size=64, seed=seed)))


def units(real, synthetic) -> list[QCUnit]:
    """Per class: 80 % of the real images as reference, 20 % held out; the synthetic pool."""
    out = []
    for key, name in real.class_names.items():
        r = torch.from_numpy((real.labels == key).nonzero()[0])
        s = torch.from_numpy((synthetic.labels == key).nonzero()[0])
        n_held = len(r) // 5
        pool = pd.DataFrame({"sample_id": [f"s{int(i)}" for i in s], "file": [f"s{int(i)}.png" for i in s], "class": name, "label": key, "fold": 0})
        held_ids = tuple(real.ids[int(i)] for i in r[:n_held])
        out.append(QCUnit(0, key, name, real.images[r[n_held:]], tuple(real.ids[int(i)] for i in r[n_held:]), real.images[r[:n_held]], held_ids, synthetic.images[s], pool))
    return out


def plain_torch_fidelity(real, synthetic) -> float:
    import torch_fidelity

    from ctqc.qc import features, inception

    start = time.perf_counter()
    scopes = [(real.labels == k, synthetic.labels == k) for k in real.class_names] + [(slice(None), slice(None))]
    for r, s in scopes:
        r = torch.from_numpy(r) if not isinstance(r, slice) else r
        s = torch.from_numpy(s) if not isinstance(s, slice) else s
        n = min(len(real.images[r]), len(synthetic.images[s]))
        torch_fidelity.calculate_metrics(
            input1=features.FidelityInput(synthetic.images[s]), input2=features.FidelityInput(real.images[r]), fid=True, kid=True, prc=True,
            kid_subset_size=min(1000, n // 2), cuda=False, cache=False, verbose=False, save_cpu_ram=True, **inception.fidelity_weights_kwargs(),
        )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=200)
    parser.add_argument("--synthetic", type=int, default=2000)
    parser.add_argument("--extractor", default="inception-bf16", choices=["inception", "inception-bf16"])
    parser.add_argument("--skip-plain", action="store_true", help="time ctqc only")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's allocator at its defaults")
    args = parser.parse_args()
    # as the ctqc command does (process-wide: the plain reference below gets it too)
    tuned = not args.no_malloc_tuning and allocator.retain_freed_memory()
    from ctqc.stages.qc import _qc

    real, synthetic = images(args.real // 2, seed=0), images(args.synthetic // 2, seed=1)
    cfg = load_config("default", [f"qc.metric_features={args.extractor}", "qc.embeddings=[]"])  # as before: the embeddings are not QC metrics
    print(f"{len(real.images)} real + {len(synthetic.images)} synthetic 32×32 images, {torch.get_num_threads()} threads, extractor {args.extractor}, malloc tuning {'on' if tuned else 'off'}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "features"
        start = time.perf_counter()
        qc_units = units(real, synthetic)
        metrics = _qc(qc_units, None, cfg, cache, score_units(qc_units, cfg, cache))  # scoring + metrics, as filter + qc
        cold = time.perf_counter() - start
        start = time.perf_counter()
        qc_units = units(real, synthetic)
        _qc(qc_units, None, cfg, cache, score_units(qc_units, cfg, cache))
        warm = time.perf_counter() - start
    s = metrics["scopes"]["all"]
    print(f"ctqc QC: FID {s['fid']['value']:.1f} (floor {s['fid']['floor']:.1f}), KID {s['kid']['value']:.4f}, C2ST AUC " + ", ".join(f"{k} {v['auc']}" for k, v in metrics["c2st"].items()))
    print(f"ctqc QC (metrics + CIs + floors + C2ST + copy check): cold {cold:.1f} s, cached features {warm:.1f} s")
    if args.skip_plain:
        return
    plain = plain_torch_fidelity(real, synthetic)
    print(f"plain torch-fidelity calculate_metrics (fid+kid+prc, fp32, per class + overall, no CIs): {plain:.1f} s")
    print(f"QC of {len(real.images)}+{len(synthetic.images)}: ctqc cold {cold:.1f} s, cached {warm:.1f} s; plain torch-fidelity {plain:.1f} s; ratio plain/ctqc-cold {plain / cold:.2f}x, plain/ctqc-cached {plain / warm:.1f}x")


if __name__ == "__main__":
    os.environ.setdefault("CTQC_QUIET", "1")
    main()
