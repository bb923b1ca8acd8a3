"""Comparing two models on the same users: the paired bootstrap and the one decision rule.

``paired_bootstrap(a, b)`` resamples users with replacement and returns a ``PairedDifference``: the mean
difference with its interval; ``PairedDifference.verdict(min_effect)`` says "higher" / "lower" only when the
interval excludes 0 and the gap exceeds the noise floor, else "indistinguishable".

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsuite.core import checks


# -- comparing two models on the same users -----------------------------------------------------------
@dataclass(frozen=True)
class PairedDifference:
    """Mean difference of model A over model B on the same users, with a paired-bootstrap interval.

    ``diff`` is mean(A) − mean(B), or mean(A) / mean(B) − 1 when ``relative``; ``lo``/``hi`` bound the
    ``level`` interval of that statistic over bootstrap resamples of the users.
    """

    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    n_users: int
    relative: bool
    level: float

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def verdict(self, min_effect: float = 0.0) -> str:
        """"higher" / "lower" when the interval excludes 0 and |diff| > ``min_effect`` (the numerical
        spread of the difference), else "indistinguishable"."""
        min_effect = checks.number("min_effect", min_effect, low=0.0)
        if not self.excludes_zero or abs(self.diff) <= min_effect:
            return "indistinguishable"
        return "higher" if self.diff > 0 else "lower"

    def __str__(self) -> str:
        if self.relative:
            return f"{self.diff:+.1%} [{self.lo:+.1%}, {self.hi:+.1%}]"
        return f"{self.diff:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}]"


def _per_user_array(name: str, values) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        raise ValueError(f"{name} must be one per-user column (a Series or 1-D array), got a DataFrame; pick a "
                         "metric, e.g. per_user_metrics(...)['ndcg@10']")
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold per-user numbers, got {checks.describe(values)}") from None
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-user values, got shape {v.shape}")
    if np.isinf(v).any():
        raise ValueError(f"{name} holds inf; per-user metrics are finite (NaN marks users without relevant items)")
    return v


def paired_bootstrap(a, b, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                     relative: bool = False) -> PairedDifference:
    """Paired bootstrap (Efron & Tibshirani 1993) of mean(a) − mean(b) over users, for two models' per-user metrics.

    ``a`` and ``b`` hold one value per user for the *same* users in the same order (e.g. the
    ``ndcg@10`` columns of two ``per_user_metrics`` frames on one eval set); NaN marks a user without
    relevant items and must sit at the same positions in both. Users are resampled with replacement
    ``n_boot`` times, the same resample for both models, so the interval reflects how much the
    *difference* depends on which users happen to be in the test set — much narrower than two separate
    intervals, because the two models' per-user values are strongly correlated. ``relative=True``
    reports mean(a) / mean(b) − 1 instead (e.g. a relative NDCG loss is ``-diff``).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if isinstance(a, pd.Series) and isinstance(b, pd.Series) and not a.index.equals(b.index):
        raise ValueError("a and b are Series with different indexes: pair them by user first "
                         "(e.g. b.reindex(a.index)); their values are compared position by position")
    x, y = _per_user_array("a", a), _per_user_array("b", b)
    if x.shape != y.shape:
        raise ValueError(f"a and b must hold the same users: got {x.shape[0]} and {y.shape[0]} values")
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        raise ValueError("a and b have NaN (no relevant items) for different users; compare per-user metrics of "
                         "the same eval set")
    n_boot = checks.integer("n_boot", n_boot, low=100)
    seed = checks.seed("seed", seed)
    level = checks.number("level", level, low=0.0, high=1.0, low_open=True, high_open=True)
    relative = checks.flag("relative", relative)
    keep = ~np.isnan(x)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 2:
        raise ValueError(f"a paired bootstrap needs at least 2 users with values, got {n}")
    if relative and y.mean() == 0:
        raise ValueError("relative=True divides by mean(b), which is 0")
    rng = np.random.default_rng(seed)
    # resample in blocks: n_boot x n indices at once would be ~8 MB per 1,000 users
    stats = np.empty(n_boot)
    block = max(1, 2**20 // n)
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        ma, mb = x[idx].mean(axis=1), y[idx].mean(axis=1)
        stats[start:start + len(idx)] = ma / mb - 1 if relative else ma - mb
    if relative:
        stats = np.where(np.isfinite(stats), stats, np.nan)  # a resample with mean(b) = 0
    lo, hi = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)])
    ma, mb = float(x.mean()), float(y.mean())
    diff = ma / mb - 1 if relative else ma - mb
    return PairedDifference(mean_a=ma, mean_b=mb, diff=float(diff), lo=float(lo), hi=float(hi), n_users=int(n),
                            relative=bool(relative), level=float(level))
