"""Fusing collaborative and semantic score matrices: per-user normalisation, blending, reciprocal-rank fusion.

Score matrices are (n_users, n_items) arrays; ``catalogue`` is a boolean (n_items,) mask of the catalogue that
is ranked and ``seen`` a users x items sparse matrix of already-seen items, exactly as in
``recsuite.evaluation.metrics.topk_from_scores``. Whatever is normalised or ranked here is computed over the items that
will actually be ranked (in the catalogue and not seen), so masked items never distort a statistic.

The two-stage learned ranker that fuses the same signals as features is ``recsuite.combine.ranker``.

The blend notebook 05 chooses and its full score matrix, read by later lessons, are in ``recsuite.course.artifacts``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from recsuite.core import checks as C
from recsuite.core import rows as R
from recsuite.core.progress import tqdm
from recsuite.models.base import Scorer

METHODS = ("zscore", "minmax", "rank", "none")


_NEUTRAL = {"zscore": 0.0, "minmax": 0.5, "rank": 0.5}


# -- validation --------------------------------------------------------------------------------------


def _check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def source_weights(weights, names: list) -> np.ndarray:
    if isinstance(weights, Mapping):
        if set(weights) != set(names):
            raise ValueError(f"weights must have one entry per source {names}, got keys {list(weights)}")
        raw = [weights[n] for n in names]
    else:
        raw = weights
    try:
        w = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"weights must be numbers, got {weights!r}") from None
    if w.shape != (len(names),):
        raise ValueError(f"weights must hold {len(names)} numbers (one per source {names}), got {weights!r}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights must be finite, got {weights!r}")
    if not np.any(w != 0):
        raise ValueError(f"weights must not all be zero (that ranks nothing), got {weights!r}")
    return w


# -- normalisation and score fusion -------------------------------------------------------------------


def _normalize(s: np.ndarray, valid, method: str) -> np.ndarray:
    """Per-row normalisation over the rankable entries; masked entries come back as 0 (callers refill them)."""
    if method == "none":
        out = s.copy()
    elif method == "rank":
        n = np.full(s.shape[0], s.shape[1], dtype=np.float64) if valid is None else valid.sum(axis=1).astype(float)
        r = R.descending_ranks(s, valid, "average")
        denom = np.where(n > 1, n - 1, 1.0)[:, None]
        out = (n[:, None] - r) / denom
        out[n <= 1] = _NEUTRAL["rank"]
    else:
        inside = np.ones(s.shape, dtype=bool) if valid is None else valid
        hi = np.where(inside, s, -np.inf).max(axis=1)
        lo = np.where(inside, s, np.inf).min(axis=1)
        # exact comparison, not std == 0: a float mean of identical values can be off by an ulp
        flat = ~(hi > lo)
        lo_safe = np.where(flat, 0.0, lo)
        if method == "minmax":
            out = (s - lo_safe[:, None]) / np.where(flat, 1.0, hi - lo_safe)[:, None]
        else:
            n = np.maximum(inside.sum(axis=1), 1)
            mean = np.where(inside, s, 0.0).sum(axis=1) / n
            dev = np.where(inside, s - mean[:, None], 0.0)
            std = np.sqrt((dev**2).sum(axis=1) / n)
            out = (s - mean[:, None]) / np.where(flat, 1.0, std)[:, None]
        out[flat] = _NEUTRAL[method]
    if valid is not None:
        out[~valid] = 0.0
    return out


def _fill_masked(y: np.ndarray, valid) -> np.ndarray:
    """Masked entries 1 below the row's lowest rankable value: they rank last and stay finite."""
    if valid is None:
        return y
    lo = np.where(valid, y, np.inf).min(axis=1)
    lo = np.where(np.isfinite(lo), lo, 0.0)  # a row with nothing rankable
    return np.where(valid, y, lo[:, None] - 1.0)


