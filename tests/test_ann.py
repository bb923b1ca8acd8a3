"""Known answers and invariants of recsuite.serving.ann: exact search against NumPy, recall@k by hand, HNSW and IVF-PQ
against exact search on tiny synthetic catalogues, the sweep's table, and bad input at the boundary."""

import faiss
import numpy as np
import pytest

from recsuite.serving import ann


@pytest.fixture(scope="module")
def small():
    """2,000 items and 100 queries in 32 dimensions, from the same mixture as the lesson's catalogue."""
    return ann.synthetic_catalogue(2000, dim=32, n_queries=100, seed=0)


@pytest.fixture(scope="module")
def exact_small(small):
    items, queries = small
    return ann.search(ann.build_index(items, "exact"), queries, 10)


def unit(rng, n, d):
    v = rng.standard_normal((n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- synthetic catalogue ------------------------------------------------------------------------------
def test_catalogue_is_unit_float32_and_deterministic_in_seed():
    items, queries = ann.synthetic_catalogue(500, dim=16, n_queries=20, seed=3)
    assert items.shape == (500, 16) and queries.shape == (20, 16)
    assert items.dtype == queries.dtype == np.float32 and items.flags.c_contiguous
    assert np.allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-6)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-6)
    again_items, again_queries = ann.synthetic_catalogue(500, dim=16, n_queries=20, seed=3)
    assert np.array_equal(items, again_items) and np.array_equal(queries, again_queries)
    other, _ = ann.synthetic_catalogue(500, dim=16, n_queries=20, seed=4)
    assert not np.allclose(items, other)
    more_queries_items, _ = ann.synthetic_catalogue(500, dim=16, n_queries=50, seed=3)
    assert np.array_equal(items, more_queries_items)  # the items do not depend on how many queries


def test_catalogue_is_clustered_not_uniform_noise():
    # A point's best neighbour is far closer than a random point: neighbours exist to be found.
    items, queries = ann.synthetic_catalogue(3000, dim=64, n_queries=50, seed=0)
    sims = queries @ items.T
    assert sims.max(axis=1).mean() > 0.5
    assert abs(sims.mean()) < 0.05
    # Chunked generation (more rows than one chunk) gives every chunk the same mixture.
    big, _ = ann.synthetic_catalogue(ann._CHUNK_ROWS + 10, dim=8, n_queries=1, seed=0)
    assert np.allclose(np.linalg.norm(big[-10:], axis=1), 1.0, atol=1e-6)


# -- exact search and recall --------------------------------------------------------------------------
def test_exact_search_equals_numpy_argsort_of_inner_products():
    rng = np.random.default_rng(0)
    items, queries = unit(rng, 200, 16), unit(rng, 7, 16)
    ids, scores = ann.search(ann.build_index(items, "exact"), queries, 5)
    truth = queries @ items.T
    want = np.argsort(-truth, axis=1)[:, :5]
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (7, 5)
    assert np.array_equal(ids, want)
    assert np.allclose(scores, np.take_along_axis(truth, want, axis=1), atol=1e-5)


def test_recall_at_k_hand_computed():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [7, 8, 4]])
    # query 0: {2, 3} of 3 found, query 1: {4} of 3 -> (2/3 + 1/3) / 2
    assert ann.recall_at_k(found, exact, k=3) == pytest.approx(0.5)
    assert ann.recall_at_k(found, exact, k=1) == pytest.approx(0.0)  # 1 vs 3, 4 vs 7
    assert ann.recall_at_k(exact, exact, k=3) == 1.0


def test_recall_counts_missing_and_repeated_ids_as_misses():
    exact = np.array([[1, 2, 3]])
    assert ann.recall_at_k(np.array([[1, -1, -1]]), exact, k=3) == pytest.approx(1 / 3)
    assert ann.recall_at_k(np.array([[-1, -1, -1]]), exact, k=3) == 0.0
    assert ann.recall_at_k(np.array([[2, 2, 2]]), exact, k=3) == pytest.approx(1 / 3)


