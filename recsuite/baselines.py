"""The simplest recommenders, which every other model has to beat."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsuite import _checks


def popularity_scores(history: sp.spmatrix, n_users: int | None = None, tie_seed: int | None = None) -> np.ndarray:
    """Score every item by how many users interacted with it in ``history``; the same for all users.

    Equally popular items (above all the never-seen ones, which all score 0) tie. Ranking then falls
    back to item index, and MovieLens item ids are correlated with popularity, so a tie would leak
    information; ``tie_seed`` breaks ties in a seeded random order per user instead (a jitter below 1),
    which on never-seen items makes popularity what it really is there: a random ranking.
    Returns a float32 (n_users, n_items) matrix (without ``tie_seed`` a read-only broadcast view).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if not sp.issparse(history) or history.ndim != 2:
        raise TypeError(f"history must be a scipy.sparse users x items matrix, got {_checks.describe(history)}")
    if history.shape[1] < 1:
        raise ValueError(f"history must have at least one item column, got shape {history.shape}")
    if history.nnz and not np.isfinite(history.data).all():
        raise ValueError("history holds NaN or inf; expected finite interaction weights")
    n = history.shape[0] if n_users is None else _checks.positive_int("n_users", n_users)
    if n < 1:
        raise ValueError(f"n_users must be a positive int, got {n} (history has no rows; pass n_users)")
    if tie_seed is not None:
        tie_seed = _checks.seed(tie_seed, "tie_seed")
    counts = np.asarray((history != 0).sum(axis=0), dtype=np.float32).ravel()
    if tie_seed is None:
        return np.broadcast_to(counts, (n, len(counts)))
    jitter = np.random.default_rng(tie_seed).random((n, len(counts)), dtype=np.float32)
    return counts + 0.5 * jitter
