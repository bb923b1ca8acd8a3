"""Re-ranking a candidate list for relevance *and* diversity: MMR, MaxSum, DPP.

Calibration and weighted objectives are in ``recsuite.combine.objectives``.

One knob, one meaning: every re-ranker of the course (MMR, MaxSum and DPP here, ``calibrate`` in
``objectives``) takes ``lam`` in [0, 1], and **lam = 0 is the score order** for all of them (the top-k
candidates by score, equal scores to the earlier candidate); a larger lam gives more weight to diversity, and
lam = 1 is the most diversity the re-ranker has (for calibration: only the genre match). Where a paper's own
parameter runs the other way, the docstring gives the mapping (Carbonell & Goldstein's λ and Chen et al.'s θ
are our 1 − lam).

Every re-ranker is batched over users. ``cand_items`` is an int (n_users, M) array of item indices (each
row is one user's candidates, usually best first), ``cand_scores`` the float (n_users, M) relevance of
those candidates, ``item_vectors`` an (n_items, d) array whose cosine similarity defines how alike two
items are (rows are normalised here; a zero vector has cosine 0 to every other item). Each re-ranker
returns an int64 (n_users, k) array of item indices, best first.

Scores are used as given, never rescaled: MMR mixes a score with a cosine and DPP exponentiates it, so
the scale of the scores sets the trade-off. ``recsuite.combine.fusion.normalize_scores(cand_scores, "minmax")`` rescales
explicitly (a constant row maps to 0.5, which changes no re-ranker's choice: a constant shift per user moves no argmax).
Equal values of a greedy objective go to the earlier candidate (lower column), so the result is
deterministic; candidates are usually sorted by score, so that is also the better-scored one.

The greedy loops run over the k output positions only; each step is one vectorised operation over
all users (in blocks of users when that bounds memory).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from recsuite.combine import batching
from recsuite.combine.batching import (
    Cosines,
    blocks,
    check_candidates,
    unit_vectors,
)
from recsuite.core import checks as C
from recsuite.evaluation.metrics import topk_from_scores

__all__ = [
    "dpp",
    "dpp_single",
    "maxsum",
    "mmr",
    "pareto_front",
    "shortlist",
    "sort_by_score",
]

#: DPP stops when the largest remaining gain d² falls below this, on a kernel scaled so that the
#: top-scored candidate has L_ii = 1 (Chen et al. 2018 use 1e-10 on their kernel).
DPP_EPS = 1e-10


# -- candidates and fronts ---------------------------------------------------------------------------
def shortlist(scores, m: int, *, seen=None, catalogue=None) -> tuple[np.ndarray, np.ndarray]:
    """The M best items per user of a users x items score matrix, and their scores: the re-rankers' input.

    ``seen`` (users x items sparse, e.g. the history) and ``catalogue`` (boolean (n_items,) catalogue mask)
    mask items exactly as ``recsuite.evaluation.metrics.topk_from_scores``, which picks the lists (best first, equal
    scores by item index). Returns ``cand_items`` int64 (n_users, m) and ``cand_scores`` float64 (n_users, m),
    the scores unchanged (rescale them with ``recsuite.combine.fusion.normalize_scores(cand_scores, "minmax")`` where the
    re-ranker needs it).

    Introduced in notebooks/07_reranking.ipynb
    """
    m = C.positive_int("m", m)
    s = np.asarray(scores)
    items = topk_from_scores(s, m, seen=seen, catalogue=catalogue)  # validates scores and both masks
    n_users, n_items = s.shape
    rankable = np.full(n_users, n_items if catalogue is None else int(np.count_nonzero(catalogue)))
    if seen is not None:
        ex = sp.csr_matrix(seen, copy=True)
        ex.sum_duplicates()  # an item listed twice in a row is masked once
        masked = np.ones(ex.nnz, dtype=bool) if catalogue is None else np.asarray(catalogue)[ex.indices]
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
    items, scores, _ = check_candidates(cand_items, cand_scores, 1, None)
    top = C.item_lists("topk", topk)
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
    size = max(1, batching.BLOCK_BYTES // max(1, k * items.shape[1]))  # the (B, k, M) match array is bool
    for rows in blocks(n_users, size):
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


def _in_user_blocks(items, scores, unit, k: int, pick) -> np.ndarray:
    """Item ids (n_users, k) from ``pick(block_scores, cos, k)`` -> candidate positions (B, k), run over blocks
    of users whose candidate cosines (``Cosines``) fit the memory budget."""
    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    if n_users == 0:
        return out
    cos = Cosines(items, unit, k - 1)
    for rows in blocks(n_users, cos.block_size(n_users, m)):
        cos.bind(rows, items[rows])
        out[rows] = np.take_along_axis(items[rows], pick(scores[rows], cos, k), axis=1)
    return out


def _greedy_by_cosine(items, scores, unit, k: int, gain, update) -> np.ndarray:
    """The greedy loop MMR and MaxSum share, for all users at once (blocks of users bound the memory).

    Position 0 takes the top-scored candidate; position t > 0 the untaken candidate with the largest
    ``gain(scores, state, t)``. After each pick, ``state = update(state, cos(picked, every candidate), t)``,
    starting from zeros. Equal gains go to the earlier candidate (argmax).
    """
    def pick(s, cos, k):
        ar = np.arange(s.shape[0])
        taken = np.zeros(s.shape, dtype=bool)
        state = np.zeros(s.shape)
        picks = np.empty((s.shape[0], k), dtype=np.int64)
        pos = s.argmax(axis=1)
        for t in range(k):
            if t:
                pos = np.where(taken, -np.inf, gain(s, state, t)).argmax(axis=1)
            picks[:, t] = pos
            taken[ar, pos] = True
            if t < k - 1:
                state = update(state, cos.row(pos), t)
        return picks

    return _in_user_blocks(items, scores, unit, k, pick)


# -- MMR ----------------------------------------------------------------------------------------------
def mmr(cand_items, cand_scores, item_vectors, k: int, lam: float) -> np.ndarray:
    """Maximal marginal relevance (Carbonell & Goldstein 1998, SIGIR), greedily for all users at once.

    First the top-scored candidate, then argmax over the rest of (1 − lam)·score − lam·max_{j∈S} cos(i, j).
    lam = 0 is the score order; lam = 1 picks, after the first, the item least like those chosen. The paper
    writes λ·Sim₁ − (1 − λ)·max Sim₂, its λ weighting relevance: its λ is our 1 − lam.

    Introduced in notebooks/07_reranking.ipynb
    """
    unit = unit_vectors("item_vectors", item_vectors)
    items, scores, k = check_candidates(cand_items, cand_scores, k, unit.shape[0])
    lam = C.number("lam", lam, low=0.0, high=1.0)
    return _greedy_by_cosine(items, scores, unit, k,
                             gain=lambda s, max_sim, t: (1.0 - lam) * s - lam * max_sim,
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
    the item farthest on average from those chosen. (The paper's objective (k − 1)·Σ w(u) + 2λ·Σ d(u, v)
    weights diversity by its λ alone; the convex mix here keeps the course's one knob in [0, 1].)

    Introduced in notebooks/07_reranking.ipynb
    """
    unit = unit_vectors("item_vectors", item_vectors)
    items, scores, k = check_candidates(cand_items, cand_scores, k, unit.shape[0])
    lam = C.number("lam", lam, low=0.0, high=1.0)
    # the state is, per candidate, the sum over the chosen j of 1 - cos(i, j); over t chosen, its mean distance
    return _greedy_by_cosine(items, scores, unit, k,
                             gain=lambda s, distance, t: (1.0 - lam) * s + lam * distance / t,
                             update=lambda distance, sim, t: distance + (1.0 - sim))


