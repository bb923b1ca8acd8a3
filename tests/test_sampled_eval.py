"""Full and sampled ranks of one held-out item (recsuite.evaluation.sampled), the next-item view of the protocol
(Protocol.next_items) and the genre drift of a history (recsuite.data.features.genre_drift): hand-computed cases,
and properties against topk_from_scores on random scores with ties."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsuite.data import split as S
from recsuite.data.features import genre_drift
from recsuite.data.index import IndexMap
from recsuite.evaluation.metrics import topk_from_scores
from recsuite.evaluation.sampled import first_items, rank_metrics, target_ranks

# -- target_ranks by hand ------------------------------------------------------------------------------------------

SCORES = np.array([[0.1, 0.5, 0.5, 0.9, 0.0],
                   [0.3, 0.2, 0.1, 0.0, 0.4]])


def test_full_rank_by_hand():
    # user 0, target 2: item 3 scores higher, item 1 ties and has the lower index -> 2 ahead
    r = target_ranks(SCORES, np.array([2, -1]))
    assert r[0] == 2 and np.isnan(r[1]) and r.dtype == np.float64
    assert target_ranks(SCORES, np.array([1, 4]))[0] == 1  # item 2 ties but comes after item 1
    np.testing.assert_array_equal(target_ranks(SCORES, np.array([4, 4])), [4, 0])  # the worst, the best
    seen = sp.csr_matrix(np.array([[0, 0, 0, 1, 0], [1, 0, 0, 0, 0]]))
    np.testing.assert_array_equal(target_ranks(SCORES, np.array([2, 1]), seen=seen), [1, 1])  # 3 and 0 masked
    catalogue = np.array([True, False, True, True, True])
    np.testing.assert_array_equal(target_ranks(SCORES, np.array([2, 2]), catalogue=catalogue), [1, 2])
    np.testing.assert_array_equal(target_ranks(SCORES, np.array([2, 2]), seen=seen, catalogue=catalogue), [0, 1])
    # all scores equal: the rank is the number of rankable items with a lower index
    np.testing.assert_array_equal(target_ranks(np.zeros((1, 6)), np.array([4]), catalogue=np.arange(6) != 1), [3])


def test_sampled_rank_by_hand():
    # 4000 users, 11 items; the target (item 0) is beaten by item 5 only. With 2 of the 10 other items drawn
    # without replacement, item 5 is among them with chance 2 / 10.
    n = 4000
    scores = np.zeros((n, 11))
    scores[:, 0], scores[:, 5] = 1.0, 2.0
    targets = np.zeros(n, np.int64)
    r = target_ranks(scores, targets, n_negatives=2, seed=0)
    assert set(np.unique(r)) == {0.0, 1.0}
    assert abs(r.mean() - 0.2) < 0.03  # sd 0.006
    np.testing.assert_array_equal(target_ranks(scores, targets, n_negatives=10), np.ones(n))  # all drawn
    # the target scored lowest: every draw beats it, so the sampled rank is n_negatives (no item drawn twice)
    lowest = np.zeros((3, 11))
    lowest[:, 0] = -1.0
    np.testing.assert_array_equal(target_ranks(lowest, targets[:3], n_negatives=10), [10, 10, 10])
    np.testing.assert_array_equal(target_ranks(lowest, targets[:3], n_negatives=4), [4, 4, 4])
    # item 5 is another relevant item of every user: excluded, it is never a negative
    exclude = sp.csr_matrix((np.ones(n), (np.arange(n), np.full(n, 5))), shape=(n, 11))
    np.testing.assert_array_equal(target_ranks(scores, targets, exclude=exclude, n_negatives=9), np.zeros(n))
    with pytest.raises(ValueError, match="fewer than n_negatives=10"):
        target_ranks(scores, targets, exclude=exclude, n_negatives=10)


def test_sampled_rank_is_seeded():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 40))
    targets = rng.integers(0, 40, 50)
    a = target_ranks(scores, targets, n_negatives=5, seed=7)
    np.testing.assert_array_equal(a, target_ranks(scores, targets, n_negatives=5, seed=7))
    assert not np.array_equal(a, target_ranks(scores, targets, n_negatives=5, seed=8))
    assert (a <= 5).all() and (a <= target_ranks(scores, targets)).all()


def test_users_without_a_target_get_nan():
    r = target_ranks(SCORES, np.array([-1, -1]))
    assert np.isnan(r).all()
    # sampled too, even when n_negatives is more than the row holds: nobody is ranked, nothing to draw
    assert np.isnan(target_ranks(SCORES, np.array([-1, -1]), n_negatives=100)).all()
    r = target_ranks(SCORES, np.array([-1, 0]), n_negatives=4, seed=1)
    assert np.isnan(r[0]) and r[1] == 1  # only item 4 beats item 0 of user 1, and all 4 others are drawn


def test_target_ranks_refuses_bad_input():
    seen = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"targets\[0\] = 2 is masked"):
        target_ranks(SCORES, np.array([2, 0]), seen=seen)
    with pytest.raises(ValueError, match=r"targets\[1\] = 1 is masked"):
        target_ranks(SCORES, np.array([0, 1]), catalogue=np.array([True, False, True, True, True]))
    with pytest.raises(ValueError, match="fewer than n_negatives=5"):
        target_ranks(SCORES, np.array([0, 1]), n_negatives=5)  # 4 other items
    with pytest.raises(ValueError, match=r"user 1 has 2 items"):
        target_ranks(SCORES, np.array([0, 1]), seen=sp.csr_matrix(np.array([[0, 0, 0, 0, 0], [1, 0, 1, 0, 0]])),
                     n_negatives=3)
    with pytest.raises(ValueError, match="n_negatives"):
        target_ranks(SCORES, np.array([0, 1]), n_negatives=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        target_ranks(SCORES, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        target_ranks(SCORES, np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer"):
        target_ranks(SCORES, np.array([True, False]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        target_ranks(SCORES, np.array([0, 5]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        target_ranks(SCORES, np.array([-2, 0]))
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="exclude"):
        target_ranks(SCORES, np.array([0, 1]), exclude=sp.csr_matrix((3, 5)), n_negatives=2)
    with pytest.raises(ValueError, match="seen"):
        target_ranks(SCORES, np.array([0, 1]), seen=sp.csr_matrix((2, 4)))


# -- target_ranks properties ---------------------------------------------------------------------------------------

@st.composite
def ranking_cases(draw):
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = (rng.integers(0, 4, (n_users, n_items)) / 4).astype(draw(st.sampled_from([np.float32, np.float64])))
    seen = sp.csr_matrix((rng.random((n_users, n_items)) < draw(st.floats(0, 0.5))).astype(np.float32))
    catalogue = rng.random(n_items) < draw(st.floats(0.4, 1.0))
    exclude = sp.csr_matrix((rng.random((n_users, n_items)) < draw(st.floats(0, 0.5))).astype(np.float32))
    rankable = catalogue[None, :] & ~seen.toarray().astype(bool)
    targets = np.full(n_users, -1, np.int64)
    for u in range(n_users):
        items = np.flatnonzero(rankable[u])
        if len(items) and rng.random() < 0.85:
            targets[u] = rng.choice(items)
    return scores, targets, seen, catalogue, exclude, rankable


@settings(max_examples=80, deadline=None)
@given(ranking_cases())
def test_full_rank_is_the_position_in_the_top_k_list(case):
    scores, targets, seen, catalogue, _, rankable = case
    ranks = target_ranks(scores, targets, seen=seen, catalogue=catalogue)
    top = topk_from_scores(scores, scores.shape[1], seen=seen, catalogue=catalogue)
    for u, t in enumerate(targets):
        if t < 0:
            assert np.isnan(ranks[u])
        else:
            assert ranks[u] == np.flatnonzero(top[u] == t)[0] < rankable[u].sum()
            k = int(ranks[u]) + 1  # in the top k exactly from this k on
            assert t in topk_from_scores(scores[u:u + 1], k, seen=seen[u], catalogue=catalogue)[0]
            if k > 1:
                assert t not in topk_from_scores(scores[u:u + 1], k - 1, seen=seen[u], catalogue=catalogue)[0]


@settings(max_examples=80, deadline=None)
@given(ranking_cases(), st.integers(0, 1000))
def test_sampled_rank_never_exceeds_the_full_rank(case, seed):
    scores, targets, seen, catalogue, exclude, rankable = case
    full = target_ranks(scores, targets, seen=seen, catalogue=catalogue)
    pool = rankable & ~(exclude.toarray() > 0)
    pool[np.flatnonzero(targets >= 0), targets[targets >= 0]] = False
    has = targets >= 0
    if not has.any() or pool[has].sum(axis=1).min() == 0:
        return
    n = int(pool[has].sum(axis=1).min())
    sampled = target_ranks(scores, targets, seen=seen, catalogue=catalogue, exclude=exclude, n_negatives=n, seed=seed)
    np.testing.assert_array_equal(np.isnan(sampled), ~has)
    assert (sampled[has] <= full[has]).all() and (sampled[has] <= n).all()


@settings(max_examples=80, deadline=None)
@given(ranking_cases(), st.integers(0, 1000))
def test_drawing_every_eligible_item_gives_the_full_rank_less_the_excluded(case, seed):
    """With n_negatives = the whole pool, the sampled rank counts every rankable item ahead of the target but the
    user's other relevant items (``exclude``), which are never negatives."""
    scores, targets, seen, catalogue, exclude, rankable = case
    full = target_ranks(scores, targets, seen=seen, catalogue=catalogue)
    ex = exclude.toarray() > 0
    for u in np.flatnonzero(targets >= 0):
        t = targets[u]
        pool = rankable[u] & ~ex[u]
        pool[t] = False
        if not pool.any():
            continue
        s = scores[u].astype(np.float64)
        ahead = (s > s[t]) | ((s == s[t]) & (np.arange(len(s)) < t))
        excluded_ahead = int((ahead & rankable[u] & ex[u]).sum())
        got = target_ranks(scores[u:u + 1], targets[u:u + 1], seen=seen[u], catalogue=catalogue, exclude=exclude[u],
                           n_negatives=int(pool.sum()), seed=seed)
        assert got[0] == full[u] - excluded_ahead


