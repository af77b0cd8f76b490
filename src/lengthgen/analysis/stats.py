"""Correlations over a few points (checkpoints, k values), without scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pearson(x, y) -> float:
    """Pearson correlation of the finite pairs; NaN with fewer than 2 or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x, y) -> float:
    """Rank correlation (average ranks for ties) of the finite pairs; NaN as for `pearson`."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return pearson(pd.Series(x[keep]).rank().to_numpy(), pd.Series(y[keep]).rank().to_numpy())
