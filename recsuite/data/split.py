"""The one evaluation protocol every lesson uses.

1. ``cold_item_split`` sets aside a seeded 10 % of items with *all* their interactions (new items).
2. ``temporal_user_split`` splits each user's remaining (warm) history in time: 80 % train, 10 % valid,
   10 % test.
3. ``valid`` and ``test`` rank the warm catalogue with already-seen items masked; ``cold_test`` ranks the
   cold items only ("which of the new items will this user like?").

``load_protocol()`` builds all of it from MovieLens-100K, with one explicit ``IndexMap`` from raw ids to
contiguous indices, and caches it under ``datasets/`` so every notebook gets the identical split. Raw ids
are integers or strings (SKUs, UUIDs); the indices are always ``0 … n - 1``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.paths import data_home
from recsuite.data.index import IndexMap, file_path, id_kind, id_values, to_csr
from recsuite.data.movielens import ML100K_SHA256, load_movielens_100k
from recsuite.evaluation import metrics as M
from recsuite.evaluation.bootstrap import paired_bootstrap

EVAL_SETS = ("valid", "test", "cold_test")
_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
# What a damaged cache folder raises on load (a truncated gzip or .npz, a deleted file, a missing column);
# anything else is a bug and propagates.
_DAMAGED = (OSError, ValueError, EOFError, KeyError, zlib.error, zipfile.BadZipFile)


def _check_interactions(interactions: pd.DataFrame, name: str = "interactions", unique: bool = False) -> None:
    checks.columns(name, interactions, _COLUMNS)
    for col in ("user_id", "item_id"):
        id_values(f"{name}[{col!r}]", interactions[col])
    for col in ("rating", "timestamp"):
        v = interactions[col]
        if v.dtype == bool or not pd.api.types.is_numeric_dtype(v.dtype):
            unit = " (Unix seconds)" if col == "timestamp" else ""
            raise TypeError(f"{name}[{col!r}] must hold numbers{unit}, got dtype {v.dtype}")
        bad = int((~np.isfinite(v.to_numpy(np.float64, na_value=np.nan))).sum())
        if bad:
            raise ValueError(f"{name}[{col!r}] holds {bad} missing (NaN) or infinite values; every row needs one "
                             "(recsuite.data.movielens.clean_interactions drops such rows)")
    dup = interactions.duplicated(["user_id", "item_id"]).to_numpy() if unique else np.zeros(0, bool)
    if dup.any():
        first = interactions[["user_id", "item_id"]][dup].iloc[0].tolist()
        raise ValueError(f"{name} repeats {int(dup.sum())} (user_id, item_id) pairs (first {first}); a pair could "
                         "land in both train and test. Deduplicate first, e.g. with movielens.clean_interactions")


def _check_extra_ids(name: str, ids, like: pd.Series):
    a = None if ids is None else id_values(name, ids)
    if a is not None and a.size and id_kind(a) != id_kind(like.to_numpy()):
        raise TypeError(f"{name} must hold {id_kind(like.to_numpy())} ids like interactions[{like.name!r}], "
                        f"got {id_kind(a)} ids")
    return a


def check_ratios(ratios) -> list:
    """``ratios`` (train, valid, test) checked: three non-negative numbers summing to 1, returned as a list as given
    (NumPy scalars as Python numbers, so that its JSON is unchanged). Spark's split checks them here too.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    numbers = isinstance(ratios, (tuple, list, np.ndarray)) and np.ndim(ratios) == 1 and all(
        isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)) for x in ratios)
    if not numbers:
        raise TypeError(f"ratios must be three non-negative numbers (train, valid, test) summing to 1, got {ratios!r}")
    r = np.asarray(ratios, dtype=float)
    if len(r) != 3 or not np.all(np.isfinite(r)) or np.any(r < 0) or not np.isclose(r.sum(), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers (train, valid, test) summing to 1, got {ratios!r}")
    return [x.item() if isinstance(x, np.generic) else x for x in ratios]


def temporal_user_split(interactions: pd.DataFrame, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split each user's interactions in time into (train, valid, test).

    Per user, rows are ordered by timestamp, ties broken by item_id. With n rows, valid and test get
    ``floor(ratio * n)`` rows each but at least one when n >= 3, train the rest (so train is never
    empty); users with fewer than 3 rows stay entirely in train. Every row lands in exactly one part.
    A repeated (user_id, item_id) pair is refused: its copies could land in train and in test.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    _check_interactions(interactions, unique=True)
    r = np.asarray(check_ratios(ratios), dtype=float)
    df = interactions.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)
    pos = df.groupby("user_id", sort=False).cumcount().to_numpy()
    n = df.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    n_valid = np.floor(r[1] * n).astype(int)
    n_test = np.floor(r[2] * n).astype(int)
    big = n >= 3
    n_valid = np.where(big & (r[1] > 0), np.maximum(n_valid, 1), np.where(big, n_valid, 0))
    n_test = np.where(big & (r[2] > 0), np.maximum(n_test, 1), np.where(big, n_test, 0))
    n_train = n - n_valid - n_test
    train = df[pos < n_train]
    valid = df[(pos >= n_train) & (pos < n_train + n_valid)]
    test = df[pos >= n_train + n_valid]
    return train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True)


