"""Row-wise L2 normalisation, the one helper that cosine similarity needs everywhere in the package.

Private, like ``_checks``: ``metrics``, ``semantic``, ``ranker`` and ``rerank`` call it after their own
boundary checks.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def unit_rows(v: np.ndarray) -> np.ndarray:
    """``v`` with each row divided by its L2 norm, in ``v``'s float dtype; a zero row stays zero.

    A zero vector (an empty history, a vector equal to the mean) has cosine 0 to everything instead
    of NaN. Rows whose squares overflow (entries beyond ~1e154) are first scaled by their largest
    entry, which cosine ignores.
    """
    v = np.asarray(v)
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float64)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    if not np.isfinite(norm).all():
        scale = np.maximum(np.abs(v).max(axis=1, keepdims=True), np.finfo(v.dtype).tiny)
        v = v / scale
        norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def descending_ranks(s: np.ndarray, valid, method: str) -> np.ndarray:
    """Descending ranks per row (1 = best) over the rankable entries; masked entries get NaN."""
    neg = -s if valid is None else np.where(valid, -s, np.inf)  # masked sort last: valid ranks are 1..n_valid
    r = rankdata(neg, method=method, axis=1).astype(np.float64)
    if valid is not None:
        r[~valid] = np.nan
    return r
