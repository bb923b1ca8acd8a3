"""The two-stage hybrid: a candidate frame from several score sources, features, labels, a LambdaRank ranker.

Stage 1 pools each source's top candidates into a long *candidate frame*: one row per (user_idx, item_idx)
candidate, sorted by user. Features are columns named ``<group>_...`` (see ``FEATURE_GROUPS``) so that an
ablation can drop one group by its prefix. Stage 2 fits a LightGBM LambdaRank model on the labelled frame
(``fit_ranker``) and ranks each user's candidates with it (``rank_frame``). ``tune_ranker``/``cross_val_topk``
choose its capacity by cross-validation over users of the training period, and ``cold_feature_columns`` are
what a cold-start ranker may use. Masks mean what they mean in ``recsuite.metrics.topk_from_scores``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite import _checks as C
from recsuite import _rows as R
from recsuite import metrics as M
from recsuite._checks import KEYS
from recsuite.progress import tqdm

log = logging.getLogger(__name__)

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


# -- stage 1: candidates -----------------------------------------------------------------------------
def _group_of(column: str) -> str | None:
    if not isinstance(column, str) or column in KEYS or "_" not in column:
        return None
    group = column.split("_", 1)[0]
    return group if group in FEATURE_GROUPS else None


def candidate_frame(sources, n_per_source, *, exclude=None, allowed=None) -> pd.DataFrame:
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
    src = C.named_scores(sources, "sources", require_mapping=True)
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
        counts = {n: C.non_negative_int(f"n_per_source[{n!r}]", n_per_source[n]) for n in names}
    else:
        c = C.positive_int("n_per_source", n_per_source)
        counts = dict.fromkeys(names, c)
    for n, c in counts.items():
        if c > n_items:
            raise ValueError(f"n_per_source[{n!r}] = {c} is larger than the catalogue of {n_items} items")
    if not any(counts.values()):
        raise ValueError("n_per_source must give at least one source a positive count")
    valid = C.rankable(shape, allowed, exclude)
    keys = []
    for name in names:
        c = counts[name]
        if c == 0:
            continue
        top = M.topk_from_scores(src[name], c, exclude=exclude, allowed=allowed)
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
    users, items = C.pair_frame(frame, unique=True)
    t = C.binary_truth(truth_csr)
    _fits("truth_csr", users, items, t.shape, "frame")
    found = np.bincount(users[_pairs_in(users, items, t)], minlength=t.shape[0])
    n_rel = np.diff(t.indptr)
    has = n_rel > 0
    return float((found[has] / n_rel[has]).mean()) if has.any() else 0.0


def label_frame(frame, truth_csr) -> pd.Series:
    """0/1 int8 label per candidate row: 1 where (user_idx, item_idx) is a non-zero of ``truth_csr``.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items = C.pair_frame(frame)
    t = C.binary_truth(truth_csr)
    _fits("truth_csr", users, items, t.shape, "frame")
    return pd.Series(_pairs_in(users, items, t).astype(np.int8), index=frame.index, name="label")


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
    users, items = C.pair_frame(frame)
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
    users, items = C.pair_frame(history_frame, name)
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
    order = np.lexsort((items, ts, users))
    u, it = users[order], items[order]
    # position from the end within each user's block: 0 = latest
    from_end = np.searchsorted(u, u, side="right") - 1 - np.arange(len(u))
    keep = from_end < n
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (u[keep], it[keep])), shape=(n_users, v.shape[0]))
    x.data[:] = 1.0  # an item repeated among the last n counts once, as in semantic.user_profiles
    counts = np.asarray(x.sum(axis=1), dtype=np.float32)
    means = np.divide(np.asarray(x @ v), counts, out=np.zeros((n_users, v.shape[1]), np.float32), where=counts > 0)
    return R.unit_rows(means.astype(np.float32))


