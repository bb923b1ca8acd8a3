"""Argument checks every public function calls at its boundary, with one wording for every error.

Each check takes the argument's name first and the value second, returns the value converted to the
type the caller works with, and raises ``ValueError`` (wrong value) or ``TypeError`` (wrong kind of
object) whose message names the argument, what it got and what it expected — the pattern of
scikit-learn's ``utils.validation``. Private: the public functions are the boundary, not these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp


def describe(value) -> str:
    """A short description of what was passed, for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    if sp.issparse(value):
        return f"a sparse {type(value).__name__} of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """An int (NumPy ints too, never a bool) with ``low <= value <= high`` where given."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {bounds}, got {value!r}")
    return int(value)


def positive_int(name: str, value) -> int:
    return integer(name, value, low=1)


def non_negative_int(name: str, value) -> int:
    return integer(name, value, low=0)


def seed(name: str, value) -> int:
    """A seed for ``np.random.default_rng``: a non-negative int."""
    return integer(name, value, low=0)


def number(name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (not a bool) within the given bounds; ``*_open`` excludes the bound itself."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got an int of {len(str(abs(int(value))))} digits, too large for a float") from None
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if not math.isfinite(x) or too_low or too_high:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        where = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (low is not None or high is not None) else ""
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}")
    return x


def positive_number(name: str, value) -> float:
    return number(name, value, low=0.0, low_open=True)


def flag(name: str, value) -> bool:
    """True or False, and nothing that merely converts to one (``"no"``, 0, None)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def one_of(name: str, value, options: Sequence):
    """``value`` when it is one of ``options`` (compared with ==, so strings must match exactly)."""
    try:
        ok = any(value == o and type(value) is type(o) for o in options)
    except (TypeError, ValueError):  # an array compared with a string
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {describe(value)}")
    return value


def text(name: str, value, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {describe(value)}")
    if not empty and not value.strip():
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def texts(name: str, values, *, allow_empty_list: bool = False) -> list[str]:
    """A list of str from a list, tuple, 1-D array or Series of str (a single str is refused)."""
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of str, got a single str; wrap it in a list")
    if hasattr(values, "tolist") and not isinstance(values, np.ndarray):  # a pandas Series or Index
        values = values.tolist()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got an array of shape {values.shape}")
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {describe(values)}")
    for i, t in enumerate(values):
        if not isinstance(t, str):
            raise TypeError(f"{name} must contain only str, got {type(t).__name__} at position {i}")
    if not values and not allow_empty_list:
        raise ValueError(f"{name} must hold at least one str, got an empty sequence")
    return list(values)


def array(name: str, value, *, ndim: int, dtype=np.float64, shape: tuple | None = None, finite: bool = True,
          nonnegative: bool = False, empty: bool = True) -> np.ndarray:
    """A numeric array of ``ndim`` dimensions converted to ``dtype`` (a copy only when needed).

    ``shape`` may hold None for a free dimension. Bools, strings and objects are refused; so are NaN/inf
    when ``finite`` and negative entries when ``nonnegative``.
    """
    if sp.issparse(value):
        raise TypeError(f"{name} must be a dense array, got {describe(value)}; call .toarray() first")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array, got {describe(value)}") from None
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"{name} must be a numeric (int or float) array, got {describe(a)}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {describe(a)}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(a.shape, shape)):
            if want is not None and got != want:
                want_s = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
                raise ValueError(f"{name} must have shape {want_s}, got {a.shape} (axis {axis} is {got}, not {want})")
    if not empty and a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    a = a.astype(dtype, copy=False)
    if finite and np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or inf; expected finite values")
    if nonnegative and a.size and a.min() < 0:
        raise ValueError(f"{name} must be non-negative, got a minimum of {a.min()!r}")
    return a


def indices(name: str, value, n: int, *, ndim: int = 1, what: str = "index") -> np.ndarray:
    """An int64 array of indices into ``range(n)``; floats, bools and out-of-range entries are refused."""
    a = np.asarray(value)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        if a.size == 0 and a.ndim == ndim:  # np.asarray([]) is float64: an empty list is fine
            return a.astype(np.int64)
        raise TypeError(f"{name} must be an int array of {what} positions, got {describe(a)}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {describe(a)}")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name} holds {int(a.min())}..{int(a.max())}, outside [0, {n}) for {n} {what}s")
    return a.astype(np.int64, copy=False)


def sequences(name: str, value, n_items: int) -> list[np.ndarray]:
    """Histories in time order: a list (tuple, object array) of 1-D int64 item-index arrays in ``[0, n_items)``.

    One array per user, oldest first; an empty history is allowed. A 2-D int array is refused rather than read
    row by row, so that equal-length histories are a choice (``list(array)``), not an accident.
    """
    if isinstance(value, np.ndarray) and value.dtype != object:
        raise TypeError(f"{name} must be a list of 1-D item-index arrays (one per user), got a {value.ndim}-D "
                        f"{value.dtype} array; use list(array) for equal-length histories")
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list of 1-D item-index arrays (one per user), got {describe(value)}")
    return [indices(f"{name}[{u}]", s, n_items, what="item") for u, s in enumerate(value)]


def item_lists(name: str, value) -> np.ndarray:
    """A 2-D int array of item positions per user row (``topk``-like), as int64; bounds are the caller's."""
    a = np.asarray(value)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be a 2-D int array (n_users, k) of item indices, got {describe(value)}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D int array (n_users, k) of item indices, got shape {a.shape}")
    return a.astype(np.int64, copy=False)


