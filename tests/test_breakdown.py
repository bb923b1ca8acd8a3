"""recsuite.evaluation.metrics per-group breakdowns: breakdown, activity_groups, item_popularity_bucket, item_breakdown.

Every expected value below is worked out by hand on matrices small enough to check on paper.
"""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.evaluation import breakdown
from recsuite.evaluation import metrics as M

# -- breakdowns ---------------------------------------------------------------------------------------
TOPK = np.array([[1, 2, 3], [0, 2, 4], [0, 1, 2], [4, 3, 2]])
TRUTH = sp.csr_matrix((np.ones(4), ([0, 0, 1, 3], [1, 3, 4, 0])), shape=(4, 5))  # relevant: {1, 3}, {4}, {}, {0}


def test_per_user_metrics_match_recsuite_metrics():
    pu = M.per_user_metrics(TOPK, TRUTH, k=3)
    assert pu.n_relevant.tolist() == [2, 1, 0, 1]
    assert np.isnan(pu.loc[2, "ndcg@3"])
    d = [1 / math.log2(i + 2) for i in range(3)]
    np.testing.assert_allclose(pu["ndcg@3"].to_numpy()[[0, 1, 3]], [(d[0] + d[2]) / (d[0] + d[1]), d[2], 0.0])
    for name, fn in [("ndcg", M.ndcg_at_k), ("recall", M.recall_at_k), ("hit", M.hit_rate_at_k), ("map", M.map_at_k)]:
        assert pu[f"{name}@3"].mean() == pytest.approx(fn(TOPK, TRUTH, k=3))


def test_breakdown_counts_and_means():
    pu = M.per_user_metrics(TOPK, TRUTH, k=3)
    groups = pd.Series(pd.Categorical(["a", "b", "a", "b"], categories=["a", "b", "c"]), name="g")
    out = breakdown.breakdown(pu, groups)
    assert out.index.tolist() == ["a", "b", "c"] and out.index.name == "g"
    assert out.users.tolist() == [1, 2, 0]  # user 2 has no relevant items: not evaluated
    assert out.loc["a", "hit@3"] == 1.0 and out.loc["b", "hit@3"] == 0.5
    assert out.loc["b", "recall@3"] == pytest.approx((1.0 + 0.0) / 2)
    assert np.isnan(out.loc["c", "ndcg@3"])
    arr = breakdown.breakdown(pu, np.array(["x", "x", "y", "y"]), metrics=["hit@3"])
    assert list(arr.columns) == ["users", "hit@3"] and arr.users.tolist() == [2, 1]
    with pytest.raises(ValueError, match="groups is missing for 1 users"):
        breakdown.breakdown(pu, pd.Series(["a", None, "b", "b"]))
    with pytest.raises(ValueError, match="groups has no entry for 2 users"):
        breakdown.breakdown(pu, pd.Series(["a", "b"]))
    with pytest.raises(ValueError, match="metrics must name metric columns"):
        breakdown.breakdown(pu, groups, metrics=["auc"])


def test_activity_groups_terciles_and_fixed_bins(csr):
    hist = csr([[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]], 6)
    g = breakdown.activity_groups(hist)  # counts 1..6, terciles at 2.67 and 4.33
    assert g.astype(str).tolist() == ["cold", "cold", "light", "light", "heavy", "heavy"]
    assert g.cat.ordered and g.index.name == "user_idx"
    np.testing.assert_allclose(g.attrs["thresholds"], [8 / 3, 13 / 3])
    fixed = breakdown.activity_groups(hist, bins=(1, 5), labels=("new", "mid", "power"))
    assert fixed.astype(str).tolist() == ["new", "mid", "mid", "mid", "mid", "power"]
    with pytest.raises(ValueError, match="bins must hold 2 increasing thresholds"):
        breakdown.activity_groups(hist, bins=(5, 1))
    with pytest.raises(ValueError, match="history must be a scipy.sparse"):
        breakdown.activity_groups(np.ones((2, 2)))


