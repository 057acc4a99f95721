"""8 Memorisation: C_T and the nearest pairs per class (qc/metrics.json), else the filter's copy check."""

from __future__ import annotations

from reports import conclusion as concl
from reports.images import THUMB_PX, picture_from_file
from reports.rundata import RunData
from reports.sections import scores as per_image
from reports.sections.common import MAX_PAIRS, RealImages, Section, fmt

TITLE = "Memorisation"


def build(run: RunData, real: RealImages) -> Section:
    metrics = run.metrics()
    mem = metrics.memorisation if metrics else {}
    decided = per_image.decisions(run)
    has_copy = decided is not None and "copy_ratio" in decided and decided["copy_ratio"].notna().any()
    if not mem and not has_copy:
        return Section("memorisation", TITLE, False, hint="ctqc filter")
    ct_rows, sentences = [], []
    by_class: dict[str, list[dict]] = {}
    for name, entry in mem.items():
        ct_rows.append(
            {
                "class": name,
                "c_t": fmt(entry.c_t) if entry.c_t is not None else entry.note or "–",
                "n_flagged": "–" if entry.n_flagged is None else entry.n_flagged,
                "threshold": fmt(entry.copy_threshold),
            }
        )
        s = concl.ct_sentence(name, entry.c_t)
        if s:
            sentences.append(s)
        for p in entry.pairs:
            file = p.file or f"{p.sample_id}.png"
            by_class.setdefault(name, []).append({"class": name, "file": file, "train_id": str(p.train_id), "correlation": concl.num(p.correlation), "ratio": concl.num(p.ratio), "flagged": p.flagged})
    source = "qc/metrics.json"
    if not by_class and has_copy:  # the filter's copy check: same distances, every image
        source = "filter/kept.csv + filter/rejected.csv"
        for _, r in decided[decided["copy_ratio"].notna()].iterrows():
            d = concl.num(r.get("copy_distance"))
            by_class.setdefault(str(r.get("class")), []).append(
                {"class": str(r.get("class")), "file": str(r.get("file")), "train_id": str(r.get("nearest_train_id")), "correlation": None if d is None else 1 - d, "ratio": concl.num(r.get("copy_ratio")), "flagged": "copy" in str(r.get("reasons", ""))}
            )
    pairs = [_pair(run, real, c) for c in _most_suspicious(by_class)]
    n_copies = int(decided["reasons"].str.contains("copy").sum()) if decided is not None and "reasons" in decided else None
    if n_copies is not None and has_copy:
        sentences.append(f"The filter's copy check flagged {n_copies} of {len(decided)} synthetic images as near-copies of a training image.")
    summary = {
        "c_t": {name: concl.num(e.c_t) for name, e in mem.items()},
        "n_flagged": {name: e.n_flagged for name, e in mem.items()},
        "copies_flagged_by_filter": n_copies if has_copy else None,
    }
    return Section("memorisation", TITLE, True, {"ct_rows": ct_rows, "pairs": pairs, "pairs_source": source, "sentences": sentences, "real_note": real.note}, summary)


def _most_suspicious(by_class: dict[str, list[dict]]) -> list[dict]:
    """The lowest-ratio pairs of every class, MAX_PAIRS in all."""
    per_class = max(1, -(-MAX_PAIRS // max(1, len(by_class))))
    out = []
    for items in by_class.values():
        items.sort(key=lambda c: (c["ratio"] is None, c["ratio"] if c["ratio"] is not None else 0))
        out += items[:per_class]
    return out


def _pair(run: RunData, real: RealImages, c: dict) -> dict:
    return {
        **c,
        "synthetic": picture_from_file(run.sample(c["file"]), THUMB_PX, title=f"synthetic: {c['file']}"),
        "real": real.picture(c["train_id"], title=f"nearest training image: {c['train_id']}"),
        "ratio_text": fmt(c["ratio"]),
        "correlation_text": fmt(c["correlation"]),
    }
