"""Stage 1 of the two-stage hybrid: the candidate frame pooled from several score sources, its labels, and the
(user, item) features the ranker reads, as columns named ``<group>_...`` (``FEATURE_GROUPS``) so that an ablation
can drop one group by its prefix. Masks mean what they mean in ``recsuite.evaluation.metrics.topk_from_scores``.

Introduced in notebooks/06_two_stage_ranker.ipynb
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks as C
from recsuite.core import rows as R
from recsuite.core.checks import KEYS
from recsuite.data.features import context_features
from recsuite.data.split import time_order
from recsuite.evaluation import metrics as M

#: Feature groups of the candidate frame: column prefix -> what the group holds.
FEATURE_GROUPS = {
    "cf": "scores and ranks of the collaborative candidate sources",
    "sem": "semantic similarity: item vs user profile, item vs the user's recent items (and semantic sources)",
    "pop": "item prior: log popularity and release year",
    "user": "user attributes: age, gender, occupation",
    "genre": "cosine between the item's genres and the user's history genre distribution",
    "ctx": "context: hour and weekday of the user's last history interaction",
}


# -- (user, item) pairs --------------------------------------------------------------------------------
def pairs_in(users: np.ndarray, items: np.ndarray, t: sp.csr_matrix) -> np.ndarray:
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


# -- stage 1: candidates -----------------------------------------------------------------------------
def feature_group(column: str) -> str | None:
    if not isinstance(column, str) or column in KEYS or "_" not in column:
        return None
    group = column.split("_", 1)[0]
    return group if group in FEATURE_GROUPS else None


def candidate_frame(sources, n_per_source, *, seen=None, catalogue=None) -> pd.DataFrame:
    """Stage 1 of a two-stage ranker: the union of each source's top-n items per user, one row per candidate.

    Columns: ``user_idx``, ``item_idx`` and, for every source, ``<name>_score`` (its raw score, float32) and
    ``<name>_rank`` (int32, the item's rank in that source's full ranking of the user's rankable items,
    1 = best, ties by item index as in ``metrics.topk_from_scores``), also for candidates another source
    proposed. ``n_per_source`` is one int for all or a dict name -> int; 0 makes a source a feature only.
    Source names must start with a feature group (``cf_ease``, ``sem_content``, ...), so that their columns
    join that group in ``feature_columns``. Excluded and disallowed items never become candidates (a user
    with fewer rankable items than n gets fewer). Rows are unique and sorted by (user_idx, item_idx).

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    src = C.named_scores("sources", sources, require_mapping=True)
    names = list(src)
    for name in names:
        if name in FEATURE_GROUPS or feature_group(name) is None:
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
        counts = {n: C.non_negative_int(f"n_per_source[{n!r}]", n_per_source[n]) for n in names}
    else:
        c = C.positive_int("n_per_source", n_per_source)
        counts = dict.fromkeys(names, c)
    for n, c in counts.items():
        if c > n_items:
            raise ValueError(f"n_per_source[{n!r}] = {c} is larger than the catalogue of {n_items} items")
    if not any(counts.values()):
        raise ValueError("n_per_source must give at least one source a positive count")
    valid = C.rankable(shape, catalogue, seen)
    keys = []
    for name in names:
        c = counts[name]
        if c == 0:
            continue
        top = M.topk_from_scores(src[name], c, seen=seen, catalogue=catalogue)
        users = np.repeat(np.arange(n_users, dtype=np.int64), c)
        items = top.ravel()
        if valid is not None:  # topk_from_scores pads short rows with -1 (no item); they are no candidates
            ok = items != M.NO_ITEM
            users, items = users[ok], items[ok]
        keys.append(users * n_items + items)
    keys = np.unique(np.concatenate(keys))
    users, items = keys // n_items, keys % n_items
    frame = pd.DataFrame({"user_idx": users, "item_idx": items})
    for name in names:
        frame[f"{name}_score"] = src[name][users, items].astype(np.float32)
        frame[f"{name}_rank"] = R.descending_ranks(src[name], valid, "ordinal")[users, items].astype(np.int32)
    return frame


def recall_of_candidates(frame, truth_csr) -> float:
    """Share of each user's relevant items that are in the candidate frame, averaged over users with any.

    The ceiling of stage 2: no re-ranking of these candidates can reach a higher Recall@k (same per-user
    averaging as ``metrics.recall_at_k``), whatever k.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items = C.pair_frame("frame", frame, unique=True)
    t = C.binary_truth("truth_csr", truth_csr)
    _fits("truth_csr", users, items, t.shape, "frame")
    found = np.bincount(users[pairs_in(users, items, t)], minlength=t.shape[0])
    n_rel = np.diff(t.indptr)
    has = n_rel > 0
    if not has.any():
        raise ValueError(f"truth_csr must hold at least one relevant item, got none (all {len(n_rel)} rows are empty)")
    return float((found[has] / n_rel[has]).mean())


def label_frame(frame, truth_csr) -> pd.Series:
    """0/1 int8 label per candidate row: 1 where (user_idx, item_idx) is a non-zero of ``truth_csr``.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items = C.pair_frame("frame", frame)
    t = C.binary_truth("truth_csr", truth_csr)
    _fits("truth_csr", users, items, t.shape, "frame")
    return pd.Series(pairs_in(users, items, t).astype(np.int8), index=frame.index, name="label")


