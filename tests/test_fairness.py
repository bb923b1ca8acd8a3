"""recsuite.evaluation.fairness: popularity bias (ARP, APLT), exposure of item groups against their merit, and
gaps between user groups with bootstrap intervals.

The hand-computed cases write the log2 discounts out; the properties are checked with hypothesis on small lists.
"""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsuite.evaluation import fairness as F
from recsuite.evaluation.bootstrap import NOISE_FLOOR, PairedDifference

# Two users, three slots, five items. User 1's list is short: its last slot is -1 (no item).
TOPK = np.array([[0, 1, 2], [3, 2, -1]])
POP = np.array([10.0, 4.0, 1.0, 0.0, 7.0])
TAIL = POP <= 1  # items 2 and 3
GROUPS = np.array([0, 0, 1, 1, 0])  # group 0 = items 0, 1, 4; group 1 = items 2, 3
D1, D2, D3 = 1.0, 1 / math.log2(3), 1 / math.log2(4)  # exposure of slots 1, 2, 3


# -- popularity bias -----------------------------------------------------------------------------------------
def test_recommended_popularity_and_arp_by_hand():
    np.testing.assert_allclose(F.recommended_popularity(TOPK, POP, k=3), [(10 + 4 + 1) / 3, (0 + 1) / 2])
    assert F.arp(TOPK, POP, k=3) == pytest.approx((5.0 + 0.5) / 2)
    # k cuts the lists: only the first slot counts
    np.testing.assert_allclose(F.recommended_popularity(TOPK, POP, k=1), [10.0, 0.0])
    assert F.arp(TOPK, POP, k=1) == pytest.approx(5.0)


def test_long_tail_share_and_aplt_by_hand():
    np.testing.assert_allclose(F.long_tail_share(TOPK, TAIL, k=3), [1 / 3, 2 / 2])
    assert F.aplt(TOPK, TAIL, k=3) == pytest.approx((1 / 3 + 1) / 2)
    assert F.aplt(TOPK, TAIL, k=2) == pytest.approx((0 + 1) / 2)


def test_padding_is_no_item_and_an_empty_list_is_nan_and_left_out():
    top = np.array([[0, -1, 2], [-1, -1, -1], [4, -1, -1]])
    rp = F.recommended_popularity(top, POP, k=3)
    np.testing.assert_allclose(rp[[0, 2]], [(10 + 1) / 2, 7.0])
    assert np.isnan(rp[1])
    assert F.arp(top, POP, k=3) == pytest.approx((5.5 + 7.0) / 2)  # not dragged to 0 by the empty list
    assert F.aplt(top, TAIL, k=3) == pytest.approx((1 / 2 + 0) / 2)
    ex = F.exposure(top, GROUPS, k=3)
    np.testing.assert_allclose(ex[0], [D1 / (D1 + D3), D3 / (D1 + D3)])  # item 2 keeps slot 3's discount
    assert np.isnan(ex[1]).all()
    np.testing.assert_allclose(ex[2], [1.0, 0.0])
    with pytest.raises(ValueError, match="arp needs at least one non-empty list"):
        F.arp(np.full((2, 3), -1), POP, k=3)


def test_only_head_gives_aplt_0_and_only_tail_gives_1():
    head = np.array([[0, 1], [4, 0]])
    tail = np.array([[2, 3], [3, -1]])
    assert F.aplt(head, TAIL, k=2) == 0.0
    assert F.aplt(tail, TAIL, k=2) == 1.0


# -- exposure ----------------------------------------------------------------------------------------------
def test_exposure_by_hand_with_log2_discounts():
    ex = F.exposure(TOPK, GROUPS, k=3)
    total0 = D1 + D2 + D3  # items 0, 1 (group 0) and 2 (group 1)
    np.testing.assert_allclose(ex, [[(D1 + D2) / total0, D3 / total0], [0.0, 1.0]])
    shares = F.exposure_shares(TOPK, GROUPS, k=3)
    np.testing.assert_allclose(shares, ex.mean(axis=0))
    assert shares.sum() == pytest.approx(1.0)
    # an extra group without items gets a zero column
    np.testing.assert_allclose(F.exposure(TOPK, GROUPS, k=3, n_groups=3)[:, 2], [0.0, 0.0])


