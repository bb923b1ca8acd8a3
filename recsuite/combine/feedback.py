"""A simulated feedback loop: recommend → accept → grow the history, round after round, and its statistics per round.

A fixed "true" preference model gives each (user, item) pair a probability of being accepted when shown
(``acceptance_probabilities``); ``simulate`` asks a recommender for lists on the history so far, draws the
acceptances and adds the accepted items to the history, for a number of rounds; ``round_table`` summarises
each round's lists (coverage, the share of the catalogue ever shown, Gini of how often each item is listed,
long-tail share).
The toy's assumptions — a fixed preference model, independent acceptances, no churn — are strong, but the
mechanism is the real one (Chaney et al. 2018, "How algorithmic confounding in recommendation systems
increases homogeneity and decreases utility"; Jiang et al. 2019, "Degenerate feedback loops in recommender
systems"). Lesson 08 wrote this loop out in its cells; lesson 15 runs it with fair re-rankers through ``simulate``.

Introduced in notebooks/15_fairness.ipynb
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.progress import tqdm
from recsuite.evaluation import metrics

__all__ = ["FeedbackRun", "acceptance_probabilities", "round_table", "simulate"]

#: The id in a top-k list for "no item" (a padded slot): never accepted, never counted.
NO_ITEM = metrics.NO_ITEM


def acceptance_probabilities(true_scores, max_p: float = 0.5, scale: float = 100.0, catalogue=None) -> np.ndarray:
    """Probability that each user accepts each item when it is shown: ``max_p · exp(−rank / scale)``.

    ``rank`` is 0 for the user's favourite item under ``true_scores`` (a stable argsort of the negated scores,
    so equal scores rank by item index), 1 for the next, and so on. Items outside ``catalogue`` (a boolean
    mask over items) are ranked after every catalogue item, as lesson 08 does by giving them a score of −inf,
    so the ranks of catalogue items are the same; their probability is 0 here where lesson 08 leaves them
    a tiny positive one. The two agree wherever a list can reach: the lesson's lists come from the catalogue
    only. Pass the scores unmasked (finite) and the mask as ``catalogue``.

    Returns:
        A float64 (n_users, n_items) array in [0, max_p].

    Introduced in notebooks/15_fairness.ipynb
    """
    s = checks.score_matrix("true_scores", true_scores)  # a float64 copy; NaN/inf refused
    max_p = checks.number("max_p", max_p, low=0.0, high=1.0)
    scale = checks.positive_number("scale", scale)
    hidden = None
    if catalogue is not None:
        hidden = ~checks.catalogue_mask(catalogue, s.shape[1])
        s[:, hidden] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")
    rank = np.empty_like(order)  # the inverse permutation: the same ranks as lesson 08's double argsort
    np.put_along_axis(rank, order, np.arange(s.shape[1], dtype=order.dtype)[None, :], axis=1)
    p = max_p * np.exp(-rank / scale)
    if hidden is not None:
        p[:, hidden] = 0.0
    return p


@dataclass(frozen=True)
class FeedbackRun:
    """What ``simulate`` did, round by round.

    ``lists`` holds the (rounds, n_users, k) int64 lists shown (-1 = no item), ``accepted`` the
    (rounds, n_users, k) booleans of the slots accepted, ``history`` the binary float32 CSR after the last
    round and ``start_history`` the CSR the loop started from.

    Introduced in notebooks/15_fairness.ipynb
    """

    lists: np.ndarray
    accepted: np.ndarray
    history: sp.csr_matrix
    start_history: sp.csr_matrix

    @property
    def rounds(self) -> int:
        return int(self.lists.shape[0])


def _round_lists(top, r: int, n_users: int, n_items: int, width: int | None) -> np.ndarray:
    """``recommend``'s output in round ``r`` (0-based) as an int64 (n_users, k) array, or an error naming the round."""
    where = f"recommend's lists in round {r + 1}"
    if sp.issparse(top):
        raise TypeError(f"{where} must be a dense int array (n_users, k), got {checks.describe(top)}")
    try:
        a = np.asarray(top)
    except (TypeError, ValueError):
        raise TypeError(f"{where} must be an int array (n_users, k), got {checks.describe(top)}") from None
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{where} must be an int array (n_users, k) of item indices, got {checks.describe(a)}")
    want = f"({n_users}, {'k' if width is None else width})"
    if a.ndim != 2 or a.shape[0] != n_users or a.shape[1] == 0 or (width is not None and a.shape[1] != width):
        raise ValueError(f"{where} must have shape {want} (one list per user of the history"
                         f"{'' if width is None else ', as wide as in round 1'}), got shape {a.shape}")
    if a.min() < NO_ITEM or a.max() >= n_items:
        raise ValueError(f"{where} hold {int(a.min())}..{int(a.max())}; expected item indices in [0, {n_items}) "
                         "or -1 for no item")
    s = np.sort(a, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] != NO_ITEM)
    if dup.any():
        user = int(np.flatnonzero(dup.any(axis=1))[0])
        raise ValueError(f"{where} repeat an item within a list (first for user {user}); lists must be unique")
    return a.astype(np.int64, copy=False)


