"""Stage 2 of the two-stage hybrid: a LambdaRank ranker over the candidate frame (``recsuite.combine.candidates``).

Stage 1 pools each source's top candidates into a long *candidate frame*, one row per (user_idx, item_idx)
candidate, sorted by user, with feature columns named by group. Stage 2 fits a LightGBM LambdaRank model on the labelled frame
(``fit_ranker``) and ranks each user's candidates with it (``rank_frame``). ``tune_ranker``/``cross_val_topk``
choose its capacity by cross-validation over users of the training period, and ``cold_feature_columns`` are
what a cold-start ranker may use. Masks mean what they mean in ``recsuite.evaluation.metrics.topk_from_scores``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.combine.candidates import FEATURE_GROUPS, feature_group, pairs_in
from recsuite.core import checks as C
from recsuite.core.checks import KEYS
from recsuite.core.optional import require
from recsuite.core.progress import tqdm
from recsuite.evaluation import metrics as M

log = logging.getLogger(__name__)

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
    return [c for c in frame.columns if feature_group(c) is not None and feature_group(c) not in drop]


# -- stage 2: the learned ranker ---------------------------------------------------------------------
def _ranker_data(frame, features: list, label: str, name: str):
    users, _ = C.pair_frame(name, frame)
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
    lgb = require("lightgbm", "rank")

    features = _features(features, label)
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of LGBMRanker parameters or None, got {C.describe(params)}")
    seed = C.seed("seed", seed)
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
            "group": [feature_group(n) for n in names],
            "gain": gain,
            "split": booster.feature_importance("split"),
            "gain_share": gain / gain.sum() if gain.sum() > 0 else np.zeros(len(names)),
        }
    )
    return df.sort_values(["gain", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def rank_frame(frame, score, n_users: int, k: int, fallback=None, *, seen=None, catalogue=None) -> np.ndarray:
    """Top-k item indices per user (int64, (n_users, k)) from per-row scores of a candidate frame.

    Best score first, ties by item index. ``score`` is a column name or an array with one value per row.
    Users with fewer than k candidates (or none) are padded, after their candidates, with the best items of
    the ``fallback`` (n_users, n_items) score matrix that are in the catalogue, not seen and not listed already
    (ties by item index); without ``fallback`` such users raise a ValueError rather than get a list filled
    arbitrarily. ``seen``/``catalogue`` are also checked against the candidates: a candidate the protocol
    masks means the frame was built with the wrong history, and raises.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, items = C.pair_frame("frame", frame, unique=True)
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
        fb = C.score_matrix("fallback", fallback)
        if fb.shape[0] != n_users:
            raise ValueError(f"fallback must have n_users={n_users} rows, got shape {fb.shape}")
        n_items = fb.shape[1]
    elif catalogue is not None:
        n_items = len(np.asarray(catalogue))
    elif seen is not None:
        n_items = seen.shape[1] if sp.issparse(seen) else None
    if n_items is not None:
        a = C.catalogue_mask(catalogue, n_items)
        ex = C.seen_matrix(seen, (n_users, n_items))
        if len(items) and items.max() >= n_items:
            raise ValueError(f"frame indexes item {int(items.max())}, outside the {n_items} items of fallback/catalogue")
        if a is not None and not a[items].all():
            raise ValueError(f"frame holds {int((~a[items]).sum())} candidates outside the catalogue")
        if ex is not None and pairs_in(users, items, C.binary_truth("seen", ex)).any():
            raise ValueError("frame holds seen items as candidates; rebuild it with that history")
    elif seen is not None:
        raise ValueError(f"seen must be a scipy.sparse matrix, got {type(seen).__name__}")

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
    pad = M.topk_from_scores(fb[short], k, seen=block, catalogue=a)
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
    seed = C.seed("seed", seed)
    folds = np.empty(n_users, dtype=np.int64)
    folds[np.random.default_rng(int(seed)).permutation(n_users)] = np.arange(n_users) % n_folds
    return folds


def cross_val_topk(
    frame, features, n_users: int, k: int = 10, params: dict | None = None, n_folds: int = 2, seed: int = 0,
    label: str = "label", fallback=None, *, seen=None, catalogue=None,
) -> np.ndarray:
    """Out-of-fold top-k lists (int64, (n_users, k)) of a LambdaRank ranker, cross-validated over users.

    Users are split by ``user_folds(n_users, n_folds, seed)``; for each fold, ``fit_ranker`` is fit on the
    candidates of the other folds' users (``params``, ``seed``) and ranks this fold's users with
    ``rank_frame`` (``fallback``/``seen``/``catalogue`` as there; users without candidates get the
    fallback's lists). Every list therefore comes from a model that never saw that user's labels: an honest
    estimate, on the training period itself, of how the ranker does on new users of that period.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    users, _ = C.pair_frame("frame", frame, unique=True)
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
    return rank_frame(frame, scores, n_users, k, fallback=fallback, seen=seen, catalogue=catalogue)


def tune_ranker(
    frame, features, truth_csr, grid, k: int = 10, n_folds: int = 2, seed: int = 0, base_params: dict | None = None,
    label: str = "label", fallback=None, *, seen=None, catalogue=None,
) -> pd.DataFrame:
    """Cross-validated NDCG@k and Recall@k of the ranker for every parameter combination of ``grid``; best first.

    ``grid`` is a dict LightGBM parameter -> list of values (all combinations are tried, on top of
    ``base_params``). Each combination is scored by ``cross_val_topk`` on ``frame`` (same folds for all)
    against ``truth_csr``, the labels' period, averaged over users with relevant items as in
    ``recsuite.evaluation.metrics``. Tune on the period the ranker is trained on (valid), never on test. Returns one row
    per combination (a column per parameter, ``ndcg@k``, its standard error over users ``ndcg@k_se``, and
    ``recall@k``), sorted by NDCG (ties in grid order).

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    t = C.binary_truth("truth_csr", truth_csr)
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
            label=label, fallback=fallback, seen=seen, catalogue=catalogue,
        )
        per_user = M.per_user_metrics(topk, t, k)[f"ndcg@{k}"].dropna()
        if per_user.empty:
            raise ValueError(f"truth must hold at least one relevant item, got none (all {t.shape[0]} rows are empty)")
        rows.append({
            **p,
            f"ndcg@{k}": float(per_user.mean()),
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


