"""Ranking and beyond-accuracy metrics with one signature: ``metric(topk, truth, k=10)``.

``topk`` is an int ndarray (n_users, >= k) of item indices, best first; ``truth`` a CSR matrix
(n_users, n_items) whose non-zeros are the relevant items. Ranking metrics average over users with at
least one relevant item. A -1 in ``topk`` (``NO_ITEM``, how ``topk_from_scores`` pads a user with fewer
than k rankable items) means "no item": never a hit, not counted in coverage, Gini, novelty or
diversity. Definitions follow RecBole's (Zhao et al. 2021, "RecBole", CIKM), so the
numbers of both libraries agree on the same lists.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.rows import unit_rows

RANKING = ("ndcg", "recall", "precision", "hit", "mrr", "map")


# -- validation ---------------------------------------------------------------------------------------
#: The id ``topk_from_scores`` puts in a slot it has no rankable item for: "no item", never a hit.
NO_ITEM = -1


def _check_k(k, width: int | None = None) -> int:
    k = checks.positive_int("k", k)
    if width is not None and k > width:
        raise ValueError(f"k={k} is larger than the top-k lists, which have {width} columns")
    return k


def _check_topk(topk, k, n_items: int | None = None) -> np.ndarray:
    """The first k columns of ``topk`` as int64; -1 (``NO_ITEM``) is allowed and means "no item"."""
    if sp.issparse(topk):
        raise TypeError(f"topk must be a dense int array (n_users, k), got {checks.describe(topk)}")
    topk = checks.item_lists("topk", topk)
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
    truth = checks.sparse("truth", truth, dtype=np.float64, nonnegative=True)
    if truth.shape[0] != n_rows:
        raise ValueError(f"topk has {n_rows} rows but truth has {truth.shape[0]}; they must be the same users")
    return truth


def _hits(topk, truth, k) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_users, k) hit matrix and the number of relevant items per user."""
    if not sp.issparse(truth):
        raise TypeError(f"truth must be a scipy.sparse matrix (n_users, n_items), got {checks.describe(truth)}")
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
    """Mean over the users with at least one relevant item; a truth with none is an error, not a score of 0."""
    mask = n_rel > 0
    if not mask.any():
        raise ValueError(
            "truth must hold at least one relevant item for the users of topk, got none "
            f"(all {len(n_rel)} rows are empty); is it the right evaluation set and user order?"
        )
    return float(values[mask].mean())


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
    n_items = checks.positive_int("n_items", n_items)
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
    v = unit_rows(checks.array("item_vectors", item_vectors, ndim=2, dtype=np.float64))
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
    n_items = checks.positive_int("n_items", n_items)
    top = _check_topk(topk, k, n_items)
    listed = top.ravel()
    x = np.sort(np.bincount(listed[listed != NO_ITEM], minlength=n_items)).astype(float)
    if x.sum() == 0:
        raise ValueError("gini_index needs at least one recommended item, got lists holding only -1 (no item)")
    i = np.arange(1, n_items + 1)
    return float(((2 * i - n_items - 1) * x).sum() / (n_items * x.sum()))


