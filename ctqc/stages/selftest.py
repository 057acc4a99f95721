"""The selftest stage: prove the QC filter on the run's own development images (``qc/selftest.json``).

(a) a real-vs-real null (AUC, share discarded, ECE), (b) planted artefacts at three
strengths (AUROC, and the shares of defective and of genuine images removed at the
operating point, calibrated p(synthetic) > ``qc.c2st_threshold``), (c) planted
copies — see :mod:`ctqc.qc.selftest`. Uses the run's data and splits as loaded
(train + val of fold 0; test images never).
"""

from __future__ import annotations

from ctqc.artefacts import Selftest, write_artefact
from ctqc.qc.selftest import selftest
from ctqc.run import Run


def run_selftest(run: Run) -> dict:
    """Self-test of ``run``'s QC settings; writes ``qc/selftest.json`` and returns its content."""
    cfg = run.config
    with run.stage("selftest") as outputs:
        report = Selftest.model_validate(selftest(cfg, null_permutations=cfg.qc.n_permutations // 2 or 20, data=run.data(), splits=run.splits))
        write_artefact(run.layout.selftest, report)
        outputs.append(run.layout.rel(run.layout.selftest))
    return report.model_dump(by_alias=True, exclude_unset=True)