def test_merit_shares_from_a_matrix_and_from_counts():
    hist = sp.csr_matrix(np.array([[1, 1, 0, 0, 1], [1, 0, 1, 0, 1], [1, 0, 0, 1, 0]], dtype=np.float32))
    # group 0 (items 0, 1, 4): 3 + 1 + 2 = 6 interactions, group 1 (items 2, 3): 2
    np.testing.assert_allclose(F.merit_shares(hist, GROUPS), [6 / 8, 2 / 8])
    ratings = hist.multiply(np.array([[5], [1], [3]])).tocsr()  # a rating counts once, not as a weight
    np.testing.assert_allclose(F.merit_shares(ratings, GROUPS), [6 / 8, 2 / 8])
    np.testing.assert_allclose(F.merit_shares(POP, GROUPS), [21 / 22, 1 / 22])
    np.testing.assert_allclose(F.merit_shares(POP, GROUPS, n_groups=3), [21 / 22, 1 / 22, 0.0])


def test_disparate_exposure_by_hand_and_table():
    merit = np.array([0.5, 0.5])
    e0 = ((D1 + D2) / (D1 + D2 + D3) + 0.0) / 2
    assert F.disparate_exposure(TOPK, GROUPS, merit, k=3) == pytest.approx(abs(e0 - 0.5))
    table = F.exposure_table(TOPK, GROUPS, merit, k=3, names=["popular", "niche"])
    assert table.index.tolist() == ["popular", "niche"] and list(table.columns) == ["exposure", "merit", "ratio"]
    np.testing.assert_allclose(table["exposure"], [e0, 1 - e0])
    np.testing.assert_allclose(table["ratio"], [e0 / 0.5, (1 - e0) / 0.5])
    assert 0.5 * (table["exposure"] - table["merit"]).abs().sum() == pytest.approx(
        F.disparate_exposure(TOPK, GROUPS, merit, k=3))
    # counts are normalised to shares; a group without merit has no ratio
    counts = F.exposure_table(TOPK, GROUPS, [3, 0], k=3)
    np.testing.assert_allclose(counts["merit"], [1.0, 0.0])
    assert np.isnan(counts.loc[1, "ratio"])


def test_disparity_is_0_when_exposure_matches_merit_and_1_when_all_goes_to_no_merit():
    # two one-slot lists, one per group, and equal interactions: exposure [1/2, 1/2] = merit
    top = np.array([[0], [2]])
    merit = F.merit_shares(np.array([3, 0, 2, 1, 0]), GROUPS)
    np.testing.assert_allclose(merit, [0.5, 0.5])
    assert F.disparate_exposure(top, GROUPS, merit, k=1) == pytest.approx(0.0, abs=1e-12)
    assert F.disparate_exposure(np.array([[2, 3], [3, 2]]), GROUPS, [1.0, 0.0], k=2) == pytest.approx(1.0)


# -- properties ----------------------------------------------------------------------------------------------
@st.composite
def cases(draw):
    """Random top-k lists (rows padded at the end with -1, the first row non-empty), popularity, tail, groups."""
    n_items = draw(st.integers(2, 12))
    n_users = draw(st.integers(1, 8))
    k = draw(st.integers(1, n_items))
    n_groups = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    lengths = rng.integers(0, k + 1, size=n_users)
    lengths[0] = max(lengths[0], 1)
    top[np.arange(k)[None, :] >= lengths[:, None]] = -1
    pop = rng.integers(0, 50, size=n_items).astype(float)
    tail = rng.random(n_items) < 0.5
    groups = rng.integers(0, n_groups, size=n_items)
    merit = rng.random(n_groups) + 0.01
    return top, pop, tail, groups, merit / merit.sum(), k, rng


def _metrics(top, pop, tail, groups, merit, k):
    return np.r_[F.arp(top, pop, k), F.aplt(top, tail, k), F.exposure_shares(top, groups, k, len(merit)),
                 F.disparate_exposure(top, groups, merit, k)]


