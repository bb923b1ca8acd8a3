"""Ranking and beyond-accuracy metrics with one signature: ``metric(topk, truth, k=10)``.

``topk`` is an int ndarray (n_users, >= k) of item indices, best first; ``truth`` a CSR matrix
(n_users, n_items) whose non-zeros are the relevant items. Ranking metrics average over users with at
least one relevant item. A -1 in ``topk`` (``NO_ITEM``, how ``topk_from_scores`` pads a user with fewer
than k rankable items) means "no item": never a hit, not counted in coverage, Gini, novelty or
diversity. Definitions follow RecBole's (Zhao et al. 2021, "RecBole", CIKM), so the
numbers of both libraries agree on the same lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite import _checks
from recsuite._rows import unit_rows

RANKING = ("ndcg", "recall", "precision", "hit", "mrr", "map")


# -- validation ---------------------------------------------------------------------------------------
#: The id ``topk_from_scores`` puts in a slot it has no rankable item for: "no item", never a hit.
NO_ITEM = -1


def _check_k(k, width: int | None = None) -> int:
    k = _checks.positive_int("k", k)
    if width is not None and k > width:
        raise ValueError(f"k={k} is larger than the top-k lists, which have {width} columns")
    return k


def _check_topk(topk, k, n_items: int | None = None) -> np.ndarray:
    """The first k columns of ``topk`` as int64; -1 (``NO_ITEM``) is allowed and means "no item"."""
    if sp.issparse(topk):
        raise TypeError(f"topk must be a dense int array (n_users, k), got {_checks.describe(topk)}")
    topk = np.asarray(topk)
    if topk.dtype == bool or not np.issubdtype(topk.dtype, np.integer):
        raise TypeError(f"topk must hold integer item indices, got {_checks.describe(topk)}")
    if topk.ndim != 2:
        raise ValueError(f"topk must be a 2-D array (n_users, k), got shape {topk.shape}")
    _check_k(k, topk.shape[1])
    top = topk[:, :k]
    if top.size and top.min() < NO_ITEM:
        raise ValueError(f"topk holds negative item index {int(top.min())}; only -1 (no item) is allowed")
    if n_items is not None and top.size and top.max() >= n_items:
        raise ValueError(f"topk holds item index {int(top.max())}, outside the catalogue of {n_items} items")
    if k > 1 and top.size:
        s = np.sort(top, axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] != NO_ITEM)
        if np.any(dup):
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(f"topk repeats an item within a list (first in row {row}); lists must be unique")
    return top.astype(np.int64, copy=False)


def _check_truth(truth, n_rows: int) -> sp.csr_matrix:
    truth = _checks.sparse("truth", truth, dtype=np.float64)
    if truth.shape[0] != n_rows:
        raise ValueError(f"topk has {n_rows} rows but truth has {truth.shape[0]}; they must be the same users")
    return truth


def _hits(topk, truth, k) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_users, k) hit matrix and the number of relevant items per user."""
    if not sp.issparse(truth):
        raise TypeError(f"truth must be a scipy.sparse matrix (n_users, n_items), got {_checks.describe(truth)}")
    top = _check_topk(topk, k, truth.shape[1])
    truth = _check_truth(truth, top.shape[0])
    t = truth.copy()
    t.eliminate_zeros()
    t.sum_duplicates()
    t.sort_indices()
    n_items = np.int64(t.shape[1])
    rows = np.repeat(np.arange(t.shape[0], dtype=np.int64), np.diff(t.indptr))
    keys = rows * n_items + t.indices  # sorted, because rows are and indices are sorted within a row
    query = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.searchsorted(keys, query)
    hits = keys[np.minimum(pos, len(keys) - 1)] == query if len(keys) else np.zeros(query.shape, bool)
    hits &= top != NO_ITEM  # -1 would otherwise match the previous user's last item
    return hits, np.diff(t.indptr)


def _mean_over_relevant(values: np.ndarray, n_rel: np.ndarray) -> float:
    mask = n_rel > 0
    return float(values[mask].mean()) if mask.any() else 0.0


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _per_user(hits: np.ndarray, n_rel: np.ndarray, name: str) -> np.ndarray:
    k = hits.shape[1]
    n_hit = hits.sum(axis=1)
    if name == "ndcg":
        disc = _discounts(k)
        idcg = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
        return np.divide(hits @ disc, idcg, out=np.zeros(len(n_rel)), where=idcg > 0)
    if name == "recall":
        return np.divide(n_hit, n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)
    if name == "precision":
        return n_hit / k
    if name == "hit":
        return (n_hit > 0).astype(float)
    if name == "mrr":
        first = hits.argmax(axis=1)
        return np.where(n_hit > 0, 1.0 / (first + 1), 0.0)
    if name == "map":
        prec_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
        denom = np.minimum(n_rel, k)
        return np.divide((prec_at_i * hits).sum(axis=1), denom, out=np.zeros(len(n_rel)), where=denom > 0)
    raise ValueError(f"metric must be one of {RANKING}, got {name!r}")