def draw_cold_items(items, cold_frac: float = 0.1, seed: int = 0) -> np.ndarray:
    """The cold items: a seeded uniform draw of ``round(cold_frac * n_items)`` of the distinct ``items`` (at least
    one, never all), the one draw that ``cold_item_split`` and Spark's split (``recsuite.scale.spark.split``) share.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    cold_frac = checks.number("cold_frac", cold_frac, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = checks.seed("seed", seed)
    items = np.unique(id_values("items", items))
    if len(items) < 2:
        raise ValueError(f"interactions must hold at least 2 distinct items (one held out cold, one kept warm), "
                         f"got {len(items)}")
    n_cold = max(1, int(round(cold_frac * len(items))))
    if n_cold >= len(items):
        raise ValueError(f"cold_frac={cold_frac} of {len(items)} items holds out all {n_cold} of them, leaving no "
                         "warm item; use a smaller cold_frac or more items")
    return np.random.default_rng(seed).choice(items, size=n_cold, replace=False)


def cold_item_split(interactions: pd.DataFrame, cold_frac: float = 0.1, seed: int = 0
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a seeded ``cold_frac`` of items with every one of their interactions: (warm, cold).

    Items are drawn uniformly (not by popularity) from the items present, so cold items look like
    the catalogue (``draw_cold_items``): ``round(cold_frac * n_items)`` of them, at least one and never all.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    _check_interactions(interactions)
    cold_items = draw_cold_items(interactions.item_id.to_numpy(), cold_frac, seed)
    is_cold = interactions.item_id.isin(cold_items).to_numpy()
    return interactions[~is_cold].reset_index(drop=True), interactions[is_cold].reset_index(drop=True)


def time_order(users, timestamps, items) -> np.ndarray:
    """The positions that sort interactions by user, then time, then item index: the one order in which every
    sequential reader (``Protocol.sequences``, ``Protocol.next_items``, the RecBole files) takes a history.

    Equal timestamps are common (MovieLens stores rating times to the second), so the item index decides
    among them and the order never depends on the row order of a frame.

    Introduced in notebooks/13_sequential.ipynb
    """
    u, t, i = np.asarray(users), np.asarray(timestamps), np.asarray(items)
    if not (u.ndim == t.ndim == i.ndim == 1) or not len(u) == len(t) == len(i):
        raise ValueError(f"users, timestamps and items must be 1-D and of one length, got shapes {u.shape}, "
                         f"{t.shape}, {i.shape}")
    return np.lexsort((i, t, u))


@dataclass
class Protocol:
    """The split every lesson shares: frames with ``user_idx``/``item_idx``, the index and the item sets.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """

    index: IndexMap
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    cold_test: pd.DataFrame
    cold_items: np.ndarray  # item indices
    params: dict = field(default_factory=dict)
    _csr: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return self.index.n_users

    @property
    def n_items(self) -> int:
        return self.index.n_items

    @property
    def warm_items(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_items), self.cold_items)

    def frame(self, name: str) -> pd.DataFrame:
        checks.one_of("name", name, ("train", *EVAL_SETS))
        return getattr(self, name)

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary users x items matrix of one part (``train``, ``valid``, ``test``, ``cold_test``).

        Built once and kept while the part's indices are unchanged: a frame replaced or edited in place
        gets a fresh matrix, never a stale one.
        """
        frame = self.frame(name)
        checks.columns(f"protocol.{name}", frame, list(checks.KEYS))
        users, items = frame["user_idx"].to_numpy(), frame["item_idx"].to_numpy()
        memo = self._csr.get(name)
        if memo is None or memo[2].shape != (self.n_users, self.n_items) or not (
                np.array_equal(memo[0], users) and np.array_equal(memo[1], items)):
            memo = self._csr[name] = (users.copy(), items.copy(), to_csr(frame, self.n_users, self.n_items))
        return memo[2]

    def _check_eval_set(self, eval_set: str) -> None:
        checks.one_of("eval_set", eval_set, EVAL_SETS)

    def history_frame(self, eval_set: str) -> pd.DataFrame:
        """What a model may be fit on before ranking ``eval_set``: train for valid, train+valid otherwise."""
        self._check_eval_set(eval_set)
        return self.train if eval_set == "valid" else pd.concat([self.train, self.valid], ignore_index=True)

    def history(self, eval_set: str) -> sp.csr_matrix:
        """``history_frame`` as a binary CSR; these items are masked when ranking ``eval_set``."""
        self._check_eval_set(eval_set)
        if eval_set == "valid":
            return self.csr("train")
        return (self.csr("train") + self.csr("valid")).astype(bool).astype(np.float32).tocsr()

    def sequences(self, eval_set: str) -> list[np.ndarray]:
        """Per user (``n_users`` arrays), the item indices of ``history_frame(eval_set)``, oldest first.

        Ties in time are broken by item index; a user with no history gets an empty array. This is the
        order a sequential model or a language-model prompt reads a history in.

        Introduced in notebooks/10_llm_recommenders.ipynb
        """
        f = self.history_frame(eval_set)
        users, items = f.user_idx.to_numpy(np.int64), f.item_idx.to_numpy(np.int64)
        order = time_order(users, f.timestamp.to_numpy(), items)
        bounds = np.cumsum(np.bincount(users, minlength=self.n_users))[:-1]
        return np.split(items[order], bounds)

    def next_items(self, eval_set: str) -> sp.csr_matrix:
        """Binary CSR with each user's *first* item of ``eval_set`` in time (ties by item index), 0 rows without.

        The next-item view of a split: what a sequential model is built to predict, one item per user.

        Introduced in notebooks/13_sequential.ipynb
        """
        self._check_eval_set(eval_set)
        f = self.frame(eval_set)
        users, items = f.user_idx.to_numpy(np.int64), f.item_idx.to_numpy(np.int64)
        order = time_order(users, f.timestamp.to_numpy(), items)
        users, items = users[order], items[order]
        first = np.r_[True, users[1:] != users[:-1]] if len(users) else np.zeros(0, bool)
        return sp.csr_matrix((np.ones(int(first.sum()), np.float32), (users[first], items[first])),
                             shape=(self.n_users, self.n_items))

    def catalogue(self, eval_set: str) -> np.ndarray:
        """Boolean (n_items,) mask of the catalogue ranked for ``eval_set`` (the ``catalogue`` mask)."""
        self._check_eval_set(eval_set)
        mask = np.zeros(self.n_items, dtype=bool)
        mask[self.cold_items if eval_set == "cold_test" else self.warm_items] = True
        return mask

    def item_popularity(self, eval_set: str = "test") -> np.ndarray:
        """Interactions per item in the history of ``eval_set`` (cold items: 0)."""
        return np.asarray(self.history(eval_set).sum(axis=0)).ravel()

    def rank(self, scores: np.ndarray, eval_set: str, k: int = 10) -> np.ndarray:
        """Top-k item indices per user for ``eval_set``: history masked, catalogue restricted."""
        self._check_eval_set(eval_set)
        shape = np.shape(scores)
        if len(shape) != 2 or shape != (self.n_users, self.n_items):
            raise ValueError(f"scores must have shape (n_users, n_items) = ({self.n_users}, {self.n_items}), one "
                             f"column per item of the protocol's index, got shape {shape}")
        seen = None if eval_set == "cold_test" else self.history(eval_set)
        return M.topk_from_scores(scores, k, seen=seen, catalogue=self.catalogue(eval_set))

    def evaluate(self, scores: np.ndarray, eval_set: str, k: int = 10, **beyond) -> dict:
        """All metrics of ``M.evaluate`` for a users x items score matrix on ``eval_set``.

        ``beyond`` is passed to ``metrics.evaluate`` (``item_vectors=``, ...); coverage is over the
        ranked catalogue and novelty uses the popularity in ``eval_set``'s history.
        """
        topk = self.rank(scores, eval_set, k)
        beyond.setdefault("catalogue", self.catalogue(eval_set))
        beyond.setdefault("item_popularity", self.item_popularity(eval_set))
        return M.evaluate(topk, self.csr(eval_set), k=k, **beyond)

    def evaluate_topk(self, topk: np.ndarray, eval_set: str, k: int = 10, **beyond) -> dict:
        """``evaluate`` for ready-made top-k lists (a re-ranker's or a two-stage ranker's output).

        The lists must respect the protocol: no history items, only the ranked catalogue.
        """
        top = self._checked_topk(topk, eval_set, k)
        beyond.setdefault("catalogue", self.catalogue(eval_set))
        beyond.setdefault("item_popularity", self.item_popularity(eval_set))
        return M.evaluate(top, self.csr(eval_set), k=k, **beyond)

    def _checked_topk(self, topk, eval_set: str, k: int) -> np.ndarray:
        self._check_eval_set(eval_set)
        top = np.asarray(topk)
        if top.ndim != 2 or top.shape[0] != self.n_users:
            raise ValueError(f"topk must have one row per user ({self.n_users}), got shape {top.shape}")
        if top.size and not np.issubdtype(top.dtype, np.integer):
            raise TypeError(f"topk must hold integer item indices, got dtype {top.dtype}")
        top = top[:, :k]
        ranked = self.catalogue(eval_set)
        if top.size and (top.min() < M.NO_ITEM or top.max() >= self.n_items):
            raise ValueError(f"topk holds item indices outside [0, {self.n_items}) (and -1, no item)")
        listed = top != M.NO_ITEM  # a short list's padding, as Protocol.rank gives it
        safe = np.where(listed, top, 0)
        if not np.all(ranked[safe][listed]):
            raise ValueError(f"topk recommends items outside the {eval_set} catalogue")
        if eval_set != "cold_test" and (self.history(eval_set)[np.arange(self.n_users)[:, None], safe].toarray()
                                        * listed).any():
            raise ValueError(f"topk recommends items already in the {eval_set} history")
        return top

    def per_user(self, scores=None, eval_set: str = "test", k: int = 10, metric: str = "ndcg", topk=None) -> pd.Series:
        """One ranking metric per user on ``eval_set`` (NaN for users without relevant items).

        Give a users x items ``scores`` matrix (ranked as ``rank`` does) or ready-made ``topk`` lists
        (checked as ``evaluate_topk`` checks them). Feed two of these to ``bootstrap.paired_bootstrap``.

        Introduced in notebooks/01_data_preprocessing.ipynb
        """
        if (scores is None) == (topk is None):
            raise ValueError("give exactly one of scores= (a users x items matrix) and topk= (ready-made lists)")
        checks.one_of("metric", metric, M.RANKING)
        top = self.rank(scores, eval_set, k) if topk is None else self._checked_topk(topk, eval_set, k)
        return M.per_user_metrics(top, self.csr(eval_set), k)[f"{metric}@{k}"]

    def compare(self, a, b, eval_set: str, k: int = 10, metric: str = "ndcg", topk: bool = False, **bootstrap):
        """``bootstrap.paired_bootstrap`` of model ``a`` against model ``b`` on the same users of ``eval_set``.

        ``a`` and ``b`` are score matrices, or top-k lists with ``topk=True``; ``bootstrap`` goes to
        ``paired_bootstrap`` (``n_boot``, ``seed``, ``level``, ``relative``).

        Introduced in notebooks/01_data_preprocessing.ipynb
        """
        kind = "topk" if checks.flag("topk", topk) else "scores"
        return paired_bootstrap(self.per_user(eval_set=eval_set, k=k, metric=metric, **{kind: a}),
                                self.per_user(eval_set=eval_set, k=k, metric=metric, **{kind: b}), **bootstrap)

    def summary(self) -> pd.DataFrame:
        """Rows, users and items in each part."""
        rows = [{"part": name, "interactions": len(df), "users": df.user_id.nunique(), "items": df.item_id.nunique()}
                for name, df in ((n, self.frame(n)) for n in ("train", *EVAL_SETS))]
        return pd.DataFrame(rows).set_index("part")

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = file_path("folder", folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # A unique temp folder per writer, then one atomic rename: concurrent savers never share files.
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        try:
            self.index.save(tmp / "index.npz")
            for name in ("train", *EVAL_SETS):
                self.frame(name)[_COLUMNS].to_csv(tmp / f"{name}.csv.gz", index=False)
            np.save(tmp / "cold_items.npy", self.cold_items)
            (tmp / "params.json").write_text(json.dumps(self.params, indent=1, sort_keys=True))
            try:
                tmp.rename(folder)
            except OSError:
                if not folder.exists():
                    raise
                # another process built the same protocol first; its copy is identical, keep it
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> "Protocol":
        folder = file_path("folder", folder)
        index = IndexMap.load(folder / "index.npz")
        ids = {c: "int64" if id_kind(getattr(index, f"{c}s")) == "integer" else str for c in ("user_id", "item_id")}
        frames = {}
        for name in ("train", *EVAL_SETS):
            # str ids read as written ("007", "NA" and "null" stay text); numbers read back exactly
            df = pd.read_csv(folder / f"{name}.csv.gz", dtype=ids, na_filter=False, float_precision="round_trip")
            for col in ("rating", "timestamp"):
                if df[col].dtype == object and not len(df):  # an empty part: nothing to infer a type from
                    df[col] = df[col].astype("int64")
            frames[name] = _with_indices(df, index)
        params = json.loads((folder / "params.json").read_text())
        return cls(index, cold_items=np.load(folder / "cold_items.npy"), params=params, **frames)


def _with_indices(df: pd.DataFrame, index: IndexMap) -> pd.DataFrame:
    out = df[_COLUMNS].copy()
    for col, ids in (("user_id", index.user_ids), ("item_id", index.item_ids)):
        if id_kind(ids) == "str":  # one dtype for str ids however they came (object, "string"), as they load back
            out[col] = out[col].astype(object)
    out["user_idx"] = index.user_index(out.user_id.to_numpy())
    out["item_idx"] = index.item_index(out.item_id.to_numpy())
    return out.reset_index(drop=True)


def _params(ratios, cold_frac, seed) -> dict:
    """The split's parameters as JSON data (the cache key and ``Protocol.params``), each checked."""
    return {"ratios": check_ratios(ratios), "seed": checks.seed("seed", seed),
            "cold_frac": checks.number("cold_frac", cold_frac, low=0.0, high=1.0, low_open=True, high_open=True)}


def make_protocol(interactions: pd.DataFrame, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  cold_frac: float = 0.1, seed: int = 0, all_user_ids=None, all_item_ids=None) -> Protocol:
    """Cold items first, then the temporal split of the warm interactions, indexed in one ``IndexMap``.

    The index covers every user and item in ``interactions`` (plus ``all_*_ids`` when given, e.g.
    catalogue items nobody rated), cold items included, so one score matrix serves every eval set. Ids are
    integers or str (one kind per column; see ``IndexMap``); ``rating`` and ``timestamp`` are finite numbers;
    each (user_id, item_id) pair occurs once and at least 2 distinct items are needed (one warm, one cold).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    _check_interactions(interactions, unique=True)
    params = _params(ratios, cold_frac, seed)
    all_user_ids = _check_extra_ids("all_user_ids", all_user_ids, interactions.user_id)
    all_item_ids = _check_extra_ids("all_item_ids", all_item_ids, interactions.item_id)
    warm, cold = cold_item_split(interactions, cold_frac=cold_frac, seed=seed)
    train, valid, test = temporal_user_split(warm, ratios)
    users = interactions.user_id.to_numpy() if all_user_ids is None else np.union1d(interactions.user_id, all_user_ids)
    items = interactions.item_id.to_numpy() if all_item_ids is None else np.union1d(interactions.item_id, all_item_ids)
    index = IndexMap.from_ids(users, items)
    cold_items = index.item_index(np.unique(cold.item_id.to_numpy()))
    parts = {name: _with_indices(f, index) for name, f in zip(("train", "valid", "test", "cold_test"),
                                                                (train, valid, test, cold))}
    return Protocol(index=index, cold_items=np.sort(cold_items), params=params, **parts)


def load_protocol(ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), cold_frac: float = 0.1, seed: int = 0,
                  cache: bool = True) -> Protocol:
    """The suite's protocol on MovieLens-100K, from the ``datasets/`` cache or rebuilt deterministically.

    The cache folder name hashes the parameters and the data checksums, so a change of either builds a
    new split instead of returning a stale one.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    cache = checks.flag("cache", cache)
    key = json.dumps({**_params(ratios, cold_frac, seed), "data": ML100K_SHA256}, sort_keys=True)
    folder = data_home() / "processed" / f"ml-100k-protocol-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if cache and (folder / "params.json").is_file():
        try:
            return Protocol.load(folder)
        except _DAMAGED:  # a truncated, deleted or garbled file inside it: rebuild it below; a bug propagates
            shutil.rmtree(folder, ignore_errors=True)
    ml = load_movielens_100k()
    proto = make_protocol(ml.interactions, ratios, cold_frac, seed, all_user_ids=ml.users.user_id,
                          all_item_ids=ml.items.item_id)
    if cache:
        folder.parent.mkdir(parents=True, exist_ok=True)
        proto.save(folder)
    return proto


# -- leakage check --------------------------------------------------------------------------------------
def assert_no_future(seen, future, time_col: str = "timestamp") -> dict:
    """Raise AssertionError if anything the ranker saw comes from the held-out ``future`` period.

    ``seen`` holds every interaction used to build the training frame, its features and its labels (the
    history plus the label period, e.g. ``proto.history_frame("test")``, or a frame's positive rows);
    ``future`` the period to evaluate on (e.g. ``proto.test``). Checks (1) that no (user_idx, item_idx)
    pair of ``future`` occurs in ``seen`` and, when both frames have ``time_col``, (2) that per user every
    seen interaction is no later than that user's first future one (equal timestamps are allowed: the
    temporal split orders same-second interactions by item id). Returns what was checked.

    Introduced in notebooks/06_two_stage_ranker.ipynb
    """
    su, si = checks.pair_frame("seen", seen)
    fu, fi = checks.pair_frame("future", future)
    time_col = checks.text("time_col", time_col)
    n_items = np.int64(max(si.max() if len(si) else 0, fi.max() if len(fi) else 0)) + 1
    overlap = np.isin(fu * n_items + fi, su * n_items + si)
    if overlap.any():
        j = int(np.flatnonzero(overlap)[0])
        raise AssertionError(
            f"{int(overlap.sum())} future (user, item) pairs occur in seen, e.g. user {int(fu[j])} item {int(fi[j])}"
        )
    timed = time_col in seen.columns and time_col in future.columns
    users_checked = 0
    if timed:
        for name, frame in (("seen", seen), ("future", future)):
            if frame[time_col].isna().any():
                raise ValueError(f"{name}[{time_col!r}] holds missing timestamps, expected every row to have one")
        last_seen = seen.groupby("user_idx")[time_col].max()
        first_future = future.groupby("user_idx")[time_col].min()
        both = last_seen.index.intersection(first_future.index)
        late = last_seen[both] > first_future[both]
        users_checked = int(len(both))
        if late.any():
            u = int(late[late].index[0])
            raise AssertionError(f"{int(late.sum())} users have seen interactions after their first future one, e.g. "
                                 f"user {u} (last seen {last_seen[u]}, first future {first_future[u]})")
    return {"seen_rows": int(len(su)), "future_rows": int(len(fu)), "pairs_overlap": 0, "time_checked": bool(timed),
            "users_time_checked": users_checked}


def resolve_protocol(protocol=None) -> "Protocol":
    """``protocol`` itself, or ``load_protocol()`` (the lessons' protocol) for None; anything else is refused.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if protocol is None:
        return load_protocol()
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a recsuite.data.split.Protocol or None, got {checks.describe(protocol)}")
    return protocol
