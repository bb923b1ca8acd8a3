"""What every batched re-ranker shares: checks of the candidate arrays, cosine rows between candidates (one Gram
matrix or vectors gathered per block of users), and the memory budget that sizes the blocks.

Introduced in notebooks/07_reranking.ipynb
"""

from __future__ import annotations

import numpy as np

from recsuite.core import checks as C
from recsuite.core.rows import unit_rows

# Cosine similarities between candidates come either from one Gram matrix of the distinct candidate items
# (one efficient matrix product, U²·d, after which every similarity is a lookup) or from the candidates'
# vectors gathered per block of users (a memory-bound n_users·steps·M·d). The Gram matrix is used when
# U² <= 6·n_users·steps·M and it fits in memory (5000² float64 = 200 MB): on a 2-core EPYC the matrix product
# ran ~15x more multiply-adds per second than the streaming path, and the factor 6 leaves room for the
# lookups. Both paths give the same cosines up to rounding.
GRAM_MAX_ITEMS = 5000
GRAM_WORK_RATIO = 6.0
# Memory budget for per-block arrays such as the gathered candidate vectors (bytes).
BLOCK_BYTES = 64 * 2**20
CACHE_BYTES = 2**19
# Budget for the (B, M, n_genres) float arrays of the calibration objective (``objectives``): each greedy step
# makes several of them, and blocks that keep them in the last-level cache ran the 943-user calibrate and
# scalarize about twice as fast as 64 MB blocks (2-core Xeon; the same lists: each user's arithmetic is its own).
GENRE_BLOCK_BYTES = 8 * 2**20
# Repeated candidates are found with a (rows x n_items) boolean table when n_items <= this many times M,
# by sorting each row otherwise.
REPEAT_FLAG_RATIO = 32


# -- validation ---------------------------------------------------------------------------------------
def check_k(k, width: int) -> int:
    k = C.positive_int("k", k)
    if k > width:
        raise ValueError(f"k={k} is larger than the number of candidates M={width}; expected k <= M")
    return k


def check_candidates(cand_items, cand_scores, k, n_items: int | None):
    """Validated (items int64, scores float64, k); n_items=None skips the range check."""
    items = np.asarray(cand_items)
    if items.dtype == bool or not np.issubdtype(items.dtype, np.integer):
        raise TypeError(f"cand_items must hold integer item indices, got {C.describe(items)}")
    if items.ndim != 2:
        raise ValueError(f"cand_items must be a 2-D array (n_users, M), got shape {items.shape}")
    scores = C.array("cand_scores", cand_scores, ndim=2, dtype=np.float64, finite=False)
    if scores.shape != items.shape:
        raise ValueError(f"cand_scores must have the shape of cand_items {items.shape}, got {scores.shape}")
    if items.shape[1] == 0:
        raise ValueError("cand_items has no candidates (M = 0); expected M >= 1")
    k = check_k(k, items.shape[1])
    if not np.isfinite(scores).all():
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise ValueError(f"cand_scores holds NaN or inf (first at user row {bad[0]}, candidate {bad[1]}); "
                         "expected finite scores")
    items = items.astype(np.int64)
    if items.size:
        lo, hi = int(items.min()), int(items.max())
        if lo == -1:
            row = int(np.argwhere(items == -1)[0][0])
            raise ValueError(f"cand_items holds -1 (NO_ITEM, a padded slot) in user row {row}; re-rankers need real "
                             "candidates in every slot: shortlist() with a smaller m, or drop the padded rows")
        if lo < 0 or (n_items is not None and hi >= n_items):
            bad = lo if lo < 0 else hi
            where = "" if n_items is None else f", outside [0, {n_items}) of the item arrays"
            raise ValueError(f"cand_items holds item index {bad}{where}; expected item indices >= 0")
        if _has_repeats(items, n_items):
            s = np.sort(items, axis=1)
            rep = (s[:, 1:] == s[:, :-1]).any(axis=1)
            raise ValueError(f"cand_items repeats an item within a row (first in row {int(np.argmax(rep))}); "
                             "expected distinct candidates per user")
    return items, scores, k


