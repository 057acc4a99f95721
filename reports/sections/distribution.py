"""5 Distribution metrics: FID, KID, precision/recall per scope next to the real-vs-real floor (qc/metrics.json)."""

from __future__ import annotations

from ctqc.artefacts import GAP_METRICS, Estimate, ScopeMetrics, rbf_mmd_label
from reports import conclusion as concl
from reports import figures
from reports.rundata import RunData
from reports.sections import agreement
from reports.sections.common import Section, ci


def metric_label(metric: str, extractor: str | None) -> str:
    """A metric's name in tables; the Gaussian-kernel MMD is "CMMD" on CLIP ViT-L/14-336, "RBF-MMD (<extractor>)" elsewhere."""
    return rbf_mmd_label(extractor) if metric == "rbf_mmd" else figures.TABLE_LABELS[metric]


def value_ci(e: Estimate) -> str:
    return ci(e.value, e.ci_low, e.ci_high)


def floor_ci(e: Estimate) -> str:
    return ci(e.floor, e.floor_ci_low, e.floor_ci_high)


def gap_cells(e: Estimate | None, metric: str) -> tuple[str, str]:
    """(synthetic − floor at the floor's n [95 % CI], verdict) of a stored gap; FID/KID entries from older files say so."""
    if e is not None and e.gap is not None:
        return concl.gap_ci(e.gap.model_dump()), e.gap.verdict
    if e is not None and metric in GAP_METRICS and concl.num(e.floor) is not None:
        return "–", "not size-matched (older metrics.json)"
    return "–", "–"


def headline(scopes: dict[str, ScopeMetrics]) -> dict[str, dict[str, dict]]:
    """scope → metric → estimate, for report/summary.json (metrics a scope lacks are left out)."""
    return {name: {m: e.model_dump(exclude_unset=True) for m, e in s.estimates().items()} for name, s in scopes.items()}


def rows(scopes: dict[str, ScopeMetrics], extractor: str | None = None) -> list[dict]:
    """Long format: one row per scope × metric: the value, its size-matched value, the floor and the size-matched gap's verdict."""
    out = []
    for name, s in scopes.items():
        for metric, e in s.estimates().items():
            if concl.num(e.value) is None:
                continue
            matched = concl.num(e.matched)
            gap, verdict = gap_cells(e, metric)
            out.append(
                {
                    "scope": name,
                    "metric": metric_label(metric, extractor),
                    "value": value_ci(e),
                    "matched": "–" if matched is None else concl.sig(matched, 4),
                    "floor": floor_ci(e),
                    "gap": gap,
                    "verdict": verdict,
                    "n": " / ".join("–" if n is None else str(n) for n in (s.n_synthetic, s.n_real, s.n_floor)),
                }
            )
    return out


def build(run: RunData) -> Section:
    metrics = run.metrics()
    if metrics is None or not metrics.scopes:
        return Section("metrics", "Distribution metrics", False)
    scopes = metrics.scopes
    sentences = []
    for name, s in scopes.items():
        for metric in ("fid", "kid"):
            e = getattr(s, metric)
            sentence = concl.distribution_sentence(name, metric, e.model_dump(), s.n_floor) if e is not None else None
            if sentence:
                sentences.append(sentence)
    content = {
        "extractor": metrics.extractor,
        "n_bootstrap": metrics.n_bootstrap,
        "reference": metrics.reference,
        "warnings": list(metrics.warnings),
        "rows": rows(scopes, metrics.extractor),
        "extractors": list(metrics.by_extractor or {}),
        "agreement": (table := agreement.rows(metrics, metric_label)),
        "agreement_sentence": agreement.sentence(table),
        "figure": figures.distribution_metrics(headline(scopes)),
        "sentences": sentences,
    }
    return Section("metrics", "Distribution metrics", True, content, {"extractor": metrics.extractor, "scopes": headline(scopes)})
