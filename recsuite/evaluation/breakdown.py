"""Per-group breakdowns of per-user and per-item metrics: activity groups, item popularity buckets.

Introduced in notebooks/06_two_stage_ranker.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.evaluation.metrics import NO_ITEM, hit_matrix

# -- per-group breakdowns --------------------------------------------------------------------------------------


def breakdown(per_user_df, groups, metrics=None) -> pd.DataFrame:
    """Mean of per-user metrics within each group, with ``users`` = evaluated users (with relevant items).

    ``groups`` is a Series indexed like ``per_user_df`` (by user index; a categorical keeps its order and
    shows empty groups) or an array with one label per row. Every user needs a group.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    if not isinstance(per_user_df, pd.DataFrame):
        raise TypeError(f"per_user_df must be a DataFrame from per_user_metrics, got {checks.describe(per_user_df)}")
    if metrics is None:
        cols = [c for c in per_user_df.columns if "@" in str(c)]
    else:
        cols = checks.texts("metrics", [metrics] if isinstance(metrics, str) else metrics)
    missing = [c for c in cols if c not in per_user_df.columns]
    if not cols or missing:
        raise ValueError(f"metrics must name metric columns of per_user_df, missing {missing or 'all'}")
    if isinstance(groups, pd.Series):
        if not groups.index.is_unique:
            raise ValueError("groups must have one entry per user, but its index repeats a user")
        absent = per_user_df.index.difference(groups.index)
        if len(absent):
            raise ValueError(f"groups has no entry for {len(absent)} users of per_user_df, e.g. {absent[:5].tolist()}")
        g = groups.reindex(per_user_df.index)
    else:
        arr = np.asarray(groups)
        if arr.shape != (len(per_user_df),):
            raise ValueError(f"groups must be a Series or hold one label per row ({len(per_user_df)}), got shape {arr.shape}")
        g = pd.Series(groups, index=per_user_df.index)
    if g.isna().any():
        raise ValueError(f"groups is missing for {int(g.isna().sum())} users; every user needs a group")
    g = g.rename(g.name if g.name is not None else "group")
    grouped = per_user_df[cols].groupby(g, observed=False, sort=True)
    out = grouped.mean()
    out.insert(0, "users", per_user_df[cols[0]].notna().groupby(g, observed=False, sort=True).sum().astype(np.int64))
    return out


def activity_groups(history, bins=None, labels=("cold", "light", "heavy")) -> pd.Series:
    """User activity group per user index, by the number of history interactions n_u.

    With ``bins=None`` the thresholds are the quantiles at 1/L, 2/L, ... of n_u (terciles for three labels),
    so the groups are about equally large; otherwise ``bins`` holds L - 1 increasing thresholds. Group j
    holds t_{j-1} < n_u <= t_j. On ML-100K every user rated at least 20 movies, so "cold" means the least
    active third, not new users. Returns an ordered categorical Series (index ``user_idx``); the thresholds
    used are in ``.attrs["thresholds"]``.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    x = checks.binary_truth("history", history)
    labels = tuple(checks.texts("labels", labels))
    if x.shape[0] == 0:
        raise ValueError("history must have at least one user (row), got shape (0, ...)")
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(s, str) for s in labels):
        raise ValueError(f"labels must be at least two distinct strings, got {labels!r}")
    counts = np.diff(x.indptr)
    if bins is None:
        t = np.quantile(counts, np.arange(1, len(labels)) / len(labels))
    else:
        t = checks.array("bins", bins, ndim=1)
        if t.shape != (len(labels) - 1,) or not np.isfinite(t).all() or np.any(np.diff(t) <= 0):
            raise ValueError(f"bins must hold {len(labels) - 1} increasing thresholds for labels {labels}, got {bins!r}")
    codes = np.searchsorted(t, counts, side="left")
    out = pd.Series(
        pd.Categorical.from_codes(codes, categories=list(labels), ordered=True),
        index=pd.RangeIndex(len(counts), name="user_idx"),
        name="activity",
    )
    out.attrs["thresholds"] = t.tolist()
    return out


def item_popularity_bucket(
    item_popularity, cuts=(0.2, 0.5), labels=("head", "mid", "tail"), zero_label: str | None = "unseen"
) -> pd.Series:
    """Popularity bucket per item index: head / mid / tail by the item's rank in popularity.

    Items are ranked by interaction count; with the default cuts, head = the most popular 20 % (the "short
    head", Abdollahpouri et al. 2019, "Managing Popularity Bias in Recommender Systems with Personalized
    Re-ranking"), mid = the next 30 %, tail = the rest. Equally popular items always share a bucket (ties go
    to the more popular one, so a bucket can be slightly larger than its share). With ``zero_label``, items
    without any interaction (cold items) form their own bucket and are left out of the shares.
    Returns an ordered categorical Series (index ``item_idx``).

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    if np.size(item_popularity) == 0:
        raise ValueError("item_popularity must hold one count per item, got none")
    pop = checks.feature_vector("item_popularity", item_popularity, 1)
    if (pop < 0).any():
        raise ValueError("item_popularity must hold non-negative counts")
    labels = tuple(checks.texts("labels", labels))
    if zero_label is not None:
        checks.text("zero_label", zero_label)
    c = checks.array("cuts", cuts, ndim=1)
    if c.shape != (len(labels) - 1,) or not np.isfinite(c).all() or np.any(np.diff(np.r_[0.0, c, 1.0]) <= 0):
        raise ValueError(f"cuts must hold {len(labels) - 1} increasing shares in (0, 1) for labels {labels}, got {cuts!r}")
    cats = list(labels) + ([zero_label] if zero_label is not None else [])
    if len(set(cats)) != len(cats):
        raise ValueError(f"labels and zero_label must be distinct, got {cats}")
    ranked = pop > 0 if zero_label is not None else np.ones(len(pop), dtype=bool)
    codes = np.full(len(pop), len(labels), dtype=np.int64)  # the zero bucket, if any
    if ranked.any():
        desc = np.sort(pop[ranked])[::-1]
        # the epsilon keeps 0.3 * 10 = 3.0000000000000004 from rounding up to 4 items
        thresholds = desc[np.maximum(np.ceil(c * len(desc) - 1e-9).astype(int) - 1, 0)]
        # bucket j: count >= threshold_j, and below every earlier threshold
        codes[ranked] = (pop[ranked][:, None] < thresholds[None, :]).sum(axis=1)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=cats, ordered=True),
        index=pd.RangeIndex(len(pop), name="item_idx"),
        name="popularity",
    )


