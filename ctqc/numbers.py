"""Reading numbers from JSON-like values: one rule for "a finite number, or nothing"."""

from __future__ import annotations

import math


def finite(value) -> float | None:
    """``value`` as a float when it is a finite number (or a numeric string), else None (None, NaN, ±inf, text)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