def target_frame(frame, held_out, like_threshold: float = 4.0) -> pd.DataFrame:
    """Three targets per candidate row from the period's held-out ratings: click, like and the rating.

    ``click`` (0/1 int8) = the (user, item) pair is among ``held_out``'s rows, whatever its rating;
    ``like`` (0/1 int8) = clicked *and* rated at least ``like_threshold``; ``rating`` (float) = the rating given,
    NaN where there was no click. An offline proxy without impressions: a like is observed only where there was a
    click, the selection that ESMM (Ma et al. 2018) models by training over all rows. ``held_out`` is a
    DataFrame with ``user_idx``, ``item_idx`` and ``rating`` (e.g. ``Protocol.test``); a pair rated twice is an
    error, not silently collapsed.

    Introduced in notebooks/16_multitask.ipynb
    """
    users, items = C.pair_frame("frame", frame)
    h_users, h_items = C.pair_frame("held_out", held_out, unique=True)
    C.columns("held_out", held_out, ["rating"])
    if len(held_out) == 0:
        raise ValueError("held_out must hold at least one rating, got none (the wrong period?)")
    if held_out["rating"].dtype == bool:
        raise TypeError("held_out['rating'] must hold numbers (stars), got booleans")
    ratings = C.feature_vector("held_out['rating']", held_out["rating"].to_numpy(), len(held_out))
    like_threshold = C.number("like_threshold", like_threshold)
    width = int(max(items.max(initial=-1), h_items.max(initial=-1))) + 1
    keys = h_users * width + h_items
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], users * width + items)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    hit = (keys[order][pos] == users * width + items) if len(keys) else np.zeros(len(users), dtype=bool)
    rating = np.where(hit, ratings[order][pos] if len(keys) else np.nan, np.nan)
    return pd.DataFrame({"click": hit.astype(np.int8), "like": (hit & (rating >= like_threshold)).astype(np.int8),
                         "rating": rating}, index=frame.index)


# -- features ----------------------------------------------------------------------------------------


def _rowwise_cos(item_unit: np.ndarray, user_unit: np.ndarray, items, users, chunk: int = 8192) -> np.ndarray:
    out = np.empty(len(items), dtype=np.float32)
    for start in range(0, len(items), chunk):  # chunks bound the memory of the gathered (rows, d) blocks
        sl = slice(start, start + chunk)
        out[sl] = np.einsum("rd,rd->r", item_unit[items[sl]], user_unit[users[sl]])
    return out


