"""Agreement between feature extractors: each metric per extractor, side by side, for the pool, the kept set and a random subset.

Read from ``qc/metrics.json``'s ``by_extractor`` (written when ``qc.metric_features`` lists two or more
extractors). Per scope (class) and metric, each extractor ranks the three sets — the whole synthetic
pool, the filter's kept set and a random subset of the pool of the kept set's size — from best to
worst (lower is better for FID, KID and RBF-MMD/CMMD, higher for the fractions). The extractors
*agree* on a row when their rankings are identical. The ranking compares point estimates; whether
two sets' intervals overlap is visible in the cells, not in the ranking.
"""

from __future__ import annotations

from ctqc.artefacts import LOWER_IS_BETTER, ExtractorSets, QCMetrics
from reports import conclusion as concl
from reports.sections.common import ci

SETS = (("pool", "pool"), ("kept", "kept"), ("random", "random subset"))


def ranking(values: dict[str, float], metric: str) -> str:
    """The sets ordered best first, e.g. "kept > random subset > pool" ("=" between equal values)."""
    ordered = sorted(values.items(), key=lambda kv: kv[1] if metric in LOWER_IS_BETTER else -kv[1])
    text = ordered[0][0]
    for (_, before), (name, value) in zip(ordered, ordered[1:]):
        text += f" {'=' if value == before else '>'} {name}"
    return text


def _cell(sets: ExtractorSets, scope: str, metric: str) -> tuple[dict, dict[str, float]]:
    cell, values = {}, {}
    for key, label in SETS:
        group = getattr(sets, key)
        estimate = getattr(group.get(scope), metric, None) if group else None
        value = concl.num(estimate.value) if estimate is not None else None
        cell[key] = "–" if value is None else ci(estimate.value, estimate.ci_low, estimate.ci_high)
        if value is not None:
            values[label] = value
    return cell, values


def rows(metrics: QCMetrics, label) -> list[dict]:
    """One row per scope × metric: per extractor its pool / kept / random values [95 % CI] and ranking, and whether they agree.

    ``label(metric, extractor)``: the metric's name on an extractor (RBF-MMD is CMMD on CLIP ViT-L/14-336).
    """
    by = metrics.by_extractor or {}
    if len(by) < 2:
        return []
    first = next(iter(by.values()))
    out = []
    for scope, head in first.pool.items():
        for metric in head.estimates():
            cells, orders = [], []
            for extractor, sets in by.items():
                cell, values = _cell(sets, scope, metric)
                order = ranking(values, metric) if len(values) == len(SETS) else "–"
                cells.append({"extractor": extractor, "metric": label(metric, extractor), **cell, "ranking": order})
                orders.append(order)
            complete = all(o != "–" for o in orders)
            agree = ("yes" if len(set(orders)) == 1 else "no") if complete else "–"
            out.append({"scope": scope, "metric": label(metric, None), "cells": cells, "agree": agree})
    return out


def sentence(table: list[dict]) -> str | None:
    """How often the extractors rank pool, kept set and random subset the same way, and where they do not."""
    judged = [r for r in table if r["agree"] != "–"]
    if not table:
        return None
    if not judged:
        return "Only the whole pool is compared: run ctqc filter, then ctqc qc, to rank the pool, the kept set and a same-size random subset on every extractor."
    differ = [f"{r['scope']} {r['metric']}" for r in judged if r["agree"] == "no"]
    head = f"The extractors rank the pool, the kept set and the same-size random subset the same way in {len(judged) - len(differ)} of {len(judged)} class × metric rows"
    return head + (f"; they disagree on {', '.join(differ)}." if differ else ".")
