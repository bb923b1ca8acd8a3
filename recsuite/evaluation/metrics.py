"""Ranking and beyond-accuracy metrics with one signature: ``metric(topk, truth, k=10)``.

``topk`` is an int ndarray (n_users, >= k) of item indices, best first; ``truth`` a CSR matrix
(n_users, n_items) whose non-zeros are the relevant items. Ranking metrics average over users with at
least one relevant item. A -1 in ``topk`` (``NO_ITEM``, how ``topk_from_scores`` pads a user with fewer
than k rankable items) means "no item": never a hit, not counted in coverage, Gini, novelty or
diversity. Definitions follow RecBole's (Zhao et al. 2021, "RecBole", CIKM), so the
numbers of both libraries agree on the same lists.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.device import usable_cores
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


#: Largest n_users * n_items for which ``_hits`` looks the lists up in a dense boolean table (32 MiB).
_DENSE_LOOKUP = 1 << 25


def _hits(topk, truth, k) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (n_users, k) hit matrix and the number of relevant items per user."""
    if not sp.issparse(truth):
        raise TypeError(f"truth must be a scipy.sparse matrix (n_users, n_items), got {checks.describe(truth)}")
    top = _check_topk(topk, k, truth.shape[1])
    t = _check_truth(truth, top.shape[0])  # a copy, duplicates summed and indices sorted
    t.eliminate_zeros()
    n_users, n_items = t.shape
    rows = np.repeat(np.arange(n_users, dtype=np.int64) * n_items, np.diff(t.indptr))
    keys = rows + t.indices  # flat (user, item) positions, sorted: rows are and indices are within a row
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top
    if n_users * n_items <= _DENSE_LOOKUP:
        table = np.zeros(n_users * n_items + 1, dtype=bool)  # the last slot answers row 0's -1: False
        table[keys] = True
        hits = table[query]
    elif len(keys):
        pos = np.searchsorted(keys, query)
        hits = keys[np.minimum(pos, len(keys) - 1)] == query
    else:
        hits = np.zeros(query.shape, bool)
    hits &= top != NO_ITEM  # -1 would otherwise match the previous user's last item
    return hits, np.diff(t.indptr)


def _relevant(n_rel: np.ndarray) -> np.ndarray:
    """The users with at least one relevant item; a truth with none is an error, not a score of 0."""
    mask = n_rel > 0
    if not mask.any():
        raise ValueError(
            "truth must hold at least one relevant item for the users of topk, got none "
            f"(all {len(n_rel)} rows are empty); is it the right evaluation set and user order?"
        )
    return mask


def _mean_over_relevant(values: np.ndarray, n_rel: np.ndarray) -> float:
    """Mean over the users with at least one relevant item (``_relevant``)."""
    return float(values[_relevant(n_rel)].mean())


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def _per_user(hits: np.ndarray, n_rel: np.ndarray, name: str, n_hit: np.ndarray | None = None) -> np.ndarray:
    """Metric ``name`` per user; ``n_hit`` (hits per row) may be passed in when several metrics share it."""
    k = hits.shape[1]
    if n_hit is None:
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
    """NDCG@k with binary gain: ``DCG = Σ_i rel_i / log2(i + 1)``, IDCG over ``min(|rel|, k)`` hits.

    Järvelin & Kekäläinen 2002. Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("ndcg", topk, truth, k)


def recall_at_k(topk, truth, k: int = 10) -> float:
    """Recall@k = hits in the top k / ``|rel|`` (RecBole's definition, not divided by ``min(|rel|, k)``).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return _ranking("recall", topk, truth, k)


def precision_at_k(topk, truth, k: int = 10) -> float:
    """Precision@k = hits in the top k / k (always k, even when ``|rel| < k``, as in RecBole).

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
    """MAP@k = ``Σ_i P@i · rel_i / min(|rel|, k)``.

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
    has, n_hit = n_rel > 0, hits.sum(axis=1)
    df = pd.DataFrame({f"{m}@{k}": np.where(has, _per_user(hits, n_rel, m, n_hit), np.nan) for m in RANKING})
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
    listed = top != NO_ITEM  # short lists padded with -1: pairs over the listed items only
    m = listed.sum(axis=1)
    keep = m >= 2
    if not keep.any():
        raise ValueError("intra_list_diversity needs at least one list with two or more items, got none")
    # The sum of a list's pairwise cosines is ‖Σ_k x_k‖² − Σ_k ‖x_k‖² (its Gram matrix less the diagonal):
    # Σ_k x_k for every list is one sparse (lists x items) product, with no (n_users, k, d) copy of the vectors.
    users = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)[listed]
    members = sp.csr_matrix((np.ones(len(users)), (users, top[listed])), shape=(top.shape[0], v.shape[0]))
    total = np.asarray(members @ v)
    norms = np.einsum("id,id->i", v, v)
    self_sims = np.where(listed, norms[np.where(listed, top, 0)], 0.0).sum(axis=1)
    off = (np.einsum("ud,ud->u", total, total) - self_sims)[keep] / (m[keep] * (m[keep] - 1))
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
#: Elements of the score matrix per block of rows in ``topk_from_scores`` (about 2 MiB of float32).
_BLOCK = 1 << 19


