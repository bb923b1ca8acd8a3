"""Popularity, the simplest recommender, which every other model has to beat: a function and a ``Scorer``.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.models.base import Scorer


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
        raise TypeError(f"history must be a scipy.sparse users x items matrix, got {checks.describe(history)}")
    if history.shape[1] < 1:
        raise ValueError(f"history must have at least one item column, got shape {history.shape}")
    if history.nnz and not np.isfinite(history.data).all():
        raise ValueError("history holds NaN or inf; expected finite interaction weights")
    if history.nnz and history.data.min() < 0:
        raise ValueError(f"history must hold non-negative interaction weights, got a minimum of {history.data.min()}")
    n = history.shape[0] if n_users is None else checks.positive_int("n_users", n_users)
    if n < 1:
        raise ValueError(f"n_users must be a positive int, got {n} (history has no rows; pass n_users)")
    if tie_seed is not None:
        tie_seed = checks.seed("tie_seed", tie_seed)
    counts = np.asarray((history != 0).sum(axis=0), dtype=np.float32).ravel()
    if tie_seed is None:
        return np.broadcast_to(counts, (n, len(counts)))
    jitter = np.random.default_rng(tie_seed).random((n, len(counts)), dtype=np.float32)
    return counts + 0.5 * jitter


class PopularityModel(Scorer):
    """Popularity as a ``Scorer``: row u of ``popularity_scores(history, tie_seed=tie_seed)`` for each user asked for.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """

    def __init__(self, history, tie_seed: int | None = None):
        self._scores = popularity_scores(history, tie_seed=tie_seed)

    @property
    def shape(self) -> tuple[int, int]:
        return self._scores.shape

    def scores(self, user_idx=None) -> np.ndarray:
        return np.array(self._scores[self._users(user_idx)], dtype=np.float32)


def fit_popularity(history, tie_seed: int | None = None) -> PopularityModel:
    """Item popularity counted on ``history`` (users x items CSR), as a ``Scorer``.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    return PopularityModel(history, tie_seed=tie_seed)
