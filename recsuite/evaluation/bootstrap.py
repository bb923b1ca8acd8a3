"""Comparing two models on the same users: the paired bootstrap and the one decision rule.

``paired_bootstrap(a, b)`` resamples users with replacement and returns a ``PairedDifference``: the mean
difference with its 95 % interval. ``PairedDifference.verdict()`` applies the course's one rule: "higher" or
"lower" only when the interval excludes 0 **and** the difference is larger than ``NOISE_FLOOR``, otherwise
"indistinguishable". ``verdict_table`` lays several comparisons out as a table, and
``recsuite.course.figures.paired_differences`` draws them.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsuite.core import checks

__all__ = ["NOISE_FLOOR", "PairedDifference", "paired_bootstrap", "per_user_values", "verdict_table", "VERDICTS"]

#: The smallest difference of a metric on the 0–1 scale (NDCG, recall, precision, hit rate, MRR, MAP, coverage,
#: ILD) that the course calls real. No lesson's NDCG@10 moves by more than 0.0017 over CPU kernels and thread
#: counts (benchmarks/noise_floor.md); a difference smaller than twice that, rounded up, could change sign on
#: another machine, so its verdict is "indistinguishable" even when its interval excludes 0.
NOISE_FLOOR = 0.004

#: The three verdicts of the rule.
VERDICTS = ("higher", "lower", "indistinguishable")


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

    @property
    def floor(self) -> float:
        """``NOISE_FLOOR`` in the units of ``diff``: itself, or ``NOISE_FLOOR / mean_b`` for a relative difference
        (the same absolute gap, as a fraction of model B's mean)."""
        return NOISE_FLOOR / abs(self.mean_b) if self.relative else NOISE_FLOOR

    def verdict(self, min_effect: float | None = None) -> str:
        """"higher" / "lower" when the interval excludes 0 and ``|diff|`` > the floor, else "indistinguishable".

        The floor is ``self.floor`` (the course's ``NOISE_FLOOR``); ``min_effect`` replaces it, in the units of
        ``diff``, for a metric off the 0–1 scale or a noise floor measured for another setting.
        """
        floor = self.floor if min_effect is None else checks.number("min_effect", min_effect, low=0.0)
        if not self.excludes_zero or abs(self.diff) <= floor:
            return "indistinguishable"
        return "higher" if self.diff > 0 else "lower"

    def interval(self) -> str:
        """The interval as printed: ``[-0.0123, +0.0045]``, or in % for a relative difference."""
        fmt = "{:+.1%}" if self.relative else "{:+.4f}"
        return f"[{fmt.format(self.lo)}, {fmt.format(self.hi)}]"

    def report(self, name: str) -> str:
        """One line: ``name: difference [interval] -> verdict``, the form every lesson prints a comparison in."""
        name = checks.text("name", name)
        return f"{name}: {self} -> {self.verdict()}"

    def __str__(self) -> str:
        return f"{self.diff:+.1%} {self.interval()}" if self.relative else f"{self.diff:+.4f} {self.interval()}"


def per_user_values(name: str, values) -> np.ndarray:
    """One per-user metric as a float 1-D array (NaN: a user without relevant items), checked: no DataFrame, no inf.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
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
    x, y = per_user_values("a", a), per_user_values("b", b)
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


def verdict_table(comparisons) -> pd.DataFrame:
    """One row per named comparison: the difference, its interval and the verdict under the one rule.

    ``comparisons`` maps a name (``"EASE − ALS"``) to a ``PairedDifference``; the rows keep its order. A relative
    difference is shown as a fraction (format it with ``"{:+.1%}"``), its interval in %. The interval column is named
    by the comparisons' level ("95 % interval"); comparisons at different levels get a ``level`` column instead.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if not hasattr(comparisons, "items"):
        raise TypeError(f"comparisons must map names to PairedDifference, got {checks.describe(comparisons)}")
    rows = {}
    for name, r in comparisons.items():
        if not isinstance(r, PairedDifference):
            raise TypeError(f"comparisons[{name!r}] must be a PairedDifference, got {checks.describe(r)}")
        rows[checks.text("a comparison's name", str(name))] = {"difference": r.diff, "interval": r.interval(),
                                                              "level": r.level, "verdict": r.verdict()}
    if not rows:
        raise ValueError("comparisons must hold at least one comparison, got none")
    table = pd.DataFrame.from_dict(rows, orient="index")
    levels = table.pop("level")
    if levels.nunique() == 1:  # one level: it names the column ("95 % interval"); several: a column of their own
        table = table.rename(columns={"interval": f"{100 * levels.iloc[0]:.3g} % interval"})
    else:
        table.insert(2, "level", levels)
    table.index.name = "comparison"
    return table
