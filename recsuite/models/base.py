"""The interface every catalogue scorer answers, as implicit's ``RecommenderBase`` does for its models.

A ``Scorer`` knows ``n_users`` and ``n_items`` (our index space) and answers ``scores(user_idx)``: a dense
(len(user_idx), n_items) matrix of finite scores, higher = better. ``Protocol.evaluate`` and
``Protocol.rank`` take those matrices, so one model is swapped for another in one line.

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import abc

import numpy as np

from recsuite.core import checks


class Scorer(abc.ABC):
    """What every CF model here is: a fitted model that scores every item for any batch of users.

    The contract: ``shape`` = ``(n_users, n_items)`` gives the size of *our* index space (users 0..n_users-1,
    items 0..n_items-1, as in ``recsuite.data.split.Protocol``); ``scores(user_idx)`` takes a 1-D int array of
    user indices in ``range(n_users)`` (None: every user; checked with ``recsuite.core.checks.indices``, so a
    float, bool or out-of-range index is refused) and returns a dense float32 or float64 array of shape
    ``(len(user_idx), n_items)`` of finite scores, higher = better, row r for user ``user_idx[r]``. Items
    the user already saw are *not* masked (``Protocol.evaluate`` / ``metrics.topk_from_scores`` do that),
    and scoring the same users twice gives the same numbers.

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """``(n_users, n_items)``: the users the model scores and the items of each score row (our indices)."""

    @property
    def n_users(self) -> int:
        """How many users the model scores (our user indices 0..n_users-1)."""
        return int(self.shape[0])

    @property
    def n_items(self) -> int:
        """How many items each score row has (our item indices 0..n_items-1)."""
        return int(self.shape[1])

    @abc.abstractmethod
    def scores(self, user_idx=None) -> np.ndarray:
        """(len(user_idx), n_items) float scores of every item for the given users (None: all users)."""

    def _users(self, user_idx) -> np.ndarray:
        if user_idx is None:
            return np.arange(self.n_users, dtype=np.int64)
        return checks.indices("user_idx", user_idx, self.n_users, what="user")