# -- rank_metrics, first_items -------------------------------------------------------------------------------------

def test_rank_metrics_by_hand():
    m = rank_metrics(np.array([0, 3, 9, 10, np.nan]), k=10)
    assert list(m.columns) == ["hit@10", "ndcg@10"]
    np.testing.assert_array_equal(m["hit@10"], [1, 1, 1, 0, np.nan])
    np.testing.assert_allclose(m["ndcg@10"], [1, 1 / math.log2(5), 1 / math.log2(11), 0, np.nan])
    assert m["hit@10"].mean() == 0.75  # NaN (no target) left out of the mean
    assert m["ndcg@10"].mean() == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(11)) / 4)
    m1 = rank_metrics([0, 1, 2], k=1)
    np.testing.assert_array_equal(m1["hit@1"], [1, 0, 0])
    np.testing.assert_array_equal(m1["ndcg@1"], [1, 0, 0])


def test_rank_metrics_refuses_bad_ranks():
    with pytest.raises(ValueError, match="1-D"):
        rank_metrics(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="whole numbers"):
        rank_metrics([0, -1])
    with pytest.raises(ValueError, match="whole numbers"):
        rank_metrics([0.5])
    with pytest.raises(ValueError, match="k"):
        rank_metrics([0, 1], k=0)