def user_genre_distribution(history_csr, genre_matrix) -> np.ndarray:
    """(n_users, n_genres) float32: share of each genre among the genre labels of the user's history items.

    d_u = Σ_{i ∈ H(u)} g_i / Σ_{i ∈ H(u)} |g_i|; a user with no history (or only genre-less items) gets zeros.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    history_csr = C.binary_truth(history_csr, "history_csr")
    g = C.feature_matrix("genre_matrix", genre_matrix, history_csr.shape[1])
    if g.shape[0] != history_csr.shape[1] or (g < 0).any():
        raise ValueError(
            f"genre_matrix must be non-negative with {history_csr.shape[1]} rows (one per item), got shape {g.shape}"
        )
    x = history_csr.astype(np.float32)
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
    from recsuite.features import context_features

    users, items, ts = _history(history_frame)
    n_users = C.positive_int("n_users", n_users)
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


def _groups(drop_groups) -> tuple:
    """``drop_groups`` as a tuple of feature-group names (one name or a sequence of them)."""
    if isinstance(drop_groups, str):
        drop_groups = (drop_groups,)
    drop = tuple(C.texts("drop_groups", drop_groups, allow_empty_list=True))
    unknown = [g for g in drop if g not in FEATURE_GROUPS]
    if unknown:
        raise ValueError(f"drop_groups must name groups of {list(FEATURE_GROUPS)}, got {unknown}")
    return drop


def feature_columns(frame, drop_groups=()) -> list:
    """The frame's feature columns (prefix in ``FEATURE_GROUPS``), in frame order, minus ``drop_groups``.

    ``user_idx``/``item_idx``, ``label`` and any column without a group prefix are not features.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame (a candidate frame), got {C.describe(frame)}")
    drop = _groups(drop_groups)
    return [c for c in frame.columns if _group_of(c) is not None and _group_of(c) not in drop]


# -- stage 2: the learned ranker ---------------------------------------------------------------------
def _ranker_data(frame, features: list, label: str, name: str):
    users, _ = C.pair_frame(frame, name)
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


def _features(features, label) -> list:
    """The feature column names: a non-empty list of distinct str, none of them the label or a key."""
    if isinstance(features, str) or not features:
        raise ValueError(f"features must be a non-empty list of column names, got {features!r}")
    features = C.texts("features", features)
    label = C.text("label", label)
    bad = [c for c in features if c == label or c in KEYS]
    if bad or len(set(features)) != len(features):
        raise ValueError(
            f"features must be distinct columns other than the label {label!r} and {list(KEYS)} "
            f"(the label as a feature leaks the answer), got {features}"
        )
    return features


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

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    import lightgbm as lgb

    features = _features(features, label)
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of LGBMRanker parameters or None, got {C.describe(params)}")
    seed = C.seed(seed)
    x, y, groups, info = _ranker_data(frame, features, label, "frame")
    fit_info = {"train": info}
    kwargs = {"group": groups, "eval_at": (10,)}
    if valid_frame is not None:
        xv, yv, gv, vinfo = _ranker_data(valid_frame, features, label, "valid_frame")
        fit_info["valid"] = vinfo
        kwargs.update(eval_X=(xv,), eval_y=(yv,), eval_group=[gv], eval_names=["valid"])
        if early_stopping_rounds is not None:
            rounds = C.positive_int("early_stopping_rounds", early_stopping_rounds)
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

    Introduced in notebooks/06_two_stage_ranker.ipynb
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