def test_recall_with_scores_counts_a_tie_at_the_kth_place():
    found, exact = np.array([[1, 2, 4]]), np.array([[1, 2, 3]])
    exact_scores = np.array([[0.9, 0.8, 0.7]])
    assert ann.recall_at_k(found, exact, 3) == pytest.approx(2 / 3)
    tie = np.array([[0.9, 0.8, 0.7]])  # item 4 scores exactly what the 3rd exact item scores
    assert ann.recall_at_k(found, exact, 3, found_scores=tie, exact_scores=exact_scores) == 1.0
    worse = np.array([[0.9, 0.8, 0.69]])
    assert ann.recall_at_k(found, exact, 3, found_scores=worse, exact_scores=exact_scores) == pytest.approx(2 / 3)
    missing = np.array([[1, 2, -1]])
    nan = np.array([[0.9, 0.8, np.nan]])
    assert ann.recall_at_k(missing, exact, 3, found_scores=nan, exact_scores=exact_scores) == pytest.approx(2 / 3)


@pytest.mark.parametrize("block_bytes", [None, 8 * 2 * 8])  # one block; one query per block
def test_scores_of_is_the_inner_product_and_nan_for_missing(block_bytes, monkeypatch):
    if block_bytes:
        monkeypatch.setattr(ann, "_SCORE_BYTES", block_bytes)
    rng = np.random.default_rng(1)
    items, queries = unit(rng, 30, 8), unit(rng, 4, 8)
    ids = np.array([[0, 5], [7, -1], [29, 29], [3, 1]])
    got = ann.scores_of(items, queries, ids)
    assert np.isnan(got[1, 1]) and np.isfinite(np.delete(got.ravel(), 3)).all()
    want = (queries @ items.T)[np.arange(4)[:, None], np.maximum(ids, 0)]
    mask = ids >= 0
    assert np.allclose(got[mask], want[mask], atol=1e-6)


# -- approximate indexes ------------------------------------------------------------------------------
def test_hnsw_with_a_generous_ef_finds_the_exact_neighbours(small, exact_small):
    items, queries = small
    index = ann.build_index(items, "hnsw", M=16)
    ids, _ = ann.search(index, queries, 10, ef_search=256)
    assert ann.recall_at_k(ids, exact_small[0], 10) >= 0.95
    assert index.hnsw.efSearch == 16  # the knob applied to that call only


def test_ivfpq_returns_valid_ids_and_recall_below_exact():
    items, queries = ann.synthetic_catalogue(3000, dim=32, n_queries=100, seed=1)
    exact_ids, _ = ann.search(ann.build_index(items, "exact"), queries, 10)
    index = ann.build_index(items, "ivfpq", seed=0, nbits=6)
    assert index.nlist == 3000 // 39 and index.pq.M == 32 // 8  # the documented defaults
    recalls = {}
    for nprobe in (1, 32):
        ids, scores = ann.search(index, queries, 10, nprobe=nprobe)
        assert ids.shape == (100, 10) and ids.min() >= 0 and ids.max() < len(items)
        assert all(len(set(row)) == 10 for row in ids.tolist())
        recalls[nprobe] = ann.recall_at_k(ids, exact_ids, 10)
    assert 0.2 < recalls[32] < 1.0  # far above chance (~0.001), below exact: the codes are lossy
    assert recalls[1] < recalls[32]  # one cell misses neighbours that 32 cells hold
    assert index.nprobe == 1


def test_ivfpq_build_is_deterministic_in_seed():
    items, queries = ann.synthetic_catalogue(1500, dim=16, n_queries=30, seed=2)
    params = dict(nlist=8, m=4, nbits=4)
    a = ann.search(ann.build_index(items, "ivfpq", seed=5, **params), queries, 5, nprobe=2)[0]
    b = ann.search(ann.build_index(items, "ivfpq", seed=5, **params), queries, 5, nprobe=2)[0]
    assert np.array_equal(a, b)
    c = ann.build_index(items, "ivfpq", seed=6, **params)
    d = ann.build_index(items, "ivfpq", seed=5, **params)
    assert not np.array_equal(faiss.vector_to_array(c.pq.centroids), faiss.vector_to_array(d.pq.centroids))


def test_hnsw_levels_follow_the_seed():
    items, _ = ann.synthetic_catalogue(500, dim=8, n_queries=1, seed=0)
    indexes = [ann.build_index(items, "hnsw", M=8, seed=s) for s in (1, 1, 2)]  # kept alive while read
    levels = [faiss.vector_to_array(index.hnsw.levels) for index in indexes]
    assert np.array_equal(levels[0], levels[1]) and not np.array_equal(levels[0], levels[2])