def test_item_popularity_bucket_by_hand():
    pop = np.array([50, 0, 10, 10, 3, 1, 2, 0, 5, 4, 1, 30])  # 10 seen items, 2 unseen
    b = breakdown.item_popularity_bucket(pop)
    # seen, by count: 50, 30 | 10, 10, 5 | 4, 3, 2, 1, 1 -> head 20 % = 2 items, mid next 30 % = 3 items
    want = ["head", "unseen", "mid", "mid", "tail", "tail", "tail", "unseen", "mid", "tail", "tail", "head"]
    assert b.astype(str).tolist() == want
    assert b.cat.categories.tolist() == ["head", "mid", "tail", "unseen"]
    # a tie across the cut stays together in the more popular bucket
    tie = breakdown.item_popularity_bucket(np.array([9, 5, 5, 1, 1]), cuts=(0.4,), labels=("head", "tail"), zero_label=None)
    assert tie.astype(str).tolist() == ["head", "head", "head", "tail", "tail"]
    with pytest.raises(ValueError, match="cuts must hold 2 increasing shares"):
        breakdown.item_popularity_bucket(pop, cuts=(0.5, 0.2))


def test_item_breakdown_by_hand():
    groups = pd.Series(pd.Categorical(["head", "head", "tail", "tail", "tail"]), name="bucket")
    out = breakdown.item_breakdown(TOPK, TRUTH, groups, k=3)
    # slots: 12; head items {0, 1} fill 4 of them. Hits: user 0 items 1, 3; user 1 item 4 -> 1 head, 2 tail
    assert out.n_items.tolist() == [2, 3] and out.hits.tolist() == [1, 2]
    np.testing.assert_allclose(out.rec_share, [4 / 12, 8 / 12])
    np.testing.assert_allclose(out.hit_share, [1 / 3, 2 / 3])
    # relevant: items 1, 3, 4, 0 -> head {1, 0}, tail {3, 4}
    np.testing.assert_allclose(out.relevant_share, [0.5, 0.5])
    np.testing.assert_allclose(out.recall, [0.5, 1.0])
    with pytest.raises(ValueError, match="one group per item \\(5\\)"):
        breakdown.item_breakdown(TOPK, TRUTH, groups[:4], k=3)