@settings(max_examples=60, deadline=None)
@given(cases())
def test_bounds(case):
    top, pop, tail, groups, merit, k, _ = case
    assert 0.0 <= F.aplt(top, tail, k) <= 1.0
    listed = top[top >= 0]
    assert pop[listed].min() - 1e-9 <= F.arp(top, pop, k) <= pop[listed].max() + 1e-9
    rows = F.exposure(top, groups, k, n_groups=len(merit))
    empty = (top == -1).all(axis=1)
    np.testing.assert_allclose(rows[~empty].sum(axis=1), 1.0)
    assert np.isnan(rows[empty]).all() and (rows[~empty] >= 0).all()
    assert 0.0 <= F.disparate_exposure(top, groups, merit, k) <= 1.0 + 1e-12


@settings(max_examples=60, deadline=None)
@given(cases())
def test_permuting_users_changes_nothing(case):
    top, pop, tail, groups, merit, k, rng = case
    before = _metrics(top, pop, tail, groups, merit, k)
    after = _metrics(top[rng.permutation(len(top))], pop, tail, groups, merit, k)
    np.testing.assert_allclose(after, before, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_renaming_items_consistently_changes_nothing(case):
    top, pop, tail, groups, merit, k, rng = case
    new = rng.permutation(len(pop))  # item i becomes item new[i]
    top2 = np.where(top >= 0, new[np.where(top >= 0, top, 0)], -1)
    pop2, tail2, groups2 = np.empty_like(pop), np.empty_like(tail), np.empty_like(groups)
    pop2[new], tail2[new], groups2[new] = pop, tail, groups
    np.testing.assert_allclose(_metrics(top2, pop2, tail2, groups2, merit, k),
                               _metrics(top, pop, tail, groups, merit, k), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(cases())
def test_head_only_and_tail_only_lists(case):
    top, pop, tail, groups, merit, k, _ = case
    listed = np.zeros(len(pop), dtype=bool)
    listed[top[top >= 0]] = True
    assert F.aplt(top, ~listed, k) == 0.0
    assert F.aplt(top, listed, k) == 1.0


@settings(max_examples=40, deadline=None)
@given(cases())
def test_disparity_is_0_when_merit_is_the_exposure(case):
    top, _, _, groups, merit, k, _ = case
    shares = F.exposure_shares(top, groups, k, len(merit))
    assert F.disparate_exposure(top, groups, shares, k) == pytest.approx(0.0, abs=1e-12)


# -- bootstrap of disparity -----------------------------------------------------------------------------------
def _skewed_lists(n_users, p_popular, seed):
    """Lists of 3 of 6 items; with probability p_popular a user's list is all group 0 (items 0-2)."""
    rng = np.random.default_rng(seed)
    popular = rng.random(n_users) < p_popular
    mixed = np.array([[0, 3, 1], [3, 0, 4], [4, 1, 5]])[rng.integers(0, 3, n_users)]
    return np.where(popular[:, None], np.array([0, 1, 2]), mixed)


ITEM_GROUPS6 = np.array([0, 0, 0, 1, 1, 1])


def test_disparity_interval_brackets_the_value_and_is_reproducible():
    top = _skewed_lists(400, 0.6, seed=1)
    value, lo, hi = F.disparity_interval(top, ITEM_GROUPS6, [0.5, 0.5], k=3, n_boot=500, seed=3)
    assert value == pytest.approx(F.disparate_exposure(top, ITEM_GROUPS6, [0.5, 0.5], k=3))
    assert lo < value < hi and hi - lo < 0.1
    assert F.disparity_interval(top, ITEM_GROUPS6, [0.5, 0.5], k=3, n_boot=500, seed=3) == (value, lo, hi)
    same = np.tile([0, 3, 1], (50, 1))  # every user the same list: no spread
    v, lo, hi = F.disparity_interval(same, ITEM_GROUPS6, [0.5, 0.5], k=3, n_boot=200)
    assert lo == pytest.approx(v) and hi == pytest.approx(v)


def test_paired_disparity_uses_one_resample_for_both_models():
    a = _skewed_lists(300, 0.7, seed=2)
    same = F.paired_disparity(a, a.copy(), ITEM_GROUPS6, [0.5, 0.5], k=3, n_boot=300)
    assert isinstance(same, PairedDifference)
    assert (same.diff, same.lo, same.hi) == (0.0, 0.0, 0.0)  # separate resamples would give a spread
    assert same.verdict() == "indistinguishable"
    b = _skewed_lists(300, 0.0, seed=2)  # no all-popular lists: closer to merit
    r = F.paired_disparity(a, b, ITEM_GROUPS6, [0.5, 0.5], k=3, n_boot=300)
    assert r.mean_a == pytest.approx(F.disparate_exposure(a, ITEM_GROUPS6, [0.5, 0.5], k=3))
    assert r.mean_b == pytest.approx(F.disparate_exposure(b, ITEM_GROUPS6, [0.5, 0.5], k=3))
    assert r.diff == pytest.approx(r.mean_a - r.mean_b) and r.n_users == 300
    assert r.lo > 0 and r.verdict() == "higher"


# -- gaps between user groups ------------------------------------------------------------------------------------
def test_group_table_by_hand():
    per_user = np.array([1.0, 0.0, np.nan, 0.5, 0.5])
    out = F.group_table(per_user, np.array(["b", "a", "a", "b", "b"]), n_boot=200)
    assert out.index.tolist() == ["a", "b"] and list(out.columns) == ["users", "mean", "lo", "hi"]
    assert out["users"].tolist() == [1, 3]  # the NaN user is skipped
    assert out.loc["a", "mean"] == 0.0 and np.isnan(out.loc["a", "lo"])  # one user: no interval
    assert out.loc["b", "mean"] == pytest.approx(2 / 3)
    assert 0.5 <= out.loc["b", "lo"] <= 2 / 3 <= out.loc["b", "hi"] <= 1.0
    cat = pd.Series(pd.Categorical(["b", "a", "a", "b", "b"], categories=["b", "z", "a"]), name="gender")
    ordered = F.group_table(per_user, cat, n_boot=200)
    assert ordered.index.tolist() == ["b", "z", "a"] and ordered.index.name == "gender"
    assert ordered.loc["z", "users"] == 0 and np.isnan(ordered.loc["z", "mean"])


def test_group_table_aligns_two_series_by_user_index():
    per_user = pd.Series([1.0, 0.0, 0.2], index=[10, 11, 12])
    groups = pd.Series(["x", "y", "x"], index=[12, 10, 11])  # 10 -> y, 11 -> x, 12 -> x
    out = F.group_table(per_user, groups, n_boot=100)
    assert out.loc["y", "mean"] == 1.0 and out.loc["x", "mean"] == pytest.approx(0.1)


def test_group_gap_interval_holds_the_true_difference_and_follows_the_rule():
    rng = np.random.default_rng(7)
    na, nb = 3000, 2000  # different sizes: an unpaired bootstrap
    x = np.r_[rng.normal(0.30, 0.1, na), rng.normal(0.25, 0.1, nb)]
    labels = np.r_[np.full(na, "F"), np.full(nb, "M")]
    order = rng.permutation(na + nb)
    r = F.group_gap(x[order], labels[order], "F", "M")
    assert isinstance(r, PairedDifference) and not r.relative and r.n_users == na + nb
    assert r.mean_a == pytest.approx(x[:na].mean()) and r.mean_b == pytest.approx(x[na:].mean())
    assert r.lo < 0.05 < r.hi
    se = math.sqrt(x[:na].var() / na + x[na:].var() / nb)
    assert (r.hi - r.lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert r.verdict() == "higher" and r.report("F − M").endswith("-> higher")
    flipped = F.group_gap(x[order], labels[order], "M", "F")
    assert flipped.diff == pytest.approx(-r.diff) and flipped.verdict() == "lower"
    close = np.r_[rng.normal(0.5 + NOISE_FLOOR * 0.75, 0.001, na), rng.normal(0.5, 0.001, nb)]
    tiny = F.group_gap(close, labels, "F", "M")
    assert tiny.excludes_zero and tiny.verdict() == "indistinguishable"  # real, but below the noise floor


def _confounded(n=6000, seed=0):
    """A metric that depends on activity only; group a is mostly heavy users, group b mostly light ones."""
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.5, "a", "b")
    p_heavy = np.where(group == "a", 0.8, 0.2)
    stratum = np.where(rng.random(n) < p_heavy, "heavy", "light")
    metric = np.where(stratum == "heavy", 0.4, 0.1) + rng.normal(0, 0.05, n)
    return metric, pd.Series(group, name="group"), pd.Series(stratum, name="activity")


def test_a_gap_explained_by_the_strata_vanishes_within_them():
    metric, group, stratum = _confounded()
    raw = F.group_gap(metric, group, "a", "b")
    assert raw.diff > 0.15 and raw.verdict() == "higher"
    out = F.gap_within_strata(metric, group, stratum, "a", "b", n_boot=500)
    assert out.index.tolist() == ["heavy", "light", F.POOLED] and out.index.name == "activity"
    assert list(out.columns) == ["users_a", "users_b", "mean_a", "mean_b", "gap", "lo", "hi", "verdict", "weight"]
    pooled = out.loc[F.POOLED]
    assert abs(pooled["gap"]) < 0.005 and pooled["lo"] < 0 < pooled["hi"]
    assert pooled["verdict"] == "indistinguishable"
    # the pooled gap is the stratum gaps weighted by the strata's shares of a and b's users
    counts = (out["users_a"] + out["users_b"]).iloc[:2].to_numpy()
    np.testing.assert_allclose(out["weight"].iloc[:2], counts / counts.sum())
    assert pooled["gap"] == pytest.approx((out["gap"].iloc[:2] * counts / counts.sum()).sum())
    assert pooled["users_a"] == (group == "a").sum()
    assert (out["lo"].iloc[:2] < 0).all() and (out["hi"].iloc[:2] > 0).all()
    # its interval: each stratum and group resampled on its own, the weights held fixed
    var = sum(w**2 * (metric[(group == "a") & (stratum == s)].var() / out.loc[s, "users_a"]
                      + metric[(group == "b") & (stratum == s)].var() / out.loc[s, "users_b"])
              for s, w in out["weight"].iloc[:2].items())
    assert pooled["hi"] - pooled["lo"] == pytest.approx(2 * 1.96 * math.sqrt(var), rel=0.15)


def test_a_stratum_with_too_few_users_is_kept_skipped_and_left_out_of_the_pool():
    metric = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.9, 0.7])
    group = np.array(["a", "a", "b", "b", "a", "a", "b", "b", "a"])
    stratum = pd.Series(pd.Categorical(["s1"] * 4 + ["s2"] * 4 + ["s3"], categories=["s1", "s2", "s3"]))
    out = F.gap_within_strata(metric, group, stratum, "a", "b", n_boot=200)
    assert out.loc["s3", "verdict"] == "skipped" and np.isnan(out.loc["s3", "gap"])
    assert out.loc["s3", "weight"] == 0 and out.loc["s3", "users_a"] == 1
    g1, g2 = 0.15 - 0.35, 0.55 - 0.9
    np.testing.assert_allclose(out["gap"].iloc[:2], [g1, g2])
    assert out.loc[F.POOLED, "gap"] == pytest.approx((g1 + g2) / 2)  # s1 and s2 hold 4 users each