def test_index_bytes_is_the_serialized_size_and_pq_is_smaller(small):
    items, _ = small
    exact = ann.build_index(items, "exact")
    pq = ann.build_index(items, "ivfpq", nlist=8, m=4, nbits=4)
    assert ann.index_bytes(exact) == faiss.serialize_index(exact).size
    assert ann.index_bytes(pq) == faiss.serialize_index(pq).size
    assert ann.index_bytes(exact) >= items.nbytes
    assert ann.index_bytes(pq) < ann.index_bytes(exact) / 2


def test_threads_sets_and_restores_the_count():
    before = faiss.omp_get_max_threads()
    with ann.threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before


# -- sweep --------------------------------------------------------------------------------------------
def test_sweep_table_has_exact_at_one_and_nothing_above(small):
    items, queries = small
    specs = {"hnsw16": {"kind": "hnsw", "M": 16, "ef_search": (8, 128)},
             "pq": {"kind": "ivfpq", "nlist": 16, "m": 4, "nbits": 4, "nprobe": [1, 16]}}
    table = ann.sweep(items, queries, specs, k=10, progress=False)
    assert list(table["index"]) == ["exact", "hnsw16", "hnsw16", "pq", "pq"]
    assert list(table["setting"]) == ["", "ef_search=8", "ef_search=128", "nprobe=1", "nprobe=16"]
    exact = table[table["index"] == "exact"].iloc[0]
    assert exact["recall@10"] == 1.0
    assert (table["recall@10"] <= 1.0).all() and (table["recall@10"] >= 0.0).all()
    assert (table["ms_per_query"] > 0).all() and (table["build_s"] > 0).all()
    assert np.allclose(table["queries_per_s"] * table["ms_per_query"], 1000.0)
    pq = table[table["index"] == "pq"]
    assert (pq["bytes_per_vector"] < exact["bytes_per_vector"]).all()
    assert pq["recall@10"].iloc[0] < pq["recall@10"].iloc[1]  # nprobe 1 < nprobe 16 (all cells)
    assert table.loc[table["setting"] == "ef_search=128", "recall@10"].iloc[0] >= 0.95


def test_sweep_counts_a_tie_with_the_exact_kth_item_as_found():
    # Items 0 and 1 are the same vector; a query aimed at them ties the two at the top. Exact search keeps
    # one of the pair for k=1; an index that returns the other is still right.
    rng = np.random.default_rng(0)
    items = unit(rng, 300, 8).astype(np.float32)
    items[1] = items[0]
    queries = items[:1].copy()
    exact_ids, exact_scores = ann.search(ann.build_index(items, "exact"), queries, 1)
    other = np.array([[1 - exact_ids[0, 0]]])  # the twin exact search did not return
    found_scores = ann.scores_of(items, queries, other)
    assert ann.recall_at_k(other, exact_ids, 1) == 0.0
    assert ann.recall_at_k(other, exact_ids, 1, found_scores=found_scores,
                           exact_scores=ann.scores_of(items, queries, exact_ids)) == 1.0


# -- bad input ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(small):
    items, _ = small
    return {"exact": ann.build_index(items, "exact"), "hnsw": ann.build_index(items, "hnsw", M=8),
            "ivfpq": ann.build_index(items, "ivfpq", nlist=8, m=4, nbits=4)}


def test_bad_build_arguments_name_the_argument(small):
    items, _ = small
    with pytest.raises(ValueError, match="kind must be one of"):
        ann.build_index(items, "flat")
    with pytest.raises(ValueError, match=r"unknown parameter.*'nlist'.*allowed: M, ef_construction"):
        ann.build_index(items, "hnsw", nlist=4)
    with pytest.raises(ValueError, match="allowed: none"):
        ann.build_index(items, "exact", M=4)
    with pytest.raises(ValueError, match="m must divide the vector dimension d=32, got m=5"):
        ann.build_index(items, "ivfpq", m=5, nbits=4, nlist=8)
    with pytest.raises(ValueError, match="nbits"):
        ann.build_index(items[:100], "ivfpq", nlist=2)  # 100 vectors cannot train 256 centroids
    with pytest.raises(ValueError, match="nlist must be <= the number of vectors"):
        ann.build_index(items[:100], "ivfpq", nlist=101, nbits=4)
    bad = items.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="vectors holds NaN"):
        ann.build_index(bad, "exact")
    with pytest.raises(ValueError, match="vectors must be 2-D"):
        ann.build_index(items[0], "exact")
    with pytest.raises(TypeError, match="vectors must be a numeric"):
        ann.build_index([["a", "b"]], "exact")
    with pytest.raises(TypeError, match="M must be an int"):
        ann.build_index(items, "hnsw", M=8.0)


