"""Recommending to a new user from what exists when they arrive: demographics, a few items, a sentence.

* ``demographic_popularity`` (``DemographicPopularity`` to keep the fit): the items most watched by training
  users who share the new user's age band, gender and occupation, backing off to coarser groups when the cell
  holds fewer than ``min_users`` users.
* ``als_fold_in``: a new user's ALS factor solved from their few items with the item factors fixed, the least-squares
  step of ALS for one row (Hu, Koren & Volinsky 2008), equal to ``implicit``'s ``recalculate_user``.
* ``genre_sentence``: a stated preference ("I like comedy and romance films") from genres a user picked or the
  genres of the items they revealed, for the content model to rank from.

Introduced in notebooks/14_new_users.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks

# finest first; a person who gave only some of the fields uses the levels those fields fill
DEMOGRAPHIC_LEVELS = (("age_bucket", "gender", "occupation"), ("age_bucket", "gender"), ("age_bucket",),
                      ("occupation",), ("gender",), ())
TIE_WEIGHT = 1e-4  # overall popularity's weight inside a cell: it breaks ties and moves no item past another


def _level_name(level) -> str:
    return " × ".join(level) if level else "everyone"


def _key(value) -> str:
    """A cell key that reads the same from a str column, an int column and a float column with gaps (1 and 1.0)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value)


def _check_levels(levels) -> list[tuple]:
    ok = isinstance(levels, (list, tuple)) and all(isinstance(lv, (list, tuple)) for lv in levels)
    levels = [tuple(level) for level in levels] if ok else None
    if not levels or levels[-1] != () or any(not all(isinstance(c, str) for c in lv) for lv in levels):
        raise ValueError(f"levels must be tuples of column names, finest first, ending with () (everyone), got "
                         f"{levels!r}")
    return levels


