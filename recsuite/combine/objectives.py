"""Re-ranking for calibration (Steck 2018) and for several objectives at once: ``calibrate``, ``calibration_kl``,
``scalarize`` over ``OBJECTIVES`` (relevance, novelty, diversity, calibration). Batched over users, as ``rerank``.

Introduced in notebooks/08_tradeoffs_feedback.ipynb
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from recsuite.combine import batching
from recsuite.combine.batching import (
    Cosines,
    blocks,
    check_candidates,
    check_k,
    distribution_rows,
    unit_vectors,
)
from recsuite.core import checks as C

#: Objectives that ``scalarize`` can weigh, and what each one needs besides the scores.
OBJECTIVES = {
    "relevance": (),
    "novelty": ("item_popularity",),
    "diversity": ("item_vectors",),
    "calibration": ("item_genres", "user_genre_dist"),
}

#: Calibration smoothing used by ``scalarize`` (Steck 2018's alpha = 0.01).
CALIBRATION_ALPHA = 0.01


# -- calibration --------------------------------------------------------------------------------------
def _check_genres(item_genres, user_genre_dist, n_users: int):
    g = distribution_rows("item_genres", item_genres)
    p = distribution_rows("user_genre_dist", user_genre_dist)
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
    without genres left out), q̃ = (1 − α)·q + α·p keeps the KL finite. ``lam`` is Steck's λ itself, and the
    course's one knob (``recsuite.combine.rerank``): λ = 0 is the score order; λ = 1 only matches the genre mix.
    A user with an all-zero history row has KL 0 and gets the score order.

    Introduced in notebooks/07_reranking.ipynb
    """
    g = C.array("item_genres", item_genres, ndim=2)
    items, scores, k = check_candidates(cand_items, cand_scores, k, g.shape[0])
    genres, p = _check_genres(item_genres, user_genre_dist, items.shape[0])
    lam = C.number("lam", lam, low=0.0, high=1.0)
    alpha = C.number("alpha", alpha, low=0.0, high=1.0, low_open=True)  # > 0: a finite KL
    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    size = max(1, batching.GENRE_BLOCK_BYTES // (m * genres.shape[1] * 8 * 3))
    for rows in blocks(n_users, size):
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
    top = C.item_lists("topk", topk)
    if top.shape[1] == 0:
        raise ValueError("topk has no columns; expected at least k")
    k = check_k(k, top.shape[1])
    genres, p = _check_genres(item_genres, user_genre_dist, top.shape[0])
    alpha = C.number("alpha", alpha, low=0.0, high=1.0, low_open=True)  # > 0: a finite KL
    top = top[:, :k].astype(np.int64)
    if top.size and (top.min() < 0 or top.max() >= genres.shape[0]):
        bad = int(top.min()) if top.min() < 0 else int(top.max())
        raise ValueError(f"topk holds item index {bad}, outside [0, {genres.shape[0]}) of item_genres")
    has = p.sum(axis=1) > 0
    if not has.any():
        raise ValueError(
            f"user_genre_dist must give at least one user a genre distribution, got all {len(has)} rows empty"
        )
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
    counts (as ``recsuite.evaluation.metrics.novelty``); ``diversity`` = 1 − max cosine to the items already chosen
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
        unit = unit_vectors("item_vectors", item_vectors)
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
    items, scores, k = check_candidates(cand_items, cand_scores, k, sizes[0] if sizes else None)
    if "calibration" in w:
        genres, p = _check_genres(item_genres, user_genre_dist, items.shape[0])

    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    if n_users == 0:
        return out
    cos = Cosines(items, unit, k - 1) if unit is not None else None
    size = max(1, (batching.BLOCK_BYTES // (m * 8 * 3) if genres is None
                   else batching.GENRE_BLOCK_BYTES // (m * genres.shape[1] * 8 * 3)))
    if cos is not None:
        size = min(size, cos.block_size(n_users, m))
    for rows in blocks(n_users, size):
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