def test_first_items():
    truth = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]]))
    out = first_items(truth)
    np.testing.assert_array_equal(out, [1, -1, 0, 2])
    assert out.dtype == np.int64
    with pytest.raises(ValueError, match="at most one item per user, row 1 holds 2"):
        first_items(sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1]])))
    with pytest.raises(TypeError, match="truth"):
        first_items(np.eye(3))


# -- Protocol.next_items -------------------------------------------------------------------------------------------

def tiny_protocol():
    """Users 10, 20, 30 and items 100..105 (indices 0..5), each part written by hand, rows in no particular order."""
    index = IndexMap.from_ids([10, 20, 30], list(range(100, 106)))

    def part(rows):
        f = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
        return f.assign(user_idx=index.user_index(f.user_id.to_numpy()),
                        item_idx=index.item_index(f.item_id.to_numpy()))

    return S.Protocol(
        index=index,
        train=part([(10, 100, 4, 0), (20, 101, 4, 0), (30, 102, 4, 0)]),
        valid=part([(20, 103, 4, 5), (20, 100, 4, 5), (30, 105, 4, 2)]),  # user 20: a tie in time -> item 100
        test=part([(10, 105, 4, 3), (30, 104, 4, 9), (10, 103, 4, 1), (10, 102, 4, 1), (30, 101, 4, 7)]),
        cold_test=part([(30, 104, 4, 8), (10, 104, 4, 2)]),
        cold_items=np.array([4]),
    )