def _ranking(name: str, topk, truth, k: int) -> float:
    hits, n_rel = _hits(topk, truth, k)
    return _mean_over_relevant(_per_user(hits, n_rel, name), n_rel)


def ndcg_at_k(topk, truth, k: int = 10) -> float:
    """NDCG@k with binary gain: DCG = Σ_i rel_i / log2(i + 1), IDCG over min(|rel|, k) hits.

    Järvelin & Kekäläinen 2002. Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("ndcg", topk, truth, k)


def recall_at_k(topk, truth, k: int = 10) -> float:
    """Recall@k = hits in the top k / |rel| (RecBole's definition, not divided by min(|rel|, k)).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("recall", topk, truth, k)


def precision_at_k(topk, truth, k: int = 10) -> float:
    """Precision@k = hits in the top k / k (always k, even when |rel| < k, as in RecBole).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("precision", topk, truth, k)


def hit_rate_at_k(topk, truth, k: int = 10) -> float:
    """Hit@k = 1 if any relevant item is in the top k, else 0.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("hit", topk, truth, k)


def mrr_at_k(topk, truth, k: int = 10) -> float:
    """MRR@k = 1 / rank of the first relevant item in the top k, 0 if there is none.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("mrr", topk, truth, k)


def map_at_k(topk, truth, k: int = 10) -> float:
    """MAP@k = Σ_i P@i · rel_i / min(|rel|, k).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("map", topk, truth, k)


def hit_matrix(topk, truth, k: int = 10) -> np.ndarray:
    """Boolean (n_users, k): whether the item at each rank of each list is relevant.

    Introduced in notebooks/05_fusion.ipynb
    """
    return _hits(topk, truth, k)[0]


def per_user_metrics(topk, truth, k: int = 10) -> pd.DataFrame:
    """One row per user: ``n_relevant`` and the six ranking metrics at k (NaN without relevant items).

    The column means (NaN skipped) are exactly ``ndcg_at_k`` etc.; break them down by user group with
    ``breakdown``.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    hits, n_rel = _hits(topk, truth, k)
    has = n_rel > 0
    df = pd.DataFrame({f"{m}@{k}": np.where(has, _per_user(hits, n_rel, m), np.nan) for m in RANKING})
    df.insert(0, "n_relevant", n_rel.astype(np.int64))
    df.index.name = "user_idx"
    return df


# -- beyond accuracy --------------------------------------------------------------------------------
def catalog_coverage(topk, n_items: int, k: int = 10) -> float:
    """Share of the ``n_items`` catalogue that appears in at least one top-k list.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    n_items = _checks.positive_int("n_items", n_items)
    top = _check_topk(topk, k, n_items)  # ids outside [0, n_items) are refused, not counted
    listed = np.unique(top)
    return float(np.count_nonzero(listed != NO_ITEM) / n_items)  # -1 (no item) is not an item


def intra_list_diversity(topk, item_vectors, k: int = 10) -> float:
    """Mean pairwise 1 − cosine within each top-k list, averaged over users (Ziegler et al. 2005).

    A zero vector (an item with no genres, say) has cosine 0 to everything. Lists need k >= 2. In a short
    list padded with -1 (no item) only the listed items are paired; lists with fewer than two items are
    left out of the mean.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    v = unit_rows(_checks.array("item_vectors", item_vectors, ndim=2, dtype=np.float64))
    top = _check_topk(topk, k, v.shape[0])
    if k < 2:
        raise ValueError(f"k must be at least 2 for pairwise diversity, got {k}")
    pad = top == NO_ITEM
    if not pad.any():
        x = v[top]  # (n_users, k, d)
        sims = np.einsum("ukd,ujd->ukj", x, x)
        off = (sims.sum(axis=(1, 2)) - np.einsum("ukk->u", sims)) / (k * (k - 1))
        return float(np.mean(1.0 - off))
    # short lists: pairs over the listed items only; lists with fewer than two items are left out
    x = np.where(pad[:, :, None], 0.0, v[np.where(pad, 0, top)])
    m = (~pad).sum(axis=1)
    sims = np.einsum("ukd,ujd->ukj", x, x)
    keep = m >= 2
    if not keep.any():
        raise ValueError("intra_list_diversity needs at least one list with two or more items, got none")
    off = (sims.sum(axis=(1, 2)) - np.einsum("ukk->u", sims))[keep] / (m[keep] * (m[keep] - 1))
    return float(np.mean(1.0 - off))


def gini_index(topk, n_items: int, k: int = 10) -> float:
    """Gini index of how often each of the ``n_items`` items is recommended (zeros included).

    0 = every item recommended equally often, → 1 = all recommendations go to one item.
    G = Σ_i (2i − n − 1) x_(i) / (n Σ x), x sorted ascending, i = 1..n.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    n_items = _checks.positive_int("n_items", n_items)
    top = _check_topk(topk, k, n_items)
    listed = top.ravel()
    x = np.sort(np.bincount(listed[listed != NO_ITEM], minlength=n_items)).astype(float)
    if x.sum() == 0:
        return 0.0
    i = np.arange(1, n_items + 1)
    return float(((2 * i - n_items - 1) * x).sum() / (n_items * x.sum()))


def novelty(topk, item_popularity, k: int = 10) -> float:
    """Mean self-information −log2 p(i) of recommended items (Zhou et al. 2010, PNAS).

    ``item_popularity`` holds interaction counts per item; p(i) = (c_i + 1) / (Σ c + n_items).
    The add-one smoothing keeps never-seen items (c_i = 0, e.g. cold items) finite: they count as the
    most novel items, not as infinitely novel.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    pop = _checks.array("item_popularity", item_popularity, ndim=1, dtype=np.float64, nonnegative=True)
    top = _check_topk(topk, k, len(pop))
    p = (pop + 1.0) / (pop.sum() + len(pop))
    listed = top[top != NO_ITEM] if (top == NO_ITEM).any() else top  # -1 (no item) is not recommended
    if listed.size == 0:
        raise ValueError("novelty needs at least one recommended item, got lists holding only -1 (no item)")
    return float(np.mean(-np.log2(p[listed])))


# -- from scores to lists -----------------------------------------------------------------------------
def topk_from_scores(scores, k: int, *, exclude=None, allowed=None) -> np.ndarray:
    """Top-k item indices per user, best first, as an int64 (n_users, k) array.

    ``exclude`` is a CSR (n_users, n_items) of items to mask per user (already seen); ``allowed`` a
    boolean (n_items,) mask of the catalogue to rank. Equal scores are ordered by item index, so the
    result is deterministic. A user with fewer than k rankable items gets a short list padded at the
    end with -1 (``NO_ITEM``), never with a masked item; every metric here reads -1 as "no item"
    (never a hit, not counted in coverage, Gini or novelty). Vectorised: ``argpartition`` per row, exact re-sort only of rows with
    ties at the cut.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (n_users, n_items), got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores holds NaN or inf; mask items with exclude=/allowed= instead")
    n_users, n_items = s.shape
    _check_k(k, n_items)
    s = s.astype(np.float64 if s.dtype == np.float64 else np.float32, copy=True)
    allowed = _checks.allowed_mask(allowed, n_items)
    ex = _checks.exclude_matrix(exclude, s.shape)
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    if ex is not None:
        rows = np.repeat(np.arange(n_users), np.diff(ex.indptr))
        s[rows, ex.indices] = -np.inf
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    cut = vals.min(axis=1)
    tied = np.flatnonzero((s >= cut[:, None]).sum(axis=1) > k)
    if tied.size:
        part[tied] = np.argsort(-s[tied], axis=1, kind="stable")[:, :k]
        vals[tied] = np.take_along_axis(s[tied], part[tied], axis=1)
    order = np.lexsort((part, -vals), axis=1)
    top = np.take_along_axis(part, order, axis=1).astype(np.int64)
    if allowed is not None or exclude is not None:
        top[np.take_along_axis(vals, order, axis=1) == -np.inf] = NO_ITEM  # masked, so not an answer
    return top


def evaluate(
    topk,
    truth,
    k: int = 10,
    catalog=None,
    item_popularity=None,
    item_vectors=None,
) -> dict:
    """One tidy row of metrics for a set of top-k lists.

    Always the six ranking metrics and ``users`` (how many users had relevant items). With ``catalog``
    (an int n_items, or the array of item indices that were ranked), ``coverage@k`` and ``gini@k`` over
    that catalogue; with ``item_popularity``, ``novelty@k``; with ``item_vectors`` (a dict name ->
    (n_items, d) array, or one array), ``ild_<name>@k`` (``ild@k``) for each.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    hits, n_rel = _hits(topk, truth, k)
    row = {f"{name}@{k}": _mean_over_relevant(_per_user(hits, n_rel, name), n_rel) for name in RANKING}
    top = np.asarray(topk)[:, :k].astype(np.int64)
    if catalog is not None:
        n_all = truth.shape[1]
        if np.isscalar(catalog):
            items = np.arange(_checks.positive_int("catalog", catalog))
        else:
            items = np.unique(_checks.indices("catalog", catalog, n_all, what="item"))
        if items.size == 0 or items.min() < 0 or items.max() >= n_all:
            raise ValueError(f"catalog must name item indices in [0, {n_all}), got {catalog!r}")
        position = np.full(n_all, -1, dtype=np.int64)
        position[items] = np.arange(len(items))
        listed = top != NO_ITEM
        local = np.where(listed, position[np.where(listed, top, 0)], NO_ITEM)  # -1 stays "no item"
        if np.any(local[listed] < 0):
            raise ValueError("topk recommends items outside catalog; pass the catalogue that was ranked")
        row[f"coverage@{k}"] = catalog_coverage(local, len(items), k)
        row[f"gini@{k}"] = gini_index(local, len(items), k)
    if item_popularity is not None:
        row[f"novelty@{k}"] = novelty(top, item_popularity, k)
    if item_vectors is not None:
        named = item_vectors if isinstance(item_vectors, dict) else {"": item_vectors}
        for name, vec in named.items():
            row[f"ild_{name}@{k}" if name else f"ild@{k}"] = intra_list_diversity(top, vec, k)
    row["users"] = int((n_rel > 0).sum())
    return row


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
        min_effect = _checks.number("min_effect", min_effect, low=0.0)
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
        raise TypeError(f"{name} must hold per-user numbers, got {_checks.describe(values)}") from None
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
    n_boot = _checks.integer("n_boot", n_boot, low=100)
    seed = _checks.seed(seed)
    level = _checks.number("level", level, low=0.0, high=1.0, low_open=True, high_open=True)
    relative = _checks.flag("relative", relative)
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


# -- per-group breakdowns --------------------------------------------------------------------------------------


def breakdown(per_user_df, groups, metrics=None) -> pd.DataFrame:
    """Mean of per-user metrics within each group, with ``users`` = evaluated users (with relevant items).

    ``groups`` is a Series indexed like ``per_user_df`` (by user index; a categorical keeps its order and
    shows empty groups) or an array with one label per row. Every user needs a group.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    if not isinstance(per_user_df, pd.DataFrame):
        raise TypeError(f"per_user_df must be a DataFrame from per_user_metrics, got {_checks.describe(per_user_df)}")
    if metrics is None:
        cols = [c for c in per_user_df.columns if "@" in str(c)]
    else:
        cols = _checks.texts("metrics", [metrics] if isinstance(metrics, str) else metrics)
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


def activity_groups(history_csr, bins=None, labels=("cold", "light", "heavy")) -> pd.Series:
    """User activity group per user index, by the number of history interactions n_u.

    With ``bins=None`` the thresholds are the quantiles at 1/L, 2/L, ... of n_u (terciles for three labels),
    so the groups are about equally large; otherwise ``bins`` holds L - 1 increasing thresholds. Group j
    holds t_{j-1} < n_u <= t_j. On ML-100K every user rated at least 20 movies, so "cold" means the least
    active third, not new users. Returns an ordered categorical Series (index ``user_idx``); the thresholds
    used are in ``.attrs["thresholds"]``.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    x = _checks.binary_truth(history_csr, "history_csr")
    labels = tuple(_checks.texts("labels", labels))
    if x.shape[0] == 0:
        raise ValueError("history_csr must have at least one user (row), got shape (0, ...)")
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(s, str) for s in labels):
        raise ValueError(f"labels must be at least two distinct strings, got {labels!r}")
    counts = np.diff(x.indptr)
    if bins is None:
        t = np.quantile(counts, np.arange(1, len(labels)) / len(labels))
    else:
        t = _checks.array("bins", bins, ndim=1)
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
    pop = _checks.feature_vector("item_popularity", item_popularity, 1)
    if (pop < 0).any():
        raise ValueError("item_popularity must hold non-negative counts")
    labels = tuple(_checks.texts("labels", labels))
    if zero_label is not None:
        _checks.text("zero_label", zero_label)
    c = _checks.array("cuts", cuts, ndim=1)
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
    k = _checks.positive_int("k", k)
    hits = hit_matrix(topk, truth, k)
    top = np.asarray(topk)[:, :k].astype(np.int64)
    t = _checks.binary_truth(truth, "truth")
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
