"""What a model recommends, to read: example users, a user's recent history and top-k lists with titles side by side.

Metrics say how often a list is right; reading the lists says how it is right or wrong (all blockbusters,
all one genre, items the user just watched elsewhere). Every lesson shows the same two users, chosen by a
rule on the split alone (``example_users``), so their lists can be compared from lesson to lesson.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.data.index import IndexMap
from recsuite.data.split import EVAL_SETS, resolve_protocol

__all__ = ["example_users", "item_titles", "recent_history", "side_by_side", "HIT_MARK"]

#: Prefix of a title that is in the user's held-out items of the evaluation set (a hit).
HIT_MARK = "✓ "


def example_users(protocol, eval_set: str = "test", n: int = 2, popular: int = 10) -> np.ndarray:
    """``n`` user indices spread over activity, each with a held-out item a good list can find.

    The rule, on the split alone (never a model, a machine or a seed): among the users whose held-out items in
    ``eval_set`` include one of the ``popular`` most popular items of its catalogue they have not seen (popularity
    = interactions in the ``eval_set`` history, ties to the lower item index), take the users at the quantiles
    1/(n+1), …, n/(n+1) of history size (ties to the lower user index). With ``n=2``: a lighter and a heavier
    user, for whom even a popularity list has a hit, so a reader sees what a hit looks like. On ``cold_test``
    (no item has a history) every user with a held-out item is eligible. ``protocol=None``: the lessons' one.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    proto = resolve_protocol(protocol)
    checks.one_of("eval_set", eval_set, EVAL_SETS)
    n = checks.positive_int("n", n)
    popular = checks.positive_int("popular", popular)
    truth, history = proto.csr(eval_set), proto.history(eval_set)
    eligible = np.diff(truth.indptr) > 0
    if eval_set != "cold_test":
        catalogue = np.flatnonzero(proto.catalogue(eval_set))
        counts = np.asarray(history[:, catalogue].sum(axis=0)).ravel()
        order = catalogue[np.lexsort((catalogue, -counts))]  # most popular first, ties to the lower index
        unseen = history[:, order].toarray() == 0
        top = unseen & (np.cumsum(unseen, axis=1) <= popular)  # each user's `popular` most popular unseen items
        eligible &= ((truth[:, order].toarray() > 0) & top).any(axis=1)
    held_out = np.flatnonzero(eligible)
    if n > held_out.size:
        raise ValueError(f"n must be at most the {held_out.size} eligible users of {eval_set!r}, got {n}")
    sizes = np.diff(history.indptr)[held_out]
    order = held_out[np.lexsort((held_out, sizes))]
    positions = np.round(np.arange(1, n + 1) / (n + 1) * (order.size - 1)).astype(int)
    return order[positions].astype(np.int64)


def item_titles(items, index) -> np.ndarray:
    """Titles (object array) aligned with the protocol's item index: ``titles[item_idx]``.

    ``items`` is ``MovieLens.items`` (``item_id``, ``title``); every indexed item must have a row, with one
    title per item_id. A missing title (NaN or None) is shown as ``"(untitled item <item_id>)"``, never as
    ``"nan"``.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    checks.columns("items", items, ["item_id", "title"])
    if not isinstance(index, IndexMap):
        raise TypeError(f"index must be a recsuite.data.index.IndexMap (protocol.index), got {checks.describe(index)}")
    int_ids = index.item_ids.dtype.kind in "iu"
    if len(items) and pd.api.types.is_integer_dtype(items["item_id"].dtype) != int_ids:
        raise TypeError(f"items['item_id'] must hold {'integer' if int_ids else 'str'} ids like index.item_ids, "
                        f"got dtype {items['item_id'].dtype}")
    n_titles = items.groupby("item_id")["title"].nunique(dropna=False)
    if (n_titles > 1).any():
        raise ValueError(f"items must give one title per item_id, got several for item_id "
                         f"{n_titles.index[n_titles > 1][:5].tolist()}")
    by_id = items.drop_duplicates("item_id").set_index("item_id")["title"]
    missing = np.setdiff1d(index.item_ids, by_id.index.to_numpy())
    if missing.size:
        raise ValueError(f"items must hold a title for every indexed item, got none for item_id {missing[:5].tolist()}"
                         + (f" and {missing.size - 5} more" if missing.size > 5 else ""))
    titles = by_id.loc[index.item_ids].to_numpy(dtype=object)
    untitled = pd.isna(titles)
    titles[untitled] = [f"(untitled item {i})" for i in index.item_ids[untitled]]
    return titles


def recent_history(protocol, user: int, titles, eval_set: str = "test", n: int = 5) -> pd.DataFrame:
    """The ``n`` most recent items of ``user``'s history for ``eval_set`` (what a model saw), newest first.

    Columns ``title`` and ``date`` (UTC day of the interaction); ties in time are broken by item index.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    proto = resolve_protocol(protocol)
    checks.one_of("eval_set", eval_set, EVAL_SETS)
    user = checks.integer("user", user, low=0, high=proto.n_users - 1)
    n = checks.positive_int("n", n)
    titles = _titles(titles, proto.n_items)
    hist = proto.history_frame(eval_set)
    rows = hist[hist.user_idx == user].sort_values(["timestamp", "item_idx"], ascending=[False, True]).head(n)
    return pd.DataFrame({
        "title": titles[rows.item_idx.to_numpy()],
        "date": pd.to_datetime(rows.timestamp.to_numpy(), unit="s").strftime("%Y-%m-%d"),
    }, index=pd.RangeIndex(1, len(rows) + 1, name="recent"))


