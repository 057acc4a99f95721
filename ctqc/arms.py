"""The comparison's arm names and their naming rules: one place, read by the config, the stages and the report.

:data:`ARMS` are the fixed arms; the dose-response arms are ``original+synthetic-x<ratio>``
(:func:`ratio_arm`), and a further filter strategy's arms are ``<filter arm>-<strategy>``
(:func:`strategy_arm`).
"""

from __future__ import annotations

#: The fixed arms of the comparison (`compare.arms`).
ARMS = ("original", "original+classical", "synthetic-only", "original+synthetic", "original+duplicated", "original+filtered", "original+random-subset")
#: The filter's selection strategies (``ctqc filter --strategy``; their rules: :mod:`ctqc.qc.strategies`).
FILTER_STRATEGIES = ("realism", "label", "both")
#: The arms built from a strategy's kept set: the filtered set and its same-size random control.
FILTER_ARMS = ("original+filtered", "original+random-subset")
#: Prefix of the dose-response arms (``compare.synthetic_ratios``): ``original+synthetic-x<ratio>``.
RATIO_ARM_PREFIX = "original+synthetic-x"


def ratio_arm(ratio: float) -> str:
    """The dose-response arm of ``ratio`` synthetic images per real training image, e.g. ``original+synthetic-x0.5``."""
    return f"{RATIO_ARM_PREFIX}{ratio:g}"


def arm_ratio(arm: str) -> float | None:
    """The ratio of a dose-response arm (:func:`ratio_arm`), ``None`` for any other arm name."""
    if not arm.startswith(RATIO_ARM_PREFIX):
        return None
    try:
        return float(arm[len(RATIO_ARM_PREFIX) :])
    except ValueError:
        return None


def strategy_arm(arm: str, strategy: str) -> str:
    """``arm`` (one of :data:`FILTER_ARMS`) of a further filter strategy, e.g. ``original+filtered-label`` (the default strategy's: plain ``arm``)."""
    return f"{arm}-{strategy}"


def arm_strategy(arm: str) -> tuple[str, str] | None:
    """(filter arm, strategy) of a strategy arm (:func:`strategy_arm`), ``None`` for any other arm name."""
    return next(((base, s) for base in FILTER_ARMS for s in FILTER_STRATEGIES if arm == strategy_arm(base, s)), None)
