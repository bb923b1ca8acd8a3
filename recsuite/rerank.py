"""Re-ranking a candidate list for relevance *and* diversity: MMR, DPP, calibration, weighted objectives.

Every re-ranker is batched over users. ``cand_items`` is an int (n_users, M) array of item indices (each
row is one user's candidates, usually best first), ``cand_scores`` the float (n_users, M) relevance of
those candidates, ``item_vectors`` an (n_items, d) array whose cosine similarity defines how alike two
items are (rows are normalised here; a zero vector has cosine 0 to every other item). Each re-ranker
returns an int64 (n_users, k) array of item indices, best first.

Scores are used as given, never rescaled: MMR mixes a score with a cosine and DPP exponentiates it, so
the scale of the scores sets the trade-off. ``recsuite.fusion.normalize_scores(cand_scores, "minmax")`` rescales
explicitly (a constant row maps to 0.5, which changes no re-ranker's choice: a constant shift per user moves no argmax).
Equal values of a greedy objective go to the earlier candidate (lower column), so the result is
deterministic; candidates are usually sorted by score, so that is also the better-scored one.

The greedy loops run over the k output positions only; each step is one vectorised operation over
all users (in blocks of users when that bounds memory).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from recsuite import _checks as C
from recsuite._rows import unit_rows

__all__ = [
    "OBJECTIVES",
    "calibrate",
    "calibration_kl",
    "dpp",
    "dpp_single",
    "maxsum",
    "mmr",
    "pareto_front",
    "scalarize",
    "shortlist",
    "sort_by_score",
]

#: Objectives that ``scalarize`` can weigh, and what each one needs besides the scores.
OBJECTIVES = {
    "relevance": (),
    "novelty": ("item_popularity",),
    "diversity": ("item_vectors",),
    "calibration": ("item_genres", "user_genre_dist"),
}

#: DPP stops when the largest remaining gain d² falls below this, on a kernel scaled so that the
#: top-scored candidate has L_ii = 1 (Chen et al. 2018 use 1e-10 on their kernel).
DPP_EPS = 1e-10

#: Calibration smoothing used by ``scalarize`` (Steck 2018's alpha = 0.01).
CALIBRATION_ALPHA = 0.01

# Cosine similarities between candidates come either from one Gram matrix of the distinct candidate items
# (one efficient matrix product, U²·d, after which every similarity is a lookup) or from the candidates'
# vectors gathered per block of users (a memory-bound n_users·steps·M·d). The Gram matrix is used when
# U² <= 6·n_users·steps·M and it fits in memory (5000² float64 = 200 MB): on a 2-core EPYC the matrix product
# ran ~15x more multiply-adds per second than the streaming path, and the factor 6 leaves room for the
# lookups. Both paths give the same cosines up to rounding.
_GRAM_MAX_ITEMS = 5000
_GRAM_WORK_RATIO = 6.0
# Memory budget for per-block arrays such as the gathered candidate vectors (bytes).
_BLOCK_BYTES = 64 * 2**20
_CACHE_BYTES = 2**19


# -- validation ---------------------------------------------------------------------------------------
def _check_k(k, width: int) -> int:
    k = C.positive_int("k", k)
    if k > width:
        raise ValueError(f"k={k} is larger than the number of candidates M={width}; expected k <= M")
    return k


def _check_candidates(cand_items, cand_scores, k, n_items: int | None):
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
    k = _check_k(k, items.shape[1])
    if not np.isfinite(scores).all():
        bad = np.argwhere(~np.isfinite(scores))[0]
        raise ValueError(f"cand_scores holds NaN or inf (first at user row {bad[0]}, candidate {bad[1]}); "
                         "expected finite scores")
    items = items.astype(np.int64)
    if items.size:
        lo, hi = int(items.min()), int(items.max())
        if lo < 0 or (n_items is not None and hi >= n_items):
            bad = lo if lo < 0 else hi
            raise ValueError(f"cand_items holds item index {bad}, outside [0, {n_items}) of the item arrays")
        s = np.sort(items, axis=1)
        rep = (s[:, 1:] == s[:, :-1]).any(axis=1)
        if rep.any():
            raise ValueError(f"cand_items repeats an item within a row (first in row {int(np.argmax(rep))}); "
                             "expected distinct candidates per user")
    return items, scores, k


def _unit_vectors(name: str, vectors) -> np.ndarray:
    return unit_rows(C.array(name, vectors, ndim=2))  # float64, as before


def _distribution_rows(name: str, x) -> np.ndarray:
    a = C.array(name, x, ndim=2, nonnegative=True)
    total = a.sum(axis=1, keepdims=True)
    return np.divide(a, total, out=np.zeros_like(a), where=total > 0)


# -- cosine similarity rows ---------------------------------------------------------------------------
class _Cosines:
    """Cosine between one chosen candidate per user and all of that user's candidates, per block."""

    def __init__(self, items: np.ndarray, unit: np.ndarray, steps: int):
        self.unit, self.steps = unit, steps
        present = np.zeros(unit.shape[0], dtype=bool)
        present[items.ravel()] = True
        uniq = np.flatnonzero(present)
        self.gram = None
        n_u = len(uniq)
        if n_u <= _GRAM_MAX_ITEMS and n_u * n_u <= _GRAM_WORK_RATIO * items.shape[0] * steps * items.shape[1]:
            v = unit[uniq]
            self.gram = (v @ v.T).ravel()  # flat: one np.take per step is twice as fast as 2-D indexing
            self.n_gram = len(uniq)
            lookup = np.zeros(unit.shape[0], dtype=np.int64)
            lookup[uniq] = np.arange(len(uniq))
            self.local = lookup[items]

    def block_size(self, n_users: int, m: int) -> int:
        if self.gram is not None:
            # The greedy loop keeps about steps + 4 float (B, M) arrays; blocks whose (B, M) arrays fit in
            # a core's L2 cache were ~10 % faster than one block of all 943 users.
            return max(1, min(_BLOCK_BYTES // (m * 8 * (self.steps + 4)), _CACHE_BYTES // (m * 8)))
        return max(1, _BLOCK_BYTES // (m * self.unit.shape[1] * 8))

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


def _blocks(n_users: int, size: int):
    for start in range(0, n_users, size):
        yield slice(start, min(start + size, n_users))


# -- candidates and fronts ---------------------------------------------------------------------------
def shortlist(scores, m: int, *, exclude=None, allowed=None) -> tuple[np.ndarray, np.ndarray]:
    """The M best items per user of a users x items score matrix, and their scores: the re-rankers' input.

    ``exclude`` (users x items sparse, e.g. the history) and ``allowed`` (boolean (n_items,) catalogue mask)
    mask items exactly as ``recsuite.metrics.topk_from_scores``, which picks the lists (best first, equal
    scores by item index). Returns ``cand_items`` int64 (n_users, m) and ``cand_scores`` float64 (n_users, m),
    the scores unchanged (rescale them with ``recsuite.fusion.normalize_scores(cand_scores, "minmax")`` where the
    re-ranker needs it).

    Introduced in notebooks/07_reranking.ipynb
    """
    from recsuite.metrics import topk_from_scores

    m = C.positive_int("m", m)
    s = np.asarray(scores)
    items = topk_from_scores(s, m, exclude=exclude, allowed=allowed)  # validates scores and both masks
    n_users, n_items = s.shape
    rankable = np.full(n_users, n_items if allowed is None else int(np.count_nonzero(allowed)))
    if exclude is not None:
        ex = sp.csr_matrix(exclude, copy=True)
        ex.sum_duplicates()  # an item listed twice in a row is masked once
        masked = np.ones(ex.nnz, dtype=bool) if allowed is None else np.asarray(allowed)[ex.indices]
        rows = np.repeat(np.arange(n_users), np.diff(ex.indptr))
        # an item excluded and outside the catalogue is masked once, not twice
        rankable -= np.bincount(rows[masked], minlength=n_users)
    if n_users and rankable.min() < m:
        u = int(rankable.argmin())
        raise ValueError(f"m={m} is larger than the {int(rankable[u])} items user row {u} can be recommended "
                         "(catalogue minus that user's excluded items); expected a smaller m")
    return items, np.take_along_axis(s, items, axis=1).astype(np.float64)


def pareto_front(objectives) -> np.ndarray:
    """Boolean mask of the non-dominated rows of an (n_points, n_objectives) array, every objective maximised.

    Row i is dominated when some row j is >= in every objective and > in at least one; exact duplicates of
    a front point are all on the front. Negate a column to minimise it (e.g. −loss).

    Introduced in notebooks/08_tradeoffs_feedback.ipynb
    """
    x = C.array("objectives", objectives, ndim=2)
    if x.shape[1] == 0:
        raise ValueError(f"objectives must have at least one column, got shape {x.shape}")
    ge = (x[None, :, :] >= x[:, None, :]).all(axis=2)  # ge[i, j]: j is >= i everywhere
    gt = (x[None, :, :] > x[:, None, :]).any(axis=2)
    return ~(ge & gt).any(axis=1)


def sort_by_score(topk, cand_items, cand_scores) -> np.ndarray:
    """Each user's re-ranked items ordered by their candidate score, best first (equal scores: earlier candidate).

    A re-ranker decides *which* k items a user sees and, greedily, in what order; intra-list diversity,
    coverage, novelty, Gini and calibration of a list do not depend on the order, but NDCG does. Sorting
    the chosen set by relevance keeps every set metric and puts the likeliest items on top. Every item of
    row u of ``topk`` (int (n_users, k)) must be one of row u's ``cand_items``; returns int64 (n_users, k).

    Introduced in notebooks/08_tradeoffs_feedback.ipynb
    """
    items, scores, _ = _check_candidates(cand_items, cand_scores, 1, None)
    top = np.asarray(topk)
    if top.ndim != 2 or not np.issubdtype(top.dtype, np.integer):
        raise ValueError(f"topk must be a 2-D int array (n_users, k), got {top.dtype} {top.shape}")
    if top.shape[0] != items.shape[0]:
        raise ValueError(f"topk has {top.shape[0]} user rows but cand_items has {items.shape[0]}; expected the same users")
    top = top.astype(np.int64)
    n_users, k = top.shape
    if k > 1:
        srt = np.sort(top, axis=1)
        rep = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        if rep.any():
            raise ValueError(f"topk repeats an item within a row (first in row {int(np.argmax(rep))}); expected "
                             "distinct items per user, as every re-ranker returns")
    out = np.empty_like(top)
    size = max(1, _BLOCK_BYTES // max(1, k * items.shape[1]))  # the (B, k, M) match array is bool
    for rows in _blocks(n_users, size):
        match = top[rows, :, None] == items[rows, None, :]
        found = match.any(axis=2)
        if not found.all():
            u, j = np.argwhere(~found)[0]
            raise ValueError(f"topk row {rows.start + u} holds item {top[rows.start + u, j]}, which is not among that "
                             "row's cand_items; expected lists re-ranked from these candidates")
        pos = match.argmax(axis=2)
        s = np.take_along_axis(scores[rows], pos, axis=1)
        order = np.lexsort((pos, -s), axis=1)  # by score, best first; equal scores by candidate position
        out[rows] = np.take_along_axis(top[rows], order, axis=1)
    return out


def _greedy_by_cosine(items, scores, unit, k: int, gain, update) -> np.ndarray:
    """The greedy loop MMR and MaxSum share, for all users at once (blocks of users bound the memory).

    Position 0 takes the top-scored candidate; position t > 0 the untaken candidate with the largest
    ``gain(scores, state, t)``. After each pick, ``state = update(state, cos(picked, every candidate), t)``,
    starting from zeros. Equal gains go to the earlier candidate (argmax).
    """
    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    if n_users == 0:
        return out
    cos = _Cosines(items, unit, k - 1)
    for rows in _blocks(n_users, cos.block_size(n_users, m)):
        cos.bind(rows, items[rows])
        s = scores[rows]
        ar = np.arange(s.shape[0])
        taken = np.zeros(s.shape, dtype=bool)
        state = np.zeros(s.shape)
        pos = s.argmax(axis=1)
        for t in range(k):
            if t:
                pos = np.where(taken, -np.inf, gain(s, state, t)).argmax(axis=1)
            out[rows, t] = items[rows][ar, pos]
            taken[ar, pos] = True
            if t < k - 1:
                state = update(state, cos.row(pos), t)
    return out


# -- MMR ----------------------------------------------------------------------------------------------
def mmr(cand_items, cand_scores, item_vectors, k: int, lam: float) -> np.ndarray:
    """Maximal marginal relevance (Carbonell & Goldstein 1998), greedily for all users at once.

    First the top-scored candidate, then argmax over the rest of lam·score − (1 − lam)·max_{j∈S} cos(i, j).
    lam = 1 is the score order; lam = 0 picks, after the first, the item least like those chosen.

    Introduced in notebooks/07_reranking.ipynb
    """
    unit = _unit_vectors("item_vectors", item_vectors)
    items, scores, k = _check_candidates(cand_items, cand_scores, k, unit.shape[0])
    lam = C.number("lam", lam, low=0.0, high=1.0)
    return _greedy_by_cosine(items, scores, unit, k,
                             gain=lambda s, max_sim, t: lam * s - (1.0 - lam) * max_sim,
                             update=lambda max_sim, sim, t: sim if t == 0 else np.maximum(max_sim, sim))


# -- MaxSum -------------------------------------------------------------------------------------------
def maxsum(cand_items, cand_scores, item_vectors, k: int, lam: float) -> np.ndarray:
    """Max-sum diversification (Gollapudi & Sharma 2009, "An axiomatic approach for result diversification",
    WWW), greedily for all users at once.

    First the top-scored candidate, then argmax over the rest of
    (1 − lam)·score + lam·mean_{j∈S} (1 − cos(i, j)): the candidate's score against its *mean* distance to
    the items already chosen. Summed over the list, the second term is exactly the intra-list diversity
    ILD(L) = mean over pairs of 1 − cos, so the greedy step maximises the metric directly, whereas MMR
    penalises only the *closest* chosen item. lam = 0 is the score order; lam = 1 picks, after the first,
    the item farthest on average from those chosen.

    Introduced in notebooks/07_reranking.ipynb
    """
    unit = _unit_vectors("item_vectors", item_vectors)
    items, scores, k = _check_candidates(cand_items, cand_scores, k, unit.shape[0])
    lam = C.number("lam", lam, low=0.0, high=1.0)
    # the state is, per candidate, the sum over the chosen j of 1 - cos(i, j); over t chosen, its mean distance
    return _greedy_by_cosine(items, scores, unit, k,
                             gain=lambda s, distance, t: (1.0 - lam) * s + lam * distance / t,
                             update=lambda distance, sim, t: distance + (1.0 - sim))


# -- DPP ----------------------------------------------------------------------------------------------
def _dpp_alpha(theta) -> float:
    theta = C.number("theta", theta, low=0.0, high=1.0, high_open=True)
    return theta / (2.0 * (1.0 - theta))


def _quality(scores: np.ndarray, alpha: float) -> np.ndarray:
    # exp(alpha·r) overflows for large alpha. Subtracting each user's max score first multiplies that
    # user's kernel L by the constant exp(-2·alpha·max r): every determinant of a k-subset scales by the
    # same factor, so the greedy argmax (and the MAP set) is unchanged, and now 0 < q <= 1 with the
    # top-scored candidate at exactly 1. DPP_EPS is thus relative to the best candidate's L_ii, which
    # also makes the result invariant to adding a constant to a user's scores.
    return np.exp(alpha * (scores - scores.max(axis=-1, keepdims=True)))


def dpp(cand_items, cand_scores, item_vectors, k: int, theta: float) -> np.ndarray:
    """Greedy MAP of a determinantal point process per user (Chen, Zhang & Zhou 2018, NeurIPS).

    Kernel L = diag(exp(α·r))·S·diag(exp(α·r)), S the cosine similarity of the candidates (S_ii = 1), α =
    θ / (2(1 − θ)), 0 <= θ < 1: θ = 0 is pure diversity, θ → 1 the score order. Each step adds the item of
    largest gain d_i² = L_ii − ‖c_i‖², updated by incremental Cholesky: e_i = (L_ji − ⟨c_j, c_i⟩) / d_j,
    c_i ← [c_i, e_i], d_i² ← d_i² − e_i², O(k²M) per user. When the largest remaining d² falls below
    ``DPP_EPS`` (S rank-deficient: duplicates, more candidates than dimensions), the remaining places are
    filled by score. No item is picked twice. Same picks as ``dpp_single`` run user by user.

    Introduced in notebooks/07_reranking.ipynb
    """
    unit = _unit_vectors("item_vectors", item_vectors)
    items, scores, k = _check_candidates(cand_items, cand_scores, k, unit.shape[0])
    alpha = _dpp_alpha(theta)
    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    if n_users == 0:
        return out
    cos = _Cosines(items, unit, k - 1)
    for rows in _blocks(n_users, cos.block_size(n_users, m)):
        cos.bind(rows, items[rows])
        picks = _dpp_block(scores[rows], cos, k, alpha)
        out[rows] = np.take_along_axis(items[rows], picks, axis=1)
    return out


def _dpp_block(s: np.ndarray, cos: _Cosines, k: int, alpha: float) -> np.ndarray:
    """Candidate positions (B, k) picked by the greedy DPP for one block of users."""
    b, m = s.shape
    ar = np.arange(b)
    q = _quality(s, alpha)
    d2 = q * q  # L_ii = q_i² · S_ii, S_ii = 1 (also for zero vectors: an item is like itself)
    left = s.copy()  # scores of the candidates not yet picked, for filling by score
    c = np.zeros((k - 1, b, m))  # Cholesky rows c[t, u, i], one per pick but the last
    done = np.zeros(b, dtype=bool)  # users whose kernel ran out of rank: filled by score from then on
    picks = np.empty((b, k), dtype=np.int64)
    for t in range(k):
        pos = d2.argmax(axis=1)  # picked candidates hold d² = -inf, so they never come back
        best = d2[ar, pos]
        done |= best < DPP_EPS
        if done.any():
            pos = np.where(done, left.argmax(axis=1), pos)
        picks[:, t] = pos
        d2[ar, pos] = -np.inf
        left[ar, pos] = -np.inf
        if t == k - 1:
            break
        inv_dj = 1.0 / np.sqrt(np.where(done, 1.0, best))
        e = c[t]
        np.multiply(cos.row(pos), q, out=e)
        e *= (q[ar, pos] * inv_dj)[:, None]
        if t:
            e -= np.einsum("tb,tbm->bm", c[:t, ar, pos], c[:t]) * inv_dj[:, None]
        if done.any():
            e[done] = 0.0  # keeps the unused rows of filled users finite
        d2 -= e * e
    return picks


def dpp_single(items, scores, item_vectors, k: int, theta: float) -> np.ndarray:
    """The greedy DPP of ``dpp`` for one user: 1-D ``items``/``scores`` in, int64 (k,) item indices out.

    A plain per-user implementation of Chen, Zhang & Zhou 2018 (Algorithm 1, kernel rows computed as
    needed): the reference the batched ``dpp`` is tested and benchmarked against.

    Introduced in notebooks/07_reranking.ipynb
    """
    items, scores = np.asarray(items), np.asarray(scores)
    if items.ndim != 1 or scores.ndim != 1:
        raise ValueError(f"items and scores must be 1-D (M,), got shapes {items.shape} and {scores.shape}")
    v = np.asarray(item_vectors)
    if v.ndim != 2:
        raise ValueError(f"item_vectors must be a 2-D array (n_items, d), got shape {v.shape}")
    items2, scores2, k = _check_candidates(items[None], scores[None], k, v.shape[0])
    items, s = items2[0], scores2[0]
    alpha = _dpp_alpha(theta)
    vec = _unit_vectors("item_vectors", v[items])  # only this user's rows are read (and checked)
    q = _quality(s, alpha)
    d2 = q * q
    c = np.zeros((k, len(items)))
    taken = np.zeros(len(items), dtype=bool)
    picks: list[int] = []
    for t in range(k):
        gain = np.where(taken, -np.inf, d2)
        j = int(gain.argmax())
        if gain[j] < DPP_EPS:
            rest = np.argsort(np.where(taken, np.inf, -s), kind="stable")
            picks.extend(int(i) for i in rest[: k - t])
            break
        picks.append(j)
        taken[j] = True
        if t == k - 1:
            break
        dj = np.sqrt(d2[j])
        e = (q[j] * q * (vec @ vec[j]) - c[:t, j] @ c[:t]) / dj
        c[t] = e
        d2 -= e * e
    return items[np.array(picks, dtype=np.int64)]


# -- calibration --------------------------------------------------------------------------------------
def _check_genres(item_genres, user_genre_dist, n_users: int):
    g = _distribution_rows("item_genres", item_genres)
    p = _distribution_rows("user_genre_dist", user_genre_dist)
    if p.shape != (n_users, g.shape[1]):
        raise ValueError(f"user_genre_dist must have shape (n_users, n_genres) = ({n_users}, {g.shape[1]}), "
                         f"got {p.shape}")
    return g, p


def _kl(p: np.ndarray, plogp: np.ndarray, gsum: np.ndarray, alpha: float) -> np.ndarray:
    """KL(p || (1−α)q + αp), q = gsum normalised over the genres; p broadcasts against gsum (..., G)."""
    total = gsum.sum(axis=-1, keepdims=True)
    q = np.divide(gsum, total, out=np.zeros(np.broadcast(gsum, total).shape), where=total > 0)
    qt = (1.0 - alpha) * q + alpha * p
    # Genres with p_g = 0 contribute 0·log(0/q) = 0; elsewhere q~ >= α·p_g > 0, so the log is finite.
    return plogp - (p * np.log(np.where(p > 0, qt, 1.0))).sum(axis=-1)


def _plogp(p: np.ndarray) -> np.ndarray:
    return (p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)


def calibrate(cand_items, cand_scores, item_genres, user_genre_dist, k: int, lam: float,
              alpha: float = 0.01) -> np.ndarray:
    """Calibrated recommendations (Steck 2018, RecSys): greedy max of (1 − λ)·Σ_{i∈S} s_i − λ·KL(p ‖ q̃).

    p = the user's history genre distribution (``user_genre_dist``, rows normalised), q = the list's genre
    distribution (the mean of its items' genre distributions, ``item_genres`` rows normalised, items
    without genres left out), q̃ = (1 − α)·q + α·p keeps the KL finite. λ = 0 is the score order; λ = 1
    only matches the genre mix. A user with an all-zero history row has KL 0 and gets the score order.

    Introduced in notebooks/07_reranking.ipynb
    """
    g = C.array("item_genres", item_genres, ndim=2)
    items, scores, k = _check_candidates(cand_items, cand_scores, k, g.shape[0])
    genres, p = _check_genres(item_genres, user_genre_dist, items.shape[0])
    lam = C.number("lam", lam, low=0.0, high=1.0)
    alpha = C.number("alpha", alpha, low=0.0, high=1.0, low_open=True)  # > 0: a finite KL
    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    size = max(1, _BLOCK_BYTES // (m * genres.shape[1] * 8 * 3))
    for rows in _blocks(n_users, size):
        it, s, pu = items[rows], scores[rows], p[rows]
        ar = np.arange(len(it))
        gc = genres[it]  # (B, M, G)
        pp, plogp = pu[:, None, :], _plogp(pu)[:, None]
        gsum = np.zeros((len(it), genres.shape[1]))
        taken = np.zeros(s.shape, dtype=bool)
        for t in range(k):
            # Σ of the scores already chosen is the same for every candidate, so only s_i matters.
            obj = (1.0 - lam) * s - lam * _kl(pp, plogp, gsum[:, None, :] + gc, alpha)
            pos = np.where(taken, -np.inf, obj).argmax(axis=1)
            out[rows, t] = it[ar, pos]
            taken[ar, pos] = True
            gsum += gc[ar, pos]
    return out


def calibration_kl(topk, item_genres, user_genre_dist, k: int = 10, alpha: float = 0.01) -> float:
    """Mean KL(p ‖ q̃) between each user's history genres and the genres of their top-k list (Steck 2018).

    Same p, q, q̃ as ``calibrate``; averaged over users whose history has genres (others have no p).

    Introduced in notebooks/07_reranking.ipynb
    """
    top = np.asarray(topk)
    if top.ndim != 2 or not np.issubdtype(top.dtype, np.integer):
        raise ValueError(f"topk must be a 2-D int array (n_users, k), got {top.dtype} {top.shape}")
    if top.shape[1] == 0:
        raise ValueError("topk has no columns; expected at least k")
    k = _check_k(k, top.shape[1])
    genres, p = _check_genres(item_genres, user_genre_dist, top.shape[0])
    alpha = C.number("alpha", alpha, low=0.0, high=1.0, low_open=True)  # > 0: a finite KL
    top = top[:, :k].astype(np.int64)
    if top.size and (top.min() < 0 or top.max() >= genres.shape[0]):
        bad = int(top.min()) if top.min() < 0 else int(top.max())
        raise ValueError(f"topk holds item index {bad}, outside [0, {genres.shape[0]}) of item_genres")
    has = p.sum(axis=1) > 0
    if not has.any():
        return 0.0
    kl = _kl(p[has], _plogp(p[has]), genres[top[has]].sum(axis=1), alpha)
    return float(kl.mean())


# -- weighted objectives ------------------------------------------------------------------------------
def _normalise_available(x: np.ndarray, taken: np.ndarray) -> np.ndarray:
    lo = np.where(taken, np.inf, x).min(axis=1, keepdims=True)
    hi = np.where(taken, -np.inf, x).max(axis=1, keepdims=True)
    x = np.where(taken, lo, x)  # taken entries are masked by the caller; this keeps x - lo from overflowing
    with np.errstate(over="ignore", invalid="ignore"):
        span = hi - lo
    if np.isinf(span).any():  # a span beyond ~1.8e308 overflows: halve everything (same ratios), never NaN
        x, lo, hi = x / 2, lo / 2, hi / 2
        span = hi - lo
    return np.divide(x - lo, span, out=np.zeros_like(x), where=hi > lo)


def scalarize(cand_items, cand_scores, k: int, weights, item_vectors=None, item_popularity=None,
              item_genres=None, user_genre_dist=None) -> np.ndarray:
    """Greedy weighted sum of objectives, each min-max normalised to [0, 1] over a user's remaining candidates.

    Objectives (``weights`` maps a name to a non-negative weight): ``relevance`` = the score;
    ``novelty`` = self-information −log2 p(i), p(i) = (c_i + 1) / (Σc + n_items) from ``item_popularity``
    counts (as ``recsuite.metrics.novelty``); ``diversity`` = 1 − max cosine to the items already chosen
    (``item_vectors``); ``calibration`` = the decrease of KL(p ‖ q̃) from adding the item (``item_genres``,
    ``user_genre_dist``, α = ``CALIBRATION_ALPHA``, as in ``calibrate``). Each step picks the argmax of
    Σ w·objective; sweeping the weights traces the trade-off between the objectives.

    Introduced in notebooks/08_tradeoffs_feedback.ipynb
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"weights must be a non-empty dict objective -> weight, got {weights!r}")
    unknown = [name for name in weights if name not in OBJECTIVES]
    if unknown:
        raise ValueError(f"weights names unknown objective(s) {unknown}; expected names from {list(OBJECTIVES)}")
    w = {name: C.number(f"weights[{name!r}]", value, low=0.0) for name, value in weights.items()}
    w = {name: value for name, value in w.items() if value > 0}
    if not w:
        raise ValueError(f"weights are all zero, got {dict(weights)}; expected at least one positive weight")
    given = {"item_vectors": item_vectors, "item_popularity": item_popularity, "item_genres": item_genres,
             "user_genre_dist": user_genre_dist}
    for name in w:
        for need in OBJECTIVES[name]:
            if given[need] is None:
                raise ValueError(f"weights gives objective {name!r} a weight but {need} is None; pass {need}")

    sizes = []
    unit = pop_info = genres = p = None
    if "diversity" in w:
        unit = _unit_vectors("item_vectors", item_vectors)
        sizes.append(unit.shape[0])
    if "novelty" in w:
        pop = np.asarray(item_popularity)
        if pop.ndim != 1 or not (np.issubdtype(pop.dtype, np.integer) or np.issubdtype(pop.dtype, np.floating)):
            raise ValueError(f"item_popularity must be a 1-D numeric array of counts, got {pop.dtype} {pop.shape}")
        pop = pop.astype(np.float64)
        if not np.isfinite(pop).all() or (pop.size and pop.min() < 0):
            raise ValueError("item_popularity must hold finite non-negative counts")
        pop_info = -np.log2((pop + 1.0) / (pop.sum() + len(pop)))
        sizes.append(len(pop))
    if "calibration" in w:
        genres = C.array("item_genres", item_genres, ndim=2)
        sizes.append(genres.shape[0])
    if len(set(sizes)) > 1:
        raise ValueError(f"item arrays disagree on n_items: {sizes} rows (item_vectors, item_popularity, "
                         "item_genres in that order, those given); expected one catalogue")
    items, scores, k = _check_candidates(cand_items, cand_scores, k, sizes[0] if sizes else None)
    if "calibration" in w:
        genres, p = _check_genres(item_genres, user_genre_dist, items.shape[0])

    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    if n_users == 0:
        return out
    cos = _Cosines(items, unit, k - 1) if unit is not None else None
    size = max(1, _BLOCK_BYTES // (m * (genres.shape[1] if genres is not None else 1) * 8 * 3))
    if cos is not None:
        size = min(size, cos.block_size(n_users, m))
    for rows in _blocks(n_users, size):
        it, s = items[rows], scores[rows]
        b = len(it)
        ar = np.arange(b)
        taken = np.zeros((b, m), dtype=bool)
        if cos is not None:
            cos.bind(rows, it)
            max_sim = np.zeros((b, m))
        if genres is not None:
            gc = genres[it]
            pu = p[rows]
            pp, plogp = pu[:, None, :], _plogp(pu)
            gsum = np.zeros((b, genres.shape[1]))
        for t in range(k):
            total = np.zeros((b, m))
            if "relevance" in w:
                total += w["relevance"] * _normalise_available(s, taken)
            if "novelty" in w:
                total += w["novelty"] * _normalise_available(pop_info[it], taken)
            if "diversity" in w and t:  # before the first pick every candidate gains the same
                total += w["diversity"] * _normalise_available(1.0 - max_sim, taken)
            if "calibration" in w:
                drop = _kl(pu, plogp, gsum, CALIBRATION_ALPHA)[:, None] - _kl(pp, plogp[:, None],
                                                                              gsum[:, None, :] + gc,
                                                                              CALIBRATION_ALPHA)
                total += w["calibration"] * _normalise_available(drop, taken)
            pos = np.where(taken, -np.inf, total).argmax(axis=1)
            out[rows, t] = it[ar, pos]
            taken[ar, pos] = True
            if cos is not None and t < k - 1:
                sim = cos.row(pos)
                max_sim = sim if t == 0 else np.maximum(max_sim, sim)
            if genres is not None:
                gsum += gc[ar, pos]
    return out