def _has_repeats(items: np.ndarray, n_items: int | None) -> bool:
    """Whether some row of ``items`` (int64 (n_users, M), entries in [0, n_items)) holds an item twice.

    With a catalogue no larger than ``REPEAT_FLAG_RATIO``·M, each block of rows marks its (row, item) pairs
    in a boolean table and counts them, O(n_users·n_items) bytes touched; otherwise (or n_items unknown) each
    row is sorted, O(n_users·M log M). On 943 x 200 candidates of 1682 items the table was ~7x faster.
    """
    n_users, m = items.shape
    if m < 2:
        return False
    if n_items is None or n_items > REPEAT_FLAG_RATIO * m:
        s = np.sort(items, axis=1)
        return bool((s[:, 1:] == s[:, :-1]).any())
    size = max(1, BLOCK_BYTES // n_items)
    for rows in blocks(n_users, size):
        part = items[rows]
        key = part + (np.arange(part.shape[0]) * n_items)[:, None]
        seen = np.zeros(part.shape[0] * n_items, dtype=bool)
        seen[key.ravel()] = True
        if np.count_nonzero(seen) != part.size:
            return True
    return False


def unit_vectors(name: str, vectors) -> np.ndarray:
    return unit_rows(C.array(name, vectors, ndim=2))  # float64, as before


def distribution_rows(name: str, x) -> np.ndarray:
    a = C.array(name, x, ndim=2, nonnegative=True)
    total = a.sum(axis=1, keepdims=True)
    return np.divide(a, total, out=np.zeros_like(a), where=total > 0)


# -- cosine similarity rows ---------------------------------------------------------------------------
class Cosines:
    """Cosine between one chosen candidate per user and all of that user's candidates, per block."""

    def __init__(self, items: np.ndarray, unit: np.ndarray, steps: int):
        self.unit, self.steps = unit, steps
        present = np.zeros(unit.shape[0], dtype=bool)
        present[items.ravel()] = True
        uniq = np.flatnonzero(present)
        self.gram = None
        n_u = len(uniq)
        if n_u <= GRAM_MAX_ITEMS and n_u * n_u <= GRAM_WORK_RATIO * items.shape[0] * steps * items.shape[1]:
            v = unit if n_u == unit.shape[0] else unit[uniq]  # no copy when every item is a candidate
            self.gram = (v @ v.T).ravel()  # flat: one np.take per step is twice as fast as 2-D indexing
            self.n_gram = len(uniq)
            lookup = np.zeros(unit.shape[0], dtype=np.int64)
            lookup[uniq] = np.arange(len(uniq))
            self.local = lookup[items]

    def block_size(self, n_users: int, m: int) -> int:
        if self.gram is not None:
            # The greedy loop keeps about steps + 4 float (B, M) arrays; blocks whose (B, M) arrays fit in
            # a core's L2 cache were ~10 % faster than one block of all 943 users.
            return max(1, min(BLOCK_BYTES // (m * 8 * (self.steps + 4)), CACHE_BYTES // (m * 8)))
        return max(1, BLOCK_BYTES // (m * self.unit.shape[1] * 8))

    def bind(self, rows: slice, items: np.ndarray) -> None:
        if self.gram is not None:
            self._loc = self.local[rows]
        elif self.steps:
            self._vec = self.unit[items]  # (B, M, d): this block's candidate vectors

    def row(self, pos: np.ndarray) -> np.ndarray:
        """(B, M) cosines of candidate ``pos[b]`` to every candidate of user b."""
        ar = np.arange(len(pos))
        if self.gram is not None:
            return np.take(self.gram, self._loc[ar, pos][:, None] * self.n_gram + self._loc)
        return np.einsum("bmd,bd->bm", self._vec, self._vec[ar, pos])


def blocks(n_users: int, size: int):
    for start in range(0, n_users, size):
        yield slice(start, min(start + size, n_users))


