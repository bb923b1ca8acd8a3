"""New users: a seeded share of users held out of every model's training, their first n interactions revealed.

The shared ``Protocol`` evaluates users who have twenty or more ratings in training. ``NewUserSplit`` asks the
question of a user who has just arrived: hold a seeded ``share`` of users out of every model's training
entirely (``history_frame`` and ``history`` have none of their rows), reveal each one's first ``n`` warm
interactions in time (``revealed(n)``, ties by item index as in ``Protocol.sequences``) and score everything
after their first ``n_max`` (``truth``). The truth is the same for every ``n``, so a curve of NDCG@k against
``n`` measures what ``n`` more items are worth, never an easier target. A seeded half of the held-out users is
the ``valid`` slice (choose blend weights there) and the rest the ``test`` slice.

Only the warm catalogue is ranked (the protocol's cold items are nobody's history here), without each held-out
user's first ``n_max`` items whatever ``n`` is (``rank``), so the candidates are the same for every ``n`` too
(which uses where the first ``n_max`` end: an evaluation choice, not something a live system could do). The
training users keep all their warm interactions (train, valid and test of the protocol), as in the shared split,
which is per user and not cut at one moment in time: a training user's ratings may postdate a new user's truth.
``check`` asserts what the split does guarantee: none of a new user's own ratings reaches a model, and their
revealed ratings precede their truth.

Introduced in notebooks/14_new_users.ipynb
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.data.index import to_csr
from recsuite.data.split import Protocol, assert_no_future, resolve_protocol, time_order
from recsuite.evaluation import metrics as M
from recsuite.evaluation.bootstrap import paired_bootstrap

N_GRID = (0, 1, 3, 5, 10)  # revealed interactions per new user that the lesson scores
PARTS = ("valid", "test")


@dataclass(eq=False)
class NewUserSplit:
    """Held-out users (``users``), their time-ordered warm interactions, and the training users' history.

    Build it with ``make_new_user_split``. ``valid_users`` and ``test_users`` split ``users``; ``ineligible``
    counts the users that could not be held out (no more than ``n_max`` warm interactions), who stay training users.

    Introduced in notebooks/14_new_users.ipynb
    """

    protocol: Protocol
    users: np.ndarray  # held-out user indices, sorted
    valid_users: np.ndarray
    test_users: np.ndarray
    sequences: list  # per held-out user (aligned with ``users``), warm item indices oldest first
    times: list  # their timestamps, aligned with ``sequences``
    n_max: int
    seed: int
    ineligible: int
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def n_users(self) -> int:
        return self.protocol.n_users

    @property
    def n_items(self) -> int:
        return self.protocol.n_items

    @property
    def catalogue(self) -> np.ndarray:
        """Boolean (n_items,) mask of the ranked items: the protocol's warm catalogue."""
        return self.protocol.catalogue("test")

    def _part(self, part: str) -> np.ndarray:
        checks.one_of("part", part, PARTS)
        return self.valid_users if part == "valid" else self.test_users

    def _n(self, n) -> int:
        return checks.integer("n", n, low=0, high=self.n_max)

    def history_frame(self) -> pd.DataFrame:
        """The interactions every model may be fit on: all warm interactions of the users not held out."""
        if "history" not in self._memo:
            p = self.protocol
            frame = pd.concat([p.train, p.valid, p.test], ignore_index=True)
            keep = ~np.isin(frame.user_idx.to_numpy(), self.users)
            self._memo["history"] = frame[keep].reset_index(drop=True)
        return self._memo["history"].copy()  # a copy: an edit by the caller never changes what check() reads

    def history(self) -> sp.csr_matrix:
        """``history_frame`` as a binary (n_users, n_items) CSR; the held-out users' rows are empty."""
        if "history_csr" not in self._memo:
            self._memo["history_csr"] = to_csr(self.history_frame(), self.n_users, self.n_items)
        return self._memo["history_csr"].copy()

    def revealed_sequences(self, n: int) -> list[np.ndarray]:
        """Per user (``n_users`` arrays): a held-out user's first ``n`` items, oldest first; empty for the others."""
        n = self._n(n)
        out = [np.zeros(0, np.int64) for _ in range(self.n_users)]
        for u, s in zip(self.users, self.sequences):
            out[u] = s[:n].copy()
        return out

    def revealed(self, n: int) -> sp.csr_matrix:
        """Binary (n_users, n_items) CSR of each held-out user's first ``n`` items (what a model may read)."""
        n = self._n(n)
        rows = np.repeat(self.users, n)
        cols = np.concatenate([s[:n] for s in self.sequences]) if len(self.users) else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(self.n_users, self.n_items))

    def revealed_frame(self, n: int) -> pd.DataFrame:
        """``user_idx``, ``item_idx``, ``timestamp``, ``step`` (0 = first) of each held-out user's first ``n`` items."""
        n = self._n(n)
        return self._frame(lambda s: slice(0, n))

    def _horizon(self, horizon):
        return None if horizon is None else checks.positive_int("horizon", horizon)

    def truth_frame(self, part: str = "test", horizon: int | None = None) -> pd.DataFrame:
        """The same columns for what comes after the first ``n_max`` items of ``part``'s users.

        ``horizon``: only the next ``horizon`` items after them (None: every later item, the lesson's truth).
        """
        users = set(self._part(part).tolist())
        h = self._horizon(horizon)
        f = self._frame(lambda s: slice(self.n_max, None if h is None else self.n_max + h))
        return f[f.user_idx.isin(users)].reset_index(drop=True)

    def _frame(self, cut) -> pd.DataFrame:
        parts = []
        for u, s, t in zip(self.users, self.sequences, self.times):
            sl = cut(s)
            steps = np.arange(len(s))[sl]
            parts.append(pd.DataFrame({"user_idx": u, "item_idx": s[sl], "timestamp": t[sl], "step": steps}))
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in ("user_idx", "item_idx", "timestamp", "step")})
        return pd.concat(parts, ignore_index=True)

    def truth(self, part: str = "test", horizon: int | None = None) -> sp.csr_matrix:
        """Binary (n_users, n_items) CSR: ``part``'s users' items after their first ``n_max`` (the next ``horizon``
        of them, or all with None); every other row is empty."""
        key = ("truth", part, self._horizon(horizon))
        if key not in self._memo:
            self._memo[key] = to_csr(self.truth_frame(part, horizon), self.n_users, self.n_items)
        return self._memo[key]

    def rank(self, scores, k: int = 10) -> np.ndarray:
        """(n_users, k) top-k over the warm catalogue without each held-out user's first ``n_max`` items.

        The same candidates for every ``n``: the revealed items are the user's, and the ones between the ``n``-th
        and the ``n_max``-th are neither revealed nor truth (a miss would punish recommending what the user did
        watch; a hit would move the target with ``n``), so none of them is ranked. Only the scores change with
        ``n``, and they may read ``revealed(n)`` alone.
        """
        shape = np.shape(scores)
        if shape != (self.n_users, self.n_items):
            raise ValueError(f"scores must have shape (n_users, n_items) = ({self.n_users}, {self.n_items}), got "
                             f"shape {shape}")
        return M.topk_from_scores(scores, k, seen=self.revealed(self.n_max), catalogue=self.catalogue)

    def per_user(self, scores, part: str = "test", k: int = 10, metric: str = "ndcg",
                 horizon: int | None = None) -> pd.Series:
        """One ranking metric per user (length ``n_users``) against ``truth(part, horizon)``; NaN outside ``part``."""
        checks.one_of("metric", metric, M.RANKING)
        users = self._part(part)
        values = M.per_user_metrics(self.rank(scores, k), self.truth(part, horizon), k)[f"{metric}@{k}"]
        out = pd.Series(np.nan, index=values.index, name=values.name)
        out.iloc[users] = values.iloc[users]
        return out

    def evaluate(self, scores, part: str = "test", k: int = 10, metric: str = "ndcg",
                 horizon: int | None = None) -> float:
        """Mean ``metric``@``k`` over ``part``'s held-out users."""
        return float(np.nanmean(self.per_user(scores, part, k, metric, horizon).to_numpy()))

    def evaluate_all(self, scores, part: str = "test", k: int = 10) -> dict:
        """Every metric of ``metrics.evaluate`` over ``part``'s held-out users (coverage over the warm catalogue).

        Only ``part``'s users' lists are read, so coverage and Gini describe what they were shown.
        """
        users = self._part(part)
        return M.evaluate(self.rank(scores, k)[users], self.truth(part)[users], k=k, catalogue=self.catalogue)

    def compare(self, a, b, part: str = "test", k: int = 10, metric: str = "ndcg", horizon: int | None = None,
                **bootstrap):
        """``paired_bootstrap`` of score matrix ``a`` against ``b`` on ``part``'s users (``n_boot``, ``seed``, ...)."""
        return paired_bootstrap(self.per_user(a, part, k, metric, horizon), self.per_user(b, part, k, metric, horizon),
                                **bootstrap)

    def check(self) -> dict:
        """Assert that nothing of a held-out user's future reaches a model; returns what was checked.

        (1) no held-out user has a row in ``history_frame``; (2) per user, the ``n_max`` revealed items come
        strictly before the truth in the (time, item) order and no (user, item) pair is in both
        (``split.assert_no_future``); (3) ``valid_users`` and ``test_users`` are disjoint and cover ``users``.
        """
        leaked = np.intersect1d(self.history_frame().user_idx.to_numpy(), self.users)
        if len(leaked):
            raise AssertionError(f"{len(leaked)} held-out users have training rows, e.g. user {int(leaked[0])}")
        if len(np.intersect1d(self.valid_users, self.test_users)) or not np.array_equal(
                np.union1d(self.valid_users, self.test_users), self.users):
            raise AssertionError("valid_users and test_users must split users: disjoint, and together all of them")
        seen, future = self.revealed_frame(self.n_max), self._frame(lambda s: slice(self.n_max, None))
        checked = assert_no_future(seen, future)
        return {"held_out_users": int(len(self.users)), "training_users": int(self.history_frame().user_idx.nunique()),
                "revealed_rows": int(len(seen)), "truth_rows": int(len(future)), **checked}

    def summary(self) -> pd.DataFrame:
        """Users and ratings of each part: the training users' ratings, and each slice's revealed and truth ratings."""
        rows = [{"part": "training users", "users": int(self.history_frame().user_idx.nunique()),
                 "training ratings": len(self.history_frame())}]
        for part in PARTS:
            rows.append({"part": f"new users: {part}", "users": len(self._part(part)),
                         "revealed (first n_max)": len(self._part(part)) * self.n_max,
                         "truth ratings": int(self.truth(part).nnz)})
        return pd.DataFrame(rows).set_index("part").astype("Int64")