def bool_mask(name: str, value, n: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype != bool:
        raise TypeError(f"{name} must be a boolean mask of shape ({n},), got {describe(a)}")
    if a.shape != (n,):
        raise ValueError(f"{name} must be a boolean mask of shape ({n},), got {describe(a)}")
    return a


def sparse(name: str, value, *, shape: tuple | None = None, dtype=np.float32, nonnegative: bool = False
           ) -> sp.csr_matrix:
    """A CSR matrix with finite entries (duplicates summed, indices sorted); ``shape`` may hold None."""
    if not sp.issparse(value) or value.ndim != 2:
        raise TypeError(f"{name} must be a 2-D scipy.sparse matrix, got {describe(value)}")
    if shape is not None and any(w is not None and g != w for g, w in zip(value.shape, shape)):
        want_s = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise ValueError(f"{name} must have shape {want_s}, got {value.shape}")
    if value.dtype == bool or np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating):
        m = sp.csr_matrix(value, dtype=dtype, copy=True)
    else:
        raise TypeError(f"{name} must hold numbers, got dtype {value.dtype}")
    m.sum_duplicates()
    if m.nnz and not np.isfinite(m.data).all():
        raise ValueError(f"{name} holds NaN or inf; expected finite weights")
    if nonnegative and m.nnz and m.data.min() < 0:
        raise ValueError(f"{name} must hold non-negative weights (implicit feedback), got {m.data.min()!r}")
    m.sort_indices()
    return m