# -- bad input: every public function answers a clear TypeError/ValueError --------------------------------
_PU = M.per_user_metrics(TOPK, TRUTH, k=3)
_HIST = sp.csr_matrix(np.eye(4))
_POP = np.array([5, 0, 3, 1, 2])
_GROUPS = pd.Series(pd.Categorical(["head", "head", "tail", "tail", "tail"]))
_BAD = {
    "breakdown: not a frame": (lambda: breakdown.breakdown(_PU.to_numpy(), ["a"] * 4), TypeError),
    "breakdown: metric not a str": (lambda: breakdown.breakdown(_PU, ["a", "a", "b", "b"], metrics=[3]), TypeError),
    "breakdown: unknown metric": (lambda: breakdown.breakdown(_PU, ["a", "a", "b", "b"], metrics="auc@3"), ValueError),
    "breakdown: groups of wrong length": (lambda: breakdown.breakdown(_PU, ["a", "b"]), ValueError),
    "breakdown: 2-D groups": (lambda: breakdown.breakdown(_PU, np.array([["a"], ["a"], ["b"], ["b"]])), ValueError),
    "breakdown: groups index repeats a user": (
        lambda: breakdown.breakdown(_PU, pd.Series(["a", "b", "a", "b", "c"], index=[0, 1, 2, 3, 3])), ValueError),
    "breakdown: NaN group": (lambda: breakdown.breakdown(_PU, np.array(["a", None, "b", "b"], dtype=object)), ValueError),
    "activity_groups: dense history": (lambda: breakdown.activity_groups(np.eye(4)), (TypeError, ValueError)),
    "activity_groups: no users": (lambda: breakdown.activity_groups(sp.csr_matrix((0, 4))), ValueError),
    "activity_groups: labels a str": (lambda: breakdown.activity_groups(_HIST, labels="abc"), TypeError),
    "activity_groups: one label": (lambda: breakdown.activity_groups(_HIST, labels=("all",)), ValueError),
    "activity_groups: repeated labels": (lambda: breakdown.activity_groups(_HIST, labels=("a", "a")), ValueError),
    "activity_groups: NaN bins": (lambda: breakdown.activity_groups(_HIST, bins=(np.nan, 2)), ValueError),
    "activity_groups: text bins": (lambda: breakdown.activity_groups(_HIST, bins=("1", "2")), TypeError),
    "activity_groups: too few bins": (lambda: breakdown.activity_groups(_HIST, bins=(1,)), ValueError),
    "item_popularity_bucket: negative counts": (lambda: breakdown.item_popularity_bucket([3, -1, 2]), ValueError),
    "item_popularity_bucket: NaN counts": (lambda: breakdown.item_popularity_bucket([3, np.nan, 2]), ValueError),
    "item_popularity_bucket: 2-D counts": (lambda: breakdown.item_popularity_bucket(np.ones((3, 2))), ValueError),
    "item_popularity_bucket: empty": (lambda: breakdown.item_popularity_bucket([]), ValueError),
    "item_popularity_bucket: labels a str": (lambda: breakdown.item_popularity_bucket(_POP, cuts=(0.5,), labels="ab"), TypeError),
    "item_popularity_bucket: scalar cuts": (lambda: breakdown.item_popularity_bucket(_POP, cuts=0.5, labels=("a", "b")), ValueError),
    "item_popularity_bucket: cut of 1": (lambda: breakdown.item_popularity_bucket(_POP, cuts=(0.2, 1.0)), ValueError),
    "item_popularity_bucket: text cuts": (lambda: breakdown.item_popularity_bucket(_POP, cuts=("0.2", "0.5")), TypeError),
    "item_popularity_bucket: zero_label not a str": (lambda: breakdown.item_popularity_bucket(_POP, zero_label=0), TypeError),
    "item_popularity_bucket: zero_label repeats a label": (
        lambda: breakdown.item_popularity_bucket(_POP, zero_label="tail"), ValueError),
    "item_breakdown: groups of wrong length": (lambda: breakdown.item_breakdown(TOPK, TRUTH, _GROUPS[:3], k=3), ValueError),
    "item_breakdown: 2-D groups": (lambda: breakdown.item_breakdown(TOPK, TRUTH, np.zeros((5, 2)), k=3), ValueError),
    "item_breakdown: groups indexed by other ids": (
        lambda: breakdown.item_breakdown(TOPK, TRUTH, _GROUPS.set_axis([10, 11, 12, 13, 14]), k=3), ValueError),
    "item_breakdown: NaN group": (lambda: breakdown.item_breakdown(TOPK, TRUTH, ["a", None, "b", "b", "b"], k=3), ValueError),
    "item_breakdown: k beyond the lists": (lambda: breakdown.item_breakdown(TOPK, TRUTH, _GROUPS, k=4), ValueError),
    "item_breakdown: bool k": (lambda: breakdown.item_breakdown(TOPK, TRUTH, _GROUPS, k=True), TypeError),
    "item_breakdown: item outside truth": (lambda: breakdown.item_breakdown(TOPK + 1, TRUTH, _GROUPS, k=3), ValueError),
    "item_breakdown: dense truth": (lambda: breakdown.item_breakdown(TOPK, TRUTH.toarray(), _GROUPS, k=3), TypeError),
}


@pytest.mark.parametrize("case", list(_BAD), ids=list(_BAD))
def test_breakdown_bad_input(case):
    call, exc = _BAD[case]
    with pytest.raises(exc):
        call()


def test_item_breakdown_reads_groups_by_item_index_and_skips_padding():
    shuffled = _GROUPS.iloc[::-1]  # the same item -> group mapping, in another row order
    pd.testing.assert_frame_equal(breakdown.item_breakdown(TOPK, TRUTH, shuffled, k=3), breakdown.item_breakdown(TOPK, TRUTH, _GROUPS, k=3))
    padded = TOPK.copy()
    padded[2, 2] = M.NO_ITEM  # a short list: the padded slot is no recommendation of the last item's group
    out = breakdown.item_breakdown(padded, TRUTH, _GROUPS, k=3)
    np.testing.assert_allclose(out.rec_share, [4 / 11, 7 / 11])
    assert out.hits.tolist() == [1, 2]