def item_breakdown(topk, truth, item_groups, k: int = 10) -> pd.DataFrame:
    """Where recommendations and hits go, per item group (e.g. ``item_popularity_bucket``).

    Per group: ``n_items`` in the catalogue, ``rec_share`` (share of all filled top-k slots; padding
    ``NO_ITEM`` slots count for no group), ``relevant_share`` (share of the relevant items in ``truth``),
    ``hits`` and ``hit_share`` (share of all hits), and ``recall`` = hits / relevant items of the group (micro-averaged; NaN where it has none).

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    k = checks.positive_int("k", k)
    hits = hit_matrix(topk, truth, k)
    top = np.asarray(topk)[:, :k].astype(np.int64)
    t = checks.binary_truth("truth", truth)
    if np.ndim(item_groups) != 1:
        raise ValueError(f"item_groups must be 1-D (one group per item index), got shape {np.shape(item_groups)}")
    g = item_groups if isinstance(item_groups, pd.Series) else pd.Series(item_groups)
    if len(g) != t.shape[1]:
        raise ValueError(f"item_groups must hold one group per item ({t.shape[1]}), got {len(g)}")
    if isinstance(item_groups, pd.Series) and not g.index.equals(pd.RangeIndex(len(g))):
        # read by position below: a Series must be indexed by item index 0..n-1, in that order
        if not (g.index.is_unique and g.index.isin(np.arange(len(g))).all()):
            got = g.index[:5].tolist()
            raise ValueError(f"item_groups must be indexed by item index 0..{len(g) - 1}, got an index starting {got}")
        g = g.sort_index()
    if g.isna().any():
        raise ValueError(f"item_groups is missing for {int(g.isna().sum())} items")
    cat = g.astype("category") if not isinstance(g.dtype, pd.CategoricalDtype) else g
    codes = cat.cat.codes.to_numpy()
    n = len(cat.cat.categories)

    def share(x):
        return x / x.sum() if x.sum() > 0 else np.full(n, np.nan)

    filled = top != NO_ITEM  # a padded slot (NO_ITEM) is no recommendation, not one of the last item
    rec = np.bincount(codes[top[filled]], minlength=n).astype(float)
    hit = np.bincount(codes[top[hits & filled]], minlength=n).astype(float)
    rel = np.bincount(codes[t.indices], minlength=n).astype(float)
    out = pd.DataFrame(
        {
            "n_items": np.bincount(codes, minlength=n),
            "rec_share": share(rec),
            "relevant_share": share(rel),
            "hits": hit.astype(np.int64),
            "hit_share": share(hit),
            "recall": np.divide(hit, rel, out=np.full(n, np.nan), where=rel > 0),
        },
        index=pd.CategoricalIndex(cat.cat.categories, name=g.name or "group", ordered=cat.cat.ordered),
    )
    return out