def rank_frame(frame, score, n_users: int, k: int, fallback=None, *, exclude=None, allowed=None) -> np.ndarray:
    """Top-k item indices per user (int64, (n_users, k)) from per-row scores of a candidate frame.

    Best score first, ties by item index. ``score`` is a column name or an array with one value per row.
    Users with fewer than k candidates (or none) are padded, after their candidates, with the best items of
    the ``fallback`` (n_users, n_items) score matrix that are allowed, not excluded and not listed already
    (ties by item index); without ``fallback`` such users raise a ValueError rather than get a list filled
    arbitrarily. ``exclude``/``allowed`` are also checked against the candidates: a candidate the protocol
    masks means the frame was built with the wrong history, and raises.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items = C.pair_frame(frame, unique=True)
    n_users = C.positive_int("n_users", n_users)
    k = C.positive_int("k", k)
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
        fb = C.score_matrix(fallback, "fallback")
        if fb.shape[0] != n_users:
            raise ValueError(f"fallback must have n_users={n_users} rows, got shape {fb.shape}")
        n_items = fb.shape[1]
    elif allowed is not None:
        n_items = len(np.asarray(allowed))
    elif exclude is not None:
        n_items = exclude.shape[1] if sp.issparse(exclude) else None
    if n_items is not None:
        a = C.allowed_mask(allowed, n_items)
        ex = C.exclude_matrix(exclude, (n_users, n_items))
        if len(items) and items.max() >= n_items:
            raise ValueError(f"frame indexes item {int(items.max())}, outside the {n_items} items of fallback/allowed")
        if a is not None and not a[items].all():
            raise ValueError(f"frame holds {int((~a[items]).sum())} candidates outside allowed")
        if ex is not None and _pairs_in(users, items, C.binary_truth(ex, "exclude")).any():
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
    valid = C.rankable((len(short), n_items), a, block)
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


# -- tuning the ranker without touching the evaluation period -----------------------------------------
def user_folds(n_users: int, n_folds: int = 2, seed: int = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) per user index: a seeded random permutation dealt round-robin.

    Folds differ in size by at most one user. Cross-validation over *users* keeps every user's candidates
    in one fold, so a model is never scored on a user whose labels it was fit on.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    n_users = C.positive_int("n_users", n_users)
    n_folds = C.positive_int("n_folds", n_folds)
    if n_folds < 2 or n_folds > n_users:
        raise ValueError(f"n_folds must be in [2, n_users={n_users}], got {n_folds}")
    seed = C.seed(seed)
    folds = np.empty(n_users, dtype=np.int64)
    folds[np.random.default_rng(int(seed)).permutation(n_users)] = np.arange(n_users) % n_folds
    return folds


def cross_val_topk(
    frame, features, n_users: int, k: int = 10, params: dict | None = None, n_folds: int = 2, seed: int = 0,
    label: str = "label", fallback=None, *, exclude=None, allowed=None,
) -> np.ndarray:
    """Out-of-fold top-k lists (int64, (n_users, k)) of a LambdaRank ranker, cross-validated over users.

    Users are split by ``user_folds(n_users, n_folds, seed)``; for each fold, ``fit_ranker`` is fit on the
    candidates of the other folds' users (``params``, ``seed``) and ranks this fold's users with
    ``rank_frame`` (``fallback``/``exclude``/``allowed`` as there; users without candidates get the
    fallback's lists). Every list therefore comes from a model that never saw that user's labels: an honest
    estimate, on the training period itself, of how the ranker does on new users of that period.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, _ = C.pair_frame(frame, unique=True)
    n_users = C.positive_int("n_users", n_users)
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
    label: str = "label", fallback=None, *, exclude=None, allowed=None,
) -> pd.DataFrame:
    """Cross-validated NDCG@k and Recall@k of the ranker for every parameter combination of ``grid``; best first.

    ``grid`` is a dict LightGBM parameter -> list of values (all combinations are tried, on top of
    ``base_params``). Each combination is scored by ``cross_val_topk`` on ``frame`` (same folds for all)
    against ``truth_csr``, the labels' period, averaged over users with relevant items as in
    ``recsuite.metrics``. Tune on the period the ranker is trained on (valid), never on test. Returns one row
    per combination (a column per parameter, ``ndcg@k``, its standard error over users ``ndcg@k_se``, and
    ``recall@k``), sorted by NDCG (ties in grid order).

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    t = C.binary_truth(truth_csr)
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid must be a non-empty dict parameter -> list of values, got {grid!r}")
    axes = []
    for name, values in grid.items():
        vals = list(values) if isinstance(values, (list, tuple, np.ndarray)) else None
        if not isinstance(name, str) or not vals:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
        axes.append(vals)
    if base_params is not None and not isinstance(base_params, Mapping):
        raise TypeError(f"base_params must be a dict of LGBMRanker parameters or None, got {C.describe(base_params)}")
    k = C.positive_int("k", k)
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

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    drop = _groups(drop_groups)
    return [c for c in feature_columns(frame, ("cf", *drop)) if c not in INTERACTION_COLUMNS]