def novelty(topk, item_popularity, k: int = 10) -> float:
    """Mean self-information −log2 p(i) of recommended items (Zhou et al. 2010, PNAS).

    ``item_popularity`` holds interaction counts per item; p(i) = (c_i + 1) / (Σ c + n_items).
    The add-one smoothing keeps never-seen items (c_i = 0, e.g. cold items) finite: they count as the
    most novel items, not as infinitely novel.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    pop = checks.array("item_popularity", item_popularity, ndim=1, dtype=np.float64, nonnegative=True)
    top = _check_topk(topk, k, len(pop))
    p = (pop + 1.0) / (pop.sum() + len(pop))
    listed = top[top != NO_ITEM] if (top == NO_ITEM).any() else top  # -1 (no item) is not recommended
    if listed.size == 0:
        raise ValueError("novelty needs at least one recommended item, got lists holding only -1 (no item)")
    return float(np.mean(-np.log2(p[listed])))


# -- from scores to lists -----------------------------------------------------------------------------
def topk_from_scores(scores, k: int, *, seen=None, catalogue=None) -> np.ndarray:
    """Top-k item indices per user, best first, as an int64 (n_users, k) array.

    ``seen`` is a CSR (n_users, n_items) of items to mask per user (already seen); ``catalogue`` a
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
    if s.dtype == bool or not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise TypeError(f"scores must be a real int or float array, got dtype {s.dtype}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores holds NaN or inf; mask items with seen=/catalogue= instead")
    n_users, n_items = s.shape
    _check_k(k, n_items)
    # float32 stays float32 (the lessons' matrices); integers rank in float64, which holds them exactly up to 2**53
    s = s.astype(np.float32 if s.dtype == np.float32 else np.float64, copy=True)
    catalogue = checks.catalogue_mask(catalogue, n_items)
    ex = checks.seen_matrix(seen, s.shape)
    if catalogue is not None:
        s[:, ~catalogue] = -np.inf
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
    if catalogue is not None or seen is not None:
        top[np.take_along_axis(vals, order, axis=1) == -np.inf] = NO_ITEM  # masked, so not an answer
    return top


def evaluate(
    topk,
    truth,
    k: int = 10,
    catalogue=None,
    item_popularity=None,
    item_vectors=None,
) -> dict:
    """One tidy row of metrics for a set of top-k lists.

    Always the six ranking metrics and ``users`` (how many users had relevant items). With ``catalogue``
    (the boolean (n_items,) mask of the items that were ranked), ``coverage@k`` and ``gini@k`` over that
    catalogue; with ``item_popularity``, ``novelty@k``; with ``item_vectors`` (a dict name ->
    (n_items, d) array, or one array), ``ild_<name>@k`` (``ild@k``) for each.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    hits, n_rel = _hits(topk, truth, k)
    row = {f"{name}@{k}": _mean_over_relevant(_per_user(hits, n_rel, name), n_rel) for name in RANKING}
    top = np.asarray(topk)[:, :k].astype(np.int64)
    if catalogue is not None:
        n_all = truth.shape[1]
        items = np.flatnonzero(checks.bool_mask("catalogue", catalogue, n_all))
        if items.size == 0:
            raise ValueError("catalogue must hold at least one ranked item, got an all-False mask")
        position = np.full(n_all, -1, dtype=np.int64)
        position[items] = np.arange(len(items))
        listed = top != NO_ITEM
        local = np.where(listed, position[np.where(listed, top, 0)], NO_ITEM)  # -1 stays "no item"
        if np.any(local[listed] < 0):
            raise ValueError("topk recommends items outside the catalogue; pass the catalogue that was ranked")
        row[f"coverage@{k}"] = catalog_coverage(local, len(items), k)
        row[f"gini@{k}"] = gini_index(local, len(items), k)
    if item_popularity is not None:
        if np.shape(item_popularity)[:1] != (truth.shape[1],):
            raise ValueError(f"item_popularity must hold one count per item of truth ({truth.shape[1]}), got shape "
                             f"{np.shape(item_popularity)}")
        row[f"novelty@{k}"] = novelty(top, item_popularity, k)
    if item_vectors is not None:
        named = item_vectors if isinstance(item_vectors, dict) else {"": item_vectors}
        for name, vec in named.items():
            if np.ndim(vec) != 2 or np.shape(vec)[0] != truth.shape[1]:
                label = f"item_vectors[{name!r}]" if name else "item_vectors"
                raise ValueError(f"{label} must hold one row per item of truth ({truth.shape[1]}), got shape "
                                 f"{np.shape(vec)}")
            row[f"ild_{name}@{k}" if name else f"ild@{k}"] = intra_list_diversity(top, vec, k)
    row["users"] = int((n_rel > 0).sum())
    return row
