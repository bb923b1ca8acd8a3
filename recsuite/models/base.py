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


class CandidateScorer(abc.ABC):
    """What every second-stage model is: it scores a few candidate items per user, not the whole catalogue.

    ``score_candidates(user_idx, candidates)`` takes a 1-D int array of user indices and an int
    ``(len(user_idx), M)`` array of item indices (row r: user ``user_idx[r]``'s candidates) and returns float
    ``(len(user_idx), M)`` scores, higher = better, column j for candidate j; sort a row to re-rank it.
    The cross-encoder (``crossenc.CrossEncoderRanker``), the language model (``llmrank.LMRanker``) and any
    catalogue ``Scorer`` (``ScorerOnCandidates``) answer it, so one re-ranker is swapped for another in one line.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """

    @abc.abstractmethod
    def score_candidates(self, user_idx, candidates) -> np.ndarray:
        """Float ``(len(user_idx), M)`` scores of each user's candidates."""

    @staticmethod
    def _check(user_idx, candidates, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        users = checks.indices("user_idx", user_idx, n_users, what="user")
        cands = checks.indices("candidates", candidates, n_items, ndim=2, what="item")
        if len(cands) != len(users):
            raise ValueError(f"candidates must have one row per user, got {len(cands)} rows for {len(users)} users")
        return users, cands


class ScorerOnCandidates(CandidateScorer):
    """A catalogue ``Scorer`` read at the candidates: its score of each user's candidate items.

    Introduced in notebooks/10_llm_recommenders.ipynb
    """

    def __init__(self, scorer: Scorer):
        if not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a recsuite.models.base.Scorer, got {checks.describe(scorer)}")
        self.scorer = scorer

    def score_candidates(self, user_idx, candidates) -> np.ndarray:
        users, cands = self._check(user_idx, candidates, self.scorer.n_users, self.scorer.n_items)
        return np.take_along_axis(self.scorer.scores(users), cands, axis=1)


class FactorScorer(Scorer):
    """A factor model as a ``Scorer``: score(u, i) = user_factors[u] . item_factors[i] (ALS, BPR, MLlib's ALS).

    Introduced in notebooks/12_spark_scaling.ipynb
    """

    def __init__(self, user_factors, item_factors):
        self.user_factors = checks.array("user_factors", user_factors, ndim=2, dtype=np.float32)
        self.item_factors = checks.array("item_factors", item_factors, ndim=2, dtype=np.float32)
        if self.user_factors.shape[1] != self.item_factors.shape[1]:
            raise ValueError(f"user_factors and item_factors must have the same rank, got "
                             f"{self.user_factors.shape[1]} and {self.item_factors.shape[1]}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.user_factors.shape[0], self.item_factors.shape[0]

    def scores(self, user_idx=None) -> np.ndarray:
        return self.user_factors[self._users(user_idx)] @ self.item_factors.T