def _threads() -> int:
    """Worker threads ``topk_from_scores`` may use: the usable cores, at most ``OMP_NUM_THREADS`` if set."""
    cores = usable_cores()
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, cores)


def _row_blocks(n_users: int, n_items: int) -> tuple[list[slice], int]:
    """Blocks of rows of about ``_BLOCK`` scores (sizes differ by one row at most), and the threads to rank them.

    The number of blocks is a multiple of the number of threads where there are enough rows; each thread
    takes the next block left, so the blocks, not the threads, decide which rows are ranked together.
    """
    n_blocks = min(n_users, -(-n_users * n_items // _BLOCK))
    threads = min(_threads(), n_blocks) if n_blocks > 1 else 1
    n_blocks = min(n_users, -(-n_blocks // threads) * threads)
    return [slice(n_users * i // n_blocks, n_users * (i + 1) // n_blocks) for i in range(n_blocks)], threads


def _topk_block(s: np.ndarray, rows: slice, k: int, dtype, hidden, ex) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and their scores (in ``dtype``) for ``s[rows]``; masked entries score -inf.

    ``hidden`` holds the columns outside the catalogue (or None), ``ex`` the CSR of seen items (or None).
    Exactly the first k of each row in the order (score descending, item index ascending), without
    sorting whole rows: the columns are split into g groups (group j holds the columns j, j + g, ...), and
    the k-th largest of the group maxima is a lower bound of the row's k-th largest score (the k groups
    with the largest maxima hold k distinct entries at least that large). Only the entries at or above it,
    found in item order, are sorted, stably by score; with g = n_items the bound is exact.
    """
    m, n = s[rows].shape
    g = min(n, max(4 * k, -(-n // 16)))  # at most 16 columns a group
    width = -(-n // g) * g
    x = np.empty((m, width), dtype=dtype)  # a copy, padded to whole groups with -inf
    x[:, :n] = s[rows]
    x[:, n:] = -np.inf
    flat = x.ravel()
    if hidden is not None:
        x[:, hidden] = -np.inf
    if ex is not None:
        lo, hi = ex.indptr[rows.start], ex.indptr[rows.stop]
        offset = np.repeat(np.arange(m, dtype=np.int64) * width, np.diff(ex.indptr[rows.start:rows.stop + 1]))
        flat[offset + ex.indices[lo:hi]] = -np.inf
    best = x if width == g else x.reshape(m, width // g, g).max(axis=1)
    bound = np.partition(best, g - k, axis=1)[:, g - k]
    # Row-major, so in item order within a row. A padding slot is a candidate only where the bound is -inf,
    # and then all n >= k items of the row are too, ahead of it: it is never among the first k.
    idx = np.flatnonzero(x >= bound[:, None])
    r = idx // width
    c = idx - r * width
    v = flat[idx]
    counts = np.bincount(r, minlength=m)  # >= k in every row
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    # Most rows have a few more than k candidates: one (m, cols) matrix of them, in item order, sorted
    # stably per row. Rows with many (ties at the cut, fewer than k rankable items) are sorted apart.
    many = counts > max(4 * k, 64)
    few = ~many[r] if many.any() else slice(None)
    cols = int(counts[~many].max()) if (~many).any() else k
    padded = np.full((m, cols), -np.inf, dtype=dtype)  # -inf after a row's candidates: never before them
    padded.ravel()[(r * cols + (np.arange(len(idx)) - first[r]))[few]] = v[few]
    pick = first[:, None] + np.argsort(-padded, axis=1, kind="stable")[:, :k]
    if many.any():  # grouped by row, best first within each
        big = np.flatnonzero(many[r])
        order = big[np.lexsort((c[big], -v[big], r[big]))]
        starts = np.concatenate(([0], np.cumsum(counts[many])[:-1]))
        pick[many] = order[starts[:, None] + np.arange(k)]
    return c[pick], v[pick]


def topk_from_scores(scores, k: int, *, seen=None, catalogue=None) -> np.ndarray:
    """Top-k item indices per user, best first, as an int64 (n_users, k) array.

    ``seen`` is a CSR (n_users, n_items) of items to mask per user (already seen); ``catalogue`` a
    boolean (n_items,) mask of the catalogue to rank. Equal scores are ordered by item index, so the
    result is deterministic. A user with fewer than k rankable items gets a short list padded at the
    end with -1 (``NO_ITEM``), never with a masked item; every metric here reads -1 as "no item"
    (never a hit, not counted in coverage, Gini or novelty).

    Ranks blocks of users of about ``_BLOCK`` scores each, in as many threads as there are usable cores
    (at most ``OMP_NUM_THREADS`` when set), so the working memory is a few blocks, not copies of the whole
    matrix; the lists never depend on the number of threads. Within a row only the entries at or above a
    cheap lower bound of its k-th largest score are sorted (``_topk_block``).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (n_users, n_items), got shape {s.shape}")
    if s.dtype == bool or not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise TypeError(f"scores must be a real int or float array, got dtype {s.dtype}")
    if not np.issubdtype(s.dtype, np.integer) and not np.isfinite(s).all():
        raise ValueError("scores holds NaN or inf; mask items with seen=/catalogue= instead")
    n_users, n_items = s.shape
    _check_k(k, n_items)
    # float32 stays float32 (the lessons' matrices); integers rank in float64, which holds them exactly up to 2**53
    dtype = np.float32 if s.dtype == np.float32 else np.float64
    catalogue = checks.catalogue_mask(catalogue, n_items)
    ex = checks.seen_matrix(seen, s.shape)
    hidden = None if catalogue is None or catalogue.all() else np.flatnonzero(~catalogue)
    blocks, threads = _row_blocks(n_users, n_items)
    top = np.empty((n_users, k), dtype=np.int64)
    vals = np.empty((n_users, k), dtype=dtype)

    todo, taking = iter(blocks), threading.Lock()

    def rank() -> None:  # takes the next block until none is left, so a slow thread holds up no other
        while True:
            with taking:
                rows = next(todo, None)
            if rows is None:
                return
            top[rows], vals[rows] = _topk_block(s, rows, k, dtype, hidden, ex)

    if threads == 1:
        rank()
    else:  # this thread ranks blocks too
        with ThreadPoolExecutor(threads - 1) as pool:
            others = [pool.submit(rank) for _ in range(threads - 1)]
            rank()
            for done in others:
                done.result()
    if catalogue is not None or seen is not None:
        top[vals == -np.inf] = NO_ITEM  # masked, so not an answer
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
    relevant, n_hit = _relevant(n_rel), hits.sum(axis=1)
    row = {f"{name}@{k}": float(_per_user(hits, n_rel, name, n_hit)[relevant].mean()) for name in RANKING}
    top = np.asarray(topk)[:, :k].astype(np.int64, copy=False)
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
