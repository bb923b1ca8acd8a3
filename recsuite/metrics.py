"""Ranking and beyond-accuracy metrics with one signature: ``metric(topk, truth, k=10)``.

``topk`` is an int ndarray (n_users, >= k) of item indices, best first; ``truth`` a CSR matrix
(n_users, n_items) whose non-zeros are the relevant items. Ranking metrics average over users with at
least one relevant item. Definitions follow RecBole's (Zhao et al. 2021, "RecBole", CIKM), so the
numbers of both libraries agree on the same lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

RANKING = ("ndcg", "recall", "precision", "hit", "mrr", "map")


# -- validation ---------------------------------------------------------------------------------------
def _check_k(k, width: int | None = None) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if width is not None and k > width:
        raise ValueError(f"k={k} is larger than the top-k lists, which have {width} columns")
    return int(k)


def _check_topk(topk, k, n_items: int | None = None) -> np.ndarray:
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be a 2-D array (n_users, k), got shape {topk.shape}")
    if not np.issubdtype(topk.dtype, np.integer):
        raise ValueError(f"topk must hold integer item indices, got dtype {topk.dtype}")
    _check_k(k, topk.shape[1])
    top = topk[:, :k]
    if top.size and top.min() < 0:
        raise ValueError(f"topk holds negative item index {int(top.min())}")
    if n_items is not None and top.size and top.max() >= n_items:
        raise ValueError(f"topk holds item index {int(top.max())}, outside the catalogue of {n_items} items")
    if k > 1 and top.size:
        s = np.sort(top, axis=1)
        if np.any(s[:, 1:] == s[:, :-1]):
            row = int(np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1))[0])
            raise ValueError(f"topk repeats an item within a list (first in row {row}); lists must be unique")
    return top.astype(np.int64, copy=False)


def _check_truth(truth, n_rows: int) -> sp.csr_matrix:
    if not sp.issparse(truth):
        raise ValueError(f"truth must be a scipy.sparse matrix (n_users, n_items), got {type(truth).__name__}")
    truth = sp.csr_matrix(truth)
    if truth.shape[0] != n_rows:
        raise ValueError(f"topk has {n_rows} rows but truth has {truth.shape[0]}; they must be the same users")
    return truth


def _hits(topk, truth, k) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_users, k) hit matrix and the number of relevant items per user."""
    if not sp.issparse(truth):
        raise ValueError(f"truth must be a scipy.sparse matrix (n_users, n_items), got {type(truth).__name__}")
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

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    return _hits(topk, truth, k)[0]


def per_user_metrics(topk, truth, k: int = 10) -> pd.DataFrame:
    """One row per user: ``n_relevant`` and the six ranking metrics at k (NaN without relevant items).

    The column means (NaN skipped) are exactly ``ndcg_at_k`` etc.; break them down by user group with
    ``recsuite.fusion.breakdown``.

    Introduced in notebooks/04_fusion_hybrid.ipynb
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
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive int, got {n_items!r}")
    top = _check_topk(topk, k)
    return float(len(np.unique(top)) / n_items)


def _normalised_rows(vectors) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"item_vectors must be 2-D (n_items, d), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("item_vectors holds NaN or inf")
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def intra_list_diversity(topk, item_vectors, k: int = 10) -> float:
    """Mean pairwise 1 − cosine within each top-k list, averaged over users (Ziegler et al. 2005).

    A zero vector (an item with no genres, say) has cosine 0 to everything. Lists need k >= 2.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    v = _normalised_rows(item_vectors)
    top = _check_topk(topk, k, v.shape[0])
    if k < 2:
        raise ValueError(f"k must be at least 2 for pairwise diversity, got {k}")
    x = v[top]  # (n_users, k, d)
    sims = np.einsum("ukd,ujd->ukj", x, x)
    off = (sims.sum(axis=(1, 2)) - np.einsum("ukk->u", sims)) / (k * (k - 1))
    return float(np.mean(1.0 - off))


def gini_index(topk, n_items: int, k: int = 10) -> float:
    """Gini index of how often each of the ``n_items`` items is recommended (zeros included).

    0 = every item recommended equally often, → 1 = all recommendations go to one item.
    G = Σ_i (2i − n − 1) x_(i) / (n Σ x), x sorted ascending, i = 1..n.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive int, got {n_items!r}")
    top = _check_topk(topk, k)
    if top.size and top.max() >= n_items:
        raise ValueError(f"topk holds item index {int(top.max())}, outside n_items={n_items}")
    x = np.sort(np.bincount(top.ravel(), minlength=n_items)).astype(float)
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
    pop = np.asarray(item_popularity, dtype=float)
    if pop.ndim != 1 or not np.all(np.isfinite(pop)) or np.any(pop < 0):
        raise ValueError("item_popularity must be a 1-D array of non-negative finite counts")
    top = _check_topk(topk, k, len(pop))
    p = (pop + 1.0) / (pop.sum() + len(pop))
    return float(np.mean(-np.log2(p[top])))


# -- from scores to lists -----------------------------------------------------------------------------
def topk_from_scores(scores, k: int, exclude=None, allowed=None) -> np.ndarray:
    """Top-k item indices per user, best first, as an int64 (n_users, k) array.

    ``exclude`` is a CSR (n_users, n_items) of items to mask per user (already seen); ``allowed`` a
    boolean (n_items,) mask of the catalogue to rank. Equal scores are ordered by item index, so the
    result is deterministic. Vectorised: ``argpartition`` per row, exact re-sort only of rows with
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
    if allowed is not None:
        allowed = np.asarray(allowed)
        if allowed.dtype != bool or allowed.shape != (n_items,):
            raise ValueError(f"allowed must be a boolean mask of shape ({n_items},), got {allowed.dtype} {allowed.shape}")
        s[:, ~allowed] = -np.inf
    if exclude is not None:
        if not sp.issparse(exclude) or exclude.shape != s.shape:
            raise ValueError(f"exclude must be a sparse matrix of shape {s.shape}, got {getattr(exclude, 'shape', type(exclude))}")
        ex = sp.csr_matrix(exclude)
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
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


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
        items = np.arange(catalog) if np.isscalar(catalog) else np.unique(np.asarray(catalog, dtype=np.int64))
        if items.size == 0 or items.min() < 0 or items.max() >= n_all:
            raise ValueError(f"catalog must name item indices in [0, {n_all}), got {catalog!r}")
        position = np.full(n_all, -1, dtype=np.int64)
        position[items] = np.arange(len(items))
        local = position[top]
        if np.any(local < 0):
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
        if isinstance(min_effect, bool) or not isinstance(min_effect, (int, float, np.integer, np.floating)) \
                or not np.isfinite(min_effect) or min_effect < 0:
            raise ValueError(f"min_effect must be a non-negative number, got {min_effect!r}")
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
    v = np.asarray(values, dtype=float)
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
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(level, bool) or not isinstance(level, (float, int)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if not isinstance(relative, (bool, np.bool_)):
        raise ValueError(f"relative must be True or False, got {relative!r}")
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