class DemographicPopularity:
    """Popularity within a demographic cell, backing off to coarser cells: fit once, score any new person.

    ``fit(history, groups)`` counts, for every cell of every level (e.g. age band × gender × occupation), the
    share of the cell's training users who watched each item; cells with fewer than ``min_users`` training users
    are not kept. ``scores(people)`` gives each person (a frame with the level columns; a missing value, NaN or
    None, means "not given") the shares of the first level whose columns they all gave and whose cell was kept,
    ending with everyone (plain popularity). Overall popularity times ``TIE_WEIGHT`` breaks ties within a cell.

    Introduced in notebooks/14_new_users.ipynb
    """

    def __init__(self, levels=DEMOGRAPHIC_LEVELS, min_users: int = 20):
        self.levels = _check_levels(levels)
        self.min_users = checks.positive_int("min_users", min_users)
        self.cells: list[dict] | None = None

    def fit(self, history, groups: pd.DataFrame) -> DemographicPopularity:
        X = checks.interactions("history", history).astype(bool).astype(np.float32)
        if not isinstance(groups, pd.DataFrame) or len(groups) != X.shape[0]:
            raise ValueError(f"groups must be a DataFrame with one row per user index ({X.shape[0]} rows), got "
                             f"{checks.describe(groups)}")
        if not groups.index.equals(pd.RangeIndex(len(groups))):
            raise ValueError("groups must be indexed by user index 0..n_users-1 in order (row u = user u), got another "
                             "index; use groups.sort_index() or reset_index(drop=True) when the rows are in order")
        checks.columns("groups", groups, sorted({c for lv in self.levels for c in lv}))
        trained = np.flatnonzero(np.diff(X.indptr) > 0)
        if not len(trained):
            raise ValueError("history has no interactions: there is no training user to learn popularity from")
        overall = np.asarray(X[trained].mean(axis=0)).ravel()
        g = groups.iloc[trained]
        cells = []  # built aside and kept only when whole: a failed refit leaves the previous fit as it was
        for level in self.levels:
            kept = {}
            if not level:
                kept[()] = (len(trained), overall)
            else:
                if g[list(level)].isna().any().any():
                    raise ValueError(f"groups holds missing values in {list(level)} for training users; fill them")
                for key, rows in g.groupby(list(level), observed=True, sort=False).indices.items():
                    key = tuple(_key(v) for v in (key if isinstance(key, tuple) else (key,)))
                    if len(rows) >= self.min_users:
                        kept[key] = (len(rows), np.asarray(X[trained[rows]].mean(axis=0)).ravel())
            cells.append(kept)
        self.cells, self.overall, self.n_items = cells, overall, X.shape[1]
        return self

    def scores(self, people: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """(len(people), n_items) float32 scores and, per person, the ``level`` used and its ``cell_users``."""
        if self.cells is None:
            raise RuntimeError("call fit(history, groups) before scores(people)")
        if not isinstance(people, pd.DataFrame):
            raise TypeError(f"people must be a DataFrame with the level columns, got {checks.describe(people)}")
        checks.columns("people", people, sorted({c for lv in self.levels for c in lv}))
        out = np.zeros((len(people), self.n_items), np.float32)
        level, size = [], []
        for r, person in enumerate(people.to_dict("records")):
            for li, lv in enumerate(self.levels):
                if any(person[c] is None or (not isinstance(person[c], str) and pd.isna(person[c])) for c in lv):
                    continue
                hit = self.cells[li].get(tuple(_key(person[c]) for c in lv))
                if hit is not None:
                    out[r] = hit[1] + TIE_WEIGHT * self.overall
                    level.append(_level_name(lv))
                    size.append(hit[0])
                    break
        return out, pd.DataFrame({"level": level, "cell_users": size}, index=people.index)


def demographic_popularity(history, groups: pd.DataFrame, users, min_users: int = 20,
                           levels=DEMOGRAPHIC_LEVELS) -> tuple[np.ndarray, pd.DataFrame]:
    """Scores for ``users`` from the share of their demographic cell's training users who watched each item.

    ``history`` is the binary (n_users, n_items) training matrix (the rows of the users being scored may be
    empty: they are new); ``groups`` holds one row per user index (``n_users`` rows) with the columns named in
    ``levels`` (``features.user_features`` gives ``age_bucket``, ``gender``, ``occupation``). A user's cell is
    the training users (rows with history) who match them on the first level whose cell has at least
    ``min_users`` of them; the last level, ``()``, is every training user (plain popularity). Within a cell,
    overall popularity times ``TIE_WEIGHT`` breaks ties. Returns (len(users), n_items) float32 scores and a frame
    per scored user (indexed by user index): ``level`` (the columns used, "everyone" for the last) and
    ``cell_users``. ``DemographicPopularity`` is the same fit kept for scoring new people one at a time.

    Introduced in notebooks/14_new_users.ipynb
    """
    model = DemographicPopularity(levels, min_users)
    X = checks.interactions("history", history)
    users = checks.indices("users", users, X.shape[0], what="user")
    model.fit(X, groups)
    scores, info = model.scores(groups.iloc[users])
    info.index = pd.Index(users, name="user_idx")
    return scores, info


def als_fold_in(item_factors, rows, regularization: float, alpha: float = 1.0) -> np.ndarray:
    """(n_rows, f) float32 ALS user factors for ``rows`` (a (n_rows, n_items) CSR) with the item factors fixed.

    With confidence c_i = ``alpha`` * r_i for the user's items and preference 1 on them (0 elsewhere, at
    confidence 1), the factor minimising the ALS loss is

        x = (YᵀY + Yᵀ(C − I)Y + λI)⁻¹ Yᵀ C p,

    computed over the user's own items only (Hu, Koren & Volinsky 2008): a new user gets a factor in
    milliseconds, no refit. A row without items gets the zero factor (every item scores 0). This is the
    solve ``implicit``'s ``recalculate_user`` does (solved here in float64).

    Introduced in notebooks/14_new_users.ipynb
    """
    Y = checks.array("item_factors", item_factors, ndim=2)
    R = checks.sparse("rows", rows, shape=(None, Y.shape[0]), nonnegative=True)
    R.eliminate_zeros()  # a stored 0 is not an item the user has
    lam = checks.non_negative_number("regularization", regularization)
    alpha = checks.positive_number("alpha", alpha)
    f = Y.shape[1]
    YtY = Y.T @ Y
    out = np.zeros((R.shape[0], f), np.float64)
    for u in range(R.shape[0]):
        lo, hi = R.indptr[u], R.indptr[u + 1]
        if lo == hi:
            continue
        idx, c = R.indices[lo:hi], alpha * R.data[lo:hi].astype(np.float64)
        Yi = Y[idx]
        A = YtY + (Yi.T * (c - 1.0)) @ Yi + lam * np.eye(f)
        try:
            out[u] = np.linalg.solve(A, Yi.T @ c)
        except np.linalg.LinAlgError:
            raise ValueError(f"rows[{u}]: the system is singular; give regularization > 0") from None
    return out.astype(np.float32)


def genre_sentence(genres, prefix: str = "I like", suffix: str = "films") -> str:
    """A stated preference from genres: ``["Comedy", "Romance"]`` -> "I like comedy and romance films".

    The genres are taken in the order given, repeats dropped; none gives "" (nothing stated). The text is what a
    new user might type, for ``semantic.encode_texts`` and a cosine against the item vectors.

    Introduced in notebooks/14_new_users.ipynb
    """
    if isinstance(genres, str) or not isinstance(genres, (list, tuple, np.ndarray, pd.Index, pd.Series)):
        raise TypeError(f"genres must be a list of genre names, got {checks.describe(genres)}")
    words = list(dict.fromkeys(checks.text(f"genres[{i}]", g).strip().lower() for i, g in enumerate(genres)))
    if not words:
        return ""
    prefix, suffix = checks.text("prefix", prefix, empty=True), checks.text("suffix", suffix, empty=True)
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return " ".join(part for part in (prefix, listed, suffix) if part)
