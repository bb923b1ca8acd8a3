"""Metrics of scored candidate rows grouped by user: ROC AUC (overall and per user), NDCG@k and the mean of the top k.

A candidate frame holds one row per (user, candidate item) with a 0/1 ``label`` (the target) and a model's
``score``; these functions take its columns as 1-D arrays (or Series) of equal length, read by position: ``users``
(int ids), ``labels``, ``scores`` and, where a function needs them, ``gains`` or ``values``. The per-user functions
return a ``pd.Series`` indexed by the sorted user ids, so that two models scored on the same rows give the same
index, ready for ``bootstrap.paired_bootstrap(a, b)``. Rows are ordered within a user by score, highest first;
equal scores keep the rows' order (the earlier row ranks first), so a frame laid out by item index breaks ties as
``metrics.topk_from_scores`` does. Every per-user computation is one sort of all rows and grouped sums, with no
loop over users.

Introduced in notebooks/16_multitask.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks

__all__ = ["auc", "per_user_auc", "grouped_ndcg", "mean_of_top"]


# -- validation ---------------------------------------------------------------------------------------------
def _column(name: str, value) -> np.ndarray:
    """One value per row as a 1-D ndarray; a pandas nullable column (Int64, Float64, boolean) becomes NumPy."""
    if isinstance(value, pd.DataFrame):
        raise TypeError(f"{name} must be one column (a 1-D array or Series), got a DataFrame with columns "
                        f"{list(value.columns)[:5]}; pick one, e.g. frame[{name!r}]")
    if isinstance(value, (pd.Series, pd.Index)):
        numpy_dtype = getattr(value.dtype, "numpy_dtype", None)  # set for pandas' nullable dtypes only
        if numpy_dtype is not None:
            value = value.to_numpy(dtype=np.float64, na_value=np.nan) if value.isna().any() else \
                value.to_numpy(dtype=numpy_dtype)
        else:
            value = value.to_numpy()
    a = np.asarray(value)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per candidate row), got shape {a.shape}")
    return a


def _same_rows(named: dict) -> None:
    """Series passed together must share their index: their values are read by position, not aligned."""
    series = [(n, v) for n, v in named.items() if isinstance(v, pd.Series)]
    for n, v in series[1:]:
        if not v.index.equals(series[0][1].index):
            raise ValueError(f"{series[0][0]} and {n} are Series with different indexes; the rows are read by "
                             "position, so pass columns of the same frame (or .to_numpy() after aligning them)")


def _length(name: str, a: np.ndarray, n: int, of: str) -> np.ndarray:
    if len(a) != n:
        raise ValueError(f"{name} has {len(a)} rows but {of} has {n}; pass one value per candidate row of one frame")
    return a


def _users(users) -> np.ndarray:
    u = _column("users", users)
    if u.dtype == bool or not np.issubdtype(u.dtype, np.integer):
        raise TypeError(f"users must hold int user ids (one per row, no missing ids), got {checks.describe(u)}")
    if u.size == 0:
        raise ValueError("users must hold at least one candidate row, got none")
    return u.astype(np.int64, copy=False)


def _labels(labels, n: int, of: str) -> np.ndarray:
    y = _length("labels", _column("labels", labels), n, of)
    if y.dtype == bool:
        return y.astype(np.float64)
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"labels must be 0/1 (int, float or bool), got {checks.describe(y)}")
    y = y.astype(np.float64)
    bad = ~((y == 0) | (y == 1))  # NaN lands here too
    if bad.any():
        raise ValueError(f"labels must hold only 0 and 1 (or False/True), got {y[bad][0]!r} at row "
                         f"{int(np.flatnonzero(bad)[0])}")
    return y


def _scores(scores, n: int, of: str) -> np.ndarray:
    return checks.array("scores", _length("scores", _column("scores", scores), n, of), ndim=1)


def _optional_floats(name: str, value, n: int, *, nonnegative: bool = False) -> np.ndarray:
    """Numbers with NaN allowed (a missing value) but no inf."""
    v = _length(name, _column(name, value), n, "users")
    if v.dtype == bool or not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)):
        raise TypeError(f"{name} must hold numbers (NaN for missing), got {checks.describe(v)}")
    v = v.astype(np.float64)
    if np.isinf(v).any():
        raise ValueError(f"{name} holds inf; expected finite numbers or NaN (missing)")
    if nonnegative and (v < 0).any():
        raise ValueError(f"{name} must be non-negative (NaN counts as 0), got a minimum of {float(np.nanmin(v))!r}")
    return v


def _index(users, ids: np.ndarray) -> pd.Index:
    """The result's index: the sorted user ids, named after ``users`` when it is a named Series."""
    name = users.name if isinstance(users, pd.Series) and isinstance(users.name, str) else "user"
    return pd.Index(ids, name=name)


