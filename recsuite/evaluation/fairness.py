"""Popularity bias and exposure fairness of top-k lists, and gaps of a per-user metric between user groups.

Three questions about the same ``topk`` (int ndarray (n_users, >= k), padded with -1 = ``NO_ITEM``, which is
"no item" everywhere here):

- *Popularity bias*: how popular are the recommended items (``recommended_popularity``, ``arp``) and how many
  of them come from the long tail (``long_tail_share``, ``aplt``)?
- *Item-side fairness*: how much position-discounted exposure does each item group get (``exposure``,
  ``exposure_shares``), compared with its share of the interactions, its "merit" (``merit_shares``,
  ``disparate_exposure``, ``exposure_table``), and how sure are we (``disparity_interval``,
  ``paired_disparity``)?
- *User-side fairness*: does a per-user metric differ between user groups (``group_table``, ``group_gap``),
  and is the gap still there within strata of, e.g., activity (``gap_within_strata``)?

Gaps and differences come back as ``bootstrap.PairedDifference`` so that ``.verdict()`` applies the course's one
rule. Item groups are int ids 0..G-1, one per item (``pd.Categorical(labels).codes`` turns labels into ids).

Introduced in notebooks/15_fairness.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.evaluation.bootstrap import PairedDifference, per_user_values
from recsuite.evaluation.metrics import NO_ITEM

__all__ = [
    "recommended_popularity", "arp", "long_tail_share", "aplt",
    "exposure", "exposure_shares", "merit_shares", "disparate_exposure", "exposure_table",
    "disparity_interval", "paired_disparity",
    "group_table", "group_gap", "gap_within_strata", "POOLED",
]

#: The index label of the stratum-weighted row of ``gap_within_strata``.
POOLED = "pooled (stratum-weighted)"

#: Resampled user indices held at once by a bootstrap, as in ``bootstrap.paired_bootstrap`` (8 MiB of int64).
_BLOCK = 1 << 20


# -- validation ---------------------------------------------------------------------------------------------
def _lists(topk, k, n_items: int, of: str, name: str = "topk") -> np.ndarray:
    """The first k columns of ``topk`` as int64, items in [0, n_items) (the length of ``of``) or -1, each once."""
    if sp.issparse(topk):
        raise TypeError(f"{name} must be a dense int array (n_users, k), got {checks.describe(topk)}")
    top = checks.item_lists(name, topk)
    k = checks.positive_int("k", k)
    if k > top.shape[1]:
        raise ValueError(f"k={k} is larger than the top-k lists, which have {top.shape[1]} columns")
    top = top[:, :k]
    if top.size and top.min() < NO_ITEM:
        raise ValueError(f"{name} holds negative item index {int(top.min())}; only -1 (no item) is allowed")
    if top.size and top.max() >= n_items:
        raise ValueError(f"{name} holds item index {int(top.max())}, but {of} has entries for {n_items} items only")
    if k > 1 and top.size:
        s = np.sort(top, axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] != NO_ITEM)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(f"{name} repeats an item within a list (first in row {row}); lists must be unique")
    return top


def _item_groups(item_groups, n_groups=None) -> tuple[np.ndarray, int]:
    """Group id per item as int64 in [0, n_groups), and n_groups (default: the largest id + 1)."""
    g = np.asarray(item_groups)
    if g.dtype == bool or not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"item_groups must be an int array of group ids 0..G-1, one per item, got "
                        f"{checks.describe(g)}; turn labels into ids with pd.Categorical(labels).codes")
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"item_groups must be a non-empty 1-D array (one group id per item), got shape {g.shape}")
    if g.min() < 0:
        raise ValueError(f"item_groups holds {int((g < 0).sum())} negative group ids (e.g. {int(g.min())}); every "
                         "item needs a group id >= 0 (put items of no group in a group of their own)")
    g = g.astype(np.int64, copy=False)
    if n_groups is None:
        return g, int(g.max()) + 1
    n_groups = checks.positive_int("n_groups", n_groups)
    if g.max() >= n_groups:
        raise ValueError(f"n_groups={n_groups} is too small: item_groups holds group id {int(g.max())}")
    return g, n_groups


def _tail_mask(tail) -> np.ndarray:
    a = np.asarray(tail)
    if a.dtype != bool:
        raise TypeError(f"tail must be a boolean mask (one entry per item, True = long tail), got {checks.describe(a)}")
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"tail must be a non-empty 1-D boolean mask (one entry per item), got shape {a.shape}")
    return checks.bool_mask("tail", a, a.shape[0])


def _merit(merit, n_groups: int) -> np.ndarray:
    """``merit`` as shares summing to 1, one per group, with at least as many groups as item_groups names."""
    m = checks.array("merit", merit, ndim=1, nonnegative=True, empty=False)
    if len(m) < n_groups:
        raise ValueError(f"merit must hold one share per group: item_groups holds group id {n_groups - 1}, but "
                         f"merit has only {len(m)} entries")
    if m.sum() <= 0:
        raise ValueError("merit must have a positive sum (shares or counts per group), got all zeros")
    return m / m.sum()


def _labels(name: str, labels, per_user) -> pd.Categorical:
    """One label per user of ``per_user`` as a Categorical (its own order if categorical, else sorted)."""
    if isinstance(labels, pd.DataFrame) or sp.issparse(labels):
        raise TypeError(f"{name} must be a Series or 1-D array of labels, got {checks.describe(labels)}")
    n = len(per_user)
    if isinstance(labels, pd.Series) and isinstance(per_user, pd.Series):
        if not labels.index.is_unique:
            raise ValueError(f"{name} must have one entry per user, but its index repeats a user")
        absent = per_user.index.difference(labels.index)
        if len(absent):
            raise ValueError(f"{name} has no entry for {len(absent)} users of per_user, e.g. {absent[:5].tolist()}")
        labels = labels.reindex(per_user.index)
    elif isinstance(labels, pd.Series) and not labels.index.equals(pd.RangeIndex(len(labels))):
        raise ValueError(f"{name} is a Series with its own index but per_user is not: they cannot be matched by user; "
                         f"pass per_user as a Series with the same index, or {name}.to_numpy() to match by position")
    if np.ndim(labels) != 1 or len(labels) != n:
        raise ValueError(f"{name} must hold one label per user ({n}), got shape {np.shape(labels)}")
    if isinstance(labels, (pd.Series, pd.Categorical)):
        s = pd.Series(labels).reset_index(drop=True)
    else:
        s = pd.Series(np.asarray(labels, dtype=object))
    missing = int(s.isna().sum())
    if missing:
        raise ValueError(f"{name} is missing for {missing} users; every user needs a label (none is dropped)")
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.array
    try:
        return pd.Categorical(s.to_numpy())
    except TypeError:
        raise TypeError(f"{name} mixes labels that cannot be sorted, got {s.map(type).unique().tolist()}") from None


def _boot_args(n_boot, seed, level) -> tuple[int, np.random.Generator, float]:
    n_boot = checks.integer("n_boot", n_boot, low=100)
    rng = np.random.default_rng(checks.seed("seed", seed))
    level = checks.number("level", level, low=0.0, high=1.0, low_open=True, high_open=True)
    return n_boot, rng, level


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    lost = int(np.isnan(stats).sum())
    if lost:  # a resample that drew only empty lists has no exposure: refused, not dropped
        raise ValueError(f"{lost} of {stats.size} bootstrap resamples drew only users with empty lists (no exposure "
                         "to measure); drop the users without a list before the interval")
    lo, hi = np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _boot_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of ``x`` resampled with replacement, drawn in blocks of about ``_BLOCK`` indices."""
    n, out = len(x), np.empty(n_boot)
    block = max(1, _BLOCK // n)
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        out[start:start + len(idx)] = x[idx].mean(axis=1)
    return out


# -- popularity bias ---------------------------------------------------------------------------------------
def _slot_mean(top: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    """Per user, the mean of ``per_item`` over the filled slots of the list; NaN for an empty list."""
    filled = top != NO_ITEM
    total = np.where(filled, per_item[np.where(filled, top, 0)], 0.0).sum(axis=1)
    n = filled.sum(axis=1)
    return np.divide(total, n, out=np.full(len(top), np.nan), where=n > 0)


def _mean_of_lists(per_user: np.ndarray, what: str) -> float:
    keep = ~np.isnan(per_user)
    if not keep.any():
        raise ValueError(f"{what} needs at least one non-empty list, got lists holding only -1 (no item)")
    return float(per_user[keep].mean())


def recommended_popularity(topk, item_popularity, k: int = 10) -> np.ndarray:
    """Per user, the mean popularity (interaction count) of the items in the first k slots of the list.

    ``item_popularity`` holds one count per item (``Protocol.item_popularity``). Slots holding -1 (no item) are
    left out; a user whose list is empty gets NaN.

    Introduced in notebooks/15_fairness.ipynb
    """
    pop = checks.array("item_popularity", item_popularity, ndim=1, nonnegative=True, empty=False)
    return _slot_mean(_lists(topk, k, len(pop), "item_popularity"), pop)


def arp(topk, item_popularity, k: int = 10) -> float:
    """Average Recommendation Popularity: ``ARP = 1/|U| Σ_u Σ_{i ∈ L_u} φ(i) / |L_u|``, φ(i) = interactions of i.

    Yin et al. 2012, "Challenging the Long Tail Recommendation", VLDB; Abdollahpouri et al. 2019, "Managing
    Popularity Bias in Recommender Systems with Personalized Re-ranking", FLAIRS. The mean of
    ``recommended_popularity`` over the users with a non-empty list; higher = more popularity bias.

    Introduced in notebooks/15_fairness.ipynb
    """
    return _mean_of_lists(recommended_popularity(topk, item_popularity, k), "arp")


def long_tail_share(topk, tail, k: int = 10) -> np.ndarray:
    """Per user, the share of the listed items (first k slots, -1 left out) that are long-tail items.

    ``tail`` is a boolean mask with one entry per item, True for the long tail, e.g.
    ``item_popularity_bucket(pop) == "tail"`` (choose whether never-seen items count as tail). NaN for an
    empty list.

    Introduced in notebooks/15_fairness.ipynb
    """
    t = _tail_mask(tail)
    return _slot_mean(_lists(topk, k, len(t), "tail"), t.astype(np.float64))


def aplt(topk, tail, k: int = 10) -> float:
    """Average Percentage of Long Tail items: ``APLT = 1/|U| Σ_u |{i ∈ L_u : i ∈ Γ}| / |L_u|``, Γ the long tail.

    Abdollahpouri et al. 2019, "Managing Popularity Bias in Recommender Systems with Personalized Re-ranking",
    FLAIRS. The mean of ``long_tail_share`` over the users with a non-empty list: 0 when every list holds only
    head items, 1 when every list holds only tail items.

    Introduced in notebooks/15_fairness.ipynb
    """
    return _mean_of_lists(long_tail_share(topk, tail, k), "aplt")


# -- exposure of item groups ---------------------------------------------------------------------------------
def _exposure_rows(top: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    n_users, k = top.shape
    filled = top != NO_ITEM
    weight = np.where(filled, 1.0 / np.log2(np.arange(2, k + 2)), 0.0)  # slot r (1-based): 1 / log2(r + 1)
    group = np.where(filled, groups[np.where(filled, top, 0)], 0)
    cell = np.arange(n_users, dtype=np.int64)[:, None] * n_groups + group
    rows = np.bincount(cell.ravel(), weights=weight.ravel(), minlength=n_users * n_groups).reshape(n_users, n_groups)
    total = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, total, out=np.full(rows.shape, np.nan), where=total > 0)


def exposure(topk, item_groups, k: int = 10, n_groups: int | None = None) -> np.ndarray:
    """(n_users, n_groups): the share of each user's position-discounted exposure that each item group gets.

    Slot r (1-based) gives its item the exposure 1 / log2(r + 1), the attention model of DCG (Singh & Joachims
    2018, "Fairness of Exposure in Rankings", KDD); each row is normalised to sum 1 over the filled slots. A slot
    holding -1 (no item) keeps its position but gives no exposure; a user with an empty list gets a row of NaN.
    ``item_groups`` holds one group id >= 0 per item (no item is left without a group: give such items a group
    of their own); ``n_groups`` defaults to the largest id + 1.

    Introduced in notebooks/15_fairness.ipynb
    """
    groups, n_groups = _item_groups(item_groups, n_groups)
    return _exposure_rows(_lists(topk, k, len(groups), "item_groups"), groups, n_groups)


def exposure_shares(topk, item_groups, k: int = 10, n_groups: int | None = None) -> np.ndarray:
    """(n_groups,): each group's share of all exposure, the mean of the ``exposure`` rows over non-empty lists.

    Every user weighs the same (each row sums to 1), so the shares sum to 1.

    Introduced in notebooks/15_fairness.ipynb
    """
    rows = exposure(topk, item_groups, k, n_groups)
    keep = ~np.isnan(rows[:, 0])
    if not keep.any():
        raise ValueError("exposure_shares needs at least one non-empty list, got lists holding only -1 (no item)")
    return rows[keep].mean(axis=0)


def merit_shares(interactions, item_groups, n_groups: int | None = None) -> np.ndarray:
    """(n_groups,): each item group's share of the interactions, the "merit" its exposure is compared with.

    ``interactions`` is a users x items scipy.sparse matrix, whose non-zero entries each count once whatever
    their value (a rating is not a weight; for a 0/1 history this is ``Protocol.item_popularity``), as in
    ``recsuite.combine.fair.group_distribution``, or a per-item count vector, used as it is. Exposure
    proportional to merit is Singh & Joachims' (2018, "Fairness of Exposure in Rankings", KDD) disparate-
    treatment constraint, with the group's popularity as its utility.

    Introduced in notebooks/15_fairness.ipynb
    """
    groups, n_groups = _item_groups(item_groups, n_groups)
    if sp.issparse(interactions):
        m = checks.binary_truth("interactions", interactions)  # stored zeros dropped: they are no interaction
        if m.shape[1] != len(groups):
            raise ValueError(f"interactions must have one column per item of item_groups ({len(groups)}), got shape "
                             f"{m.shape}")
        counts = np.bincount(m.indices, minlength=m.shape[1]).astype(np.float64)
    else:
        counts = checks.array("interactions", interactions, ndim=1, nonnegative=True, shape=(len(groups),))
    by_group = np.bincount(groups, weights=counts, minlength=n_groups)
    if by_group.sum() <= 0:
        raise ValueError("interactions must hold at least one interaction, got none")
    return by_group / by_group.sum()


def _distance(shares: np.ndarray, merit: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(shares - merit).sum(axis=-1)


def disparate_exposure(topk, item_groups, merit, k: int = 10) -> float:
    """Total-variation distance ``½ Σ_g |E_g − M_g|`` between exposure shares E and merit shares M.

    Singh & Joachims' (2018, "Fairness of Exposure in Rankings", KDD) disparate exposure — exposure out of
    proportion to merit — measured as a distance between shares: 0 when every group's exposure share equals its
    merit share, 1 when all exposure goes to groups with no merit. ``merit`` holds one share per group (e.g.
    ``merit_shares``; counts are normalised to shares); its length sets the number of groups. E is
    ``exposure_shares``.

    Introduced in notebooks/15_fairness.ipynb
    """
    groups, n_groups = _item_groups(item_groups)
    m = _merit(merit, n_groups)
    return float(_distance(exposure_shares(topk, groups, k, len(m)), m))


def exposure_table(topk, item_groups, merit, k: int = 10, names=None) -> pd.DataFrame:
    """One row per item group: ``exposure`` (share), ``merit`` (share) and ``ratio`` = exposure / merit.

    A ratio above 1 means the group gets more exposure than its share of the interactions; NaN where the
    group has no merit. ``names`` labels the groups (one str per group of ``merit``); the index is then the
    names, else the group ids. ``disparate_exposure`` is ``½ Σ |exposure − merit|`` of this table.

    Introduced in notebooks/15_fairness.ipynb
    """
    groups, n_groups = _item_groups(item_groups)
    m = _merit(merit, n_groups)
    e = exposure_shares(topk, groups, k, len(m))
    if names is None:
        index = pd.RangeIndex(len(m), name="group")
    else:
        labels = checks.texts("names", names)
        if len(labels) != len(m) or len(set(labels)) != len(labels):
            raise ValueError(f"names must hold one distinct name per group ({len(m)}), got {labels!r}")
        index = pd.Index(labels, name="group")
    ratio = np.divide(e, m, out=np.full(len(m), np.nan), where=m > 0)
    return pd.DataFrame({"exposure": e, "merit": m, "ratio": ratio}, index=index)


def _boot_disparity(rows: list[np.ndarray], merit: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """(n_boot, len(rows)): the distance of each model's mean exposure row, on the same resamples of users.

    An empty list (a NaN row) counts for no group: each resample averages the rows of its non-empty lists.
    """
    n, n_groups = rows[0].shape
    filled = [~np.isnan(r[:, 0]) for r in rows]
    zeroed = [np.nan_to_num(r, nan=0.0) for r in rows]
    out = np.empty((n_boot, len(rows)))
    block = max(1, _BLOCK // (n * n_groups))
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, size=(min(block, n_boot - start), n))
        for j, (r, f) in enumerate(zip(zeroed, filled)):
            count = f[idx].sum(axis=1)
            shares = r[idx].sum(axis=1) / np.where(count > 0, count, np.nan)[:, None]
            out[start:start + len(idx), j] = _distance(shares, merit)
    return out


def disparity_interval(topk, item_groups, merit, k: int = 10, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """(value, lo, hi): ``disparate_exposure`` and its percentile-bootstrap interval over users.

    Users are resampled with replacement (Efron & Tibshirani 1993) and the distance recomputed from the
    resample's mean exposure rows. A distance is never negative and is biased upwards in small samples, so the
    interval says how precisely it is measured, not whether it is 0; compare two lists with ``paired_disparity``.

    Introduced in notebooks/15_fairness.ipynb
    """
    value = disparate_exposure(topk, item_groups, merit, k)
    groups, n_groups = _item_groups(item_groups)
    m = _merit(merit, n_groups)
    n_boot, rng, level = _boot_args(n_boot, seed, level)
    rows = _exposure_rows(_lists(topk, k, len(groups), "item_groups"), groups, len(m))
    if len(rows) < 2:
        raise ValueError(f"a bootstrap over users needs at least 2 users, got {len(rows)}")
    lo, hi = _interval(_boot_disparity([rows], m, n_boot, rng)[:, 0], level)
    return value, lo, hi


def paired_disparity(topk_a, topk_b, item_groups, merit, k: int = 10, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> PairedDifference:
    """disparate_exposure(A) − disparate_exposure(B) for two models' lists of the same users, paired bootstrap.

    The same resample of users serves both models, as in ``bootstrap.paired_bootstrap``, so the interval is
    that of the difference; ``.verdict()`` applies the course's one rule ("lower" = A is fairer). ``mean_a`` and
    ``mean_b`` hold the two disparities, ``n_users`` the users (rows).

    Introduced in notebooks/15_fairness.ipynb
    """
    groups, n_groups = _item_groups(item_groups)
    m = _merit(merit, n_groups)
    n_boot, rng, level = _boot_args(n_boot, seed, level)
    top_a = _lists(topk_a, k, len(groups), "item_groups", "topk_a")
    top_b = _lists(topk_b, k, len(groups), "item_groups", "topk_b")
    if len(top_a) != len(top_b):
        raise ValueError(f"topk_a and topk_b must hold the same users: got {len(top_a)} and {len(top_b)} rows")
    if len(top_a) < 2:
        raise ValueError(f"a paired bootstrap needs at least 2 users, got {len(top_a)}")
    rows = [_exposure_rows(t, groups, len(m)) for t in (top_a, top_b)]
    for name, r in zip(("topk_a", "topk_b"), rows):
        if np.isnan(r[:, 0]).all():
            raise ValueError(f"{name} holds only -1 (no item); disparity needs at least one non-empty list")
    da, db = (float(_distance(np.nanmean(r, axis=0), m)) for r in rows)
    stats = _boot_disparity(rows, m, n_boot, rng)
    lo, hi = _interval(stats[:, 0] - stats[:, 1], level)
    return PairedDifference(mean_a=da, mean_b=db, diff=da - db, lo=lo, hi=hi, n_users=len(top_a), relative=False,
                            level=level)


# -- gaps between user groups ------------------------------------------------------------------------------
def group_table(per_user, groups, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per user group: ``users`` (with a value), ``mean`` of ``per_user`` and its bootstrap ``lo``/``hi``.

    ``per_user`` holds one value per user (e.g. a ``per_user_metrics`` column; NaN = no relevant items, skipped);
    ``groups`` one label per user (a Series is aligned by index when ``per_user`` is a Series too). Rows follow
    the categories of a categorical (empty ones included), else the sorted labels. A missing label is an error,
    never a dropped user. The interval is a percentile bootstrap over the group's users (Efron & Tibshirani
    1993); NaN for a group with fewer than 2 users.

    Introduced in notebooks/15_fairness.ipynb
    """
    v = per_user_values("per_user", per_user)
    cat = _labels("groups", groups, per_user)
    n_boot, rng, level = _boot_args(n_boot, seed, level)
    codes, keep = cat.codes, ~np.isnan(v)
    rows = []
    for j in range(len(cat.categories)):
        x = v[(codes == j) & keep]
        lo, hi = _interval(_boot_means(x, n_boot, rng), level) if len(x) >= 2 else (np.nan, np.nan)
        rows.append((len(x), x.mean() if len(x) else np.nan, lo, hi))
    name = getattr(groups, "name", None) or "group"
    index = pd.CategoricalIndex(cat.categories, categories=cat.categories, ordered=cat.ordered, name=name)
    out = pd.DataFrame(rows, columns=["users", "mean", "lo", "hi"], index=index)
    out["users"] = out["users"].astype(np.int64)
    return out


def _label_code(name: str, label, cat: pd.Categorical) -> int:
    known = list(cat.categories)
    try:
        hit = [j for j, c in enumerate(known) if bool(c == label) and isinstance(c, (bool, np.bool_)) ==
               isinstance(label, (bool, np.bool_))]  # True is not group 1
    except (TypeError, ValueError):  # an array compared with a label
        hit = []
    if not hit:
        raise ValueError(f"{name} must be one of the group labels {known}, got {label!r}")
    return hit[0]


def _two_groups(per_user, groups, a, b) -> tuple[np.ndarray, pd.Categorical, int, int]:
    v = per_user_values("per_user", per_user)
    cat = _labels("groups", groups, per_user)
    ca, cb = _label_code("a", a, cat), _label_code("b", b, cat)
    if ca == cb:
        raise ValueError(f"a and b must be two different groups, got {a!r} twice")
    return v, cat, ca, cb


def group_gap(per_user, groups, a, b, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> PairedDifference:
    """mean(per_user | group a) − mean(per_user | group b), with an unpaired bootstrap interval.

    The two groups hold different users, so each is resampled on its own (Efron & Tibshirani 1993, two-sample
    bootstrap) and the interval is that of the difference of the resampled means. Returned as a
    ``PairedDifference`` (``n_users`` = users with a value in a and b together, ``relative=False``) so that
    ``.verdict()`` and ``.report()`` apply the course's one rule. NaN values (no relevant items) are skipped.

    Introduced in notebooks/15_fairness.ipynb
    """
    v, cat, ca, cb = _two_groups(per_user, groups, a, b)
    n_boot, rng, level = _boot_args(n_boot, seed, level)
    keep = ~np.isnan(v)
    xa, xb = v[(cat.codes == ca) & keep], v[(cat.codes == cb) & keep]
    for label, x in ((a, xa), (b, xb)):
        if len(x) < 2:
            raise ValueError(f"group {label!r} has {len(x)} users with a value; a bootstrap needs at least 2")
    lo, hi = _interval(_boot_means(xa, n_boot, rng) - _boot_means(xb, n_boot, rng), level)
    ma, mb = float(xa.mean()), float(xb.mean())
    return PairedDifference(mean_a=ma, mean_b=mb, diff=ma - mb, lo=lo, hi=hi, n_users=len(xa) + len(xb),
                            relative=False, level=level)


def gap_within_strata(per_user, groups, strata, a, b, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> pd.DataFrame:
    """The gap mean(a) − mean(b) inside each stratum (e.g. activity), and their stratum-weighted average.

    One row per stratum (categorical order, else sorted): ``users_a``, ``users_b`` (with a value), ``mean_a``,
    ``mean_b``, ``gap``, ``lo``, ``hi`` (each group resampled on its own within the stratum), ``verdict`` (the
    course's one rule) and ``weight``. The last row, ``POOLED``, is the directly standardised gap
    Σ_s w_s (mean_a,s − mean_b,s) with w_s the stratum's share of the users of a and b together (with a value):
    the gap if both groups had the same stratum mix. Its interval resamples every stratum and group
    independently, the weights held fixed. A raw gap (``group_gap``) that vanishes here is explained by the mix.

    A stratum where a or b has fewer than 2 users keeps its row with NaN gap, interval and ``weight`` 0, and
    ``verdict`` "skipped"; it is left out of the pooled row, whose weights are renormalised over the rest.

    Introduced in notebooks/15_fairness.ipynb
    """
    v, cat, ca, cb = _two_groups(per_user, groups, a, b)
    st = _labels("strata", strata, per_user)
    n_boot, rng, level = _boot_args(n_boot, seed, level)
    keep = ~np.isnan(v)
    in_a, in_b = (cat.codes == ca) & keep, (cat.codes == cb) & keep
    rows, boots, counts = [], [], []
    for s in range(len(st.categories)):
        xa, xb = v[in_a & (st.codes == s)], v[in_b & (st.codes == s)]
        counts.append(len(xa) + len(xb))
        if min(len(xa), len(xb)) < 2:
            rows.append([len(xa), len(xb), xa.mean() if len(xa) else np.nan, xb.mean() if len(xb) else np.nan,
                         np.nan, np.nan, np.nan, "skipped"])
            boots.append(None)
            continue
        stats = _boot_means(xa, n_boot, rng) - _boot_means(xb, n_boot, rng)
        boots.append(stats)
        ma, mb = float(xa.mean()), float(xb.mean())
        lo, hi = _interval(stats, level)
        verdict = PairedDifference(ma, mb, ma - mb, lo, hi, len(xa) + len(xb), False, level).verdict()
        rows.append([len(xa), len(xb), ma, mb, ma - mb, lo, hi, verdict])
    used = np.array([b_ is not None for b_ in boots], dtype=bool)
    if not used.any():
        raise ValueError(f"no stratum has at least 2 users of both {a!r} and {b!r}; nothing to compare")
    weight = np.where(used, counts, 0).astype(float)
    weight /= weight.sum()
    pooled_boot = sum(w * bs for w, bs in zip(weight, boots) if bs is not None)
    na = int(sum(r[0] for r, u in zip(rows, used) if u))
    nb = int(sum(r[1] for r, u in zip(rows, used) if u))
    pa = float(sum(w * r[2] for w, r, u in zip(weight, rows, used) if u))
    pb = float(sum(w * r[3] for w, r, u in zip(weight, rows, used) if u))
    lo, hi = _interval(pooled_boot, level)
    verdict = PairedDifference(pa, pb, pa - pb, lo, hi, na + nb, False, level).verdict()
    rows.append([na, nb, pa, pb, pa - pb, lo, hi, verdict])
    columns = ["users_a", "users_b", "mean_a", "mean_b", "gap", "lo", "hi", "verdict"]
    index = pd.Index([*st.categories.tolist(), POOLED], dtype=object, name=getattr(strata, "name", None) or "stratum")
    out = pd.DataFrame(rows, columns=columns, index=index)
    out["weight"] = np.r_[weight, 1.0]
    out[["users_a", "users_b"]] = out[["users_a", "users_b"]].astype(np.int64)
    return out
