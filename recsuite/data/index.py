"""Raw ids and our indices: the ids of a log (integers or str: SKUs, UUIDs) checked, ``IndexMap`` between them
and our contiguous indices, kept for display and saved exactly, and ``to_csr``.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks


def id_values(name: str, values, flat: bool = False) -> np.ndarray:
    """Raw ids as an integer array or an object array of str; float, bool, mixed and missing ids are refused."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy()
    a = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)  # never let NumPy stringify
    a = a.ravel() if flat else a
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of ids, got {checks.describe(a)}")
    if a.size == 0 or a.dtype.kind in "iu":  # an empty list is float or object: no kind to check
        return a if a.size else a.astype(np.int64)
    if a.dtype.kind in "fO" and pd.isna(a).any():
        raise ValueError(f"{name} holds {int(pd.isna(a).sum())} missing ids (NaN or None); drop or fill them first")
    if a.dtype.kind == "U":
        a = a.astype(object)
    if a.dtype == object:
        is_str = np.fromiter((isinstance(v, str) for v in a), bool, a.size)
        if is_str.all():
            bad = [v for v in a if v == "" or "\x00" in v]  # missing, or lost by a CSV reader on load
            if bad:
                raise ValueError(f"{name} holds {len(bad)} empty ids or ids with a NUL character, e.g. {bad[0]!r}")
            return a
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in a):
            return a.astype(np.int64)
        bad = a[~is_str][0]
        raise TypeError(f"{name} must hold integer or str ids, all of one kind, got {type(bad).__name__} {bad!r} "
                        "among them")
    hint = "; cast whole-number ids with .astype('int64') (1.0 and 1 are not two ids)" if a.dtype.kind == "f" else ""
    raise TypeError(f"{name} must hold integer or str ids, got {checks.describe(a)}{hint}")


def id_kind(ids: np.ndarray) -> str:
    return "integer" if ids.dtype.kind in "iu" else "str"


@dataclass(frozen=True)
class IndexMap:
    """Raw ids <-> contiguous indices, for users and items. Every model and metric uses these indices.

    Raw ids are integers or str (SKUs, UUIDs), one kind per side; they are kept as given (``user_ids``,
    ``item_ids``: an integer array or an object array of str) for display and saving. Float, bool, mixed
    and missing (NaN, None, '') ids are refused.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """

    user_ids: np.ndarray  # sorted raw user ids; position = user index
    item_ids: np.ndarray  # sorted raw item ids; position = item index

    def __post_init__(self):
        for name in ("user_ids", "item_ids"):
            a = id_values(name, getattr(self, name))
            if a.size == 0 or (a.size > 1 and not np.all(a[1:] > a[:-1])):
                raise ValueError(f"{name} must be sorted distinct ids, at least one (IndexMap.from_ids makes them "
                                 f"so), got {checks.describe(a)}")
            object.__setattr__(self, name, a)

    @classmethod
    def from_ids(cls, user_ids, item_ids) -> "IndexMap":
        """An index over the distinct ids (integers or str), sorted."""
        return cls(np.unique(id_values("user_ids", user_ids)), np.unique(id_values("item_ids", item_ids)))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @staticmethod
    def _lookup(known: np.ndarray, raw, what: str) -> np.ndarray:
        shape = np.shape(raw)
        raw = id_values(f"{what} ids", raw, flat=True)
        if raw.size and id_kind(raw) != id_kind(known):
            raise TypeError(f"{what} ids must be {id_kind(known)} ids like the index's, got {id_kind(raw)} ids")
        idx = np.searchsorted(known, raw) if raw.size else np.zeros(0, np.int64)
        ok = (idx < len(known)) & (known[np.minimum(idx, len(known) - 1)] == raw)
        if not np.all(ok):
            bad = np.unique(raw[~ok])[:5]
            raise ValueError(f"{what} ids not in the index: {bad.tolist()} (of {int((~ok).sum())} unknown)")
        return idx.astype(np.int64).reshape(shape)

    def user_index(self, raw_user_ids) -> np.ndarray:
        return self._lookup(self.user_ids, raw_user_ids, "user")

    def item_index(self, raw_item_ids) -> np.ndarray:
        return self._lookup(self.item_ids, raw_item_ids, "item")

    def save(self, path: Path) -> None:
        """An ``.npz`` at exactly ``path``: integer ids as arrays, str ids as JSON text (exact for any str)."""
        arrays = {}
        for name, ids in (("user_ids", self.user_ids), ("item_ids", self.item_ids)):  # np.savez would pickle str ids
            arrays.update({name: ids} if id_kind(ids) == "integer" else {f"{name}_json": np.array(json.dumps(list(ids)))})
        with open(file_path("path", path), "wb") as fh:  # np.savez(str) would append ".npz" to another suffix
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> "IndexMap":
        with np.load(file_path("path", path)) as z:
            ids = [z[n] if n in z.files else np.array(json.loads(str(z[f"{n}_json"])), dtype=object)
                   for n in ("user_ids", "item_ids")]
        return cls(*ids)


def file_path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value.strip()):
        raise TypeError(f"{name} must be a non-empty str or os.PathLike, got {checks.describe(value)}")
    return Path(value)


def to_csr(df: pd.DataFrame, n_users: int, n_items: int, values: str | None = None) -> sp.csr_matrix:
    """Users x items CSR from a frame with ``user_idx``/``item_idx`` columns (1.0, or the column ``values``).

    Each (user_idx, item_idx) pair must occur once: a repeated pair is refused, never summed into one entry.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if values is not None:
        values = checks.text("values", values)
    checks.columns("df", df, ["user_idx", "item_idx"] + ([] if values is None else [values]))
    n_users = checks.positive_int("n_users", n_users)
    n_items = checks.positive_int("n_items", n_items)
    users = checks.indices("df['user_idx']", df.user_idx.to_numpy(), n_users, what="user")
    items = checks.indices("df['item_idx']", df.item_idx.to_numpy(), n_items, what="item")
    data = np.ones(len(df), np.float32) if values is None else checks.array(
        f"df[{values!r}]", df[values].to_numpy(), ndim=1, dtype=np.float32)
    m = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))
    m.sum_duplicates()
    if m.nnz != len(df):
        dup = df.duplicated(["user_idx", "item_idx"]).to_numpy()
        first = df[["user_idx", "item_idx"]][dup].iloc[0].tolist()
        raise ValueError(f"df repeats {len(df) - m.nnz} (user_idx, item_idx) pairs (first {first}), which would be "
                         "summed into one entry; drop or aggregate the repeats first")
    m.sort_indices()
    return m