# -- grouping -------------------------------------------------------------------------------------------
def _groups(sorted_users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by user: each row's group number, each group's first row, and the group's user id."""
    new = np.empty(len(sorted_users), dtype=bool)
    new[0] = True
    new[1:] = sorted_users[1:] != sorted_users[:-1]
    starts = np.flatnonzero(new)
    return np.cumsum(new) - 1, starts, sorted_users[starts]


def _by_score(users: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row order: by user, then ``key`` descending, then row position (the earlier row first)."""
    return np.lexsort((np.arange(len(users)), -key, users))


def _ranked(users: np.ndarray, scores: np.ndarray):
    """The rows by user and score: (order, group number, 0-based rank within the user, user ids)."""
    order = _by_score(users, scores)
    group, starts, ids = _groups(users[order])
    return order, group, np.arange(len(order)) - starts[group], ids


def _auc_by_user(users: np.ndarray, labels: np.ndarray, scores: np.ndarray):
    """Mann–Whitney AUC per user (NaN with one class only), with the user ids and the class counts."""
    n = len(users)
    order = np.lexsort((scores, users))  # ascending scores within each user
    u, s, y = users[order], scores[order], labels[order]
    group, starts, ids = _groups(u)
    # a run of equal (user, score) rows shares the average of its 1-based ranks within the user
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    new_run[1:] = (u[1:] != u[:-1]) | (s[1:] != s[:-1])
    run_first = np.flatnonzero(new_run)
    run_last = np.append(run_first[1:], n) - 1
    run = np.cumsum(new_run) - 1
    rank = (run_first[run] + run_last[run]) / 2.0 - starts[group] + 1.0
    n_pos = np.bincount(group, weights=y)
    n_neg = np.bincount(group) - n_pos
    rank_sum = np.bincount(group, weights=rank * y)
    pairs = n_pos * n_neg
    value = np.divide(rank_sum - n_pos * (n_pos + 1) / 2.0, pairs, out=np.full(len(ids), np.nan), where=pairs > 0)
    return ids, value, n_pos, n_neg


# -- metrics --------------------------------------------------------------------------------------------
def auc(labels, scores) -> float:
    """ROC AUC of ``scores`` for 0/1 ``labels``: the Mann–Whitney U statistic over n_pos · n_neg pairs.

    AUC = (R_pos − n_pos (n_pos + 1) / 2) / (n_pos n_neg), R_pos the sum of the positives' ranks by ascending
    score, tied scores sharing their average rank (a tied pair counts 1/2); equal to scikit-learn's
    ``roc_auc_score`` (Hanley & McNeil 1982). Both classes must be present.

    Introduced in notebooks/16_multitask.ipynb
    """
    y = _column("labels", labels)
    _same_rows({"labels": labels, "scores": scores})
    y = _labels(y, len(y), "labels")
    if y.size == 0:
        raise ValueError("labels must hold at least one row, got none")
    s = _scores(scores, len(y), "labels")
    _, value, n_pos, n_neg = _auc_by_user(np.zeros(len(y), dtype=np.int64), y, s)
    if n_pos[0] == 0 or n_neg[0] == 0:
        raise ValueError(f"labels must hold both classes (0 and 1) for an AUC, got only {int(y[0])}s "
                         f"({len(y)} rows)")
    return float(value[0])


def per_user_auc(users, labels, scores) -> pd.Series:
    """AUC (``auc``) of each user's rows, indexed by the sorted user ids; NaN for a user whose rows hold one class.

    The mean over users weights each user equally, unlike the pooled ``auc`` of all rows, which compares
    candidates of different users too.

    Introduced in notebooks/16_multitask.ipynb
    """
    _same_rows({"users": users, "labels": labels, "scores": scores})
    u = _users(users)
    y, s = _labels(labels, len(u), "users"), _scores(scores, len(u), "users")
    ids, value, _, _ = _auc_by_user(u, y, s)
    return pd.Series(value, index=_index(users, ids), name="auc")


def grouped_ndcg(users, labels, scores, k: int = 10, gains=None) -> pd.Series:
    """NDCG@k of each user's rows ordered by score, indexed by the sorted user ids (Järvelin & Kekäläinen 2002).

    DCG@k = Σ_{r ≤ k} rel_r / log2(r + 1), r the 1-based rank by score (the discount of
    ``metrics.ndcg_at_k``); equal scores: the earlier row ranks first. The ideal DCG orders the same user's
    rows by relevance, so only the candidate rows can be found: a user with no relevant row gets NaN, and a user
    whose relevant rows are all ranked first gets 1 even if the candidates missed other relevant items. The
    relevance is the 0/1 label, or with ``gains`` (e.g. the rating) the row's gain where the label is 1 and 0
    elsewhere; a NaN gain counts as 0 (to grade every row that has a gain, pass labels = gain present). With
    binary labels on rows that are a user × whole-catalogue grid in item order, the values are those of
    ``metrics.per_user_metrics`` for ``topk_from_scores`` lists.

    Introduced in notebooks/16_multitask.ipynb
    """
    _same_rows({"users": users, "labels": labels, "scores": scores, "gains": gains})
    u = _users(users)
    y, s = _labels(labels, len(u), "users"), _scores(scores, len(u), "users")
    k = checks.positive_int("k", k)
    if gains is not None:
        y = y * np.nan_to_num(_optional_floats("gains", gains, len(u), nonnegative=True), nan=0.0)
    order, group, rank, ids = _ranked(u, s)
    disc = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)  # 1 / log2(r + 1) with r = rank + 1
    dcg = np.bincount(group, weights=y[order] * disc)
    # the ideal order sorts the same users in the same places, so the groups and ranks carry over
    ideal = np.bincount(group, weights=y[_by_score(u, y)] * disc)
    value = np.divide(dcg, ideal, out=np.full(len(ids), np.nan), where=ideal > 0)
    return pd.Series(value, index=_index(users, ids), name=f"ndcg@{k}")


def mean_of_top(users, values, scores, k: int = 10) -> pd.Series:
    """Mean of ``values`` over each user's top-k rows by score, NaN values left out; NaN when none is left.

    E.g. ``values`` = the rating where the film was rated in the test period (NaN elsewhere) gives the mean
    rating of the hits in the top k. Equal scores: the earlier row ranks first. Indexed by the sorted user ids.
    Which users get NaN depends on the scores, so two models' Series may have NaN for different users: compare
    them on the users where both have a value (``paired_bootstrap`` refuses unequal NaN patterns).

    Introduced in notebooks/16_multitask.ipynb
    """
    _same_rows({"users": users, "values": values, "scores": scores})
    u = _users(users)
    v, s = _optional_floats("values", values, len(u)), _scores(scores, len(u), "users")
    k = checks.positive_int("k", k)
    order, group, rank, ids = _ranked(u, s)
    v = v[order]
    counted = (rank < k) & ~np.isnan(v)
    total = np.bincount(group, weights=np.where(counted, v, 0.0))
    count = np.bincount(group, weights=counted)
    value = np.divide(total, count, out=np.full(len(ids), np.nan), where=count > 0)
    return pd.Series(value, index=_index(users, ids), name=f"mean_of_top@{k}")
