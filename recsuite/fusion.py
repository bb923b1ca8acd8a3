"""Fusing collaborative and semantic signals: score blending, reciprocal-rank fusion, a two-stage learned
ranker, and metrics broken down by user and item group.

Score matrices are (n_users, n_items) arrays; ``allowed`` is a boolean (n_items,) mask of the catalogue that
is ranked and ``exclude`` a users x items sparse matrix of already-seen items, exactly as in
``recsuite.metrics.topk_from_scores``. Whatever is normalised or ranked here is computed over the items that
will actually be ranked (allowed and not excluded), so masked items never distort a statistic.

The learned ranker works on a long *candidate frame*: one row per (user_idx, item_idx) candidate, sorted by
user, with feature columns named ``<group>_...`` (see ``FEATURE_GROUPS``) so that an ablation can drop one
group by its prefix. ``tune_ranker``/``cross_val_topk`` choose its capacity by cross-validation over users of
the training period, and ``cold_feature_columns`` are what a cold-start ranker may use.

``fused_scores(eval_set)`` is the lesson's tuned blend as a full score matrix (cache-or-compute), the input of
the re-ranking lesson.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata
from recsuite.progress import tqdm

from recsuite import metrics as M

log = logging.getLogger(__name__)

METHODS = ("zscore", "minmax", "rank", "none")
KEYS = ("user_idx", "item_idx")

#: Feature groups of the candidate frame: column prefix -> what the group holds.
FEATURE_GROUPS = {
    "cf": "scores and ranks of the collaborative candidate sources",
    "sem": "semantic similarity: item vs user profile, item vs the user's recent items (and semantic sources)",
    "pop": "item prior: log popularity and release year",
    "user": "user attributes: age, gender, occupation",
    "genre": "cosine between the item's genres and the user's history genre distribution",
    "ctx": "context: hour and weekday of the user's last history interaction",
}

_NEUTRAL = {"zscore": 0.0, "minmax": 0.5, "rank": 0.5}


# -- validation --------------------------------------------------------------------------------------
def _check_scores(scores, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_users, n_items), got shape {s.shape}")
    if not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise ValueError(f"{name} must be numeric (int or float), got dtype {s.dtype}")
    s = s.astype(np.float64)  # a copy: callers' arrays are never modified
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds NaN or inf; mask items with allowed=/exclude= instead")
    return s


def _check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _check_allowed(allowed, n_items: int):
    if allowed is None:
        return None
    a = np.asarray(allowed)
    if a.dtype != bool or a.shape != (n_items,):
        raise ValueError(f"allowed must be a boolean mask of shape ({n_items},), got dtype {a.dtype} shape {a.shape}")
    return a


def _check_exclude(exclude, shape):
    if exclude is None:
        return None
    if not sp.issparse(exclude) or exclude.shape != tuple(shape):
        got = getattr(exclude, "shape", type(exclude).__name__)
        raise ValueError(f"exclude must be a scipy.sparse matrix of shape {tuple(shape)}, got {got}")
    return sp.csr_matrix(exclude)


def _rankable(shape, allowed=None, exclude=None):
    """Boolean (n_users, n_items) mask of the entries that will be ranked, or None when nothing is masked."""
    a = _check_allowed(allowed, shape[1])
    ex = _check_exclude(exclude, shape)
    if a is None and ex is None:
        return None
    valid = np.ones(shape, dtype=bool) if a is None else np.repeat(a[None, :], shape[0], axis=0)
    if ex is not None:
        # every stored entry is masked, as topk_from_scores does, so the two always agree
        rows = np.repeat(np.arange(shape[0]), np.diff(ex.indptr))
        valid[rows, ex.indices] = False
    return valid


def _positive_int(name: str, value, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _named_sources(scores, name: str, require_mapping: bool = False) -> dict:
    if isinstance(scores, Mapping):
        items = list(scores.items())
    elif isinstance(scores, (list, tuple)) and not require_mapping:
        items = [(f"s{i}", v) for i, v in enumerate(scores)]
    else:
        want = "a dict name -> score matrix" if require_mapping else "a dict name -> score matrix or a list of them"
        raise ValueError(f"{name} must be {want}, got {type(scores).__name__}")
    if not items:
        raise ValueError(f"{name} must hold at least one score matrix, got none")
    out, shape = {}, None
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{name} keys must be non-empty strings, got {key!r}")
        s = _check_scores(value, f"{name}[{key!r}]")
        if shape is None:
            shape = s.shape
        elif s.shape != shape:
            raise ValueError(f"{name}[{key!r}] has shape {s.shape} but the first source has {shape}; all must match")
        out[key] = s
    return out


def _check_weights(weights, names: list) -> np.ndarray:
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


def _check_frame(frame, name: str = "frame", unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame with {list(KEYS)} columns, got {type(frame).__name__}")
    missing = [c for c in KEYS if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} must have columns {list(KEYS)}, missing {missing}")
    out = []
    for c in KEYS:
        v = frame[c].to_numpy()
        if not np.issubdtype(v.dtype, np.integer):
            raise ValueError(f"{name}[{c!r}] must hold integer indices, got dtype {v.dtype}")
        if v.size and v.min() < 0:
            raise ValueError(f"{name}[{c!r}] holds a negative index {int(v.min())}")
        out.append(v.astype(np.int64, copy=False))
    users, items = out
    if unique and len(users):
        keys = users * (np.int64(items.max()) + 1) + items
        if len(np.unique(keys)) != len(keys):
            raise ValueError(f"{name} repeats a (user_idx, item_idx) pair; candidates must be unique per user")
    return users, items


def _binary_truth(truth, name: str = "truth_csr") -> sp.csr_matrix:
    if not sp.issparse(truth) or truth.ndim != 2:
        raise ValueError(f"{name} must be a scipy.sparse users x items matrix, got {type(truth).__name__}")
    t = sp.csr_matrix(truth, copy=True)
    t.sum_duplicates()
    t.eliminate_zeros()  # a stored 0 is not a relevant item (as in recsuite.metrics)
    t.sort_indices()
    return t


def _pairs_in(users: np.ndarray, items: np.ndarray, t: sp.csr_matrix) -> np.ndarray:
    """Boolean per (user, item) pair: is it a non-zero of the canonical CSR ``t``?"""
    n_items = np.int64(t.shape[1])
    rows = np.repeat(np.arange(t.shape[0], dtype=np.int64), np.diff(t.indptr))
    keys = rows * n_items + t.indices  # sorted: rows are, and indices are sorted within a row
    query = users * n_items + items
    if not len(keys):
        return np.zeros(len(query), dtype=bool)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[pos] == query


def _fits(name: str, users: np.ndarray, items: np.ndarray, shape, what: str) -> None:
    if len(users) and (users.max() >= shape[0] or items.max() >= shape[1]):
        raise ValueError(
            f"{name} has shape {tuple(shape)} but {what} indexes user {int(users.max())} / item {int(items.max())}"
        )


# -- normalisation and score fusion -------------------------------------------------------------------
def _ranks(s: np.ndarray, valid, method: str) -> np.ndarray:
    """Descending ranks per row (1 = best) over the rankable entries; masked entries get NaN."""
    neg = -s if valid is None else np.where(valid, -s, np.inf)  # masked sort last: valid ranks are 1..n_valid
    r = rankdata(neg, method=method, axis=1).astype(np.float64)
    if valid is not None:
        r[~valid] = np.nan
    return r


def _normalize(s: np.ndarray, valid, method: str) -> np.ndarray:
    """Per-row normalisation over the rankable entries; masked entries come back as 0 (callers refill them)."""
    if method == "none":
        out = s.copy()
    elif method == "rank":
        n = np.full(s.shape[0], s.shape[1], dtype=np.float64) if valid is None else valid.sum(axis=1).astype(float)
        r = _ranks(s, valid, "average")
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


def normalize_scores(scores, method: str = "zscore", allowed=None, exclude=None) -> np.ndarray:
    """Per-user normalisation of a (n_users, n_items) score matrix over the items that will be ranked.

    ``zscore``: (s - mean_u) / std_u (population std); ``minmax``: (s - min_u) / (max_u - min_u);
    ``rank``: (n_u - r) / (n_u - 1) with r the descending rank (1 = best, ties get their average rank), so
    the best item maps to 1 and the worst to 0; ``none``: the raw scores. The statistics use only the
    rankable items of each user (``allowed`` and not in ``exclude``). A row without spread (constant, or a
    single rankable item) maps to the neutral value, 0 for zscore and 0.5 for minmax and rank, never NaN.
    Masked entries are set 1 below the row's lowest rankable value: finite (``Protocol.evaluate`` rejects
    inf), and ranked last even without a mask. Returns float32.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    s = _check_scores(scores)
    method = _check_method(method)
    valid = _rankable(s.shape, allowed, exclude)
    return _fill_masked(_normalize(s, valid, method), valid).astype(np.float32)