def columns(name: str, frame, needed: Sequence[str]):
    """A DataFrame that has every column in ``needed``."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame with columns {list(needed)}, got {describe(frame)}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} must have columns {list(needed)}, missing {missing}")
    return frame


# -- score matrices, masks and (user, item) frames: value first, its name defaulted ---------------------
#: The key columns of a long (user_idx, item_idx) frame.
KEYS = ("user_idx", "item_idx")


def score_matrix(name: str, scores) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_users, n_items), got shape {s.shape}")
    if not (np.issubdtype(s.dtype, np.integer) or np.issubdtype(s.dtype, np.floating)):
        raise TypeError(f"{name} must be numeric (int or float), got dtype {s.dtype}")
    s = s.astype(np.float64)  # a copy: callers' arrays are never modified
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds NaN or inf; mask items with catalogue=/seen= instead")
    return s


def catalogue_mask(catalogue, n_items: int):
    """``catalogue``: None (every item) or the boolean (n_items,) mask of the items that may be ranked."""
    return None if catalogue is None else bool_mask("catalogue", catalogue, n_items)


def seen_matrix(seen, shape):
    if seen is None:
        return None
    if not sp.issparse(seen) or seen.shape != tuple(shape):
        got = getattr(seen, "shape", type(seen).__name__)
        raise ValueError(f"seen must be a scipy.sparse matrix of shape {tuple(shape)}, got {got}")
    return sp.csr_matrix(seen)


def rankable(shape, catalogue=None, seen=None):
    """Boolean (n_users, n_items) mask of the entries that will be ranked, or None when nothing is masked."""
    a = catalogue_mask(catalogue, shape[1])
    ex = seen_matrix(seen, shape)
    if a is None and ex is None:
        return None
    valid = np.ones(shape, dtype=bool) if a is None else np.repeat(a[None, :], shape[0], axis=0)
    if ex is not None:
        # every stored entry is masked, as topk_from_scores does, so the two always agree
        rows = np.repeat(np.arange(shape[0]), np.diff(ex.indptr))
        valid[rows, ex.indices] = False
    return valid


def named_scores(name: str, scores, require_mapping: bool = False) -> dict:
    if isinstance(scores, Mapping):
        items = list(scores.items())
    elif isinstance(scores, (list, tuple)) and not require_mapping:
        items = [(f"s{i}", v) for i, v in enumerate(scores)]
    else:
        want = "a dict name -> score matrix" if require_mapping else "a dict name -> score matrix or a list of them"
        raise ValueError(f"{name} must be {want}, got {type(scores).__name__}")
    if not items:
        raise ValueError(f"{name} must hold at least one score matrix, got none")
    out, shape = {}, None
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{name} keys must be non-empty strings, got {key!r}")
        s = score_matrix(f"{name}[{key!r}]", value)
        if shape is None:
            shape = s.shape
        elif s.shape != shape:
            raise ValueError(f"{name}[{key!r}] has shape {s.shape} but the first source has {shape}; all must match")
        out[key] = s
    return out


def pair_frame(name: str, frame, unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame with {list(KEYS)} columns, got {type(frame).__name__}")
    missing = [c for c in KEYS if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} must have columns {list(KEYS)}, missing {missing}")
    out = []
    for c in KEYS:
        v = frame[c].to_numpy()
        if not np.issubdtype(v.dtype, np.integer):
            raise TypeError(f"{name}[{c!r}] must hold integer indices, got dtype {v.dtype}")
        if v.size and v.min() < 0:
            raise ValueError(f"{name}[{c!r}] holds a negative index {int(v.min())}, expected indices >= 0")
        out.append(v.astype(np.int64, copy=False))
    users, items = out
    if unique and len(users):
        keys = users * (np.int64(items.max()) + 1) + items
        if len(np.unique(keys)) != len(keys):
            raise ValueError(f"{name} repeats a (user_idx, item_idx) pair; candidates must be unique per user")
    return users, items


def binary_truth(name: str, truth) -> sp.csr_matrix:
    if not sp.issparse(truth) or truth.ndim != 2:
        raise ValueError(f"{name} must be a scipy.sparse users x items matrix, got {type(truth).__name__}")
    t = sp.csr_matrix(truth, copy=True)
    t.sum_duplicates()
    if t.nnz and (not np.isfinite(t.data).all() or t.data.min() < 0):
        raise ValueError(f"{name} must hold finite non-negative entries (a non-zero entry is a relevant item), got "
                         f"values from {float(np.nanmin(t.data))} to {float(np.nanmax(t.data))}")
    t.eliminate_zeros()  # a stored 0 is not a relevant item (as in recsuite.evaluation.metrics)
    t.sort_indices()
    return t


def feature_matrix(name: str, value, rows_needed: int, width: int | None = None) -> np.ndarray:
    v = np.asarray(value)
    if v.ndim != 2 or not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)):
        raise ValueError(f"{name} must be a 2-D numeric array, got shape {v.shape} dtype {v.dtype}")
    v = v.astype(np.float32)
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if v.shape[0] < rows_needed:
        raise ValueError(f"{name} has {v.shape[0]} rows but the frame indexes row {rows_needed - 1}")
    if width is not None and v.shape[1] != width:
        raise ValueError(f"{name} has {v.shape[1]} columns but must have {width} to compare with the item side")
    return v


def feature_vector(name: str, value, rows_needed: int, allow_nan: bool = False) -> np.ndarray:
    if np.ndim(value) != 1:
        raise ValueError(f"{name} must be 1-D (one value per index, by position), got shape {np.shape(value)}")
    try:
        # via pandas so that nullable columns (Int64 years with <NA>) become NaN
        v = pd.to_numeric(pd.Series(value)).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers") from None
    if np.isinf(v).any() or (not allow_nan and np.isnan(v).any()):
        raise ValueError(f"{name} must be finite{'' if allow_nan else ' without missing values'}")
    if len(v) < rows_needed:
        raise ValueError(f"{name} has {len(v)} entries but the frame indexes entry {rows_needed - 1}")
    return v


def interactions(name: str, matrix) -> sp.csr_matrix:
    """A users x items CSR of finite non-negative float32 weights (implicit feedback), zeros not stored."""
    if sp.issparse(matrix) and matrix.ndim == 2 and matrix.nnz:
        coo = matrix.tocoo()  # a CSR/CSC may hold duplicates too; COO shows every stored entry
        keys = np.sort(coo.row.astype(np.int64) * np.int64(coo.shape[1]) + coo.col)
        dup = np.flatnonzero(keys[1:] == keys[:-1])
        if dup.size:
            u, i = divmod(int(keys[dup[0]]), coo.shape[1])
            raise ValueError(
                f"{name} repeats (user, item) entries (e.g. ({u}, {i}) more than once, {dup.size} repeats in all); "
                "sum, deduplicate or binarise it first, e.g. Protocol.history"
            )
    m = sparse(name, matrix, nonnegative=True)
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name} must have at least one user and one item, got shape {m.shape}")
    m.eliminate_zeros()  # a stored 0 is no interaction (implicit would read it as a confidence of 0)
    return m


def params(name: str, value, rules: Mapping) -> dict:
    """``value`` (a dict or None) checked against ``rules``: key -> checker(name, value); None is no parameters."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, got {describe(value)}")
    unknown = sorted(str(k) for k in set(value) - set(rules))
    if unknown:
        raise ValueError(f"{name} accepts only {sorted(rules)}, got unknown {unknown}")
    return {key: rules[key](f"{name}[{key!r}]", v) for key, v in value.items()}


def non_negative_number(name: str, value) -> float:
    return number(name, value, low=0.0)


def text_array(name: str, values) -> np.ndarray:
    """A sequence of str as a 1-D object array (so that it can be fancy-indexed by item/user index)."""
    checked = texts(name, values, allow_empty_list=True)
    arr = np.empty(len(checked), dtype=object)
    arr[:] = checked
    return arr