# -- bad input ------------------------------------------------------------------------------------------------
PU = np.array([0.1, 0.2, 0.3, 0.4])
LAB = np.array(["a", "a", "b", "b"])

BAD = [
    ("topk-float", lambda: F.arp(TOPK.astype(float), POP, k=3), TypeError, "topk must be a 2-D int array"),
    ("topk-1d", lambda: F.arp(np.array([0, 1]), POP, k=2), ValueError, "topk must be a 2-D int array"),
    ("topk-sparse", lambda: F.arp(sp.csr_matrix(TOPK), POP, k=3), TypeError, "topk must be a dense"),
    ("topk-range", lambda: F.arp(np.array([[9]]), POP, k=1), ValueError, "topk holds item index 9, but item_pop"),
    ("topk-negative", lambda: F.arp(np.array([[-2]]), POP, k=1), ValueError, "topk holds negative item index -2"),
    ("topk-repeat", lambda: F.arp(np.array([[1, 1]]), POP, k=2), ValueError, "topk repeats an item"),
    ("k-too-large", lambda: F.arp(TOPK, POP, k=4), ValueError, "k=4 is larger than the top-k lists"),
    ("k-zero", lambda: F.arp(TOPK, POP, k=0), ValueError, "k must be an int >= 1"),
    ("pop-2d", lambda: F.arp(TOPK, POP[None, :], k=3), ValueError, "item_popularity must be 1-D"),
    ("pop-negative", lambda: F.arp(TOPK, -POP, k=3), ValueError, "item_popularity must be non-negative"),
    ("pop-nan", lambda: F.arp(TOPK, np.r_[np.nan, POP[1:]], k=3), ValueError, "item_popularity holds NaN"),
    ("tail-int", lambda: F.aplt(TOPK, TAIL.astype(int), k=3), TypeError, "tail must be a boolean mask"),
    ("tail-2d", lambda: F.aplt(TOPK, TAIL[None, :], k=3), ValueError, "tail must be a non-empty 1-D"),
    ("tail-short", lambda: F.aplt(TOPK, TAIL[:3], k=3), ValueError, "but tail has entries for 3 items"),
    ("groups-float", lambda: F.exposure(TOPK, GROUPS.astype(float), k=3), TypeError, "item_groups must be an int"),
    ("groups-str", lambda: F.exposure(TOPK, ["x"] * 5, k=3), TypeError, "pd.Categorical"),
    ("groups-negative", lambda: F.exposure(TOPK, np.r_[-1, GROUPS[1:]], k=3), ValueError,
     "item_groups holds 1 negative group ids"),
    ("groups-2d", lambda: F.exposure(TOPK, GROUPS[None, :], k=3), ValueError, "item_groups must be a non-empty 1-D"),
    ("n-groups-small", lambda: F.exposure(TOPK, GROUPS, k=3, n_groups=1), ValueError, "n_groups=1 is too small"),
    ("merit-short", lambda: F.disparate_exposure(TOPK, GROUPS, [1.0], k=3), ValueError, "merit must hold one share"),
    ("merit-nan", lambda: F.disparate_exposure(TOPK, GROUPS, [np.nan, 1], k=3), ValueError, "merit holds NaN"),
    ("merit-zero", lambda: F.disparate_exposure(TOPK, GROUPS, [0, 0], k=3), ValueError, "merit must have a positive"),
    ("merit-str", lambda: F.disparate_exposure(TOPK, GROUPS, ["a", "b"], k=3), TypeError, "merit must be a numeric"),
    ("interactions-cols", lambda: F.merit_shares(sp.csr_matrix((2, 4)), GROUPS), ValueError,
     "interactions must have one column per item"),
    ("interactions-length", lambda: F.merit_shares(POP[:4], GROUPS), ValueError, "interactions must have shape"),
    ("interactions-empty", lambda: F.merit_shares(np.zeros(5), GROUPS), ValueError, "interactions must hold at least"),
    ("interactions-negative", lambda: F.merit_shares(sp.csr_matrix(-np.ones((1, 5))), GROUPS), ValueError,
     "interactions must hold finite non-negative"),
    ("interactions-str", lambda: F.merit_shares(["x"] * 5, GROUPS), TypeError, "interactions must be a numeric"),
    ("names-count", lambda: F.exposure_table(TOPK, GROUPS, [1, 1], k=3, names=["x"]), ValueError,
     "names must hold one distinct name per group"),
    ("names-repeat", lambda: F.exposure_table(TOPK, GROUPS, [1, 1], k=3, names=["x", "x"]), ValueError,
     "names must hold one distinct name per group"),
    ("n-boot", lambda: F.disparity_interval(TOPK, GROUPS, [1, 1], k=3, n_boot=10), ValueError, "n_boot"),
    ("level", lambda: F.disparity_interval(TOPK, GROUPS, [1, 1], k=3, level=1.5), ValueError, "level"),
    ("seed", lambda: F.paired_disparity(TOPK, TOPK, GROUPS, [1, 1], k=3, seed=-1), ValueError, "seed"),
    ("paired-rows", lambda: F.paired_disparity(TOPK, TOPK[:1], GROUPS, [1, 1], k=3), ValueError,
     "topk_a and topk_b must hold the same users"),
    ("paired-b-range", lambda: F.paired_disparity(TOPK, TOPK + 3, GROUPS, [1, 1], k=3), ValueError,
     "topk_b holds item index"),
    ("per-user-2d", lambda: F.group_table(PU[None, :], LAB), ValueError, "per_user must be a 1-D array"),
    ("per-user-frame", lambda: F.group_table(pd.DataFrame({"x": PU}), LAB), ValueError, "per_user must be one"),
    ("per-user-inf", lambda: F.group_table(np.r_[np.inf, PU[1:]], LAB), ValueError, "per_user holds inf"),
    ("per-user-str", lambda: F.group_table(["x"] * 4, LAB), TypeError, "per_user must hold per-user numbers"),
    ("groups-length", lambda: F.group_table(PU, LAB[:3]), ValueError, r"groups must hold one label per user \(4\)"),
    ("groups-nan", lambda: F.group_table(PU, pd.Series(["a", None, np.nan, "b"])), ValueError,
     "groups is missing for 2 users"),
    ("groups-index", lambda: F.group_table(pd.Series(PU), pd.Series(LAB, index=[5, 6, 7, 8])), ValueError,
     "groups has no entry for 4 users"),
    ("gap-unknown-a", lambda: F.group_gap(PU, LAB, "c", "b"), ValueError,
     r"a must be one of the group labels \['a', 'b'\], got 'c'"),
    ("gap-unknown-b", lambda: F.group_gap(PU, LAB, "a", 1), ValueError, "b must be one of the group labels"),
    ("gap-same", lambda: F.group_gap(PU, LAB, "a", "a"), ValueError, "a and b must be two different groups"),
    ("gap-too-few", lambda: F.group_gap(np.r_[np.nan, PU[1:]], LAB, "a", "b"), ValueError,
     "group 'a' has 1 users with a value"),
    ("strata-nan", lambda: F.gap_within_strata(PU, LAB, [None, "s", "s", "s"], "a", "b"), ValueError,
     "strata is missing for 1 users"),
    ("strata-length", lambda: F.gap_within_strata(PU, LAB, ["s"] * 3, "a", "b"), ValueError,
     "strata must hold one label per user"),
    ("strata-none-usable", lambda: F.gap_within_strata(PU, LAB, ["s", "t", "s", "t"], "a", "b", n_boot=100),
     ValueError, "no stratum has at least 2 users"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_labels_with_their_own_index_are_not_matched_by_position_to_an_array():
    v = np.arange(1, 9) / 10
    g = pd.Series(np.array([0, 1] * 4), index=range(17, 9, -1))
    assert F.group_table(pd.Series(v, index=range(10, 18)), g)["mean"].round(2).tolist() == [0.5, 0.4]
    with pytest.raises(ValueError, match="cannot be matched by user"):
        F.group_table(v, g)
    assert F.group_table(v, g.to_numpy())["mean"].round(2).tolist() == [0.4, 0.5]


def test_a_bool_label_is_not_group_one():
    v, g = np.arange(1, 9) / 10, np.array([0, 1] * 4)
    with pytest.raises(ValueError, match="must be one of the group labels"):
        F.group_gap(v, g, True, 0, n_boot=100)


def test_a_disparity_interval_refuses_resamples_without_any_list():
    with pytest.raises(ValueError, match="resamples drew only users with empty lists"):
        F.disparity_interval(np.array([[0, 1], [-1, -1]]), np.array([0, 1]), [1, 1], k=2, n_boot=1000)