def _combine(normed: list, w: np.ndarray, valid) -> np.ndarray:
    y = np.zeros_like(normed[0])
    for wi, n in zip(w, normed):
        if wi != 0:
            y += wi * n
    return _fill_masked(y, valid).astype(np.float32)


def blend(scores, weights, method: str = "zscore", allowed=None, exclude=None) -> np.ndarray:
    """Weighted sum of per-user normalised scores: y = Σ_s w_s · norm(s_s).

    This is the linear fusion y = α·s_CF + γ·s_sem + b; the bias b is left out because adding a constant
    to every item of a user does not change their ranking, and only the ratio of the weights matters
    (scaling all of them by c > 0 gives the same lists). Normalising first puts sources with very different
    scales (inner products, cosines, counts) on one footing; see ``normalize_scores`` for the methods and
    for how masked items are treated. ``scores`` is a dict name -> matrix (``weights`` a dict with the same
    names, or numbers in the dict's order) or a list of matrices. Returns float32.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    src = _named_sources(scores, "scores")
    w = _check_weights(weights, list(src))
    method = _check_method(method)
    valid = _rankable(next(iter(src.values())).shape, allowed, exclude)
    return _combine([_normalize(s, valid, method) for s in src.values()], w, valid)


def reciprocal_rank_fusion(scores_list, k: float = 60, allowed=None, exclude=None) -> np.ndarray:
    """Reciprocal-rank fusion: y_ui = Σ_s 1 / (k + r_s(u, i)).

    Cormack, Clarke & Büttcher 2009, "Reciprocal Rank Fusion outperforms Condorcet and individual rank
    learning methods", SIGIR (k = 60 there). r_s is the descending rank (1 = best) of item i among user u's
    rankable items (``allowed``, not in ``exclude``) in source s; tied items share their average rank, so a
    block of equal scores (e.g. never-seen items under popularity) adds the same amount to each of them
    instead of an order by item index. Parameter-free apart from k; scales do not matter, only ranks.
    Masked entries are set below every rankable value (finite). Returns float32.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    src = _named_sources(scores_list, "scores_list")
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not (np.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    valid = _rankable(next(iter(src.values())).shape, allowed, exclude)
    y = None
    for s in src.values():
        contrib = 1.0 / (k + _ranks(s, valid, "average"))
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
    allowed=None,
    exclude=None,
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

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    src = _named_sources(sources, "sources", require_mapping=True)
    if not callable(evaluate_fn):
        raise ValueError(f"evaluate_fn must be callable scores -> float, got {type(evaluate_fn).__name__}")
    if not isinstance(metric_name, str) or metric_name in src or metric_name == "method":
        raise ValueError(f"metric_name must be a string other than the source names and 'method', got {metric_name!r}")
    names = list(src)
    combos = _grid_combos(grid, names)
    method = _check_method(method)
    valid = _rankable(next(iter(src.values())).shape, allowed, exclude)
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


# -- stage 1: candidates -----------------------------------------------------------------------------
def _group_of(column: str) -> str | None:
    if not isinstance(column, str) or column in KEYS or "_" not in column:
        return None
    group = column.split("_", 1)[0]
    return group if group in FEATURE_GROUPS else None


def candidate_frame(sources, n_per_source, exclude=None, allowed=None) -> pd.DataFrame:
    """Stage 1 of a two-stage ranker: the union of each source's top-n items per user, one row per candidate.

    Columns: ``user_idx``, ``item_idx`` and, for every source, ``<name>_score`` (its raw score, float32) and
    ``<name>_rank`` (int32, the item's rank in that source's full ranking of the user's rankable items,
    1 = best, ties by item index as in ``metrics.topk_from_scores``), also for candidates another source
    proposed. ``n_per_source`` is one int for all or a dict name -> int; 0 makes a source a feature only.
    Source names must start with a feature group (``cf_ease``, ``sem_content``, ...), so that their columns
    join that group in ``feature_columns``. Excluded and disallowed items never become candidates (a user
    with fewer rankable items than n gets fewer). Rows are unique and sorted by (user_idx, item_idx).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    src = _named_sources(sources, "sources", require_mapping=True)
    names = list(src)
    for name in names:
        if name in FEATURE_GROUPS or _group_of(name) is None:
            groups = ", ".join(f"'{g}_'" for g in FEATURE_GROUPS)
            raise ValueError(
                f"sources names must start with a feature-group prefix ({groups}) and go on after it, so their "
                f"columns join that group in feature_columns; got {name!r} (e.g. 'cf_{name}')"
            )
    shape = src[names[0]].shape
    n_users, n_items = shape
    if isinstance(n_per_source, Mapping):
        if set(n_per_source) != set(names):
            raise ValueError(f"n_per_source must have one count per source {names}, got keys {list(n_per_source)}")
        counts = {n: _positive_int(f"n_per_source[{n!r}]", n_per_source[n], allow_zero=True) for n in names}
    else:
        c = _positive_int("n_per_source", n_per_source)
        counts = dict.fromkeys(names, c)
    for n, c in counts.items():
        if c > n_items:
            raise ValueError(f"n_per_source[{n!r}] = {c} is larger than the catalogue of {n_items} items")
    if not any(counts.values()):
        raise ValueError("n_per_source must give at least one source a positive count")
    valid = _rankable(shape, allowed, exclude)
    keys = []
    for name in names:
        c = counts[name]
        if c == 0:
            continue
        top = M.topk_from_scores(src[name], c, exclude=exclude, allowed=allowed)
        users = np.repeat(np.arange(n_users, dtype=np.int64), c)
        items = top.ravel()
        if valid is not None:  # topk_from_scores fills short rows with masked items; they are no candidates
            ok = valid[users, items]
            users, items = users[ok], items[ok]
        keys.append(users * n_items + items)
    keys = np.unique(np.concatenate(keys))
    users, items = keys // n_items, keys % n_items
    frame = pd.DataFrame({"user_idx": users, "item_idx": items})
    for name in names:
        frame[f"{name}_score"] = src[name][users, items].astype(np.float32)
        frame[f"{name}_rank"] = _ranks(src[name], valid, "ordinal")[users, items].astype(np.int32)
    return frame


def recall_of_candidates(frame, truth_csr) -> float:
    """Share of each user's relevant items that are in the candidate frame, averaged over users with any.

    The ceiling of stage 2: no re-ranking of these candidates can reach a higher Recall@k (same per-user
    averaging as ``metrics.recall_at_k``), whatever k.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    users, items = _check_frame(frame, unique=True)
    t = _binary_truth(truth_csr)
    _fits("truth_csr", users, items, t.shape, "frame")
    found = np.bincount(users[_pairs_in(users, items, t)], minlength=t.shape[0])
    n_rel = np.diff(t.indptr)
    has = n_rel > 0
    return float((found[has] / n_rel[has]).mean()) if has.any() else 0.0


def label_frame(frame, truth_csr) -> pd.Series:
    """0/1 int8 label per candidate row: 1 where (user_idx, item_idx) is a non-zero of ``truth_csr``.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    users, items = _check_frame(frame)
    t = _binary_truth(truth_csr)
    _fits("truth_csr", users, items, t.shape, "frame")
    return pd.Series(_pairs_in(users, items, t).astype(np.int8), index=frame.index, name="label")


# -- features ----------------------------------------------------------------------------------------
def _check_matrix(name: str, value, rows_needed: int, width: int | None = None) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim != 2 or not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)):
        raise ValueError(f"{name} must be a 2-D numeric array, got shape {v.shape} dtype {v.dtype}")
    v = v.astype(np.float32)
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if v.shape[0] < rows_needed:
        raise ValueError(f"{name} has {v.shape[0]} rows but the frame indexes row {rows_needed - 1}")
    if width is not None and v.shape[1] != width:
        raise ValueError(f"{name} has {v.shape[1]} columns but must have {width} to compare with the item side")
    return v


def _unit_rows(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)  # a zero row has cosine 0 to everything


def _rowwise_cos(item_unit: np.ndarray, user_unit: np.ndarray, items, users, chunk: int = 8192) -> np.ndarray:
    out = np.empty(len(items), dtype=np.float32)
    for start in range(0, len(items), chunk):  # chunks bound the memory of the gathered (rows, d) blocks
        sl = slice(start, start + chunk)
        out[sl] = np.einsum("rd,rd->r", item_unit[items[sl]], user_unit[users[sl]])
    return out


def _check_vector(name: str, value, rows_needed: int, allow_nan: bool = False) -> np.ndarray:
    if np.ndim(value) != 1:
        raise ValueError(f"{name} must be 1-D (one value per index, by position), got shape {np.shape(value)}")
    try:
        # via pandas so that nullable columns (Int64 years with <NA>) become NaN
        v = pd.to_numeric(pd.Series(value)).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers") from None
    if np.isinf(v).any() or (not allow_nan and np.isnan(v).any()):
        raise ValueError(f"{name} must be finite{'' if allow_nan else ' without missing values'}")
    if len(v) < rows_needed:
        raise ValueError(f"{name} has {len(v)} entries but the frame indexes entry {rows_needed - 1}")
    return v


def _add_table(out: pd.DataFrame, table, prefix: str, users: np.ndarray, name: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame with one row per user index, got {type(table).__name__}")
    if len(users) and len(table) <= users.max():
        raise ValueError(f"{name} has {len(table)} rows but the frame indexes user {int(users.max())}")
    for col in table.columns:
        s = table[col]
        if not (pd.api.types.is_numeric_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype)):
            # categories come from the whole table, so every frame built from it shares one encoding
            s = s.astype("category")
        elif pd.api.types.is_bool_dtype(s):
            s = s.astype(np.int8)
        out[f"{prefix}{col}"] = s.iloc[users].set_axis(out.index)


def add_features(
    frame,
    item_vectors=None,
    user_profiles=None,
    recent_item_vectors=None,
    item_popularity=None,
    item_year=None,
    user_table=None,
    genre_matrix=None,
    user_genre_dist=None,
    context=None,
) -> pd.DataFrame:
    """A copy of a candidate frame with feature columns, each prefixed by its group (``FEATURE_GROUPS``).

    - ``sem_profile_cos`` = cos(v_i, p_u) with ``item_vectors`` (n_items, d) and ``user_profiles``
      (n_users, d), e.g. ``semantic.user_profiles``; ``sem_recent_cos`` = cos(v_i, r_u) with
      ``recent_item_vectors`` (n_users, d), the mean of the user's last items (``recent_item_profile``).
    - ``pop_log_count`` = log(1 + interactions of i in the history) from ``item_popularity`` (n_items,);
      ``pop_year`` from ``item_year`` (n_items,; missing years stay NaN, which LightGBM routes as missing).
    - ``user_<col>`` for every column of ``user_table`` (row u = user index u, e.g. ``age``, ``gender``,
      ``occupation``); text columns become pandas categoricals, which LightGBM splits on natively.
    - ``genre_match`` = cos(g_i, d_u) with ``genre_matrix`` (n_items, n_genres) and ``user_genre_dist``
      (n_users, n_genres), e.g. ``user_genre_distribution``.
    - ``ctx_<col>`` for every column of ``context`` (row u = user index u), e.g. ``last_context``.

    Item-side arrays are read by position (entry i = item index i), user-side ones likewise by user index.
    A zero vector has cosine 0 to everything. ``user_`` and ``ctx_`` features are constant within a user,
    so under a per-user ranking objective they cannot reorder a list on their own: they act only through
    interactions with item features in the trees.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    users, items = _check_frame(frame)
    n_u = int(users.max()) + 1 if len(users) else 0
    n_i = int(items.max()) + 1 if len(items) else 0
    out = frame.copy()
    if (user_profiles is not None or recent_item_vectors is not None) and item_vectors is None:
        raise ValueError("item_vectors is required with user_profiles / recent_item_vectors (they are compared with it)")
    if item_vectors is not None:
        if user_profiles is None and recent_item_vectors is None:
            raise ValueError("item_vectors alone adds no feature; pass user_profiles and/or recent_item_vectors")
        v = _unit_rows(_check_matrix("item_vectors", item_vectors, n_i))
        for col, arg, value in (
            ("sem_profile_cos", "user_profiles", user_profiles),
            ("sem_recent_cos", "recent_item_vectors", recent_item_vectors),
        ):
            if value is not None:
                p = _unit_rows(_check_matrix(arg, value, n_u, width=v.shape[1]))
                out[col] = _rowwise_cos(v, p, items, users)
    if item_popularity is not None:
        pop = _check_vector("item_popularity", item_popularity, n_i)
        if (pop < 0).any():
            raise ValueError("item_popularity must hold non-negative counts")
        out["pop_log_count"] = np.log1p(pop[items]).astype(np.float32)
    if item_year is not None:
        out["pop_year"] = _check_vector("item_year", item_year, n_i, allow_nan=True)[items].astype(np.float32)
    if user_table is not None:
        _add_table(out, user_table, "user_", users, "user_table")
    if (genre_matrix is None) != (user_genre_dist is None):
        raise ValueError("genre_matrix and user_genre_dist must be given together (genre_match compares them)")
    if genre_matrix is not None:
        g = _unit_rows(_check_matrix("genre_matrix", genre_matrix, n_i))
        d = _unit_rows(_check_matrix("user_genre_dist", user_genre_dist, n_u, width=g.shape[1]))
        out["genre_match"] = _rowwise_cos(g, d, items, users)
    if context is not None:
        _add_table(out, context, "ctx_", users, "context")
    return out


def _check_history_frame(history_frame, name: str = "history_frame") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users, items = _check_frame(history_frame, name)
    if "timestamp" not in history_frame.columns:
        raise ValueError(f"{name} must have a 'timestamp' column (Unix seconds)")
    ts = history_frame["timestamp"].to_numpy()
    if not np.issubdtype(ts.dtype, np.number) or (len(ts) and not np.isfinite(ts.astype(float)).all()):
        raise ValueError(f"{name}['timestamp'] must hold finite numbers, got dtype {ts.dtype}")
    return users, items, ts


def recent_item_profile(history_frame, item_vectors, n_users: int, n: int = 5) -> np.ndarray:
    """(n_users, d) float32: the L2-normalised mean vector of each user's last ``n`` history items.

    Order in time is by timestamp, ties by item index (the split's tie rule). A user without history gets
    the zero vector. Pass the history of the eval set (``proto.history_frame(eval_set)``), never later rows.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    users, items, ts = _check_history_frame(history_frame)
    n_users = _positive_int("n_users", n_users)
    n = _positive_int("n", n)
    v = _check_matrix("item_vectors", item_vectors, int(items.max()) + 1 if len(items) else 0)
    _fits("(n_users, n_items)", users, items, (n_users, v.shape[0]), "history_frame")
    order = np.lexsort((items, ts, users))
    u, it = users[order], items[order]
    # position from the end within each user's block: 0 = latest
    from_end = np.searchsorted(u, u, side="right") - 1 - np.arange(len(u))
    keep = from_end < n
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (u[keep], it[keep])), shape=(n_users, v.shape[0]))
    x.data[:] = 1.0  # an item repeated among the last n counts once, as in semantic.user_profiles
    counts = np.asarray(x.sum(axis=1), dtype=np.float32)
    means = np.divide(np.asarray(x @ v), counts, out=np.zeros((n_users, v.shape[1]), np.float32), where=counts > 0)
    return _unit_rows(means.astype(np.float32))


def user_genre_distribution(history_csr, genre_matrix) -> np.ndarray:
    """(n_users, n_genres) float32: share of each genre among the genre labels of the user's history items.

    d_u = Σ_{i ∈ H(u)} g_i / Σ_{i ∈ H(u)} |g_i|; a user with no history (or only genre-less items) gets zeros.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    if not sp.issparse(history_csr) or history_csr.ndim != 2:
        raise ValueError(f"history_csr must be a scipy.sparse users x items matrix, got {type(history_csr).__name__}")
    g = _check_matrix("genre_matrix", genre_matrix, history_csr.shape[1])
    if g.shape[0] != history_csr.shape[1] or (g < 0).any():
        raise ValueError(
            f"genre_matrix must be non-negative with {history_csr.shape[1]} rows (one per item), got shape {g.shape}"
        )
    x = _binary_truth(history_csr, "history_csr").astype(np.float32)
    x.data[:] = 1.0
    sums = np.asarray(x @ g, dtype=np.float32)
    total = sums.sum(axis=1, keepdims=True)
    return np.divide(sums, total, out=np.zeros_like(sums), where=total > 0)


def last_context(history_frame, n_users: int) -> pd.DataFrame:
    """Per user index: ``hour`` (0-23, UTC) and ``weekday`` (0 = Monday) of the last history interaction.

    Known at request time, unlike the time of the held-out interactions. float32, NaN for users without
    history. Pass the history of the eval set (``proto.history_frame(eval_set)``).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    from recsuite.features import context_features

    users, items, ts = _check_history_frame(history_frame)
    n_users = _positive_int("n_users", n_users)
    if len(users) and users.max() >= n_users:
        raise ValueError(f"history_frame indexes user {int(users.max())}, outside n_users={n_users}")
    order = np.lexsort((items, ts, users))
    u = users[order]
    last = order[np.r_[u[1:] != u[:-1], True]] if len(u) else order
    ctx = context_features(pd.DataFrame({"timestamp": ts[last]}))
    out = pd.DataFrame(np.nan, index=pd.RangeIndex(n_users, name="user_idx"), columns=["hour", "weekday"], dtype=np.float32)
    out.loc[users[last], "hour"] = ctx["hour"].to_numpy(np.float32)
    out.loc[users[last], "weekday"] = ctx["weekday"].to_numpy(np.float32)
    return out


def feature_columns(frame, drop_groups=()) -> list:
    """The frame's feature columns (prefix in ``FEATURE_GROUPS``), in frame order, minus ``drop_groups``.

    ``user_idx``/``item_idx``, ``label`` and any column without a group prefix are not features.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    drop = (drop_groups,) if isinstance(drop_groups, str) else tuple(drop_groups)
    unknown = [g for g in drop if g not in FEATURE_GROUPS]
    if unknown:
        raise ValueError(f"drop_groups must name groups of {list(FEATURE_GROUPS)}, got {unknown}")
    return [c for c in frame.columns if _group_of(c) is not None and _group_of(c) not in drop]


# -- stage 2: the learned ranker ---------------------------------------------------------------------
def _ranker_data(frame, features: list, label: str, name: str):
    users, _ = _check_frame(frame, name)
    if len(users) == 0:
        raise ValueError(f"{name} is empty")
    if np.any(np.diff(users) < 0):
        raise ValueError(
            f"{name} must be sorted by user_idx (LightGBM reads each user's candidates as one contiguous "
            "group); sort it with .sort_values(['user_idx', 'item_idx'])"
        )
    missing = [c for c in [*features, label] if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")
    for c in features:
        dt = frame[c].dtype
        if not (pd.api.types.is_numeric_dtype(dt) or isinstance(dt, pd.CategoricalDtype)):
            raise ValueError(f"feature {c!r} must be numeric, bool or categorical, got dtype {dt}")
    y = frame[label].to_numpy()
    if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y.astype(float)).all():
        raise ValueError(f"{name}[{label!r}] must hold finite numbers, got dtype {y.dtype}")
    if (y < 0).any() or np.any(y != np.round(y)):
        raise ValueError(f"{name}[{label!r}] must hold non-negative integer relevance (0/1), got {np.unique(y)[:5]}")
    y = y.astype(np.int32)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    gmax, gmin = np.maximum.reduceat(y, starts), np.minimum.reduceat(y, starts)
    keep = gmax > gmin  # a user whose candidates all share one label gives LambdaRank no pair to learn from
    rows = np.repeat(keep, sizes)
    info = {
        "users": int(len(starts)),
        "users_kept": int(keep.sum()),
        "users_dropped_no_positive": int((gmax == 0).sum()),
        "users_dropped_all_positive": int(((gmax == gmin) & (gmax > 0)).sum()),
        "rows": int(len(users)),
        "rows_kept": int(rows.sum()),
    }
    if not keep.any():
        raise ValueError(f"no user in {name} has both a positive and a negative candidate; nothing to learn from")
    return frame.loc[rows, list(features)], y[rows], sizes[keep], info


def fit_ranker(
    frame,
    features,
    label: str = "label",
    params: dict | None = None,
    seed: int = 0,
    valid_frame=None,
    early_stopping_rounds: int | None = None,
):
    """A LightGBM LambdaRank model over candidate frames, one query per user; returns the fitted LGBMRanker.

    LambdaRank (Burges 2010, "From RankNet to LambdaRank to LambdaMART: An Overview") optimises NDCG with
    gradients from pairs of a user's candidates that differ in label. Users whose candidates all share one
    label (above all: no positive among the candidates) carry no such pair and are dropped, both from
    ``frame`` and ``valid_frame``; the counts are logged and stored in ``model.fit_info_``, with nothing
    dropped silently. ``frame`` must be sorted by user. Deterministic for a given ``seed``
    (``deterministic=True``, row-wise histograms, one thread); ``params`` override the defaults (e.g.
    ``n_estimators``, ``num_leaves``, ``n_jobs``). With ``valid_frame``, NDCG@10 on it is tracked in
    ``model.evals_result_`` and, with ``early_stopping_rounds``, stops training when it stalls.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    import lightgbm as lgb

    if isinstance(features, str) or not features or not all(isinstance(c, str) for c in features):
        raise ValueError(f"features must be a non-empty list of column names, got {features!r}")
    features = list(features)
    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of LGBMRanker parameters or None, got {type(params).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    x, y, groups, info = _ranker_data(frame, features, label, "frame")
    fit_info = {"train": info}
    kwargs = {"group": groups, "eval_at": (10,)}
    if valid_frame is not None:
        xv, yv, gv, vinfo = _ranker_data(valid_frame, features, label, "valid_frame")
        fit_info["valid"] = vinfo
        kwargs.update(eval_X=(xv,), eval_y=(yv,), eval_group=[gv], eval_names=["valid"])
        if early_stopping_rounds is not None:
            rounds = _positive_int("early_stopping_rounds", early_stopping_rounds)
            kwargs["callbacks"] = [lgb.early_stopping(rounds, first_metric_only=True, verbose=False)]
    elif early_stopping_rounds is not None:
        raise ValueError("early_stopping_rounds needs valid_frame to watch")
    for part, i in fit_info.items():
        log.info(
            "fit_ranker %s: kept %d of %d users (%d without a positive, %d with only positives dropped), %d of %d rows",
            part, i["users_kept"], i["users"], i["users_dropped_no_positive"], i["users_dropped_all_positive"],
            i["rows_kept"], i["rows"],
        )
    config = {
        "objective": "lambdarank",
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "reg_lambda": 1.0,
        "random_state": int(seed),
        "deterministic": True,
        "force_row_wise": True,
        # one thread: on a shared 2-core machine a second OpenMP thread made a 110k-row fit 4x slower
        "n_jobs": 1,
        "verbose": -1,
    }
    config.update(params or {})
    model = lgb.LGBMRanker(**config)
    model.fit(x, y, **kwargs)
    model.fit_info_ = fit_info
    return model


def feature_importance(model) -> pd.DataFrame:
    """Gain and split importance per feature of a fitted LightGBM model, with its group; by gain, highest first.

    ``gain_share`` is the feature's share of the total gain (sums to 1).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    booster = getattr(model, "booster_", None)
    if booster is None:
        raise ValueError(f"model must be a fitted LightGBM sklearn model (with booster_), got {type(model).__name__}")
    names = booster.feature_name()
    gain = booster.feature_importance("gain")
    df = pd.DataFrame(
        {
            "feature": names,
            "group": [_group_of(n) for n in names],
            "gain": gain,
            "split": booster.feature_importance("split"),
            "gain_share": gain / gain.sum() if gain.sum() > 0 else np.zeros(len(names)),
        }
    )
    return df.sort_values(["gain", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def rank_frame(frame, score, n_users: int, k: int, fallback=None, exclude=None, allowed=None) -> np.ndarray:
    """Top-k item indices per user (int64, (n_users, k)) from per-row scores of a candidate frame.

    Best score first, ties by item index. ``score`` is a column name or an array with one value per row.
    Users with fewer than k candidates (or none) are padded, after their candidates, with the best items of
    the ``fallback`` (n_users, n_items) score matrix that are allowed, not excluded and not listed already
    (ties by item index); without ``fallback`` such users raise a ValueError rather than get a list filled
    arbitrarily. ``exclude``/``allowed`` are also checked against the candidates: a candidate the protocol
    masks means the frame was built with the wrong history, and raises.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    users, items = _check_frame(frame, unique=True)
    n_users = _positive_int("n_users", n_users)
    k = _positive_int("k", k)
    if len(users) and users.max() >= n_users:
        raise ValueError(f"frame indexes user {int(users.max())}, outside n_users={n_users}")
    if isinstance(score, str):
        if score not in frame.columns:
            raise ValueError(f"score column {score!r} is not in frame")
        s = frame[score].to_numpy()
    else:
        s = np.asarray(score)
        if s.shape != (len(frame),):
            raise ValueError(f"score must be a column name or an array of {len(frame)} values, got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or not np.isfinite(s.astype(np.float64)).all():
        raise ValueError("score must hold finite numbers")
    s = s.astype(np.float64)
    n_items = None
    if fallback is not None:
        fb = _check_scores(fallback, "fallback")
        if fb.shape[0] != n_users:
            raise ValueError(f"fallback must have n_users={n_users} rows, got shape {fb.shape}")
        n_items = fb.shape[1]
    elif allowed is not None:
        n_items = len(np.asarray(allowed))
    elif exclude is not None:
        n_items = exclude.shape[1] if sp.issparse(exclude) else None
    if n_items is not None:
        a = _check_allowed(allowed, n_items)
        ex = _check_exclude(exclude, (n_users, n_items))
        if len(items) and items.max() >= n_items:
            raise ValueError(f"frame indexes item {int(items.max())}, outside the {n_items} items of fallback/allowed")
        if a is not None and not a[items].all():
            raise ValueError(f"frame holds {int((~a[items]).sum())} candidates outside allowed")
        if ex is not None and _pairs_in(users, items, _binary_truth(ex, "exclude")).any():
            raise ValueError("frame holds candidates that exclude masks (seen items); rebuild it with that history")
    elif exclude is not None:
        raise ValueError(f"exclude must be a scipy.sparse matrix, got {type(exclude).__name__}")

    order = np.lexsort((items, -s, users))
    u, it = users[order], items[order]
    pos = np.arange(len(u)) - np.searchsorted(u, u, side="left")
    keep = pos < k
    out = np.full((n_users, k), -1, dtype=np.int64)
    out[u[keep], pos[keep]] = it[keep]
    count = np.bincount(u[keep], minlength=n_users)
    short = np.flatnonzero(count < k)
    if short.size == 0:
        return out
    if fallback is None:
        u0 = int(short[0])
        raise ValueError(
            f"{short.size} users have fewer than k={k} candidates (e.g. user {u0} has {int(count[u0])}); "
            "pass fallback= scores to pad their lists, or generate more candidates"
        )
    listed = out[short]
    has = listed >= 0
    block = sp.csr_matrix(
        (np.ones(int(has.sum()), np.float32), (np.nonzero(has)[0], listed[has])), shape=(len(short), n_items)
    )
    if ex is not None:
        block = (block + ex[short]).tocsr()
    valid = _rankable((len(short), n_items), a, block)
    need = k - count[short]
    avail = valid.sum(axis=1)
    if np.any(avail < need):
        r = int(np.flatnonzero(avail < need)[0])
        raise ValueError(
            f"user {int(short[r])} needs {int(need[r])} fallback items but only {int(avail[r])} are rankable"
        )
    pad = M.topk_from_scores(fb[short], k, exclude=block, allowed=a)
    cols = np.arange(k)[None, :] - count[short][:, None]
    listed[cols >= 0] = np.take_along_axis(pad, np.maximum(cols, 0), axis=1)[cols >= 0]
    out[short] = listed
    return out


# -- breakdowns --------------------------------------------------------------------------------------
per_user_metrics = M.per_user_metrics  # re-exported: the breakdowns below take its output


def breakdown(per_user_df, groups, metrics=None) -> pd.DataFrame:
    """Mean of per-user metrics within each group, with ``users`` = evaluated users (with relevant items).

    ``groups`` is a Series indexed like ``per_user_df`` (by user index; a categorical keeps its order and
    shows empty groups) or an array with one label per row. Every user needs a group.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    if not isinstance(per_user_df, pd.DataFrame):
        raise ValueError(f"per_user_df must be a DataFrame from per_user_metrics, got {type(per_user_df).__name__}")
    cols = [c for c in per_user_df.columns if "@" in str(c)] if metrics is None else list(metrics)
    missing = [c for c in cols if c not in per_user_df.columns]
    if not cols or missing:
        raise ValueError(f"metrics must name metric columns of per_user_df, missing {missing or 'all'}")
    if isinstance(groups, pd.Series):
        absent = per_user_df.index.difference(groups.index)
        if len(absent):
            raise ValueError(f"groups has no entry for {len(absent)} users of per_user_df, e.g. {absent[:5].tolist()}")
        g = groups.reindex(per_user_df.index)
    else:
        arr = np.asarray(groups)
        if arr.shape != (len(per_user_df),):
            raise ValueError(f"groups must be a Series or hold one label per row ({len(per_user_df)}), got shape {arr.shape}")
        g = pd.Series(groups, index=per_user_df.index)
    if g.isna().any():
        raise ValueError(f"groups is missing for {int(g.isna().sum())} users; every user needs a group")
    g = g.rename(g.name if g.name is not None else "group")
    grouped = per_user_df[cols].groupby(g, observed=False, sort=True)
    out = grouped.mean()
    out.insert(0, "users", per_user_df[cols[0]].notna().groupby(g, observed=False, sort=True).sum().astype(np.int64))
    return out


def activity_groups(history_csr, bins=None, labels=("cold", "light", "heavy")) -> pd.Series:
    """User activity group per user index, by the number of history interactions n_u.

    With ``bins=None`` the thresholds are the quantiles at 1/L, 2/L, ... of n_u (terciles for three labels),
    so the groups are about equally large; otherwise ``bins`` holds L - 1 increasing thresholds. Group j
    holds t_{j-1} < n_u <= t_j. On ML-100K every user rated at least 20 movies, so "cold" means the least
    active third, not new users. Returns an ordered categorical Series (index ``user_idx``); the thresholds
    used are in ``.attrs["thresholds"]``.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    x = _binary_truth(history_csr, "history_csr")
    labels = tuple(labels)
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(s, str) for s in labels):
        raise ValueError(f"labels must be at least two distinct strings, got {labels!r}")
    counts = np.diff(x.indptr)
    if bins is None:
        t = np.quantile(counts, np.arange(1, len(labels)) / len(labels))
    else:
        t = np.asarray(bins, dtype=np.float64)
        if t.shape != (len(labels) - 1,) or not np.isfinite(t).all() or np.any(np.diff(t) <= 0):
            raise ValueError(f"bins must hold {len(labels) - 1} increasing thresholds for labels {labels}, got {bins!r}")
    codes = np.searchsorted(t, counts, side="left")
    out = pd.Series(
        pd.Categorical.from_codes(codes, categories=list(labels), ordered=True),
        index=pd.RangeIndex(len(counts), name="user_idx"),
        name="activity",
    )
    out.attrs["thresholds"] = t.tolist()
    return out


def item_popularity_bucket(
    item_popularity, cuts=(0.2, 0.5), labels=("head", "mid", "tail"), zero_label: str | None = "unseen"
) -> pd.Series:
    """Popularity bucket per item index: head / mid / tail by the item's rank in popularity.

    Items are ranked by interaction count; with the default cuts, head = the most popular 20 % (the "short
    head", Abdollahpouri et al. 2019, "Managing Popularity Bias in Recommender Systems with Personalized
    Re-ranking"), mid = the next 30 %, tail = the rest. Equally popular items always share a bucket (ties go
    to the more popular one, so a bucket can be slightly larger than its share). With ``zero_label``, items
    without any interaction (cold items) form their own bucket and are left out of the shares.
    Returns an ordered categorical Series (index ``item_idx``).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    pop = _check_vector("item_popularity", item_popularity, 1)
    if (pop < 0).any():
        raise ValueError("item_popularity must hold non-negative counts")
    labels = tuple(labels)
    c = np.asarray(cuts, dtype=np.float64)
    if c.shape != (len(labels) - 1,) or not np.isfinite(c).all() or np.any(np.diff(np.r_[0.0, c, 1.0]) <= 0):
        raise ValueError(f"cuts must hold {len(labels) - 1} increasing shares in (0, 1) for labels {labels}, got {cuts!r}")
    cats = list(labels) + ([zero_label] if zero_label is not None else [])
    if len(set(cats)) != len(cats):
        raise ValueError(f"labels and zero_label must be distinct, got {cats}")
    ranked = pop > 0 if zero_label is not None else np.ones(len(pop), dtype=bool)
    codes = np.full(len(pop), len(labels), dtype=np.int64)  # the zero bucket, if any
    if ranked.any():
        desc = np.sort(pop[ranked])[::-1]
        # the epsilon keeps 0.3 * 10 = 3.0000000000000004 from rounding up to 4 items
        thresholds = desc[np.maximum(np.ceil(c * len(desc) - 1e-9).astype(int) - 1, 0)]
        # bucket j: count >= threshold_j, and below every earlier threshold
        codes[ranked] = (pop[ranked][:, None] < thresholds[None, :]).sum(axis=1)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=cats, ordered=True),
        index=pd.RangeIndex(len(pop), name="item_idx"),
        name="popularity",
    )


def item_breakdown(topk, truth, item_groups, k: int = 10) -> pd.DataFrame:
    """Where recommendations and hits go, per item group (e.g. ``item_popularity_bucket``).

    Per group: ``n_items`` in the catalogue, ``rec_share`` (share of all top-k slots), ``relevant_share``
    (share of the relevant items in ``truth``), ``hits`` and ``hit_share`` (share of all hits), and
    ``recall`` = hits / relevant items of the group (micro-averaged; NaN where it has none).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    k = _positive_int("k", k)
    hits = M.hit_matrix(topk, truth, k)
    top = np.asarray(topk)[:, :k].astype(np.int64)
    t = _binary_truth(truth, "truth")
    g = item_groups if isinstance(item_groups, pd.Series) else pd.Series(item_groups)
    if len(g) != t.shape[1]:
        raise ValueError(f"item_groups must hold one group per item ({t.shape[1]}), got {len(g)}")
    if g.isna().any():
        raise ValueError(f"item_groups is missing for {int(g.isna().sum())} items")
    cat = g.astype("category") if not isinstance(g.dtype, pd.CategoricalDtype) else g
    codes = cat.cat.codes.to_numpy()
    n = len(cat.cat.categories)

    def share(x):
        return x / x.sum() if x.sum() > 0 else np.full(n, np.nan)

    rec = np.bincount(codes[top].ravel(), minlength=n).astype(float)
    hit = np.bincount(codes[top][hits], minlength=n).astype(float)
    rel = np.bincount(codes[t.indices], minlength=n).astype(float)
    out = pd.DataFrame(
        {
            "n_items": np.bincount(codes, minlength=n),
            "rec_share": share(rec),
            "relevant_share": share(rel),
            "hits": hit.astype(np.int64),
            "hit_share": share(hit),
            "recall": np.divide(hit, rel, out=np.full(n, np.nan), where=rel > 0),
        },
        index=pd.CategoricalIndex(cat.cat.categories, name=g.name or "group", ordered=cat.cat.ordered),
    )
    return out


# -- leakage -----------------------------------------------------------------------------------------
def assert_no_future(seen, future, time_col: str = "timestamp") -> dict:
    """Raise AssertionError if anything the ranker saw comes from the held-out ``future`` period.

    ``seen`` holds every interaction used to build the training frame, its features and its labels (the
    history plus the label period, e.g. ``proto.history_frame("test")``, or a frame's positive rows);
    ``future`` the period to evaluate on (e.g. ``proto.test``). Checks (1) that no (user_idx, item_idx)
    pair of ``future`` occurs in ``seen`` and, when both frames have ``time_col``, (2) that per user every
    seen interaction is no later than that user's first future one (equal timestamps are allowed: the
    temporal split orders same-second interactions by item id). Returns what was checked.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    su, si = _check_frame(seen, "seen")
    fu, fi = _check_frame(future, "future")
    n_items = np.int64(max(si.max() if len(si) else 0, fi.max() if len(fi) else 0)) + 1
    overlap = np.isin(fu * n_items + fi, su * n_items + si)
    if overlap.any():
        j = int(np.flatnonzero(overlap)[0])
        raise AssertionError(
            f"{int(overlap.sum())} future (user, item) pairs occur in seen, e.g. user {int(fu[j])} item {int(fi[j])}"
        )
    timed = time_col in seen.columns and time_col in future.columns
    users_checked = 0
    if timed:
        last_seen = seen.groupby("user_idx")[time_col].max()
        first_future = future.groupby("user_idx")[time_col].min()
        both = last_seen.index.intersection(first_future.index)
        late = last_seen[both] > first_future[both]
        users_checked = int(len(both))
        if late.any():
            u = int(late[late].index[0])
            raise AssertionError(
                f"{int(late.sum())} users have seen interactions after their first future one, e.g. user {u} "
                f"(last seen {last_seen[u]}, first future {first_future[u]})"
            )
    return {
        "seen_rows": int(len(su)),
        "future_rows": int(len(fu)),
        "pairs_overlap": 0,
        "time_checked": bool(timed),
        "users_time_checked": users_checked,
    }


# -- tuning the ranker without touching the evaluation period -----------------------------------------
def user_folds(n_users: int, n_folds: int = 2, seed: int = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) per user index: a seeded random permutation dealt round-robin.

    Folds differ in size by at most one user. Cross-validation over *users* keeps every user's candidates
    in one fold, so a model is never scored on a user whose labels it was fit on.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    n_users = _positive_int("n_users", n_users)
    n_folds = _positive_int("n_folds", n_folds)
    if n_folds < 2 or n_folds > n_users:
        raise ValueError(f"n_folds must be in [2, n_users={n_users}], got {n_folds}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    folds = np.empty(n_users, dtype=np.int64)
    folds[np.random.default_rng(int(seed)).permutation(n_users)] = np.arange(n_users) % n_folds
    return folds


def cross_val_topk(
    frame, features, n_users: int, k: int = 10, params: dict | None = None, n_folds: int = 2, seed: int = 0,
    label: str = "label", fallback=None, exclude=None, allowed=None,
) -> np.ndarray:
    """Out-of-fold top-k lists (int64, (n_users, k)) of a LambdaRank ranker, cross-validated over users.

    Users are split by ``user_folds(n_users, n_folds, seed)``; for each fold, ``fit_ranker`` is fit on the
    candidates of the other folds' users (``params``, ``seed``) and ranks this fold's users with
    ``rank_frame`` (``fallback``/``exclude``/``allowed`` as there; users without candidates get the
    fallback's lists). Every list therefore comes from a model that never saw that user's labels: an honest
    estimate, on the training period itself, of how the ranker does on new users of that period.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    users, _ = _check_frame(frame, unique=True)
    n_users = _positive_int("n_users", n_users)
    if len(users) and users.max() >= n_users:
        raise ValueError(f"frame indexes user {int(users.max())}, outside n_users={n_users}")
    folds = user_folds(n_users, n_folds, seed)
    row_fold = folds[users]
    scores = np.zeros(len(users), dtype=np.float64)
    for f in tqdm(range(n_folds), desc="folds", leave=False):
        held = row_fold == f
        if not held.any():
            continue
        model = fit_ranker(frame.loc[~held], features, label=label, params=params, seed=seed)
        scores[held] = model.predict(frame.loc[held, list(features)])
    return rank_frame(frame, scores, n_users, k, fallback=fallback, exclude=exclude, allowed=allowed)


def tune_ranker(
    frame, features, truth_csr, grid, k: int = 10, n_folds: int = 2, seed: int = 0, base_params: dict | None = None,
    label: str = "label", fallback=None, exclude=None, allowed=None,
) -> pd.DataFrame:
    """Cross-validated NDCG@k and Recall@k of the ranker for every parameter combination of ``grid``; best first.

    ``grid`` is a dict LightGBM parameter -> list of values (all combinations are tried, on top of
    ``base_params``). Each combination is scored by ``cross_val_topk`` on ``frame`` (same folds for all)
    against ``truth_csr``, the labels' period, averaged over users with relevant items as in
    ``recsuite.metrics``. Tune on the period the ranker is trained on (valid), never on test. Returns one row
    per combination (a column per parameter, ``ndcg@k``, its standard error over users ``ndcg@k_se``, and
    ``recall@k``), sorted by NDCG (ties in grid order).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    t = _binary_truth(truth_csr)
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid must be a non-empty dict parameter -> list of values, got {grid!r}")
    axes = []
    for name, values in grid.items():
        vals = list(values) if isinstance(values, (list, tuple, np.ndarray)) else None
        if not isinstance(name, str) or not vals:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
        axes.append(vals)
    if base_params is not None and not isinstance(base_params, Mapping):
        got = type(base_params).__name__
        raise ValueError(f"base_params must be a dict of LGBMRanker parameters or None, got {got}")
    k = _positive_int("k", k)
    rows = []
    combos = list(itertools.product(*axes))
    for combo in tqdm(combos, desc="ranker grid", leave=False):
        p = dict(zip(grid, combo))
        topk = cross_val_topk(
            frame, features, t.shape[0], k, params={**(base_params or {}), **p}, n_folds=n_folds, seed=seed,
            label=label, fallback=fallback, exclude=exclude, allowed=allowed,
        )
        per_user = M.per_user_metrics(topk, t, k)[f"ndcg@{k}"].dropna()
        rows.append({
            **p,
            f"ndcg@{k}": float(per_user.mean()) if len(per_user) else 0.0,
            # standard error of the mean over users, for a one-standard-error choice among near-ties
            f"ndcg@{k}_se": float(per_user.std(ddof=1) / np.sqrt(len(per_user))) if len(per_user) > 1 else np.nan,
            f"recall@{k}": M.recall_at_k(topk, t, k),
        })
    return pd.DataFrame(rows).sort_values(f"ndcg@{k}", ascending=False, kind="stable").reset_index(drop=True)


#: Columns that need interactions with the item: meaningless for an item nobody has interacted with yet.
INTERACTION_COLUMNS = ("pop_log_count",)


def cold_feature_columns(frame, drop_groups=()) -> list:
    """The feature columns an item without any interaction has: ``feature_columns`` minus the ``cf`` group
    and ``INTERACTION_COLUMNS`` (its interaction count), minus ``drop_groups``.

    A collaborative model scores every new item alike (0 for ALS, EASE and item-kNN), so its scores carry
    nothing and its ranks only the order of the item ids; a cold-start ranker is trained without them.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    drop = (drop_groups,) if isinstance(drop_groups, str) else tuple(drop_groups)
    return [c for c in feature_columns(frame, ("cf", *drop)) if c not in INTERACTION_COLUMNS]


# -- the lesson's full-matrix fusion: the blend chosen on valid, cached for later lessons ------------
#: The blend grid notebook 04 searches on valid: γ with α = 1 for each normalisation (γ = 0, ALS alone,
#: and the content recommender alone are shown for reference but not chosen: the blend must rank cold
#: items, which only the content score can).
BLEND_METHODS = ("minmax", "zscore", "rank")
BLEND_GAMMAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
_FUSED_VERSION = 2


def _blend_sources(eval_set, protocol, seed, item_vectors=None, cf_model=None, cache_dir=None, cache=True):
    """The two sources of the fused model on ``eval_set``: tuned CF scores and the chosen content scores."""
    from recsuite import cf, semantic

    setting = semantic.content_setting(protocol, seed)
    v = semantic.item_vectors(setting["template"], index=protocol.index, progress=False) if item_vectors is None \
        else item_vectors
    return {
        "cf": cf.cf_scores(cf_model, eval_set, protocol=protocol, seed=seed, cache=cache, cache_dir=cache_dir),
        "sem": semantic.content_scores(protocol.history(eval_set), v, center=setting["center"]),
    }


def tune_blend(protocol=None, seed: int = 0, item_vectors=None, cf_model: str | None = None, cache_dir=None,
               methods=BLEND_METHODS, gammas=BLEND_GAMMAS) -> tuple[pd.DataFrame, dict]:
    """Search the blend α·norm(s_CF) + γ·norm(s_sem) on valid (notebook 04's search) and choose one.

    s_CF is ``cf.cf_scores`` of the tuned CF model, s_sem the content recommender of notebook 02's chosen
    setting. Every method x γ (α = 1) is scored by valid NDCG@10; the choice is the one-standard-error
    rule on values rounded to three decimals (``recsuite.tuning.one_se_rule``): among the blends within one
    SE of the best, the simplest — the smallest γ, the least content on top of CF — then the first of
    ``methods``, so another CPU chooses the same. Returns ``(table, {"method": ..., "weights": {"cf":
    1.0, "sem": γ}})``; the table also has γ = 0 (CF alone) and the content recommender alone.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    from recsuite import metrics
    from recsuite.split import load_protocol
    from recsuite.tuning import one_se_rule

    protocol = load_protocol() if protocol is None else protocol
    methods = [_check_method(m) for m in methods]
    gammas = [float(g) for g in gammas]
    if not methods or not gammas or min(gammas) <= 0:
        raise ValueError(f"methods and gammas must be non-empty and every γ > 0, got {methods!r}, {gammas!r}")
    src = _blend_sources("valid", protocol, seed, item_vectors, cf_model, cache_dir)
    masks = {"allowed": protocol.candidates("valid"), "exclude": protocol.history("valid")}

    def score(method, weights):
        y = blend(src, weights, method=method, **masks)
        ndcg = metrics.per_user_metrics(protocol.rank(y, "valid", 10), protocol.csr("valid"), 10)["ndcg@10"]
        return {"method": method, **weights, "ndcg@10": float(ndcg.mean()),
                "ndcg@10_se": float(ndcg.std() / np.sqrt(ndcg.count()))}

    rows = [score(m, {"cf": 1.0, "sem": g}) for m in methods for g in [0.0, *gammas]]
    rows.append(score(methods[0], {"cf": 0.0, "sem": 1.0}))
    table = pd.DataFrame(rows)
    table["method_order"] = table.method.map({m: i for i, m in enumerate(methods)})
    eligible = table[(table["cf"] > 0) & (table["sem"] > 0)]
    chosen = one_se_rule(eligible, "ndcg@10", se="ndcg@10_se", simplest=[("sem", True), ("method_order", True)])
    table["chosen"] = table.index == chosen
    choice = {"method": str(table.method[chosen]), "weights": {"cf": 1.0, "sem": float(table["sem"][chosen])}}
    return table.drop(columns="method_order"), choice


def blend_setting(protocol=None, seed: int = 0, item_vectors=None, cf_model: str | None = None) -> dict:
    """The blend notebook 04 chose on this protocol and seed (``tune_blend`` when it is missing).

    With other ``item_vectors`` or another ``cf_model`` than the lesson's, the choice is made for those
    sources and kept under its own name.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    from recsuite import choices
    from recsuite.split import load_protocol

    protocol = load_protocol() if protocol is None else protocol
    name = "fusion.blend"
    if item_vectors is not None or cf_model is not None:
        vec = "default" if item_vectors is None else _array_digest(np.asarray(item_vectors))
        name += "-" + _array_digest(np.frombuffer(f"{vec}|{cf_model}".encode(), dtype=np.uint8))[:12]
    return choices.load(name, protocol, seed,
                        compute=lambda: tune_blend(protocol, seed, item_vectors=item_vectors, cf_model=cf_model)[1])


def _array_digest(a: np.ndarray) -> str:
    import hashlib

    a = np.ascontiguousarray(a)
    return hashlib.sha256(repr((a.shape, str(a.dtype))).encode() + a.tobytes()).hexdigest()[:20]


def _fused_inputs(eval_set, weights, method, protocol, item_vectors, cf_model, seed, cache_dir):
    from recsuite import cf, semantic
    from recsuite.split import EVAL_SETS, load_protocol

    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {eval_set!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    protocol = load_protocol() if protocol is None else protocol
    if not all(hasattr(protocol, a) for a in ("history", "candidates", "index", "n_users", "n_items", "params")):
        raise ValueError(f"protocol must be a recsuite.split.Protocol, got {type(protocol).__name__}")
    if item_vectors is not None:
        v = _check_matrix("item_vectors", item_vectors, protocol.n_items)
        if v.shape[0] != protocol.n_items:
            raise ValueError(f"item_vectors must have one row per item ({protocol.n_items}), got shape {v.shape}")
    if weights is None or method is None:
        chosen = blend_setting(protocol, seed, item_vectors, cf_model)
        weights = chosen["weights"] if weights is None else weights
        method = chosen["method"] if method is None else method
    w = _check_weights(weights, ["cf", "sem"])
    method = _check_method(method)
    cf_file = cf.cf_scores_path(cf_model, eval_set, protocol=protocol, seed=seed, cache_dir=cache_dir)
    setting = semantic.content_setting(protocol, seed)
    if item_vectors is None:
        ids = np.asarray(protocol.index.item_ids)
        # the vectors are item_vectors(template): the chosen template and the packaged encoder over the protocol's items
        sem = {"template": setting["template"], "model": semantic.model_identity()[2], "items": _array_digest(ids)}
    else:
        sem = {"vectors": _array_digest(v)}
    key = {
        "version": _FUSED_VERSION,
        "eval_set": eval_set,
        "method": method,
        "weights": {"cf": float(w[0]), "sem": float(w[1])},
        # the CF file name hashes the model, its parameters, the seed, the protocol and the history it is fit on
        "cf": cf_file.name,
        "sem": {**sem, "center": bool(setting["center"])},
        "protocol": dict(getattr(protocol, "params", {}) or {}),
        "shape": [int(protocol.n_users), int(protocol.n_items)],
    }
    return key, w, method, protocol


def _fused_file(key: dict, cache_dir):
    from pathlib import Path

    from recsuite import cache

    if cache_dir is None:
        from recsuite.paths import data_home

        cache_dir = data_home() / "scores"
    return Path(cache_dir) / f"fused-{key['eval_set']}-{cache.key_digest(key)}.npz"


def fused_scores_path(eval_set: str = "test", weights=None, method: str | None = None, protocol=None,
                      item_vectors=None, cf_model: str | None = None, seed: int = 0, cache_dir=None):
    """The file ``fused_scores`` reads and writes for these arguments (its name hashes all of them).

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    key, *_ = _fused_inputs(eval_set, weights, method, protocol, item_vectors, cf_model, seed, cache_dir)
    return _fused_file(key, cache_dir)


def fused_scores(eval_set: str = "test", weights=None, method: str | None = None, protocol=None,
                 item_vectors=None, cf_model: str | None = None, seed: int = 0, cache: bool = True,
                 cache_dir=None) -> np.ndarray:
    """Float32 (n_users, n_items) scores of notebook 04's full-matrix fusion on ``eval_set`` (cache-or-compute).

    y = α·norm(s_CF) + γ·norm(s_sem) (``blend``) with s_CF = ``cf.cf_scores(cf_model, eval_set, seed=seed)``
    (default: the best tuned fast CF model), s_sem = ``semantic.content_scores`` of notebook 02's chosen
    template and centring, and the method and weights notebook 04 chose on valid for this protocol and
    seed (``blend_setting``) unless given. Both sources see only ``protocol.history(eval_set)``;
    normalisation runs over the ranked catalogue of ``eval_set``, and the seen items (valid, test) and the
    items outside the catalogue come back below every rankable item, so ``Protocol.evaluate`` and
    ``topk_from_scores`` rank the same lists with or without their masks. ``item_vectors`` defaults to
    ``semantic.item_vectors`` of the chosen template (MiniLM, cached). With ``cache=True`` the matrix is
    kept under ``cache_dir`` (default ``datasets/scores``), written atomically, in a file whose name hashes
    eval set, weights, method, CF model and seed, vectors and protocol; a missing file is rebuilt from the
    cached CF scores and item vectors.

    Introduced in notebooks/04_fusion_hybrid.ipynb
    """
    if not isinstance(cache, (bool, np.bool_)):
        raise ValueError(f"cache must be True or False, got {cache!r}")
    key, w, method, protocol = _fused_inputs(eval_set, weights, method, protocol, item_vectors, cf_model, seed, cache_dir)
    path = _fused_file(key, cache_dir)
    if cache:
        hit = _read_matrix(path, key)
        if hit is not None:
            return hit
    sources = _blend_sources(eval_set, protocol, seed, item_vectors, cf_model, cache_dir, cache)
    exclude = None if eval_set == "cold_test" else protocol.history(eval_set)  # as Protocol.rank masks
    scores = blend(sources, w, method=method, allowed=protocol.candidates(eval_set), exclude=exclude)
    if cache:
        _write_matrix(path, key, scores)
    return scores


def _read_matrix(path, key: dict):
    from recsuite import cache

    scores = cache.read_array(path, key, "scores")
    if scores is None or scores.shape != tuple(key["shape"]) or scores.dtype != np.float32:
        return None  # absent, truncated or foreign: recompute and overwrite
    return scores


def _write_matrix(path, key: dict, scores: np.ndarray) -> None:
    from recsuite import cache

    cache.write_array(path, key, "scores", np.asarray(scores, dtype=np.float32))
