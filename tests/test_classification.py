"""Checks of recsuite.evaluation.classification: AUC against scikit-learn and by hand, per-user metrics against a
loop over users and against recsuite.evaluation.metrics, hand-computed NDCG@k and mean of the top k, bad input."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from recsuite.evaluation import bootstrap
from recsuite.evaluation import classification as C
from recsuite.evaluation import metrics as M

# discounts 1 / log2(r + 1) of ranks r = 1, 2, 3
D1, D2, D3 = 1.0, 1 / math.log2(3), 1 / math.log2(4)


# -- auc ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(50))
def test_auc_equals_sklearn_on_random_data_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]  # both classes
    rng.shuffle(labels)
    # few distinct values: many ties, within and across classes
    scores = rng.integers(0, int(rng.integers(1, 6)), n) + (rng.random(n) if seed % 3 == 0 else 0.0)
    assert C.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_known_answers():
    y = np.array([0, 0, 1, 1])
    assert C.auc(y, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert C.auc(y, [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert C.auc(y, [7, 7, 7, 7]) == 0.5
    # pairs (pos, neg): 0.4 > 0.1 wins, 0.4 = 0.4 counts 1/2, 0.8 beats both -> 3.5 / 4
    assert C.auc([0, 1, 0, 1], [0.1, 0.4, 0.4, 0.8]) == pytest.approx(0.875)
    assert C.auc([True, False, True], [2, 1, 3]) == 1.0  # booleans are labels too


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="labels must hold both classes"):
        C.auc([1, 1, 1], [0.1, 0.2, 0.3])


# -- per_user_auc -----------------------------------------------------------------------------------------------
def _frame(seed, n=120, users=(42, 3, 7, 100, 9)):
    rng = np.random.default_rng(seed)
    u = rng.choice(np.array(users), n)
    y = rng.integers(0, 2, n)
    y[u == 9] = 1  # one user with one class only
    s = np.round(rng.normal(size=n), 1)  # ties within users
    return u, y, s


@pytest.mark.parametrize("seed", range(5))
def test_per_user_auc_equals_a_loop_over_users(seed):
    u, y, s = _frame(seed)
    got = C.per_user_auc(u, y, s)
    ids = np.unique(u)
    want = [C.auc(y[u == i], s[u == i]) if len(np.unique(y[u == i])) == 2 else np.nan for i in ids]
    assert list(got.index) == list(ids) and got.name == "auc" and got.index.name == "user"
    np.testing.assert_allclose(got.to_numpy(), want, rtol=0, atol=1e-12)
    assert np.isnan(got.loc[9]) and got.drop(9).notna().all()


def test_per_user_auc_does_not_depend_on_the_row_order():
    u, y, s = _frame(11)
    perm = np.random.default_rng(0).permutation(len(u))
    pd.testing.assert_series_equal(C.per_user_auc(u[perm], y[perm], s[perm]), C.per_user_auc(u, y, s),
                                   check_exact=False, rtol=0, atol=1e-12)


# -- grouped_ndcg ------------------------------------------------------------------------------------------------
# rows interleaved across users; k = 3
#   user 1: (score, label) (0.9, 0) (0.8, 1) (0.5, 1) (0.1, 1) -> ranks 2, 3 hit; rank 4 is past k
#   user 2: (0.3, 1) (0.7, 0) (0.3, 0)                       -> the tied 0.3s keep row order: hit at rank 2
#   user 5: no relevant row                                  -> NaN
USERS = np.array([1, 2, 1, 5, 2, 1, 5, 2, 1])
SCORES = np.array([0.9, 0.3, 0.8, 0.2, 0.7, 0.5, 0.4, 0.3, 0.1])
LABELS = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1])


def test_grouped_ndcg_by_hand():
    got = C.grouped_ndcg(USERS, LABELS, SCORES, k=3)
    assert got.name == "ndcg@3" and list(got.index) == [1, 2, 5]
    assert got.loc[1] == pytest.approx((D2 + D3) / (D1 + D2 + D3))  # 3 relevant rows: ideal fills ranks 1-3
    assert got.loc[2] == pytest.approx(D2 / D1)
    assert np.isnan(got.loc[5])
    # k = 1: only the first row counts
    np.testing.assert_array_equal(C.grouped_ndcg(USERS, LABELS, SCORES, k=1).to_numpy(), [0.0, 0.0, np.nan])


def test_grouped_ndcg_ties_rank_the_earlier_row_first():
    swapped = LABELS.copy()
    swapped[[1, 7]] = swapped[[7, 1]]  # user 2's relevant row is now the later of the two tied at 0.3
    assert C.grouped_ndcg(USERS, swapped, SCORES, k=3).loc[2] == pytest.approx(D3 / D1)


def test_grouped_ndcg_with_gains_by_hand():
    # user 1: gains 5 (label 0: ignored), 3, NaN (counts 0), 4 (rank 4, past k) -> DCG = 3 D2; ideal [4, 3, 0]
    # user 2: gains 2 (label 1), 5 (label 0: ignored), NaN                     -> DCG = 2 D2; ideal [2]
    gains = np.array([5, 2, 3, np.nan, 5, np.nan, 1, np.nan, 4])
    got = C.grouped_ndcg(USERS, LABELS, SCORES, k=3, gains=gains)
    assert got.loc[1] == pytest.approx(3 * D2 / (4 * D1 + 3 * D2))
    assert got.loc[2] == pytest.approx(2 * D2 / (2 * D1))
    assert np.isnan(got.loc[5])
    assert got.loc[1] != pytest.approx(C.grouped_ndcg(USERS, LABELS, SCORES, k=3).loc[1])


@pytest.mark.parametrize("k", [1, 4, 12])
def test_grouped_ndcg_on_the_whole_catalogue_equals_metrics(k):
    rng = np.random.default_rng(k)
    n_users, n_items = 7, 12
    scores = rng.integers(0, 4, (n_users, n_items)).astype(float)  # many ties: broken by item index in both
    truth = (rng.random((n_users, n_items)) < 0.3).astype(float)
    truth[3] = 0  # a user without relevant items
    topk = M.topk_from_scores(scores, k)
    want = M.per_user_metrics(topk, sp.csr_matrix(truth), k)[f"ndcg@{k}"]
    rows = np.repeat(np.arange(n_users), n_items)  # one row per (user, item), items in index order
    got = C.grouped_ndcg(rows, truth.ravel(), scores.ravel(), k=k)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)
    assert got.mean() == pytest.approx(M.ndcg_at_k(topk, sp.csr_matrix(truth), k), abs=1e-12)


def test_grouped_ndcg_does_not_depend_on_the_row_order_without_ties():
    u, y, _ = _frame(3)
    s = np.random.default_rng(1).permutation(len(u)).astype(float)  # distinct scores
    perm = np.random.default_rng(2).permutation(len(u))
    pd.testing.assert_series_equal(C.grouped_ndcg(u[perm], y[perm], s[perm], k=5), C.grouped_ndcg(u, y, s, k=5),
                                   check_exact=False, rtol=0, atol=1e-12)


# -- mean_of_top -----------------------------------------------------------------------------------------------
def test_mean_of_top_by_hand():
    # k = 2. user 1: top rows 0.9 (NaN), 0.8 (4) -> 4; user 2: 0.7 (NaN), the earlier 0.3 (2) -> 2;
    # user 5: top rows 0.4 (NaN), 0.2 (NaN) -> NaN
    values = np.array([np.nan, 2, 4, np.nan, np.nan, 3, np.nan, 1, 8])
    got = C.mean_of_top(USERS, values, SCORES, k=2)
    assert got.name == "mean_of_top@2" and list(got.index) == [1, 2, 5]
    np.testing.assert_array_equal(got.to_numpy(), [4.0, 2.0, np.nan])
    # k = 4: user 1's top four hold 4, 3, 8 -> 5; user 2's three rows hold 2, 1 -> 1.5
    np.testing.assert_array_equal(C.mean_of_top(USERS, values, SCORES, k=4).to_numpy(), [5.0, 1.5, np.nan])


# -- ready for the paired bootstrap ---------------------------------------------------------------------------
def test_two_models_on_the_same_rows_pair_up():
    u, y, s = _frame(5, n=400)
    other = s + np.random.default_rng(9).normal(size=len(s))
    for metric in (C.per_user_auc, lambda *a: C.grouped_ndcg(*a, k=3)):
        a, b = metric(u, y, s), metric(u, y, other)
        assert a.index.equals(b.index) and np.array_equal(a.isna(), b.isna())
        assert bootstrap.paired_bootstrap(a, b).n_users == int(a.notna().sum())


def test_pandas_columns_are_read_as_arrays():
    frame = pd.DataFrame({"user_idx": pd.array(USERS, dtype="Int64"), "label": pd.array(LABELS.astype(bool)),
                          "score": pd.array(SCORES, dtype="Float64"),
                          "rating": pd.array([5, 2, 3, None, 5, None, 1, None, 4], dtype="Float64")})
    got = C.grouped_ndcg(frame["user_idx"], frame["label"], frame["score"], k=3, gains=frame["rating"])
    assert got.index.name == "user_idx"
    gains = np.array([5, 2, 3, np.nan, 5, np.nan, 1, np.nan, 4])
    np.testing.assert_allclose(got.to_numpy(), C.grouped_ndcg(USERS, LABELS, SCORES, k=3, gains=gains).to_numpy())


# -- bad input ------------------------------------------------------------------------------------------------
U, Y, S = np.array([1, 1, 2, 2]), np.array([0, 1, 1, 0]), np.array([0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("call, error, match", [
    (lambda: C.auc(Y, S[:3]), ValueError, "scores has 3 rows but labels has 4"),
    (lambda: C.auc([0, 2, 1, 0], S), ValueError, "labels must hold only 0 and 1"),
    (lambda: C.auc([0, np.nan, 1, 0], S), ValueError, "labels must hold only 0 and 1"),
    (lambda: C.auc(["a", "b", "a", "b"], S), TypeError, "labels must be 0/1"),
    (lambda: C.auc(Y, [0.1, np.nan, 0.3, 0.4]), ValueError, "scores holds NaN"),
    (lambda: C.auc([], []), ValueError, "labels must hold at least one row"),
    (lambda: C.per_user_auc(U, Y[:3], S), ValueError, "labels has 3 rows but users has 4"),
    (lambda: C.per_user_auc(U, Y, S[:2]), ValueError, "scores has 2 rows but users has 4"),
    (lambda: C.per_user_auc(U.astype(float), Y, S), TypeError, "users must hold int user ids"),
    (lambda: C.per_user_auc(U[:0], Y[:0], S[:0]), ValueError, "users must hold at least one"),
    (lambda: C.per_user_auc(U, Y, S.reshape(2, 2)), ValueError, "scores must be 1-D"),
    (lambda: C.per_user_auc(U, pd.DataFrame({"y": Y}), S), TypeError, "labels must be one column"),
    (lambda: C.per_user_auc(pd.Series(U), pd.Series(Y, index=[3, 2, 1, 0]), S), ValueError,
     "users and labels are Series with different indexes"),
    (lambda: C.grouped_ndcg(U, [0, 1, 3, 0], S), ValueError, "labels must hold only 0 and 1"),
    (lambda: C.grouped_ndcg(U, Y, [0.1, 0.2, np.inf, 0.4]), ValueError, "scores holds NaN or inf"),
    (lambda: C.grouped_ndcg(U, Y, S, k=0), ValueError, "k must be an int >= 1"),
    (lambda: C.grouped_ndcg(U, Y, S, k=2.0), TypeError, "k must be an int"),
    (lambda: C.grouped_ndcg(U, Y, S, gains=[1, -1, 2, 3]), ValueError, "gains must be non-negative"),
    (lambda: C.grouped_ndcg(U, Y, S, gains=[1, 2]), ValueError, "gains has 2 rows but users has 4"),
    (lambda: C.mean_of_top(U, [1, 2, np.inf, 3], S), ValueError, "values holds inf"),
    (lambda: C.mean_of_top(U, [1, 2, 3], S), ValueError, "values has 3 rows but users has 4"),
    (lambda: C.mean_of_top(U, [1, 2, 3, 4], [0.1, 0.2, 0.3, np.nan]), ValueError, "scores holds NaN"),
    (lambda: C.mean_of_top(U, [1, 2, 3, 4], S, k=-1), ValueError, "k must be an int >= 1"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