def side_by_side(lists: Mapping, titles, truth=None) -> pd.DataFrame:
    """One column of titles per model, one row per rank (1 … k); a hit (an item in ``truth``) gets ``HIT_MARK``.

    ``lists`` maps a model name to one user's top-k item indices (1-D); all lists have the same length k.
    ``truth`` is that user's held-out item indices (e.g. ``protocol.csr("test")[user].indices``) or None.
    Padding (``metrics.NO_ITEM``, -1) shows as an empty cell; a list that repeats an item is refused.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if not isinstance(lists, Mapping) or not lists:
        raise TypeError(f"lists must be a non-empty mapping of model name -> top-k item indices, "
                        f"got {checks.describe(lists)}")
    titles = _titles(titles)
    hits = set() if truth is None else set(checks.indices("truth", np.asarray(truth).ravel(), titles.size,
                                                            what="item").tolist())
    columns, k = {}, None
    for name, top in lists.items():
        checks.text("lists key", name)
        top = np.asarray(top)
        if top.ndim != 1 or top.size == 0 or not np.issubdtype(top.dtype, np.integer):
            raise ValueError(f"lists[{name!r}] must be one user's 1-D integer top-k item indices, "
                             f"got {checks.describe(top)}")
        if k is not None and top.size != k:
            raise ValueError(f"every list must have the same length k = {k}, got {top.size} for {name!r}")
        k = top.size
        if ((top < -1) | (top >= titles.size)).any():
            raise ValueError(f"lists[{name!r}] must hold item indices in [0, {titles.size - 1}] or -1 (padding), "
                             f"got {top.tolist()}")
        items, counts = np.unique(top[top >= 0], return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"lists[{name!r}] must hold each item once, got item {int(items[counts > 1][0])} "
                             f"{int(counts.max())} times in {top.tolist()}")
        columns[name] = ["" if i < 0 else (HIT_MARK if int(i) in hits else "") + str(titles[i]) for i in top]
    return pd.DataFrame(columns, index=pd.RangeIndex(1, k + 1, name="rank"))


def _titles(titles, n_items: int | None = None) -> np.ndarray:
    """``titles`` as a 1-D object array (of ``n_items`` when given) without a missing (NaN or None) title."""
    titles = np.asarray(titles, dtype=object)
    if n_items is not None and titles.shape != (n_items,):
        raise ValueError(f"titles must have one title per item of the protocol, shape ({n_items},), "
                         f"got shape {titles.shape} (use lists.item_titles(ml.items, protocol.index))")
    if titles.ndim != 1 or titles.size == 0:
        raise ValueError(f"titles must be a non-empty 1-D array of item titles, got shape {titles.shape}")
    missing = np.flatnonzero(pd.isna(titles))
    if missing.size:
        raise ValueError(f"titles has no title (NaN or None) at item index {missing[:5].tolist()}; "
                         "lists.item_titles shows a missing title as '(untitled item <item_id>)'")
    return titles