def _add_table(out: pd.DataFrame, table, prefix: str, users: np.ndarray, name: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame with one row per user index, got {C.describe(table)}")
    if len(users) and len(table) <= users.max():
        raise ValueError(f"{name} has {len(table)} rows but the frame indexes user {int(users.max())}")
    if not table.index.equals(pd.RangeIndex(len(table))):  # rows are read by position: row u must be user u
        raise ValueError(f"{name} must be indexed by user index 0..{len(table) - 1} in order (row u = user u), got an "
                         f"index starting {list(table.index[:3])}; reorder it by user index, then reset_index")
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

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items = C.pair_frame("frame", frame)
    n_u = int(users.max()) + 1 if len(users) else 0
    n_i = int(items.max()) + 1 if len(items) else 0
    out = frame.copy()
    if (user_profiles is not None or recent_item_vectors is not None) and item_vectors is None:
        raise ValueError("item_vectors is required with user_profiles / recent_item_vectors (they are compared with it)")
    if item_vectors is not None:
        if user_profiles is None and recent_item_vectors is None:
            raise ValueError("item_vectors alone adds no feature; pass user_profiles and/or recent_item_vectors")
        v = R.unit_rows(C.feature_matrix("item_vectors", item_vectors, n_i))
        for col, arg, value in (
            ("sem_profile_cos", "user_profiles", user_profiles),
            ("sem_recent_cos", "recent_item_vectors", recent_item_vectors),
        ):
            if value is not None:
                p = R.unit_rows(C.feature_matrix(arg, value, n_u, width=v.shape[1]))
                out[col] = _rowwise_cos(v, p, items, users)
    if item_popularity is not None:
        pop = C.feature_vector("item_popularity", item_popularity, n_i)
        if (pop < 0).any():
            raise ValueError("item_popularity must hold non-negative counts")
        out["pop_log_count"] = np.log1p(pop[items]).astype(np.float32)
    if item_year is not None:
        out["pop_year"] = C.feature_vector("item_year", item_year, n_i, allow_nan=True)[items].astype(np.float32)
    if user_table is not None:
        _add_table(out, user_table, "user_", users, "user_table")
    if (genre_matrix is None) != (user_genre_dist is None):
        raise ValueError("genre_matrix and user_genre_dist must be given together (genre_match compares them)")
    if genre_matrix is not None:
        g = R.unit_rows(C.feature_matrix("genre_matrix", genre_matrix, n_i))
        d = R.unit_rows(C.feature_matrix("user_genre_dist", user_genre_dist, n_u, width=g.shape[1]))
        out["genre_match"] = _rowwise_cos(g, d, items, users)
    if context is not None:
        _add_table(out, context, "ctx_", users, "context")
    return out


def _history(history_frame, name: str = "history_frame") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, timestamps) of a long history frame with a finite numeric ``timestamp`` column."""
    C.columns(name, history_frame, (*KEYS, "timestamp"))
    users, items = C.pair_frame(name, history_frame)
    ts = history_frame["timestamp"].to_numpy()
    ts = C.array(f"{name}['timestamp']", ts, ndim=1, dtype=ts.dtype)
    return users, items, ts


def recent_item_profile(history_frame, item_vectors, n_users: int, n: int = 5) -> np.ndarray:
    """(n_users, d) float32: the L2-normalised mean vector of each user's last ``n`` history items.

    Order in time is by timestamp, ties by item index (the split's tie rule). A user without history gets
    the zero vector. Pass the history of the eval set (``proto.history_frame(eval_set)``), never later rows.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items, ts = _history(history_frame)
    n_users = C.positive_int("n_users", n_users)
    n = C.positive_int("n", n)
    v = C.feature_matrix("item_vectors", item_vectors, int(items.max()) + 1 if len(items) else 0)
    _fits("(n_users, n_items)", users, items, (n_users, v.shape[0]), "history_frame")
    order = time_order(users, ts, items)
    u, it = users[order], items[order]
    # position from the end within each user's block: 0 = latest
    from_end = np.searchsorted(u, u, side="right") - 1 - np.arange(len(u))
    keep = from_end < n
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (u[keep], it[keep])), shape=(n_users, v.shape[0]))
    x.data[:] = 1.0  # an item repeated among the last n counts once, as in semantic.user_profiles
    counts = np.asarray(x.sum(axis=1), dtype=np.float32)
    means = np.divide(np.asarray(x @ v), counts, out=np.zeros((n_users, v.shape[1]), np.float32), where=counts > 0)
    return R.unit_rows(means.astype(np.float32))


def user_genre_distribution(history, genre_matrix) -> np.ndarray:
    """(n_users, n_genres) float32: share of each genre among the genre labels of the user's history items.

    ``d_u = Σ_{i ∈ H(u)} g_i / Σ_{i ∈ H(u)} |g_i|``; a user with no history (or only genre-less items) gets zeros.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    history = C.binary_truth("history", history)
    g = C.feature_matrix("genre_matrix", genre_matrix, history.shape[1])
    if g.shape[0] != history.shape[1] or (g < 0).any():
        raise ValueError(
            f"genre_matrix must be non-negative with {history.shape[1]} rows (one per item), got shape {g.shape}"
        )
    x = history.astype(np.float32)
    x.data[:] = 1.0
    sums = np.asarray(x @ g, dtype=np.float32)
    total = sums.sum(axis=1, keepdims=True)
    return np.divide(sums, total, out=np.zeros_like(sums), where=total > 0)


def last_context(history_frame, n_users: int) -> pd.DataFrame:
    """Per user index: ``hour`` (0-23, UTC) and ``weekday`` (0 = Monday) of the last history interaction.

    Known at request time, unlike the time of the held-out interactions. float32, NaN for users without
    history. Pass the history of the eval set (``proto.history_frame(eval_set)``).

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items, ts = _history(history_frame)
    n_users = C.positive_int("n_users", n_users)
    if len(users) and users.max() >= n_users:
        raise ValueError(f"history_frame indexes user {int(users.max())}, outside n_users={n_users}")
    order = time_order(users, ts, items)
    u = users[order]
    last = order[np.r_[u[1:] != u[:-1], True]] if len(u) else order
    ctx = context_features(pd.DataFrame({"timestamp": ts[last]}))
    out = pd.DataFrame(np.nan, index=pd.RangeIndex(n_users, name="user_idx"), columns=["hour", "weekday"], dtype=np.float32)
    out.loc[users[last], "hour"] = ctx["hour"].to_numpy(np.float32)
    out.loc[users[last], "weekday"] = ctx["weekday"].to_numpy(np.float32)
    return out