def test_next_items_by_hand():
    p = tiny_protocol()
    test = p.next_items("test")
    assert sp.isspmatrix_csr(test) or isinstance(test, sp.csr_array)
    assert test.shape == (3, 6)
    # user 10: items 103 and 102 both at t=1 -> the lower index, 102 (2); user 20: none; user 30: 101 at t=7 (1)
    np.testing.assert_array_equal(test.toarray(), [[0, 0, 1, 0, 0, 0], [0] * 6, [0, 1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(first_items(test), [2, -1, 1])
    np.testing.assert_array_equal(first_items(p.next_items("valid")), [-1, 0, 5])
    np.testing.assert_array_equal(first_items(p.next_items("cold_test")), [4, -1, 4])
    with pytest.raises(ValueError, match="eval_set"):
        p.next_items("train")


def log(n_users=8, n_items=25, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        rows += [(u, int(i), 4, int(t)) for i, t in zip(items, rng.integers(0, 4, per_user))]  # many ties
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.mark.parametrize("eval_set", ["valid", "test", "cold_test"])
def test_next_items_is_each_users_earliest_item(eval_set):
    p = S.make_protocol(log(), ratios=(0.5, 0.25, 0.25), cold_frac=0.2, seed=0)
    nxt = p.next_items(eval_set)
    f = p.frame(eval_set)
    assert (nxt - nxt.multiply(p.csr(eval_set))).nnz == 0  # one of the user's items of that part
    first = f.sort_values(["timestamp", "item_idx"]).groupby("user_idx").item_idx.first()
    expected = np.full(p.n_users, -1)
    expected[first.index.to_numpy()] = first.to_numpy()
    np.testing.assert_array_equal(first_items(nxt), expected)
    assert (expected >= 0).sum() >= 3  # the check compared real items


def test_full_rank_agrees_with_the_protocols_top_k():
    p = S.make_protocol(log(n_users=10, n_items=30), ratios=(0.5, 0.25, 0.25), cold_frac=0.2, seed=1)
    scores = np.random.default_rng(0).integers(0, 5, (p.n_users, p.n_items)).astype(np.float32)  # ties
    targets = first_items(p.next_items("test"))
    ranks = target_ranks(scores, targets, seen=p.history("test"), catalogue=p.catalogue("test"))
    top = p.rank(scores, "test", k=5)
    for u, t in enumerate(targets):
        if t >= 0:
            assert (ranks[u] < 5) == (t in top[u])
    hits = rank_metrics(ranks, k=5)["hit@5"].to_numpy()
    np.testing.assert_array_equal(hits[targets >= 0], [t in top[u] for u, t in enumerate(targets) if t >= 0])


# -- genre_drift ---------------------------------------------------------------------------------------------------

GENRES = np.array([[1, 0, 0],    # item 0: genre A
                   [1, 1, 0],    # item 1: A and B, half each
                   [0, 0, 1],    # item 2: C
                   [0, 1, 0],    # item 3: B
                   [0, 0, 0]])   # item 4: no genre


def test_genre_drift_by_hand():
    mixed = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25  # p = (1, 0, 0), q = (1/2, 1/2, 0)
    longer = 0.375 + 0.125 * math.log2(2 / 3) + 0.25 * math.log2(4 / 3) + 0.25  # p = (3/4, 1/4, 0), q = (0, 1/2, 1/2)
    out = genre_drift([[0, 0, 0, 0], [1, 0, 0, 1], [0, 2], [0, 1], [0, 1, 3, 2]], GENRES)
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0, mixed, longer], rtol=1e-12, atol=1e-12)
    assert out[3] == pytest.approx(0.31127812445913283)


def test_genre_drift_cuts_at_split():
    s = [0, 0, 0, 2]
    np.testing.assert_allclose(genre_drift([s], GENRES, split=0.75), [1.0])  # 0 0 0 | 2
    half = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25  # 0 0 | 0 2: p = (1, 0, 0), q = (1/2, 0, 1/2)
    np.testing.assert_allclose(genre_drift([s], GENRES, split=0.5), [half])
    np.testing.assert_allclose(genre_drift([[2, 0, 0, 0]], GENRES, split=0.25), [1.0])  # 2 | 0 0 0


def test_genre_drift_nan_where_undefined():
    out = genre_drift([[], [1], [4, 0], [0, 4], [0, 1]], GENRES)
    assert np.isnan(out[:4]).all() and not np.isnan(out[4])
    assert np.isnan(genre_drift([[0, 2]], GENRES, split=0.4)[0])  # floor(0.8) = 0 items in the early part
    assert not np.isnan(genre_drift([[0, 2]], GENRES, split=0.8)[0])  # floor(1.6) = 1: one item in each part
    assert genre_drift([], GENRES).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(0, 2**31))
def test_genre_drift_properties(half, seed):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, (4, 5))
    g[:, 0] = 1  # every item has a genre
    s = np.array(half + list(rng.permutation(half)))
    d = genre_drift([s, s[::-1].copy(), np.array(half + [int(rng.integers(0, 4))])], g)
    assert d[0] == pytest.approx(0.0, abs=1e-12)  # the same items in both halves
    assert 0.0 <= d[2] <= 1.0
    t = rng.integers(0, 4, 2 * len(half))
    a, b = genre_drift([t, t[::-1].copy()], g)
    assert a == pytest.approx(b, abs=1e-12)  # Jensen-Shannon is symmetric


def test_genre_drift_refuses_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        genre_drift([[0, 1]], -GENRES)
    with pytest.raises(ValueError, match="item_genres"):
        genre_drift([[0, 1]], GENRES[0])
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="split"):
            genre_drift([[0, 1]], GENRES, split=bad)
    with pytest.raises(TypeError, match="list of 1-D"):
        genre_drift(np.array([[0, 1]]), GENRES)
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        genre_drift([[0, 1], [5, 0]], GENRES)
    with pytest.raises(TypeError, match=r"sequences\[0\]"):
        genre_drift([[0.0, 1.0]], GENRES)
