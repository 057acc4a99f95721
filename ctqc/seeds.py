"""Seeds derived from the run's seed: one rule per use, so a resumed or re-run step draws the same numbers."""

from __future__ import annotations

import numpy as np


def unit_seed(seed: int, fold: int, key: int) -> int:
    """The seed of one GAN unit (fold × class key; ``key = -1`` for the conditional GAN)."""
    return int(np.random.SeedSequence([seed, fold, key + 1]).generate_state(1)[0])
