"""Training pairs and query texts for the two-tower model: each user's train-period sequence slid into
(history -> next item) pairs, and a history written as a query (an optional profile, then the newest titles).

Introduced in notebooks/09_finetuning.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks

HISTORY_PREFIX = "Recently watched: "
HISTORY_SEP = "; "


# ------------------------------------------------------------------------------------------- validation


def _interactions(name: str, df) -> pd.DataFrame:
    need = ["user_idx", "item_idx", "timestamp"]
    out = checks.columns(name, df, need)[need].copy()
    for c in need:
        col = out[c]
        if not pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise TypeError(f"{name}[{c!r}] must hold integers, got dtype {col.dtype}")
        if col.isna().any():
            raise ValueError(f"{name}[{c!r}] must hold integers without NA, got {int(col.isna().sum())} NA")
    if len(out) and (out.user_idx.min() < 0 or out.item_idx.min() < 0):
        raise ValueError(f"{name} has negative user_idx/item_idx; expected contiguous indices >= 0")
    return out.astype(np.int64)


# ------------------------------------------------------------------------------------------- queries


def compose_query(profile: str, titles, prefix: str = HISTORY_PREFIX, sep: str = HISTORY_SEP) -> str:
    """The user-tower text: ``"<profile> Recently watched: t1; t2; ..."`` (either part may be absent).

    Introduced in notebooks/09_finetuning.ipynb
    """
    profile = checks.text("profile", profile, empty=True)
    titles = checks.texts("titles", titles, allow_empty_list=True)
    prefix = checks.text("prefix", prefix, empty=True)
    sep = checks.text("sep", sep, empty=True)
    history = f"{prefix}{sep.join(titles)}" if len(titles) else ""
    return " ".join(part for part in (profile.strip(), history) if part)


def _sorted_sequences(df: pd.DataFrame) -> pd.DataFrame:
    # Time order with ties broken by item index (= raw item id order, the IndexMap is sorted), as the split.
    return df.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable").reset_index(drop=True)


def _history_matrix(items: np.ndarray, end: np.ndarray, start: np.ndarray, n: int) -> np.ndarray:
    """(rows, n) item indices at positions end-1, end-2, ... (newest first), -1 where before ``start``."""
    pos = end[:, None] - np.arange(1, n + 1)[None, :]
    valid = pos >= start[:, None]
    return np.where(valid, items[np.maximum(pos, 0)], -1)


def _query_texts(hist: np.ndarray, users: np.ndarray, item_text: np.ndarray, user_text, prefix, sep) -> list[str]:
    out = []
    for u, row in zip(users, hist):
        titles = item_text[row[row >= 0]]
        profile = "" if user_text is None else user_text[u]
        out.append(compose_query(profile, list(titles), prefix, sep))
    return out


def _check_lookup(name: str, table: np.ndarray, idx: np.ndarray, what: str) -> None:
    if len(idx) and idx.max() >= len(table):
        raise ValueError(f"{name} has {len(table)} entries but the interactions use {what} index {int(idx.max())}")


def _query_inputs(frame_name, frame, item_text, user_text, history_len, prefix, sep):
    """The checked inputs both query builders share: time-sorted sequences, title and profile arrays, knobs."""
    df = _sorted_sequences(_interactions(frame_name, frame))
    titles = checks.text_array("item_text", item_text)
    profiles = None if user_text is None else checks.text_array("user_text", user_text)
    history_len = checks.positive_int("history_len", history_len)
    prefix, sep = checks.text("prefix", prefix, empty=True), checks.text("sep", sep, empty=True)
    _check_lookup("item_text", titles, df.item_idx.to_numpy(), "item")
    return df, titles, profiles, history_len, prefix, sep


def make_training_pairs(
    train_df: pd.DataFrame,
    item_text,
    user_text=None,
    history_len: int = 5,
    min_history: int = 1,
    prefix: str = HISTORY_PREFIX,
    sep: str = HISTORY_SEP,
) -> pd.DataFrame:
    """(history -> next item) pairs from each user's time-ordered train sequence.

    Each user's rows are ordered by timestamp, ties by item index. For every position t >= 1 the query is
    ``compose_query(user_text[u], titles of the last history_len items strictly before t's timestamp,
    newest first)`` and the positive is item t. Items that share t's timestamp are *not* history (they
    were not seen before t), so no interaction at or after the target time ever enters its query; a pair
    whose strict history has fewer than ``min_history`` items is dropped. ``item_text``/``user_text`` are
    sequences indexed by item/user index. Pass only the train period: everything in ``train_df`` may be
    used.

    Returns a DataFrame with ``user_idx``, ``query_text``, ``item_idx`` (the positive), ``timestamp`` (of the
    target), ``history`` (tuple of history item indices, newest first) and ``n_history``.

    Introduced in notebooks/09_finetuning.ipynb
    """
    df, titles, profiles, history_len, prefix, sep = _query_inputs(
        "train_df", train_df, item_text, user_text, history_len, prefix, sep)
    min_history = checks.non_negative_int("min_history", min_history)
    if profiles is not None:
        _check_lookup("user_text", profiles, df.user_idx.to_numpy(), "user")
    if min_history == 0 and profiles is None:
        raise ValueError("min_history=0 needs user_text, otherwise a pair with no history has an empty query")

    users, items, ts = (df[c].to_numpy() for c in ("user_idx", "item_idx", "timestamp"))
    pos = np.arange(len(df))
    user_start = pos - df.groupby("user_idx", sort=False).cumcount().to_numpy()
    tie_start = pos - df.groupby(["user_idx", "timestamp"], sort=False).cumcount().to_numpy()
    n_before = tie_start - user_start  # items with a strictly earlier timestamp
    keep = (pos > user_start) & (n_before >= min_history)
    hist = _history_matrix(items, tie_start[keep], user_start[keep], history_len)
    queries = _query_texts(hist, users[keep], titles, profiles, prefix, sep)
    return pd.DataFrame(
        {
            "user_idx": users[keep],
            "query_text": queries,
            "item_idx": items[keep],
            "timestamp": ts[keep],
            "history": [tuple(int(i) for i in row[row >= 0]) for row in hist],
            "n_history": np.minimum(n_before[keep], history_len),
        }
    )


def user_query_texts(
    history_df: pd.DataFrame,
    item_text,
    user_text=None,
    history_len: int = 5,
    n_users: int | None = None,
    prefix: str = HISTORY_PREFIX,
    sep: str = HISTORY_SEP,
) -> list[str]:
    """One query per user (row = user index) from the last ``history_len`` items of ``history_df``.

    The same text as ``make_training_pairs`` builds, written at the end of the history: for ranking valid
    pass the train frame, for test and cold_test train + valid (``Protocol.history_frame``). Users without
    history get their profile text alone (an empty string without ``user_text``). ``n_users`` defaults to
    ``len(user_text)``, else the largest user index + 1.

    Introduced in notebooks/09_finetuning.ipynb
    """
    df, titles, profiles, history_len, prefix, sep = _query_inputs(
        "history_df", history_df, item_text, user_text, history_len, prefix, sep)
    if n_users is None:
        if profiles is not None:
            n_users = len(profiles)
        elif len(df):
            n_users = int(df.user_idx.max()) + 1
        else:
            raise ValueError("history_df is empty and neither n_users nor user_text says how many users there are")
    n_users = checks.positive_int("n_users", n_users)
    if len(df) and df.user_idx.max() >= n_users:
        raise ValueError(f"n_users={n_users} but history_df has user index {int(df.user_idx.max())}")
    if profiles is not None and len(profiles) != n_users:
        raise ValueError(f"user_text has {len(profiles)} entries, expected n_users={n_users}")

    users = df.user_idx.to_numpy()
    start = np.searchsorted(users, np.arange(n_users), side="left")
    end = np.searchsorted(users, np.arange(n_users), side="right")
    hist = _history_matrix(df.item_idx.to_numpy(), end, start, history_len)
    return _query_texts(hist, np.arange(n_users), titles, profiles, prefix, sep)


