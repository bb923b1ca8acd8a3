"""Sampled against full evaluation of one held-out item per user (Krichene & Rendle 2020).

A common shortcut ranks each user's held-out item among 100 randomly drawn items instead of the whole
catalogue. ``target_ranks`` gives both ranks for the same scores; ``rank_metrics`` turns ranks into hit rate
and NDCG at k. The sampled numbers are far higher and need not order models as the full ones do, which is why
the course ranks the full catalogue.

Introduced in notebooks/13_sequential.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks


def _targets(targets, n_users: int, n_items: int) -> np.ndarray:
    t = np.asarray(targets)
    if t.shape != (n_users,):
        raise ValueError(f"targets must hold one item index per user, shape ({n_users},), got shape {t.shape}")
    if t.size and (t.dtype == bool or not np.issubdtype(t.dtype, np.integer)):
        raise TypeError(f"targets must be integer item indices (-1 = no target), got dtype {t.dtype}")
    if t.size and (t.min() < -1 or t.max() >= n_items):
        raise ValueError(f"targets must be item indices in [0, {n_items}) or -1 (no target), got values in "
                         f"[{t.min()}, {t.max()}]")
    return t.astype(np.int64)


def target_ranks(scores, targets, *, seen=None, catalogue=None, exclude=None, n_negatives: int | None = None,
                 seed: int = 0) -> np.ndarray:
    """0-based rank of each user's target item among the items it competes with (NaN where no target).

    Full (``n_negatives=None``): against every rankable item (in ``catalogue``, not in ``seen``). Sampled: against
    ``n_negatives`` items drawn per user uniformly without replacement from the rankable items that are not in
    ``exclude`` (a CSR of the user's relevant items, so another held-out item never counts as a negative).
    Equal scores rank the lower item index first, as ``topk_from_scores`` does, so rank < k exactly when the
    target is in the top-k list. A user with fewer rankable items than ``n_negatives`` is refused.

    Introduced in notebooks/13_sequential.ipynb
    """
    s = checks.score_matrix("scores", scores)
    n_users, n_items = s.shape
    t = _targets(targets, n_users, n_items)
    rankable = checks.rankable(s.shape, catalogue=catalogue, seen=seen)
    rankable = np.ones(s.shape, bool) if rankable is None else rankable
    has = t >= 0
    rows = np.flatnonzero(has)
    if not rankable[rows, t[rows]].all():
        bad = rows[~rankable[rows, t[rows]]][0]
        raise ValueError(f"targets[{bad}] = {t[bad]} is masked (seen or outside the catalogue); a target must be "
                         "rankable")
    ts = np.where(has, s[np.arange(n_users), np.maximum(t, 0)], 0.0)[:, None]
    idx = np.arange(n_items)[None, :]
    ahead = (s > ts) | ((s == ts) & (idx < np.maximum(t, 0)[:, None]))  # beats the target in a ranked list
    if n_negatives is None:
        ranks = (ahead & rankable).sum(axis=1).astype(np.float64)
    else:
        n_negatives = checks.positive_int("n_negatives", n_negatives)
        pool = rankable.copy()
        pool[rows, t[rows]] = False
        if exclude is not None:
            pool &= ~(checks.sparse("exclude", exclude, shape=s.shape).toarray() > 0)
        short = np.flatnonzero(has & (pool.sum(axis=1) < n_negatives))
        if len(short):
            raise ValueError(f"user {short[0]} has {int(pool[short[0]].sum())} items to draw from, fewer than "
                             f"n_negatives={n_negatives}")
        keys = np.random.default_rng(checks.seed("seed", seed)).random(s.shape)
        keys[~pool] = np.inf  # the n smallest keys of a row are a uniform sample of its pool
        # every user with a target has >= n_negatives items (checked above); min() only spares a matrix of users
        # without one, whose ranks are NaN, from a kth past the row
        drawn = np.argpartition(keys, min(n_negatives, n_items) - 1, axis=1)[:, :n_negatives]
        ranks = np.take_along_axis(ahead, drawn, axis=1).sum(axis=1).astype(np.float64)
    ranks[~has] = np.nan
    return ranks


def rank_metrics(ranks, k: int = 10) -> pd.DataFrame:
    """Per-user ``hit@k`` (rank < k) and ``ndcg@k`` (1 / log2(rank + 2) when rank < k) of one target each.

    NaN ranks (no target) stay NaN, so ``.mean()`` averages over users with a target.

    Introduced in notebooks/13_sequential.ipynb
    """
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"ranks must be 1-D (one per user), got shape {r.shape}")
    ok = ~np.isnan(r)
    if (r[ok] < 0).any() or (r[ok] != np.round(r[ok])).any():
        raise ValueError("ranks must be whole numbers >= 0 (or NaN for no target)")
    k = checks.positive_int("k", k)
    hit = np.where(ok, (r < k).astype(np.float64), np.nan)
    ndcg = np.where(ok & (r < k), 1.0 / np.log2(np.where(ok, r, 0.0) + 2.0), 0.0)
    ndcg[~ok] = np.nan
    return pd.DataFrame({f"hit@{k}": hit, f"ndcg@{k}": ndcg})


def first_items(truth) -> np.ndarray:
    """(n_users,) the single item of each row of a one-item-per-user CSR (``Protocol.next_items``), -1 if none.

    Introduced in notebooks/13_sequential.ipynb
    """
    m = checks.sparse("truth", truth)
    counts = np.diff(m.indptr)
    if (counts > 1).any():
        raise ValueError(f"truth must hold at most one item per user, row {int(np.argmax(counts > 1))} holds "
                         f"{int(counts.max())}")
    out = np.full(m.shape[0], -1, np.int64)
    out[counts == 1] = m.indices[m.indptr[:-1][counts == 1]]
    return out