def test_bad_search_arguments_name_the_argument(small, built):
    _, queries = small
    with pytest.raises(ValueError, match="queries must have the index's dimension d=32"):
        ann.search(built["exact"], queries[:, :16], 5)
    with pytest.raises(ValueError, match=r"k must be <= the number of indexed vectors \(2000\), got k=2001"):
        ann.search(built["exact"], queries, 2001)
    with pytest.raises(ValueError, match="nprobe does not apply.*its knob is ef_search"):
        ann.search(built["hnsw"], queries, 5, nprobe=4)
    with pytest.raises(ValueError, match="ef_search does not apply.*its knob is nprobe"):
        ann.search(built["ivfpq"], queries, 5, ef_search=64)
    with pytest.raises(ValueError, match="ef_search does not apply.*no runtime knob"):
        ann.search(built["exact"], queries, 5, ef_search=64)
    with pytest.raises(ValueError, match=r"nprobe must be <= the index's nlist \(8\), got nprobe=9"):
        ann.search(built["ivfpq"], queries, 5, nprobe=9)
    with pytest.raises(TypeError, match="index must be a faiss index"):
        ann.search("not an index", queries, 5)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        ann.search(built["exact"], queries, 0)


def test_bad_recall_catalogue_and_sweep_arguments(small):
    items, queries = small
    with pytest.raises(TypeError, match="found_ids must be a 2-D int array"):
        ann.recall_at_k(np.array([[1.0, 2.0]]), np.array([[1, 2]]), 2)
    with pytest.raises(ValueError, match="same number of queries"):
        ann.recall_at_k(np.array([[1, 2]]), np.array([[1, 2], [3, 4]]), 2)
    with pytest.raises(ValueError, match="exact_ids must have at least k=3 columns"):
        ann.recall_at_k(np.array([[1, 2, 3]]), np.array([[1, 2]]), 3)
    with pytest.raises(ValueError, match="found_ids holds -2"):
        ann.recall_at_k(np.array([[1, -2]]), np.array([[1, 2]]), 2)
    with pytest.raises(ValueError, match="given together"):
        ann.recall_at_k(np.array([[1, 2]]), np.array([[1, 2]]), 2, found_scores=np.ones((1, 2)))
    with pytest.raises(ValueError, match="n_items must be an int >= 1"):
        ann.synthetic_catalogue(0)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        ann.synthetic_catalogue(10, seed=-1)
    with pytest.raises(ValueError, match="spread must be a finite number"):
        ann.synthetic_catalogue(10, spread=0.0)
    with pytest.raises(ValueError, match="keys must be non-empty labels other than 'exact'"):
        ann.sweep(items, queries, {"exact": {"kind": "hnsw"}}, progress=False)
    with pytest.raises(ValueError, match=r"indexes\['h'\]\['kind'\] must be one of"):
        ann.sweep(items, queries, {"h": {"kind": "exact"}}, progress=False)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['nprobe'\] for kind='hnsw'"):
        ann.sweep(items, queries, {"h": {"kind": "hnsw", "nprobe": [1]}}, progress=False)
    with pytest.raises(ValueError, match="queries must have the vectors' dimension d=32"):
        ann.sweep(items, queries[:, :8], progress=False)


def test_a_knob_value_that_is_no_int_or_list_names_the_setting(small):
    items, queries = small
    with pytest.raises(TypeError, match=r"indexes\['h'\]\['ef_search'\] must be an int or a list of ints, got 64.0"):
        ann.sweep(items, queries, {"h": {"kind": "hnsw", "ef_search": 64.0}}, progress=False)
    with pytest.raises(TypeError, match=r"indexes\['q'\]\['nprobe'\] must be an int or a list of ints, got '4'"):
        ann.sweep(items, queries, {"q": {"kind": "ivfpq", "nprobe": "4"}}, progress=False)


def test_recall_checks_tol_even_without_scores():
    with pytest.raises(ValueError, match="tol must be a finite number"):
        ann.recall_at_k(np.array([[1, 2]]), np.array([[1, 2]]), 2, tol=-1.0)
    with pytest.raises(TypeError, match="tol must be a real number"):
        ann.recall_at_k(np.array([[1, 2]]), np.array([[1, 2]]), 2, tol="tight")
