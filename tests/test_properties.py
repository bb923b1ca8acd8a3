"""Property tests (hypothesis) for the metrics and the split on random small inputs."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from recsuite.data import split as S
from recsuite.evaluation import metrics as M

FNS = {
    "ndcg": M.ndcg_at_k, "recall": M.recall_at_k, "precision": M.precision_at_k,
    "hit": M.hit_rate_at_k, "mrr": M.mrr_at_k, "map": M.map_at_k,
}


@st.composite
def lists_and_truth(draw, pad=False):
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(2, 15))
    k = draw(st.integers(1, n_items))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    top = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)]).astype(np.int64)
    if pad:
        n_pad = rng.integers(0, k + 1, size=n_users)
        top[np.arange(k)[None, :] >= (k - n_pad)[:, None]] = -1
    truth = sp.csr_matrix((rng.random((n_users, n_items)) < draw(st.floats(0.05, 0.6))).astype(np.float32))
    return top, truth, k


@settings(max_examples=50, deadline=None)
@given(lists_and_truth())
def test_metrics_lie_in_unit_interval_and_hit_bounds_precision(data):
    top, truth, k = data
    assume(truth.nnz > 0)  # a truth with no relevant item is refused (tests/test_boundaries.py)
    vals = {n: f(top, truth, k) for n, f in FNS.items()}
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in vals.values())
    assert vals["hit"] >= vals["precision"] - 1e-12
    assert vals["hit"] >= vals["mrr"] - 1e-12


@settings(max_examples=50, deadline=None)
@given(lists_and_truth())
def test_perfect_list_has_ndcg_and_recall_one(data):
    _, truth, k = data
    n_users, n_items = truth.shape
    rows = []
    for u in range(n_users):
        rel = truth[u].indices
        if len(rel) > k:
            rel = rel[:0]
        rest = np.setdiff1d(np.arange(n_items), rel)
        rows.append(np.concatenate([rel, rest])[:k])
    top = np.array(rows, dtype=np.int64)
    ok = (np.diff(truth.indptr) <= k) & (np.diff(truth.indptr) > 0)
    if not ok.any():
        return
    sub = top[ok], truth[ok]
    assert M.ndcg_at_k(*sub, k) == pytest.approx(1.0)
    assert M.recall_at_k(*sub, k) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(lists_and_truth())
def test_recall_is_non_decreasing_in_k(data):
    top, truth, k = data
    assume(truth.nnz > 0)
    recalls = [M.recall_at_k(top, truth, j) for j in range(1, k + 1)]
    assert all(b >= a - 1e-12 for a, b in zip(recalls, recalls[1:]))


@settings(max_examples=50, deadline=None)
@given(lists_and_truth(), st.integers(0, 1000))
def test_permuting_users_leaves_the_means_unchanged(data, seed):
    top, truth, k = data
    assume(truth.nnz > 0)
    perm = np.random.default_rng(seed).permutation(top.shape[0])
    for f in FNS.values():
        assert f(top[perm], truth[perm], k) == pytest.approx(f(top, truth, k))


@settings(max_examples=50, deadline=None)
@given(lists_and_truth(pad=True))
def test_minus_one_padding_never_counts(data):
    top, truth, k = data
    hits = M.hit_matrix(top, truth, k)
    assert not hits[top == -1].any()
    # a padded slot reads as a miss: the same as replacing it by an item the user does not like
    n_items = truth.shape[1]
    listed = top[top >= 0]
    cov = M.catalog_coverage(top, n_items, k)
    assert cov == pytest.approx(len(np.unique(listed)) / n_items)
    pu = M.per_user_metrics(top, truth, k)
    for n in FNS:
        vals = pu[f"{n}@{k}"].dropna()
        assert ((vals >= 0) & (vals <= 1 + 1e-12)).all()
    expected_hits = np.array([[truth[u, i] > 0 if i >= 0 else False for i in row] for u, row in enumerate(top)])
    np.testing.assert_array_equal(hits, expected_hits.reshape(hits.shape))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(2, 10), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_topk_from_scores_pads_only_where_nothing_is_rankable(n_users, n_items, k, seed):
    k = min(k, n_items)
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(n_users, n_items)).astype(float)
    seen = sp.csr_matrix(rng.random((n_users, n_items)) < 0.4)
    catalogue = rng.random(n_items) < 0.7
    top = M.topk_from_scores(scores, k, seen=seen, catalogue=catalogue)
    ex = seen.toarray()
    for u in range(n_users):
        ok = catalogue & ~ex[u]
        n_ok = min(k, int(ok.sum()))
        assert (top[u, n_ok:] == -1).all()
        assert ok[top[u, :n_ok]].all()


# -- split invariants -------------------------------------------------------------------------------------
@st.composite
def interaction_frames(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        m = int(rng.integers(1, n_items + 1))
        for i in rng.choice(n_items, size=m, replace=False):
            rows.append((u + 10, int(i) + 100, 4, int(rng.integers(0, 4))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _keys(df):
    return set(zip(df.user_id.tolist(), df.item_id.tolist()))


@settings(max_examples=50, deadline=None)
@given(interaction_frames())
def test_temporal_split_partitions_in_time_order(df):
    train, valid, test = S.temporal_user_split(df)
    parts = [_keys(x) for x in (train, valid, test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == _keys(df)
    assert len(train) + len(valid) + len(test) == len(df)
    for u in df.user_id.unique():
        t = [x.loc[x.user_id == u, "timestamp"] for x in (train, valid, test)]
        if len(t[0]) and len(t[1]):
            assert t[0].max() <= t[1].min()
        if len(t[1]) and len(t[2]):
            assert t[1].max() <= t[2].min()
        if len(t[0]) and len(t[2]):
            assert t[0].max() <= t[2].min()


@settings(max_examples=50, deadline=None)
@given(interaction_frames(), st.integers(0, 100))
def test_protocol_parts_are_disjoint_and_cold_items_unseen_in_train(df, seed):
    assume(df.item_id.nunique() >= 2)  # a protocol needs a warm and a cold item (make_protocol refuses fewer)
    p = S.make_protocol(df, cold_frac=0.3, seed=seed)
    parts = [_keys(p.frame(n)) for n in ("train", "valid", "test", "cold_test")]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not (parts[i] & parts[j])
    assert set().union(*parts) == _keys(df)
    cold_ids = set(p.index.item_ids[p.cold_items].tolist())
    assert not cold_ids & set(p.frame("train").item_id.tolist())
    assert set(p.frame("cold_test").item_id.tolist()) <= cold_ids