# -- DPP ----------------------------------------------------------------------------------------------
def _dpp_alpha(lam) -> float:
    """α = θ / (2(1 − θ)) of Chen et al. with θ = 1 − lam, i.e. (1 − lam) / (2·lam); ∞ at lam = 0 (the score order)."""
    lam = C.number("lam", lam, low=0.0, high=1.0)
    if lam == 0.0:
        return math.inf
    with np.errstate(over="ignore"):
        return float(np.float64(1.0 - lam) / np.float64(2.0 * lam))  # a subnormal lam overflows to ∞: the score order


def _by_score(items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The k best candidates of each row by score, equal scores to the earlier candidate: the score order."""
    return np.take_along_axis(items, np.argsort(-scores, axis=-1, kind="stable")[..., :k], axis=-1)


def _quality(scores: np.ndarray, alpha: float) -> np.ndarray:
    # exp(alpha·r) overflows for large alpha. Subtracting each user's max score first multiplies that
    # user's kernel L by the constant exp(-2·alpha·max r): every determinant of a k-subset scales by the
    # same factor, so the greedy argmax (and the MAP set) is unchanged, and now 0 < q <= 1 with the
    # top-scored candidate at exactly 1. DPP_EPS is thus relative to the best candidate's L_ii, which
    # also makes the result invariant to adding a constant to a user's scores.
    with np.errstate(over="ignore"):  # a huge alpha (lam near 0) sends every non-top score to exp(-inf) = 0
        return np.exp(alpha * (scores - scores.max(axis=-1, keepdims=True)))


def dpp(cand_items, cand_scores, item_vectors, k: int, lam: float) -> np.ndarray:
    """Greedy MAP of a determinantal point process per user (Chen, Zhang & Zhou 2018, NeurIPS).

    Kernel L = diag(exp(α·r))·S·diag(exp(α·r)), S the cosine similarity of the candidates (S_ii = 1). The
    paper trades relevance against diversity with θ ∈ [0, 1) and α = θ / (2(1 − θ)); here θ = 1 − lam, so
    α = (1 − lam) / (2·lam): lam = 0 (α = ∞) is the score order, returned as such, and lam = 1 (α = 0,
    L = S) is pure diversity. Each step adds the item of
    largest gain d_i² = L_ii − ‖c_i‖², updated by incremental Cholesky: e_i = (L_ji − ⟨c_j, c_i⟩) / d_j,
    c_i ← [c_i, e_i], d_i² ← d_i² − e_i², O(k²M) per user. When the largest remaining d² falls below
    ``DPP_EPS`` (S rank-deficient: duplicates, more candidates than dimensions), the remaining places are
    filled by score. No item is picked twice. Same picks as ``dpp_single`` run user by user.

    Each step runs for a block of users at once: the cosine rows S_j· are looked up in one Gram matrix of
    the distinct candidates (U²·d once) or computed from the gathered vectors (O(M·d) per user and step),
    and the ⟨c_j, c_i⟩ of the update are one batched matrix product over the block's users.

    Introduced in notebooks/07_reranking.ipynb
    """
    unit = unit_vectors("item_vectors", item_vectors)
    items, scores, k = check_candidates(cand_items, cand_scores, k, unit.shape[0])
    alpha = _dpp_alpha(lam)
    if math.isinf(alpha):
        return _by_score(items, scores, k)
    return _in_user_blocks(items, scores, unit, k, lambda s, cos, k: _dpp_block(s, cos, k, alpha))


def _dpp_block(s: np.ndarray, cos: Cosines, k: int, alpha: float) -> np.ndarray:
    """Candidate positions (B, k) picked by the greedy DPP for one block of users.

    Per step, over the whole block: one argmax of d², one cosine row per user (``cos.row``), and the
    Cholesky update ⟨c_j, c_i⟩ for every user and candidate as one batched product over the rows
    c (t, B, M) picked so far. Work buffers are reused across steps; the scores left for filling are only
    built once some user runs out of rank.
    """
    b, m = s.shape
    ar = np.arange(b)
    q = _quality(s, alpha)
    d2 = q * q  # L_ii = q_i² · S_ii, S_ii = 1 (also for zero vectors: an item is like itself)
    c = np.empty((k - 1, b, m))  # Cholesky rows c[t, u, i], one per pick but the last
    sq = np.empty((b, m))  # e²
    dot = np.empty((b, m))  # ⟨c_j, c_i⟩, then divided by d_j
    done = np.zeros(b, dtype=bool)  # users whose kernel ran out of rank: filled by score from then on
    left = None  # scores of the candidates not yet picked, built when first needed
    picks = np.empty((b, k), dtype=np.int64)
    for t in range(k):
        pos = d2.argmax(axis=1)  # picked candidates hold d² = -inf, so they never come back
        best = d2[ar, pos]
        done |= best < DPP_EPS
        filling = bool(done.any())
        if filling:
            if left is None:
                left = s.copy()
                left[ar[:, None], picks[:, :t]] = -np.inf
            pos = np.where(done, left.argmax(axis=1), pos)
            best = np.where(done, 1.0, best)
            left[ar, pos] = -np.inf
        picks[:, t] = pos
        d2[ar, pos] = -np.inf
        if t == k - 1:
            break
        inv_dj = 1.0 / np.sqrt(best)
        # e_i = (q_j·q_i·S_ji − ⟨c_j, c_i⟩) / d_j, written straight into its Cholesky row
        e = c[t]
        np.multiply(cos.row(pos), q, out=e)
        e *= (q[ar, pos] * inv_dj)[:, None]
        if t:
            np.einsum("tb,tbm->bm", c[:t, ar, pos], c[:t], out=dot)  # (t, B) picked rows against all
            dot *= inv_dj[:, None]
            e -= dot
        if filling:
            e[done] = 0.0  # keeps the unused rows of filled users finite
        d2 -= np.multiply(e, e, out=sq)
    return picks


def dpp_single(items, scores, item_vectors, k: int, lam: float) -> np.ndarray:
    """The greedy DPP of ``dpp`` for one user: 1-D ``items``/``scores`` in, int64 (k,) item indices out.

    A plain per-user implementation of Chen, Zhang & Zhou 2018 (Algorithm 1, kernel rows computed as
    needed): the reference the batched ``dpp`` is tested and benchmarked against. Same knob as ``dpp``
    (θ = 1 − lam; lam = 0 is the score order).

    Introduced in notebooks/07_reranking.ipynb
    """
    items, scores = np.asarray(items), np.asarray(scores)
    if items.ndim != 1 or scores.ndim != 1:
        raise ValueError(f"items and scores must be 1-D (M,), got shapes {items.shape} and {scores.shape}")
    v = np.asarray(item_vectors)
    if v.ndim != 2:
        raise ValueError(f"item_vectors must be a 2-D array (n_items, d), got shape {v.shape}")
    items2, scores2, k = check_candidates(items[None], scores[None], k, v.shape[0])
    items, s = items2[0], scores2[0]
    alpha = _dpp_alpha(lam)
    vec = unit_vectors("item_vectors", v[items])  # only this user's rows are read (and checked)
    if math.isinf(alpha):
        return _by_score(items, s, k)
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