def make_new_user_split(protocol=None, share: float = 0.2, n_max: int = 10, valid_share: float = 0.5,
                        seed: int = 0) -> NewUserSplit:
    """Hold a seeded ``share`` of ``protocol``'s users out of training; reveal up to ``n_max`` of each one's items.

    Eligible are the users with more than ``n_max`` warm interactions (in the protocol's train, valid and test),
    so that every held-out user has a truth after the ``n_max`` revealed items; the others stay training users
    (``NewUserSplit.ineligible`` counts them; on MovieLens-100K there are none). ``share`` of all users is drawn
    from the eligible ones with ``seed``; ``valid_share`` of them form the validation slice. Raises ValueError
    when fewer eligible users exist than the share asks for.

    Introduced in notebooks/14_new_users.ipynb
    """
    protocol = resolve_protocol(protocol)
    share = checks.number("share", share, low=0.0, high=1.0)
    valid_share = checks.number("valid_share", valid_share, low=0.0, high=1.0)
    if not 0.0 < share < 1.0 or not 0.0 < valid_share < 1.0:
        raise ValueError(f"share and valid_share must be strictly between 0 and 1, got share={share!r}, "
                         f"valid_share={valid_share!r}")
    n_max = checks.positive_int("n_max", n_max)
    seed = checks.seed("seed", seed)
    frame = pd.concat([protocol.frame(p) for p in ("train", "valid", "test")], ignore_index=True)
    frame = frame[protocol.catalogue("test")[frame.item_idx.to_numpy()]]  # warm items only
    users, items = frame.user_idx.to_numpy(np.int64), frame.item_idx.to_numpy(np.int64)
    ts = frame.timestamp.to_numpy()
    order = time_order(users, ts, items)
    users, items, ts = users[order], items[order], ts[order]
    counts = np.bincount(users, minlength=protocol.n_users)
    eligible = np.flatnonzero(counts > n_max)
    n_held = int(round(share * protocol.n_users))
    if n_held < 2 or n_held > len(eligible):
        raise ValueError(f"share={share} of {protocol.n_users} users is {n_held} held-out users; {len(eligible)} users "
                         f"have more than n_max={n_max} warm interactions and at least 2 are needed")
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(eligible, size=n_held, replace=False))
    n_valid = min(max(int(round(valid_share * n_held)), 1), n_held - 1)
    valid = np.sort(rng.choice(held, size=n_valid, replace=False))
    starts = np.r_[0, np.cumsum(counts)]
    seqs = [items[starts[u]:starts[u + 1]].copy() for u in held]
    times = [ts[starts[u]:starts[u + 1]].copy() for u in held]
    return NewUserSplit(protocol, held, valid, np.setdiff1d(held, valid), seqs, times, n_max, seed,
                        ineligible=int(protocol.n_users - len(eligible)))