def normalize_scores(scores, method: str = "zscore", *, seen=None, catalogue=None) -> np.ndarray:
    """Per-user normalisation of a (n_users, n_items) score matrix over the items that will be ranked.

    ``zscore``: (s - mean_u) / std_u (population std); ``minmax``: (s - min_u) / (max_u - min_u);
    ``rank``: (n_u - r) / (n_u - 1) with r the descending rank (1 = best, ties get their average rank), so
    the best item maps to 1 and the worst to 0; ``none``: the raw scores. The statistics use only the
    rankable items of each user (``catalogue`` and not in ``seen``). A row without spread (constant, or a
    single rankable item) maps to the neutral value, 0 for zscore and 0.5 for minmax and rank, never NaN.
    Masked entries are set 1 below the row's lowest rankable value: finite (``Protocol.evaluate`` rejects
    inf), and ranked last even without a mask. Returns float32.

    Introduced in notebooks/05_fusion.ipynb
    """
    s = C.score_matrix("scores", scores)
    method = _check_method(method)
    valid = C.rankable(s.shape, catalogue, seen)
    return _fill_masked(_normalize(s, valid, method), valid).astype(np.float32)


def _combine(normed: list, w: np.ndarray, valid) -> np.ndarray:
    y = np.zeros_like(normed[0])
    for wi, n in zip(w, normed):
        if wi != 0:
            y += wi * n
    return _fill_masked(y, valid).astype(np.float32)


def blend(scores, weights, method: str = "zscore", *, seen=None, catalogue=None) -> np.ndarray:
    """Weighted sum of per-user normalised scores: y = Σ_s w_s · norm(s_s).

    This is the linear fusion y = α·s_CF + γ·s_sem + b; the bias b is left out because adding a constant
    to every item of a user does not change their ranking, and only the ratio of the weights matters
    (scaling all of them by c > 0 gives the same lists). Normalising first puts sources with very different
    scales (inner products, cosines, counts) on one footing; see ``normalize_scores`` for the methods and
    for how masked items are treated. ``scores`` is a dict name -> matrix (``weights`` a dict with the same
    names, or numbers in the dict's order) or a list of matrices. Returns float32.

    Introduced in notebooks/05_fusion.ipynb
    """
    src = C.named_scores("scores", scores)
    w = source_weights(weights, list(src))
    method = _check_method(method)
    valid = C.rankable(next(iter(src.values())).shape, catalogue, seen)
    return _combine([_normalize(s, valid, method) for s in src.values()], w, valid)


class BlendModel(Scorer):
    """A blend of ``Scorer``s as a ``Scorer``: ``blend`` of the sources' scores for the users asked for.

    ``sources`` maps a name to a fitted ``Scorer`` (all of the same size), ``weights`` and ``method`` are
    ``blend``'s; ``seen`` and ``catalogue`` are the masks the per-user normalisation ignores (``blend``'s), so
    a user's blended row does not depend on which other users are scored with it.

    Introduced in notebooks/05_fusion.ipynb
    """

    def __init__(self, sources, weights, method: str = "zscore", *, seen=None, catalogue=None):
        if not isinstance(sources, dict) or not sources:
            raise TypeError(f"sources must be a non-empty dict name -> Scorer, got {C.describe(sources)}")
        bad = [n for n, m in sources.items() if not isinstance(m, Scorer)]
        if bad:
            raise TypeError(f"sources must map names to recsuite.models.base.Scorer objects; {bad} are not")
        first = next(iter(sources.values()))
        shape = (first.n_users, first.n_items)
        if any((m.n_users, m.n_items) != shape for m in sources.values()):
            raise ValueError(f"sources must all score the same users and items, got "
                             f"{ {n: (m.n_users, m.n_items) for n, m in sources.items()} }")
        self.sources, self.method = dict(sources), _check_method(method)
        self.weights = source_weights(weights, list(self.sources))
        self.seen = C.seen_matrix(seen, shape)
        self.catalogue = C.catalogue_mask(catalogue, shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.sources.values())).shape

    def scores(self, user_idx=None) -> np.ndarray:
        users = self._users(user_idx)
        seen = None if self.seen is None else self.seen[users]
        return blend({n: m.scores(users) for n, m in self.sources.items()}, dict(zip(self.sources, self.weights)),
                     self.method, seen=seen, catalogue=self.catalogue)


