"""User, item and context features shared by the content, fusion and re-ranking lessons."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks

# MovieLens-1M's age groups, used for ML-100K too so that user groups compare across releases.
AGE_BINS = [0, 18, 25, 35, 45, 50, 56, 200]
AGE_LABELS = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]


def age_bucket(age) -> pd.Categorical:
    """MovieLens-1M age groups for ages in years.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if isinstance(age, (str, bytes, bool, np.bool_)):
        raise TypeError(f"age must be ages in years (a number or numbers), got {checks.describe(age)}")
    try:
        a = pd.Series(age, dtype="float64")
    except (TypeError, ValueError):
        raise TypeError(f"age must be ages in years (numbers), got {checks.describe(age)}") from None
    wrong = a.isna() | (a < 0) | (a >= AGE_BINS[-1])  # an age past the last bin would become a NaN group
    if wrong.any():
        raise ValueError(f"age must be numbers of years in [0, {AGE_BINS[-1]}) without missing values, "
                         f"got {a[wrong].iloc[0]!r}")
    return pd.cut(a, AGE_BINS, right=False, labels=AGE_LABELS)


def genre_matrix(items: pd.DataFrame, item_ids=None) -> tuple[np.ndarray, list[str]]:
    """Multi-hot (n_items, n_genres) float32 genre matrix and the genre names (sorted).

    Rows follow ``item_ids`` (e.g. ``IndexMap.item_ids``) when given, else ``items`` order; an item
    without genres gets an all-zero row.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    checks.columns("items", items, ["item_id", "genres"])
    if items.item_id.duplicated().any():  # which row's genres an id gets would be an accident
        dup = items.item_id[items.item_id.duplicated()].unique()[:5].tolist()
        raise ValueError(f"items repeats item_id values, e.g. {dup}; expected one row per item")
    for i, gs in zip(items.item_id, items.genres):
        # a str would be iterated letter by letter ("Action|Crime" -> A, c, t, ...): refuse it
        if isinstance(gs, (str, bytes)) or not isinstance(gs, (list, tuple, np.ndarray)) \
                or not all(isinstance(g, str) for g in gs):
            raise TypeError(f"items['genres'] must hold a list of str per item, got {checks.describe(gs)} "
                            f"for item {i!r}; split a 'A|B' string into a list first")
    names = sorted({g for gs in items.genres for g in gs})
    col = {g: j for j, g in enumerate(names)}
    by_id = dict(zip(items.item_id, items.genres))
    ids = items.item_id.to_numpy() if item_ids is None else np.asarray(item_ids)
    if ids.ndim != 1:
        raise ValueError(f"item_ids must be 1-D, got {checks.describe(ids)}")
    try:
        unknown = [i for i in ids if i not in by_id]
    except TypeError:  # an unhashable id
        raise TypeError(f"item_ids must hold item ids, got {checks.describe(ids)}") from None
    if unknown:
        raise ValueError(f"item_ids has ids missing from items, e.g. {unknown[:5]}")
    out = np.zeros((len(ids), len(names)), dtype=np.float32)
    for r, i in enumerate(ids):
        for g in by_id[i]:
            out[r, col[g]] = 1.0
    return out, names


def genre_drift(sequences, item_genres, split: float = 0.5) -> np.ndarray:
    """Per user, how far the genres of the late history moved from the early one: a number in [0, 1].

    Each history (item indices, oldest first) is cut at ``split`` of its length (rounded down); each part's genre distribution
    is the mean of its items' genre rows, normalised to sum 1 (a film with three genres counts a third to each);
    the drift is the Jensen-Shannon divergence of the two, base 2 (0 = the same mix, 1 = no genre in common).
    NaN for a history with fewer than two items or a part without genres.

    Introduced in notebooks/13_sequential.ipynb
    """
    g = checks.array("item_genres", item_genres, ndim=2)
    if (g < 0).any():
        raise ValueError("item_genres must be non-negative (multi-hot genre rows from genre_matrix)")
    split = checks.number("split", split, low=0.0, high=1.0)
    if not 0.0 < split < 1.0:
        raise ValueError(f"split must be strictly between 0 and 1, got {split!r}")
    seqs = checks.sequences("sequences", sequences, len(g))
    rows = g / np.maximum(g.sum(axis=1, keepdims=True), 1e-12)
    out = np.full(len(seqs), np.nan)
    for u, s in enumerate(seqs):
        cut = int(len(s) * split)  # rounded down: the early part is never the longer one at split 0.5
        if cut < 1 or cut >= len(s):
            continue
        p, q = rows[s[:cut]].sum(axis=0), rows[s[cut:]].sum(axis=0)
        if p.sum() == 0 or q.sum() == 0:
            continue
        out[u] = _jensen_shannon(p / p.sum(), q / q.sum())
    return out


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2

    def kl(a):  # KL(a || m); m > 0 wherever a > 0
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0)  # clipped: rounding can leave it a hair outside


def user_features(users: pd.DataFrame, user_ids=None) -> pd.DataFrame:
    """One row per user (in ``user_ids`` order): age, age bucket, gender, occupation and zip region.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    need = {"user_id", "age", "gender", "occupation", "zip_code"}
    checks.columns("users", users, sorted(need))
    if users.user_id.duplicated().any():
        dup = users.user_id[users.user_id.duplicated()].unique()[:5].tolist()
        raise ValueError(f"users repeats user_id values, e.g. {dup}; expected one row per user")
    age_bucket(users.age.to_numpy())  # bad ages raise here, naming age, before astype(int) would
    if not (pd.api.types.is_object_dtype(users.zip_code) or pd.api.types.is_string_dtype(users.zip_code)):
        raise TypeError(f"users['zip_code'] must hold str zip codes, got dtype {users.zip_code.dtype}")
    for col in ("gender", "occupation", "zip_code"):
        if users[col].isna().any():
            raise ValueError(f"users[{col!r}] holds {int(users[col].isna().sum())} missing values; expected one per "
                             "user (fill them, e.g. with 'unknown')")
    not_str = [z for z in users.zip_code if not isinstance(z, str)]
    if not_str:
        raise TypeError(f"users['zip_code'] must hold str zip codes, got {checks.describe(not_str[0])}")
    if (users.zip_code.str.len() == 0).any():
        raise ValueError("users['zip_code'] holds an empty zip code; its first character gives the region")
    df = users.set_index("user_id")
    if user_ids is not None:
        missing = pd.Index(user_ids).difference(df.index)
        if len(missing):
            raise ValueError(f"user_ids has ids missing from users, e.g. {missing[:5].tolist()}")
        df = df.loc[np.asarray(user_ids)]
    out = pd.DataFrame(index=df.index)
    out["age"] = df.age.astype(int)
    out["age_bucket"] = age_bucket(df.age.to_numpy()).astype(str).to_numpy()
    out["gender"] = df.gender.astype("category")
    out["occupation"] = df.occupation.astype("category")
    # First digit of a US zip code is a broad region; Canadian codes start with a letter.
    out["zip_region"] = df.zip_code.str[0].where(df.zip_code.str[0].str.isdigit(), "non-US")
    return out


def context_features(interactions: pd.DataFrame) -> pd.DataFrame:
    """Adds ``hour`` (0-23, UTC), ``weekday`` (0 = Monday) and ``datetime`` from ``timestamp`` (seconds).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    checks.columns("interactions", interactions, ["timestamp"])
    ts = interactions.timestamp
    if ts.dtype == bool or not pd.api.types.is_numeric_dtype(ts):
        raise TypeError(f"interactions['timestamp'] must hold Unix seconds (numbers), got dtype {ts.dtype}")
    if not np.isfinite(ts.to_numpy(dtype=np.float64, na_value=np.nan)).all():
        raise ValueError("interactions['timestamp'] holds NaN or inf; expected finite Unix seconds")
    out = interactions.copy()
    try:
        t = pd.to_datetime(out.timestamp, unit="s", utc=True)
    except (OverflowError, ValueError) as err:  # OutOfBoundsDatetime is a ValueError
        raise ValueError(f"interactions['timestamp'] must be Unix seconds within pandas' dates (1677-2262), got {err}"
                         ) from None
    out["datetime"] = t
    out["hour"] = t.dt.hour.astype("int8")
    out["weekday"] = t.dt.weekday.astype("int8")
    return out