def simulate(recommend: Callable, start_history, accept_p, rounds: int, seed: int = 0,
             progress: bool = True) -> FeedbackRun:
    """``rounds`` rounds of recommend → accept → grow the history, as lesson 08's loop.

    Round r (0-based) calls ``recommend(history)`` for an int (n_users, k) array of item indices (-1 pads a
    short list; k is the same every round), draws ``np.random.default_rng([seed, r]).random((n_users, k))``
    and accepts slot (u, j) when its draw is below ``accept_p[u, item]``; a padded slot is never accepted.
    The draws depend on the seed and the round only, so every recommender run with one seed sees the same
    draws: two arms that show a user the same list in a round get the same acceptances. The accepted items
    join the history, which is binary float32 from then on (``(history + new).astype(bool)``, as lesson 08):
    round 1's ``recommend`` gets ``start_history`` as given (checked, as float32 CSR), later rounds the
    binary history. ``recommend`` gets a copy, so it cannot change the loop's history.

    Args:
        recommend: a function of the history (a users × items CSR) returning the round's lists.
        start_history: the users × items CSR the loop starts from (non-negative, no repeated entries).
        accept_p: float (n_users, n_items) acceptance probabilities in [0, 1], e.g. ``acceptance_probabilities``.

    Introduced in notebooks/15_fairness.ipynb
    """
    if not callable(recommend):
        raise TypeError(f"recommend must be a function of the history returning (n_users, k) item indices, "
                        f"got {checks.describe(recommend)}")
    history = checks.interactions("start_history", start_history)  # a float32 CSR copy
    n_users, n_items = history.shape
    p = checks.array("accept_p", accept_p, ndim=2, dtype=np.float64, shape=(n_users, n_items))
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"accept_p must hold probabilities in [0, 1], got values from {p.min()!r} to {p.max()!r}")
    rounds = checks.positive_int("rounds", rounds)
    seed = checks.seed("seed", seed)
    progress = checks.flag("progress", progress)

    start, lists, accepted, width = history.copy(), [], [], None
    for r in tqdm(range(rounds), desc="rounds", unit="round", disable=not progress):
        top = _round_lists(recommend(history.copy()), r, n_users, n_items, width)
        width = top.shape[1]
        draw = np.random.default_rng([seed, r]).random(top.shape)  # the same draws in every arm
        shown = top != NO_ITEM
        ok = (draw < np.take_along_axis(p, np.where(shown, top, 0), axis=1)) & shown
        u, c = np.nonzero(ok)
        new = sp.csr_matrix((np.ones(len(u), np.float32), (u, top[u, c])), shape=history.shape)
        history = (history + new).astype(bool).astype(np.float32).tocsr()
        lists.append(top)
        accepted.append(ok)
    return FeedbackRun(lists=np.stack(lists), accepted=np.stack(accepted), history=history, start_history=start)


def round_table(run: FeedbackRun, n_items: int, k: int | None = None, catalogue=None, tail=None) -> pd.DataFrame:
    """One row per round of ``run``: acceptances and the statistics of the lists shown, as lesson 08's table.

    Columns: ``round`` (1-based); ``accepted per user`` (mean over users of the slots accepted, over the whole
    lists, since all of them were shown); ``coverage@k`` (share of the catalogue in at least one of the round's
    top-k lists); ``share ever shown`` (share of the catalogue in some top-k list of this round or an earlier
    one); ``gini@k`` (Gini index of how often each catalogue item is in the round's top-k lists, zeros
    included, ``metrics.gini_index``); with ``tail`` (a boolean mask over items) ``long-tail share@k``, the
    share of the round's listed top-k slots (-1 excluded) that hold a tail item. Coverage, share ever shown
    and Gini are over the items of ``catalogue`` (default: all ``n_items``), as lesson 08 maps its lists into
    catalogue positions; a list holding an item outside it is an error. A round whose lists hold no item
    at all has NaN Gini and tail share.

    Introduced in notebooks/15_fairness.ipynb
    """
    if not isinstance(run, FeedbackRun):
        raise TypeError(f"run must be a FeedbackRun (what simulate returns), got {checks.describe(run)}")
    n_items = checks.positive_int("n_items", n_items)
    if n_items != run.history.shape[1]:
        raise ValueError(f"n_items must be the number of items of the run's history ({run.history.shape[1]}), "
                         f"got {n_items}")
    width = run.lists.shape[2]
    k = width if k is None else checks.integer("k", k, low=1, high=width)
    cat = np.ones(n_items, bool) if catalogue is None else checks.catalogue_mask(catalogue, n_items)
    if not cat.any():
        raise ValueError("catalogue must hold at least one item, got a mask with no True entry")
    tail = None if tail is None else checks.bool_mask("tail", tail, n_items)
    n_cat = int(cat.sum())
    position = np.full(n_items + 1, NO_ITEM, dtype=np.int64)  # item -> place in the catalogue; the last is -1's
    position[np.flatnonzero(cat)] = np.arange(n_cat)

    top_all = run.lists[:, :, :k]
    outside = (top_all != NO_ITEM) & ~cat[top_all]
    if outside.any():
        r, u, j = (int(x[0]) for x in np.nonzero(outside))
        raise ValueError(f"run.lists holds items outside catalogue (e.g. item {int(top_all[r, u, j])} in round "
                         f"{r + 1}); coverage, share ever shown and Gini are over the catalogue's items")
    ever, rows = np.zeros(n_cat, dtype=bool), []
    for r in range(run.rounds):
        top = top_all[r]
        pos = position[top]  # -1 stays -1 ("no item"), through the extra last entry
        ever[pos[pos != NO_ITEM]] = True
        listed = top[top != NO_ITEM]
        row = {"round": r + 1, "accepted per user": float(run.accepted[r].sum(axis=1).mean()),
               f"coverage@{k}": metrics.catalog_coverage(pos, n_cat, k), "share ever shown": float(ever.mean()),
               f"gini@{k}": metrics.gini_index(pos, n_cat, k) if listed.size else float("nan")}
        if tail is not None:
            row[f"long-tail share@{k}"] = float(tail[listed].mean()) if listed.size else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
