"""Approximate nearest-neighbour retrieval over item vectors with faiss: exact, HNSW and IVF-PQ indexes.

Vectors are float32 rows and the similarity is the inner product, which on unit vectors is the cosine
(``recsuite.models.semantic`` and ``synthetic_catalogue`` return unit rows; normalise others first). An index
answers a batch of queries with the k best item ids per query (int64, best first, -1 where it found fewer
than k) and their scores. Three kinds, one per idea of the lesson:

- ``"exact"``: ``faiss.IndexFlatIP``, a brute-force scan; the ground truth every other index is judged by.
- ``"hnsw"``: ``faiss.IndexHNSWFlat``, a navigable small-world graph (Malkov & Yashunin 2018, "Efficient and
  robust approximate nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI).
  Runtime knob ``ef_search``: the size of the candidate list kept while walking the graph.
- ``"ivfpq"``: ``faiss.IndexIVFPQ``, k-means cells (an inverted file) whose members are stored as product-
  quantised codes (Jégou, Douze & Schmid 2011, "Product quantization for nearest neighbor search", TPAMI).
  Runtime knob ``nprobe``: how many of the nearest cells a query scans. Scores are approximate (computed
  from the codes), so results are only as good as the codes, whatever ``nprobe``.

Quality is recall@k against exact search (``recall_at_k``), cost is the time per query, the build time and
the bytes the index holds (``index_bytes``); ``sweep`` measures all of them into one table.

Introduced in notebooks/11_serving.ipynb
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager

import numpy as np
import pandas as pd

from recsuite.core import checks as C
from recsuite.core.optional import require
from recsuite.core.progress import tqdm

faiss = require("faiss", "serve")

__all__ = [
    "DEFAULT_SWEEP",
    "KINDS",
    "build_index",
    "index_bytes",
    "recall_at_k",
    "scores_of",
    "search",
    "sweep",
    "synthetic_catalogue",
    "threads",
]

#: Index kinds and the build parameters each accepts, with their defaults (None: computed from the data).
KINDS = {
    "exact": {},
    "hnsw": {"M": 32, "ef_construction": 80},
    "ivfpq": {"nlist": None, "m": None, "nbits": 8, "train_size": None},
}

#: What ``sweep`` measures when not told otherwise: each approximate index at default build parameters,
#: over a range of its runtime knob (exact search is always added as the ground truth).
DEFAULT_SWEEP = {
    "hnsw": {"kind": "hnsw", "ef_search": (16, 32, 64, 128, 256)},
    "ivfpq": {"kind": "ivfpq", "nprobe": (1, 4, 16, 64)},
}

#: The runtime knob of each kind (exact search has none).
_KNOBS = {"hnsw": "ef_search", "ivfpq": "nprobe"}

# faiss's k-means warns below 39 training points per centroid; defaults stay above that.
_MIN_POINTS_PER_CENTROID = 39
# Rows generated at a time by synthetic_catalogue: ~12 MB of float32 at d = 384, so the temporaries stay
# small next to the output even at 1M items.
_CHUNK_ROWS = 8192
# Bytes of gathered float64 item vectors per block of queries in scores_of.
_SCORE_BYTES = 32 * 2**20


# -- data ---------------------------------------------------------------------------------------------
def synthetic_catalogue(n_items: int, dim: int = 384, n_queries: int = 1000, n_clusters: int | None = None,
                        seed: int = 0, *, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Item and query unit vectors (float32) drawn from one Gaussian mixture that looks like text embeddings.

    Each point is c + e, L2-normalised: c is the point's cluster centre (a random unit vector; cluster
    sizes are uneven, weights ~ Gamma(2)), e is Gaussian noise of total variance ``spread``² whose variance
    along a random orthonormal basis decays as 1/j (j = 1..dim). The decay gives an effective dimension of
    about 26 at dim = 384 (real sentence embeddings have a few dozen), so neighbours have structure to find
    rather than being uniform noise; with spread = 1 a point's cosine to its own centre is about 0.7 and
    two random points' cosine is about 0 ± 0.1. Queries come from the same mixture, independently of items
    (the items do not change with ``n_queries``). Generated in chunks, so the peak memory is the output
    plus ~40 MB. ``n_clusters`` defaults to round(sqrt(n_items)).

    Introduced in notebooks/11_serving.ipynb
    """
    n_items = C.positive_int("n_items", n_items)
    dim = C.integer("dim", dim, low=2)
    n_queries = C.positive_int("n_queries", n_queries)
    if n_clusters is None:
        n_clusters = max(1, round(math.sqrt(n_items)))
    n_clusters = C.positive_int("n_clusters", n_clusters)
    seed = C.seed("seed", seed)
    spread = C.positive_number("spread", spread)

    centre_rng, item_rng, query_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    centres = centre_rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = centre_rng.gamma(2.0, size=n_clusters)
    weights /= weights.sum()
    basis, _ = np.linalg.qr(centre_rng.standard_normal((dim, dim)))
    variance = 1.0 / np.arange(1, dim + 1)
    scale = np.sqrt(variance * spread**2 / variance.sum())
    mixing = (scale[:, None] * basis.T).astype(np.float32)  # noise = z @ mixing, z ~ N(0, I)
    centres = centres.astype(np.float32)

    def draw(rng, n):
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(n, start + _CHUNK_ROWS)
            labels = rng.choice(n_clusters, size=stop - start, p=weights)
            block = rng.standard_normal((stop - start, dim), dtype=np.float32) @ mixing
            block += centres[labels]
            block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
            out[start:stop] = block
        return out

    return draw(item_rng, n_items), draw(query_rng, n_queries)


