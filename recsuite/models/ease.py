"""EASE (Steck 2019) in closed form with NumPy: the same model as RecBole's ``EASE``, as a ``Scorer``.

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.models.base import Scorer


# ===================================================================================================
# EASE in NumPy
# ===================================================================================================
@dataclass
class EASEModel(Scorer):
    """A fitted EASE model (a ``Scorer``): the item-item weights B and the matrix X it scores from (X B).

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    reg_weight: float
    fit_seconds: float
    train: sp.csr_matrix = field(repr=False)
    weights: np.ndarray = field(repr=False)  # B, (n_items, n_items) float32, zero diagonal

    @property
    def shape(self) -> tuple[int, int]:
        return self.train.shape

    def scores(self, user_idx=None) -> np.ndarray:
        """(len(user_idx), n_items) float32 scores x_u B; seen items are not masked here."""
        users = self._users(user_idx)
        return np.asarray(self.train[users] @ self.weights, dtype=np.float32)


def fit_ease(history, reg_weight: float = 250.0) -> EASEModel:
    """EASE: the closed-form linear item-item autoencoder of Steck (2019, WWW).

    B = argmin ‖X − XB‖²_F + λ‖B‖²_F subject to diag(B) = 0, solved by P = (XᵀX + λI)⁻¹ and
    B_ij = −P_ij / P_jj (i ≠ j), B_jj = 0. The Gram matrix is inverted in float64 with BLAS on one thread
    (so a refit is bit-identical) and B is stored as float32. RecBole's ``EASE`` is the same model,
    computed in float32 (``reg_weight`` is its name for λ, default 250). Items nobody interacted with get
    all-zero rows and columns of B, so they score 0 for every user.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from threadpoolctl import threadpool_limits

    X = checks.interactions("history", history)
    reg_weight = checks.positive_number("reg_weight", reg_weight)  # the ridge penalty λ
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += float(reg_weight)
        P = np.linalg.inv(G)
        B = P / -np.diag(P)  # column j divided by -P_jj
        np.fill_diagonal(B, 0.0)
    fit_seconds = time.perf_counter() - start
    return EASEModel(reg_weight=float(reg_weight), fit_seconds=fit_seconds, train=X, weights=B.astype(np.float32))