def reciprocal_rank_fusion(scores_list, rank_offset: float = 60, *, seen=None, catalogue=None) -> np.ndarray:
    """Reciprocal-rank fusion: y_ui = Σ_s 1 / (rank_offset + r_s(u, i)).

    Cormack, Clarke & Büttcher 2009, "Reciprocal Rank Fusion outperforms Condorcet and individual rank
    learning methods", SIGIR (their k = 60). r_s is the descending rank (1 = best) of item i among user u's
    rankable items (``catalogue``, not in ``seen``) in source s; tied items share their average rank, so a
    block of equal scores (e.g. never-seen items under popularity) adds the same amount to each of them
    instead of an order by item index. Parameter-free apart from rank_offset; scales do not matter, only ranks.
    Masked entries are set below every rankable value (finite). Returns float32.

    Introduced in notebooks/05_fusion.ipynb
    """
    src = C.named_scores("scores_list", scores_list)
    rank_offset = C.number("rank_offset", rank_offset, low=0)
    valid = C.rankable(next(iter(src.values())).shape, catalogue, seen)
    y = None
    for s in src.values():
        contrib = 1.0 / (rank_offset + R.descending_ranks(s, valid, "average"))
        if valid is not None:
            contrib[~valid] = 0.0
        y = contrib if y is None else y + contrib
    return _fill_masked(y, valid).astype(np.float32)


def _grid_combos(grid, names: list) -> list:
    if isinstance(grid, Mapping):
        if set(grid) != set(names):
            raise ValueError(f"grid must have one list of weights per source {names}, got keys {list(grid)}")
        axes = []
        for n in names:
            vals = np.atleast_1d(np.asarray(grid[n], dtype=np.float64)) if np.ndim(grid[n]) <= 1 else None
            if vals is None or vals.size == 0 or not np.isfinite(vals).all():
                raise ValueError(f"grid[{n!r}] must be a non-empty 1-D list of finite weights, got {grid[n]!r}")
            axes.append(vals)
        combos = [np.array(c) for c in itertools.product(*axes)]
    else:
        try:
            raw = list(grid)
        except TypeError:
            raise ValueError(f"grid must be a dict name -> weights or a list of weight combinations, got {grid!r}") from None
        combos = []
        for c in raw:
            if isinstance(c, Mapping):
                if set(c) != set(names):
                    raise ValueError(f"each grid combination must name the sources {names}, got {list(c)}")
                c = [c[n] for n in names]
            v = np.asarray(c, dtype=np.float64)
            if v.shape != (len(names),) or not np.isfinite(v).all():
                raise ValueError(f"each grid combination must hold {len(names)} finite weights, got {c!r}")
            combos.append(v)
    kept = [c for c in combos if np.any(c != 0)]
    if not kept:
        raise ValueError("grid has no combination with a non-zero weight")
    return kept


def grid_search_blend(
    sources,
    evaluate_fn: Callable[[np.ndarray], float],
    grid,
    method: str = "zscore",
    *,
    seen=None,
    catalogue=None,
    metric_name: str = "score",
) -> pd.DataFrame:
    """Evaluate ``blend(sources, w, method)`` for every weight combination w of ``grid``; best first.

    ``grid`` is a dict name -> list of weights (all combinations are tried) or a list of combinations
    (dicts or sequences in ``sources`` order). ``evaluate_fn(scores) -> float`` scores one blended matrix,
    higher is better, e.g. ``lambda s: proto.evaluate(s, "valid")["ndcg@10"]``; tune on validation, never
    on test. Each source is normalised once. An all-zero combination ranks nothing and is skipped. Only
    weight ratios matter, so for two sources a grid over γ with α = 1, plus (0, 1), covers every
    non-negative blend. Returns one row per
    combination (a column per source weight, ``method`` and ``metric_name``), sorted by the metric
    (descending, ties in grid order).

    Introduced in notebooks/05_fusion.ipynb
    """
    src = C.named_scores("sources", sources, require_mapping=True)
    if not callable(evaluate_fn):
        raise ValueError(f"evaluate_fn must be callable scores -> float, got {type(evaluate_fn).__name__}")
    if not isinstance(metric_name, str) or metric_name in src or metric_name == "method":
        raise ValueError(f"metric_name must be a string other than the source names and 'method', got {metric_name!r}")
    names = list(src)
    combos = _grid_combos(grid, names)
    method = _check_method(method)
    valid = C.rankable(next(iter(src.values())).shape, catalogue, seen)
    normed = [_normalize(s, valid, method) for s in src.values()]
    rows = []
    for w in tqdm(combos, desc="blend grid", leave=False):
        value = evaluate_fn(_combine(normed, w, valid))
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = np.nan
        if not np.isfinite(value):
            raise ValueError(f"evaluate_fn must return a finite number, got {value!r} for weights {dict(zip(names, w))}")
        rows.append({**dict(zip(names, w.tolist())), "method": method, metric_name: value})
    return pd.DataFrame(rows).sort_values(metric_name, ascending=False, kind="stable").reset_index(drop=True)