def _vectors(name: str, value) -> np.ndarray:
    """A finite, C-contiguous float32 (n, d) array, as faiss needs."""
    a = C.array(name, value, ndim=2, dtype=np.float32, empty=False)
    return np.ascontiguousarray(a)


def _index(index) -> "faiss.Index":
    if not isinstance(index, faiss.Index):
        raise TypeError(f"index must be a faiss index (from build_index), got {C.describe(index)}")
    return index


def _kind_of(index) -> str:
    """The kind of a built index, for its runtime knob: "hnsw", "ivfpq" (any IVF index), "exact" or "other"."""
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexIVF):
        return "ivfpq"
    return "exact" if isinstance(index, faiss.IndexFlat) else "other"


# -- building -----------------------------------------------------------------------------------------
def _largest_divisor_at_most(n: int, cap: int) -> int:
    return max(d for d in range(1, max(1, cap) + 1) if n % d == 0)


def build_index(vectors, kind: str, *, seed: int = 0, **params) -> "faiss.Index":
    """A faiss inner-product index of ``kind`` ("exact", "hnsw" or "ivfpq") holding ``vectors``; row i is id i.

    Build parameters (``KINDS`` lists them with their defaults):

    - hnsw: ``M`` (graph neighbours per node, 32), ``ef_construction`` (candidate list while inserting, 80).
      ``seed`` sets the random levels of the nodes; inserting runs on several threads, so with more than
      one the graph (and recall, in the third decimal) can differ slightly between builds.
    - ivfpq: ``nlist`` k-means cells (default round(4·sqrt(n)), at most n/39 so each centroid has 39
      training points, the minimum faiss asks for), ``m`` sub-quantisers (must divide d; default d/8, or
      the largest divisor of d below it), ``nbits`` per sub-quantiser code (8: 256 centroids each), and
      ``train_size`` vectors for k-means (default min(n, 40·max(nlist, 2**nbits)), a uniform sample drawn
      with ``seed``, which also seeds faiss's k-means, so a build is deterministic). The index holds m·nbits/8
      bytes per vector plus its id; the cells' k-means is spherical (faiss's default for inner product).
    - exact: no parameters; ``seed`` is unused.

    Introduced in notebooks/11_serving.ipynb
    """
    kind = C.one_of("kind", kind, tuple(KINDS))
    x = _vectors("vectors", vectors)
    seed = C.seed("seed", seed)
    unknown = sorted(set(params) - set(KINDS[kind]))
    if unknown:
        allowed = ", ".join(KINDS[kind]) or "none"
        raise ValueError(f"unknown parameter(s) {unknown} for kind={kind!r}; allowed: {allowed}")
    p = {**KINDS[kind], **params}
    n, d = x.shape

    if kind == "exact":
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index

    if kind == "hnsw":
        M = C.integer("M", p["M"], low=2)
        ef_construction = C.positive_int("ef_construction", p["ef_construction"])
        index = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.rng = faiss.RandomGenerator(seed)
        index.add(x)
        return index

    nbits = C.integer("nbits", p["nbits"], low=1, high=16)
    m = _largest_divisor_at_most(d, d // 8) if p["m"] is None else C.positive_int("m", p["m"])
    if d % m:
        raise ValueError(f"m must divide the vector dimension d={d}, got m={m}; "
                         f"divisors of {d}: {[q for q in range(1, d + 1) if d % q == 0]}")
    if p["nlist"] is None:
        nlist = max(1, min(round(4 * math.sqrt(n)), n // _MIN_POINTS_PER_CENTROID))
    else:
        nlist = C.positive_int("nlist", p["nlist"])
    if nlist > n:
        raise ValueError(f"nlist must be <= the number of vectors ({n}), got nlist={nlist}")
    if n < 2**nbits:
        raise ValueError(f"ivfpq with nbits={nbits} needs at least 2**nbits = {2**nbits} vectors to train its "
                         f"codebooks, got {n}; lower nbits")
    if p["train_size"] is None:
        train_size = min(n, 40 * max(nlist, 2**nbits))
    else:
        train_size = C.positive_int("train_size", p["train_size"])
        if not max(nlist, 2**nbits) <= train_size <= n:
            raise ValueError(f"train_size must be in [max(nlist, 2**nbits), n] = [{max(nlist, 2**nbits)}, {n}], "
                             f"got {train_size}")
    rows = np.sort(np.random.default_rng(seed).choice(n, size=train_size, replace=False))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.pq.cp.seed = seed
    index.train(x[rows] if train_size < n else x)
    index.add(x)
    return index  # faiss's Python wrapper keeps a reference to the quantizer with the index


# -- searching ----------------------------------------------------------------------------------------
def search(index, queries, k: int = 10, *, ef_search: int | None = None, nprobe: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items per query: ``(ids, scores)``, ids int64 (n, k) and scores float32 (n, k), best first.

    ``ef_search`` (HNSW only; faiss uses max(ef_search, k)) and ``nprobe`` (IVF only, <= nlist) apply to this
    call alone (faiss search parameters), so the index is left unchanged; None keeps the index's own
    setting (faiss defaults: efSearch 16, nprobe 1). A knob that does not apply to the index is an error.
    Ids are -1 where the index found fewer than k items.

    Introduced in notebooks/11_serving.ipynb
    """
    index = _index(index)
    q = _vectors("queries", queries)
    if q.shape[1] != index.d:
        raise ValueError(f"queries must have the index's dimension d={index.d}, got {C.describe(q)}")
    k = C.positive_int("k", k)
    if k > index.ntotal:
        raise ValueError(f"k must be <= the number of indexed vectors ({index.ntotal}), got k={k}")
    kind = _kind_of(index)
    for name, value in (("ef_search", ef_search), ("nprobe", nprobe)):
        if value is not None and _KNOBS.get(kind) != name:
            knob = _KNOBS.get(kind)
            why = (f"its knob is {knob}" if knob else
                   "exact search has no runtime knob" if kind == "exact" else "it takes neither knob")
            raise ValueError(f"{name} does not apply to a {type(index).__name__} ({kind}) index; {why}")
    params = None
    if ef_search is not None:
        params = faiss.SearchParametersHNSW(efSearch=C.positive_int("ef_search", ef_search))
    if nprobe is not None:
        nprobe = C.positive_int("nprobe", nprobe)
        if nprobe > index.nlist:
            raise ValueError(f"nprobe must be <= the index's nlist ({index.nlist}), got nprobe={nprobe}")
        params = faiss.SearchParametersIVF(nprobe=nprobe)
    scores, ids = index.search(q, k, params=params)  # faiss's own order
    return ids.astype(np.int64, copy=False), scores.astype(np.float32, copy=False)


def _ids(name: str, value) -> np.ndarray:
    a = C.item_lists(name, value)
    if a.size and a.min() < -1:
        raise ValueError(f"{name} holds {int(a.min())}; ids must be >= 0, or -1 for no result")
    return a.astype(np.int64, copy=False)


def scores_of(vectors, queries, ids) -> np.ndarray:
    """The exact inner product (float64) of query i with item ids[i, j]; NaN where the id is -1.

    Use it to judge an index whose own scores are approximate (IVF-PQ computes them from codes).

    Introduced in notebooks/11_serving.ipynb
    """
    x = C.array("vectors", vectors, ndim=2, dtype=np.float32, empty=False)
    q = C.array("queries", queries, ndim=2, dtype=np.float32, shape=(None, x.shape[1]))
    ids = _ids("ids", ids)
    if ids.shape[0] != q.shape[0]:
        raise ValueError(f"ids must have one row per query ({q.shape[0]}), got {C.describe(ids)}")
    if ids.size and ids.max() >= x.shape[0]:
        raise ValueError(f"ids holds {int(ids.max())}, outside [0, {x.shape[0]}) of vectors")
    out = np.full(ids.shape, np.nan)
    step = max(1, _SCORE_BYTES // (8 * max(1, ids.shape[1]) * x.shape[1]))
    for start in range(0, len(q), step):
        block = ids[start:start + step]
        gathered = x[np.maximum(block, 0)].astype(np.float64)  # (b, k, d)
        s = np.einsum("bkd,bd->bk", gathered, q[start:start + step].astype(np.float64))
        out[start:start + step] = np.where(block >= 0, s, np.nan)
    return out


def recall_at_k(found_ids, exact_ids, k: int = 10, *, found_scores=None, exact_scores=None,
                tol: float = 1e-6) -> float:
    """Recall@k of an approximate search: the mean over queries of ``|found[:k] ∩ exact[:k]| / k``.

    The standard ANN measure against exact search (as in ann-benchmarks, Aumüller et al. 2020). An id of -1
    (faiss's "no result") and a repeated id count as misses. Ties: when several items share the k-th best
    score, exact search keeps an arbitrary one of them, and a correct ANN result may keep another. Given
    ``found_scores`` (the *exact* inner products of the found ids, from ``scores_of``) and ``exact_scores``
    (exact search's scores, (n, >= k)), a found id outside exact[:k] also counts when its score is
    >= the k-th exact score − ``tol``. Either way the result is in [0, 1].

    Introduced in notebooks/11_serving.ipynb
    """
    found = _ids("found_ids", found_ids)
    exact = _ids("exact_ids", exact_ids)
    k = C.positive_int("k", k)
    tol = C.number("tol", tol, low=0.0)
    if found.shape[0] != exact.shape[0]:
        raise ValueError(f"found_ids and exact_ids must have the same number of queries, got "
                         f"{found.shape[0]} and {exact.shape[0]}")
    if found.shape[0] == 0:
        raise ValueError("found_ids must hold at least one query, got 0 rows")
    for name, a in (("found_ids", found), ("exact_ids", exact)):
        if a.shape[1] < k:
            raise ValueError(f"{name} must have at least k={k} columns, got {C.describe(a)}")
    if (found_scores is None) != (exact_scores is None):
        raise ValueError("found_scores and exact_scores must be given together (for ties) or not at all")
    found, exact = found[:, :k], exact[:, :k]

    order = np.argsort(found, axis=1, kind="stable")
    sorted_found = np.take_along_axis(found, order, axis=1)
    first = np.ones(found.shape, dtype=bool)
    first[:, 1:] = sorted_found[:, 1:] != sorted_found[:, :-1]
    counted = np.empty_like(first)
    np.put_along_axis(counted, order, first, axis=1)  # the first occurrence of each id counts, repeats do not
    counted &= found >= 0
    hit = (found[:, :, None] == exact[:, None, :]).any(axis=2)

    if found_scores is not None:
        fs = C.array("found_scores", found_scores, ndim=2, finite=False)
        es = C.array("exact_scores", exact_scores, ndim=2)
        if fs.shape[0] != found.shape[0] or fs.shape[1] < k:
            raise ValueError(f"found_scores must have the shape of found_ids ({found.shape[0]}, >= {k}), "
                             f"got {fs.shape}")
        if es.shape[0] != found.shape[0] or es.shape[1] < k:
            raise ValueError(f"exact_scores must have shape ({found.shape[0]}, >= {k}), got {es.shape}")
        kth = es[:, :k].min(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            hit |= fs[:, :k] >= kth - tol  # NaN (a -1 id) compares False
    return float((hit & counted).sum() / (found.shape[0] * k))


def index_bytes(index) -> int:
    """The bytes ``index`` holds, as faiss saves it: len(faiss.serialize_index(index)), counted without the copy.

    Introduced in notebooks/11_serving.ipynb
    """
    index = _index(index)
    total = 0

    def count(chunk):
        nonlocal total
        total += len(chunk)
        return len(chunk)

    writer = faiss.PyCallbackIOWriter(count)
    faiss.write_index(index, writer)
    del writer
    return total


@contextmanager
def threads(n: int):
    """Run faiss (build and search) on ``n`` OpenMP threads inside the ``with`` block, then restore the count.

    faiss parallelises over queries and, when building, over vectors; timings in a table depend on it, so
    a lesson that compares speeds says how many threads it used. The setting is process-wide.

    Introduced in notebooks/11_serving.ipynb
    """
    n = C.positive_int("n", n)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield n
    finally:
        faiss.omp_set_num_threads(before)


# -- measuring ----------------------------------------------------------------------------------------
def _timed_search(index, queries, k, repeats, **knob):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        ids, scores = search(index, queries, k, **knob)
        best = min(best, time.perf_counter() - start)
    return best, ids, scores


def _check_specs(indexes) -> dict:
    if not isinstance(indexes, Mapping) or not indexes:
        raise ValueError(f"indexes must be a non-empty dict label -> spec such as DEFAULT_SWEEP, got "
                         f"{C.describe(indexes)}")
    out = {}
    for label, spec in indexes.items():
        if not isinstance(label, str) or not label or label == "exact":
            raise ValueError(f"indexes keys must be non-empty labels other than 'exact' (always included), "
                             f"got {label!r}")
        if not isinstance(spec, Mapping) or "kind" not in spec:
            raise ValueError(f"indexes[{label!r}] must be a dict with a 'kind' and build/runtime settings, "
                             f"got {C.describe(spec)}")
        kind = C.one_of(f"indexes[{label!r}]['kind']", spec["kind"], tuple(_KNOBS))
        knob = _KNOBS[kind]
        params = {key: v for key, v in spec.items() if key not in ("kind", knob)}
        unknown = sorted(set(params) - set(KINDS[kind]))
        if unknown:
            raise ValueError(f"indexes[{label!r}] has unknown setting(s) {unknown} for kind={kind!r}; "
                             f"allowed: {', '.join([*KINDS[kind], knob])}")
        values = spec.get(knob, (None,))
        if isinstance(values, (int, np.integer)):
            values = (values,)
        elif isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"indexes[{label!r}][{knob!r}] must be an int or a list of ints, got {C.describe(values)}")
        values = tuple(values)
        if not values:
            raise ValueError(f"indexes[{label!r}][{knob!r}] must list at least one value, got none")
        values = tuple(v if v is None else C.positive_int(f"indexes[{label!r}][{knob!r}]", v) for v in values)
        out[label] = (kind, params, knob, values)
    return out


def sweep(vectors, queries, indexes: Mapping | None = None, k: int = 10, *, seed: int = 0, repeats: int = 1,
          progress: bool = True) -> pd.DataFrame:
    """Build each index once and search all ``queries`` at each runtime setting: recall@k against speed and size.

    ``indexes`` maps a label to a spec: ``{"kind": "hnsw" | "ivfpq", <build parameters>, <knob>: values}``
    where the knob is ``ef_search`` (HNSW) or ``nprobe`` (IVF-PQ); ``DEFAULT_SWEEP`` is the default. Exact
    search (``faiss.IndexFlatIP``) is always built first, as the ground truth and the row to beat.

    One row per (index, setting): ``index`` (label), ``kind``, ``setting`` ("ef_search=64", "" for exact),
    ``build_s`` (seconds to train and add, time.perf_counter), ``bytes`` (``index_bytes``),
    ``bytes_per_vector``, ``recall@k`` (``recall_at_k`` against exact ids, with ties: a found id counts when
    its exact score is >= the exact k-th score − 1e-6, both recomputed in float64 by ``scores_of``),
    ``ms_per_query`` (one batched search of all queries, best of ``repeats``, divided by their number) and
    ``queries_per_s``. Exact's recall is 1.0 by definition; no approximate row can be above it, and the
    table is checked for that. Each index is freed before the next is built, so the peak memory is
    ``vectors`` plus the largest index.

    Introduced in notebooks/11_serving.ipynb
    """
    x = _vectors("vectors", vectors)
    q = _vectors("queries", queries)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries must have the vectors' dimension d={x.shape[1]}, got {C.describe(q)}")
    k = C.positive_int("k", k)
    if k > x.shape[0]:
        raise ValueError(f"k must be <= the number of vectors ({x.shape[0]}), got k={k}")
    seed = C.seed("seed", seed)
    repeats = C.positive_int("repeats", repeats)
    progress = C.flag("progress", progress)
    specs = _check_specs(DEFAULT_SWEEP if indexes is None else indexes)
    warm = q[: min(len(q), 16)]
    recall_col = f"recall@{k}"
    rows = []

    def row(label, kind, setting, build_s, size, recall, seconds):
        return {"index": label, "kind": kind, "setting": setting, "build_s": build_s, "bytes": size,
                "bytes_per_vector": size / x.shape[0], recall_col: recall,
                "ms_per_query": 1000.0 * seconds / len(q), "queries_per_s": len(q) / seconds}

    jobs = [("exact", ("exact", {}, None, (None,)))] + list(specs.items())
    bar = tqdm(jobs, desc="build indexes", unit="index", disable=not progress)
    for label, (kind, params, knob, values) in bar:
        bar.set_postfix_str(label)
        start = time.perf_counter()
        index = build_index(x, kind, seed=seed, **params)
        build_s = time.perf_counter() - start
        size = index_bytes(index)
        for value in values:
            knob_arg = {} if value is None else {knob: value}
            search(index, warm, k, **knob_arg)  # first-call costs (thread pool, page faults) are not timed
            seconds, ids, _ = _timed_search(index, q, k, repeats, **knob_arg)
            if kind == "exact":
                exact_ids = ids
                exact_true = scores_of(x, q, exact_ids)
                recall = recall_at_k(ids, exact_ids, k)
            else:
                recall = recall_at_k(ids, exact_ids, k, found_scores=scores_of(x, q, ids),
                                     exact_scores=exact_true)
            setting = "" if value is None else f"{knob}={value}"
            rows.append(row(label, kind, setting, build_s, size, recall, seconds))
        del index
    table = pd.DataFrame(rows)
    exact_recall = table.loc[table["kind"] == "exact", recall_col].iloc[0]
    above = table[table[recall_col] > exact_recall]
    if len(above):
        raise RuntimeError(f"an approximate index reports recall above exact search: {above.to_dict('records')}")
    return table
