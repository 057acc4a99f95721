"""The score stage: fit the C2ST and the copy check once per fold × class, and store every score.

Per fold and class, the synthetic pool is compared with that fold's real *training*
images (never validation or test) by a classifier two-sample test; every image gets
an out-of-fold, prior-corrected p(synthetic), and the fold's held-out validation
images are scored by every fold model (they took no part in fitting). The copy
check finds each synthetic image's nearest training image; its threshold comes from
the training images alone, and the validation images grade it. The label strategy's classifier
(:mod:`ctqc.qc.label_scores`), fitted per fold on the real training images of every class,
stores each synthetic image's p(generated class) and each held-out image's p(true class)
(``label_prob``). See :mod:`ctqc.qc.scoring`.

Writes into ``qc/`` (the stage that owns it): ``scores.csv`` (one row per image,
synthetic and real, with each real image's role ``fit`` or ``heldout``),
``scoring.json`` (per-unit C2ST and kernel MMD results, copy thresholds, duplicates), ``c2st_features.npz``
(the feature matrices, for the after-filter check) and ``embeddings.csv``
(t-SNE/UMAP coordinates). ``ctqc filter`` and ``ctqc qc`` read these and re-fit nothing.
"""

from __future__ import annotations

from ctqc import atomic
from ctqc.artefacts import Scoring, write_artefact
from ctqc.qc.scoring import ScoreSet, save_features, score_units
from ctqc.qc.units import units_from_run
from ctqc.run import Run

STAGE = "score"


def score(run: Run) -> ScoreSet:
    """Score ``run``'s synthetic pool once; writes ``qc/scores.csv``, ``qc/scoring.json``, features and embeddings."""
    run.require_stage("generate", "ctqc train")
    layout = run.layout
    with run.stage(STAGE) as outputs:
        cfg = run.config
        scores = score_units(units_from_run(run, fresh=True), cfg, layout.features, memorisation=True)
        atomic.write_text(layout.scores, scores.table.to_csv(index=False))
        save_features(layout.c2st_features, scores.features)
        write_artefact(layout.scoring, Scoring(features=cfg.qc.features, classifier=cfg.qc.classifier, fitted_on=FITTED_ON, units=scores.units))
        outputs += [layout.rel(p) for p in (layout.scores, layout.c2st_features, layout.scoring)]
        if scores.embeddings is not None:
            atomic.write_text(layout.embeddings, scores.embeddings.to_csv(index=False))
            outputs.append(layout.rel(layout.embeddings))
    return scores


FITTED_ON = "each fold's real training images vs that fold's synthetic pool (copy threshold: the training images' leave-one-out distances); held-out scores and the copy threshold's false-flag check: the fold's validation images"
