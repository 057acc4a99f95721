"""7 C2ST: per-class results (qc/metrics.json), per fold × class (qc/scoring.json), score histogram and calibration."""

from __future__ import annotations

from reports import conclusion as concl
from reports import figures
from reports.rundata import RunData
from reports.sections import scores as per_image
from reports.sections.common import Section, auc

TITLE = "Classifier two-sample test (C2ST)"
C2ST_FIELDS = ("auc", "accuracy", "p_value", "n_real", "n_synthetic")


def build(run: RunData) -> Section:
    metrics, scoring, filt = run.metrics(), run.scoring(), run.filter_summary()
    per_class = metrics.c2st if metrics else {}
    units = scoring.units if scoring else {}
    stored = per_image.stored(run)
    decided = per_image.decisions(run)
    scores = decided if decided is not None else per_image.synthetic(stored)
    if not per_class and not units and scores is None:
        return Section("c2st", TITLE, False, hint="ctqc filter")
    qc_rows = [
        {
            "class": name,
            "auc": auc(v.auc) if v.auc is not None else v.note or "–",
            "accuracy": auc(v.accuracy),
            "p": concl.fmt_p(v.p_value),
            "n_real": "–" if v.n_real is None else v.n_real,
            "n_synthetic": "–" if v.n_synthetic is None else v.n_synthetic,
        }
        for name, v in per_class.items()
    ]
    unit_rows = [{"unit": k, "auc": auc(u.c2st.auc), "p": concl.fmt_p(u.c2st.p_value), "note": u.c2st.note, "n_synthetic": u.n_synthetic, **mmd_cells(u.mmd)} for k, u in units.items()]
    threshold = filt.c2st_threshold if filt else concl.num(run.setting("qc", "c2st_threshold"))
    sentences = [s for s in (concl.c2st_sentence(k, v.model_dump()) for k, v in per_class.items()) if s]
    if not sentences:
        sentences = [s for s in (concl.c2st_sentence(k, u.c2st.model_dump()) for k, u in units.items()) if s]
    features = filt.features if filt else scoring.features if scoring else metrics.c2st_features if metrics else []
    classifier = filt.classifier if filt else scoring.classifier if scoring else metrics.c2st_classifier if metrics else None
    calibration = per_image.calibration_table(stored)
    summary = {
        "qc": {k: v.model_dump(include=set(C2ST_FIELDS)) for k, v in per_class.items()},
        # the fold × class results the score stage stored, which the filter records as ``c2st_before``
        "filter": {k: u.c2st.model_dump() for k, u in units.items()},
        "mmd": {k: u.mmd.model_dump() for k, u in units.items() if u.mmd is not None},
    }
    content = {
        "qc_rows": qc_rows,
        "filter_rows": unit_rows,
        "histogram": figures.c2st_histogram(scores, threshold),
        "calibration": figures.c2st_calibration(calibration) if calibration is not None else None,
        "scores_source": "filter/kept.csv + filter/rejected.csv" if decided is not None else "qc/scores.csv",
        "qc_scores_exist": stored is not None,
        "threshold": threshold,
        "features": ", ".join(features),
        "classifier": classifier,
        "sentences": sentences,
    }
    return Section("c2st", TITLE, True, content, summary)


def mmd_cells(result) -> dict:
    """The kernel MMD test's cells of a fold × class row: MMD² and its permutation p ('–' when absent)."""
    if result is None or result.mmd2 is None:
        return {"mmd": "–" if result is None else (result.note or "–"), "mmd_p": "–"}
    return {"mmd": f"{result.mmd2:.4f}", "mmd_p": concl.fmt_p(result.p_value)}
