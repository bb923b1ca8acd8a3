"""Known-answer and property checks of recsuite.combine.fair: FA*IR's tables and re-ranker (against fairsearchcore)
and Calibrated Popularity."""

import math
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsuite.combine import batching
from recsuite.combine import fair as F


def _score_order(items, scores, k):
    order = np.lexsort((np.broadcast_to(np.arange(items.shape[1]), items.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(items, order, axis=1)


def _binomial_quantile(alpha, n, p):
    """The smallest m with P(Binomial(n, p) <= m) >= alpha, summed exactly from the pmf (no scipy)."""
    cdf = 0.0
    for m in range(n + 1):
        cdf += math.comb(n, m) * p**m * (1 - p) ** (n - m)
        if cdf >= alpha:
            return m
    return n


def _fail_probability(table, p):
    """P(a ranking whose items are protected i.i.d. with probability p has fewer than m(i) protected among its
    top i, for some i = 1..k), by dynamic programming over the number of protected items so far."""
    alive = np.zeros(len(table) + 1)
    alive[0] = 1.0
    for i, need in enumerate(table):
        nxt = alive * (1 - p)
        nxt[1:] += alive[:-1] * p
        nxt[:need] = 0.0  # these prefixes fail the test at position i + 1
        alive = nxt
    return 1.0 - alive.sum()


# -- the tables -----------------------------------------------------------------------------------------
def test_mtable_by_hand():
    # p = .5: i = 3: P(X = 0) = 1/8 = .125 >= .1, so m(3) = 0; i = 4: P(X = 0) = 1/16 < .1 <= P(X <= 1) = 5/16,
    # so m(4) = 1; i = 9: P(X <= 2) = 46/512 = .090 < .1 <= P(X <= 3) = 130/512, so m(9) = 3;
    # i = 10: P(X <= 2) = 56/1024 = .055 < .1 <= P(X <= 3) = 176/1024, so m(10) = 3.
    assert F.fair_mtable(10, 0.5, 0.1).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    # p = .8: i = 2: P(X = 0) = .04 < .1 <= P(X <= 1) = .36 -> 1; i = 3: P(X <= 0) = .008, P(X <= 1) = .104 -> 1;
    # i = 6: P(X <= 3) = .0989 < .1 <= P(X <= 4) = .3446 -> 4.
    assert F.fair_mtable(6, 0.8, 0.1).tolist() == [0, 1, 1, 2, 3, 4]
    assert F.fair_mtable(5, 0.0, 0.1).tolist() == [0] * 5
    assert F.fair_mtable(5, 1.0, 0.1).tolist() == [1, 2, 3, 4, 5]
    assert F.fair_mtable(3, 0.5).dtype == np.int64


@pytest.mark.parametrize("p", [0.05, 0.2, 0.37, 0.5, 0.75, 0.95])
@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3])
def test_mtable_is_the_binomial_alpha_quantile(p, alpha):
    assert F.fair_mtable(30, p, alpha).tolist() == [_binomial_quantile(alpha, n, p) for n in range(1, 31)]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.floats(0, 1), st.floats(0, 1), st.floats(0.001, 0.5))
def test_property_mtable_grows_by_at_most_one_and_with_p(k, p1, p2, alpha):
    lo, hi = sorted([p1, p2])
    a, b = F.fair_mtable(k, lo, alpha), F.fair_mtable(k, hi, alpha)
    assert set(np.diff(np.r_[0, a]).tolist()) <= {0, 1}  # one more item can add at most one protected item
    assert (a <= b).all()  # a larger lam asks for more protected items: the knob moves one way
    assert ((0 <= a) & (a <= np.arange(1, k + 1))).all()


def test_adjusted_mtable_by_hand_and_never_above_the_unadjusted():
    pytest.importorskip("fairsearchcore")
    # fairsearchcore's own values for k = 10, p = .5, alpha = .1 (alpha_c = .075): m(9) drops from 3 to 2
    assert F.adjusted_mtable(10, 0.5, 0.1).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    strict = 0
    for k, p, alpha in [(10, 0.5, 0.1), (20, 0.3, 0.1), (30, 0.9, 0.1), (25, 0.5, 0.05), (15, 0.2, 0.15)]:
        adjusted, plain = F.adjusted_mtable(k, p, alpha), F.fair_mtable(k, p, alpha)
        # alpha_c <= alpha and the quantile grows with alpha: a stricter test per prefix needs fewer protected items
        assert adjusted.dtype == np.int64 and (adjusted <= plain).all()
        strict += int((adjusted < plain).any())
    assert strict >= 4


@pytest.mark.parametrize("k, p, alpha", [(10, 0.5, 0.1), (20, 0.3, 0.1), (30, 0.9, 0.1), (40, 0.5, 0.1)])
def test_adjusting_brings_the_fail_probability_of_a_fair_ranking_back_to_alpha(k, p, alpha):
    pytest.importorskip("fairsearchcore")
    plain = _fail_probability(F.fair_mtable(k, p, alpha), p)
    adjusted = _fail_probability(F.adjusted_mtable(k, p, alpha), p)
    assert plain > alpha + 0.02  # k tests at level alpha reject a fair ranking more often than alpha
    assert abs(adjusted - alpha) < abs(plain - alpha)
    assert abs(adjusted - alpha) < 0.015


def test_fairsearchcore_hash_is_still_broken_and_the_patch_is_undone():
    fsc = pytest.importorskip("fairsearchcore")
    original = fsc.fail_prob.LegalAssignmentKey.__dict__["__hash__"]
    # Unpatched, fairsearchcore 1.0.4 cannot adjust alpha on NumPy/pandas of today. When this fails, a newer
    # fairsearchcore fixed its hash, and recsuite.combine.fair._integer_hash can go.
    with pytest.raises(TypeError, match="__hash__"):
        fsc.Fair(10, 0.5, 0.1).create_adjusted_mtable()
    F.adjusted_mtable(12, 0.4, 0.1)
    assert fsc.fail_prob.LegalAssignmentKey.__dict__["__hash__"] is original


def test_adjusted_mtable_names_the_extra_when_fairsearchcore_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "fairsearchcore", None)  # import fairsearchcore now fails
    with pytest.raises(ImportError, match=r"recsuite\[fair\]"):
        F.adjusted_mtable(10, 0.5)
    # lam = 0 needs no table, so no fairsearchcore either
    items, scores = np.array([[0, 1, 2]]), np.array([[0.1, 0.9, 0.5]])
    assert F.fa_ir(items, scores, np.array([True, False, False]), 2, 0.0, adjust=True).tolist() == [[1, 2]]


# -- FA*IR's re-ranker ----------------------------------------------------------------------------------
# Six candidates a..f (items 0..5) in score order; e and f (items 4, 5) are protected.
ITEMS6 = np.array([[0, 1, 2, 3, 4, 5]])
SCORES6 = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
PROT6 = np.array([False, False, False, False, True, True, False])  # item 6 is no candidate


def test_fa_ir_by_hand():
    # lam = .5: m = 0, 0, 0, 1, 1, 1. a, b, c by score; position 4 needs one protected item: e (.6) before d (.7);
    # position 5 holds its one: d, the best left; then f.
    assert F.fa_ir(ITEMS6, SCORES6, PROT6, 6, 0.5).tolist() == [[0, 1, 2, 4, 3, 5]]
    # lam = .8: m = 0, 1, 1, 2, 3, 4. a; e (one needed); b; f (two needed); then no protected candidate is left,
    # so c and d by score although m(5) = 3 and m(6) = 4 are not met.
    assert F.fa_ir(ITEMS6, SCORES6, PROT6, 6, 0.8).tolist() == [[0, 4, 1, 5, 2, 3]]
    assert F.fa_ir(ITEMS6, SCORES6, PROT6, 3, 0.8).tolist() == [[0, 4, 1]]
    # lam = 1: m(i) = i, every protected candidate first
    assert F.fa_ir(ITEMS6, SCORES6, PROT6, 4, 1.0).tolist() == [[4, 5, 0, 1]]
    assert F.fa_ir(ITEMS6, SCORES6, PROT6, 6, 0.0).tolist() == [[0, 1, 2, 3, 4, 5]]


def test_fa_ir_follows_scores_not_columns_and_rows_are_independent():
    perm = [5, 2, 4, 0, 3, 1]
    items = np.vstack([ITEMS6[:, perm], ITEMS6])
    scores = np.vstack([SCORES6[:, perm], SCORES6])
    assert F.fa_ir(items, scores, PROT6, 6, 0.8).tolist() == [[0, 4, 1, 5, 2, 3]] * 2


@st.composite
def fair_task(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_users, m, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 12)), draw(st.integers(12, 25))
    k = draw(st.integers(1, m))
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(n_items)[:m] for _ in range(n_users)])
    if draw(st.booleans()):
        scores = rng.normal(size=(n_users, m))
    else:  # many ties
        scores = rng.integers(0, 3, size=(n_users, m)).astype(float)
    protected = rng.random(n_items) < draw(st.floats(0, 1))
    groups = rng.integers(0, 3, size=n_items)
    dist = rng.random((n_users, 3)) * (rng.random((n_users, 3)) > 0.3) * (rng.random((n_users, 1)) > 0.2)
    return items, scores, protected, groups, dist, k


def _valid_lists(out, items, k):
    assert out.shape == (items.shape[0], k) and out.dtype == np.int64
    for row, cand in zip(out, items):
        assert len(set(row.tolist())) == k and set(row.tolist()) <= set(cand.tolist())


@settings(max_examples=60, deadline=None)
@given(fair_task())
def test_property_lam_zero_is_the_score_order(task):
    items, scores, protected, groups, dist, k = task
    want = _score_order(items, scores, k)
    assert np.array_equal(F.fa_ir(items, scores, protected, k, 0.0), want)
    assert np.array_equal(F.fa_ir(items, scores, protected, k, 0.0, adjust=True), want)
    assert np.array_equal(F.calibrated_popularity(items, scores, groups, dist, k, 0.0), want)


@settings(max_examples=60, deadline=None)
@given(fair_task(), st.floats(0, 1), st.sampled_from([0.05, 0.1, 0.15]), st.booleans())
def test_property_fa_ir_meets_the_table_and_keeps_each_group_in_score_order(task, lam, alpha, tiny_blocks):
    items, scores, protected, _, _, k = task
    with pytest.MonkeyPatch.context() as mp:
        if tiny_blocks:
            mp.setattr(batching, "BLOCK_BYTES", 64)  # one user per block
        out = F.fa_ir(items, scores, protected, k, lam, alpha)
    _valid_lists(out, items, k)
    table = F.fair_mtable(k, lam, alpha)
    by_item = [dict(zip(it.tolist(), s.tolist())) for it, s in zip(items, scores)]
    for u, row in enumerate(out):
        available = int(protected[items[u]].sum())
        # every prefix holds m(i) protected items, or every protected candidate the user has
        assert (np.cumsum(protected[row]) >= np.minimum(table, available)).all()
        for group in (True, False):
            chosen = [i for i in row.tolist() if protected[i] == group]
            pool = [(-by_item[u][i], c) for c, i in enumerate(items[u].tolist()) if protected[i] == group]
            best = [items[u][c] for _, c in sorted(pool)[:len(chosen)]]
            assert chosen == best  # the group's best candidates, in score order (equal scores: earlier first)


def _docs(fsc, items, scores, protected):
    return [fsc.models.FairScoreDoc(int(i), float(s), bool(protected[i])) for i, s in zip(items, scores)]


@pytest.mark.filterwarnings("ignore:Library has not been tested")
@pytest.mark.parametrize("adjust", [False, True])
def test_fa_ir_equals_fairsearchcore(adjust, monkeypatch):
    """40 users with tied scores, 8 settings of (k, p, alpha), against fairsearchcore's ``Fair.re_rank`` (which
    uses the adjusted table) and its ``_re_rank_unadjusted``. Equal scores are sorted protected first, where the
    two tie rules agree (``test_fa_ir_and_fairsearchcore_break_a_cross_group_tie_differently`` is the rest)."""
    fsc = pytest.importorskip("fairsearchcore")
    monkeypatch.setattr(batching, "BLOCK_BYTES", 256)  # several blocks of users
    rng = np.random.default_rng(7)
    n_items, n_users, cases = 30, 5, 0
    for k, p, alpha in [(2, 0.5, 0.1), (5, 0.3, 0.1), (8, 0.7, 0.05), (10, 0.5, 0.1), (10, 0.9, 0.15),
                        (12, 0.2, 0.1), (15, 0.6, 0.1), (20, 0.4, 0.05)]:
        m = int(rng.integers(k, n_items + 1))
        protected = rng.random(n_items) < rng.uniform(0.1, 0.6)
        items = np.stack([rng.permutation(n_items)[:m] for _ in range(n_users)])
        scores = rng.integers(0, 4, size=items.shape).astype(float)  # many ties
        order = np.lexsort((rng.random(items.shape), ~protected[items], -scores), axis=1)
        items, scores = np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1)
        out = F.fa_ir(items, scores, protected, k, p, alpha, adjust=adjust)
        ranker = fsc.Fair(k, p, alpha)
        for u in range(n_users):
            docs = _docs(fsc, items[u], scores[u], protected)
            if adjust:
                with F._integer_hash(fsc.fail_prob):
                    theirs = ranker.re_rank(docs)
            else:
                theirs = ranker._re_rank_unadjusted(docs)
            assert out[u].tolist() == [d.id for d in theirs], (k, p, alpha, u)
            cases += 1
    assert cases >= 30


@pytest.mark.filterwarnings("ignore:Library has not been tested")
def test_fa_ir_and_fairsearchcore_break_a_cross_group_tie_differently():
    fsc = pytest.importorskip("fairsearchcore")
    # a (non-protected) and b (protected) tie at .9; with p = .1 the table asks for nothing at position 1
    items, scores = np.array([[0, 1, 2]]), np.array([[0.9, 0.9, 0.1]])
    protected = np.array([False, True, False])
    assert F.fair_mtable(2, 0.1)[0] == 0
    assert F.fa_ir(items, scores, protected, 2, 0.1).tolist() == [[0, 1]]  # the earlier candidate
    theirs = fsc.Fair(2, 0.1, 0.1)._re_rank_unadjusted(_docs(fsc, items[0], scores[0], protected))
    assert [d.id for d in theirs] == [1, 0]  # fairsearchcore: the protected one


# -- Calibrated Popularity --------------------------------------------------------------------------------
# Candidates a, b (head, group 0) and c, d (tail, group 1), items 0..3, scores 1, .9, .2, .1; P = (.5, .5).
ITEMS4 = np.array([[0, 1, 2, 3]])
SCORES4 = np.array([[1.0, 0.9, 0.2, 0.1]])
GROUPS4 = np.array([0, 0, 1, 1])
HALF = np.array([[0.5, 0.5]])
# One item of either group: Q = (1, 0), M = (.75, .25), JS = ½·(½ ln(.5/.75) + ½ ln(.5/.25)) + ½·ln(1/.75)
JS_ONE = 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) + 0.5 * math.log(1 / 0.75)


def test_calibrated_popularity_by_hand():
    assert JS_ONE == pytest.approx(0.215762, abs=1e-6)
    assert F._js(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(JS_ONE)
    # Position 1: every candidate gives JS_ONE, so a (best score). Position 2: b keeps Q = (1, 0), JS_ONE;
    # c makes Q = P, JS 0. c wins iff (1 − λ)·.2 > (1 − λ)·.9 − λ·JS_ONE, i.e. λ > .7 / (.7 + JS_ONE) = .7644.
    turn = 0.7 / (0.7 + JS_ONE)
    assert turn == pytest.approx(0.7644, abs=1e-4)
    assert F.calibrated_popularity(ITEMS4, SCORES4, GROUPS4, HALF, 3, 0.76).tolist() == [[0, 1, 2]]
    # Position 3 after {a, c}: b or d gives Q = (2/3, 1/3) or (1/3, 2/3), the same JS: b, the better score.
    assert F.calibrated_popularity(ITEMS4, SCORES4, GROUPS4, HALF, 3, 0.77).tolist() == [[0, 2, 1]]
    assert F.calibrated_popularity(ITEMS4, SCORES4, GROUPS4, HALF, 4, 1.0).tolist() == [[0, 2, 1, 3]]


def test_calibrated_popularity_ties_go_to_the_better_score_and_no_history_is_the_score_order():
    # columns not in score order: at lam = 1 the objective ties within a group, and scores decide
    items = np.array([[3, 2, 1, 0], [3, 2, 1, 0]])
    scores = SCORES4[:, ::-1].repeat(2, axis=0)
    dist = np.array([[1.0, 1.0], [0.0, 0.0]])  # user 1 has no history
    assert F.calibrated_popularity(items, scores, GROUPS4, dist, 4, 1.0).tolist() == [[0, 2, 1, 3], [0, 1, 2, 3]]


def test_calibrated_popularity_gives_users_without_history_the_score_order():
    # JS(0 ‖ Q) = ½·ln 2 for every Q in exact arithmetic, but not in floats (.34657359027997264 for Q = (.2, .2, .6),
    # ...726 for (.4, .2, .4)): such users must get a JS of exactly 0, or float noise reorders their list.
    rng = np.random.default_rng(3)
    items, scores = rng.permutation(40).reshape(2, 20), rng.random((2, 20))
    groups = rng.integers(0, 3, size=40)
    for lam in (0.3, 1.0):
        out = F.calibrated_popularity(items, scores, groups, np.zeros((2, 3)), 20, lam)
        assert np.array_equal(out, _score_order(items, scores, 20))


@settings(max_examples=60, deadline=None)
@given(fair_task())
def test_property_lam_one_is_at_least_as_calibrated_as_the_score_order(task):
    items, scores, _, groups, dist, k = task
    out = F.calibrated_popularity(items, scores, groups, dist, k, 1.0)
    _valid_lists(out, items, k)
    base = _score_order(items, scores, k)
    p = dist / np.maximum(dist.sum(axis=1, keepdims=True), 1e-300)
    for u in range(len(items)):
        if dist[u].sum() == 0:
            assert out[u].tolist() == base[u].tolist()
            continue
        q_out, q_base = (np.bincount(groups[lst], minlength=3) / k for lst in (out[u], base[u]))
        assert F._js(p[u], q_out) <= F._js(p[u], q_base) + 1e-12


def test_group_distribution_by_hand():
    # user 0: items 0 (group 0, rating 5), 2 and 3 (group 1): each item counts once -> (1/3, 2/3, 0)
    history = sp.csr_matrix(np.array([[5, 0, 3, 1], [0, 0, 0, 0], [0, 2, 0, 0]]))
    out = F.group_distribution(history, np.array([0, 0, 1, 1]), n_groups=3)
    assert out == pytest.approx(np.array([[1 / 3, 2 / 3, 0], [0, 0, 0], [1, 0, 0]]))
    assert F.group_distribution(history, np.array([0, 2, 1, 1])).shape == (3, 3)  # G = largest id + 1


# -- bad input --------------------------------------------------------------------------------------------
G4 = np.array([0, 0, 1, 1])
P4 = np.array([[0.5, 0.5]])
HIST = sp.csr_matrix(np.ones((1, 4)))

BAD = [
    ("lam below 0", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6, 2, -0.1), ValueError, "lam"),
    ("lam above 1", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6, 2, 1.5), ValueError, "lam"),
    ("lam above 1 (CP)", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4, P4, 2, 1.01), ValueError, "lam"),
    ("lam a string", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4, P4, 2, "0.5"), TypeError, "lam"),
    ("protected too short", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6[:5], 2, 0.5), ValueError, "protected has 5"),
    ("protected not bool", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6.astype(int), 2, 0.5), TypeError, "protected"),
    ("protected 2-D", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6[None], 2, 0.5), ValueError, "protected"),
    ("alpha 0", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6, 2, 0.5, alpha=0.0), ValueError, "alpha"),
    ("adjust not bool", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6, 2, 0.5, adjust=1), TypeError, "adjust"),
    ("k above M", lambda: F.fa_ir(ITEMS6, SCORES6, PROT6, 7, 0.5), ValueError, "k=7"),
    ("p above 1", lambda: F.fair_mtable(10, 1.2), ValueError, "p must"),
    ("k zero", lambda: F.fair_mtable(0, 0.5), ValueError, "k must"),
    ("alpha 1", lambda: F.adjusted_mtable(10, 0.5, 1.0), ValueError, "alpha"),
    ("item_groups negative", lambda: F.calibrated_popularity(ITEMS4, SCORES4, np.array([0, -1, 1, 1]), P4, 2, 0.5),
     ValueError, "item_groups"),
    ("item_groups float", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4 * 1.0, P4, 2, 0.5),
     TypeError, "item_groups"),
    ("item_groups too short", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4[:3], P4, 2, 0.5),
     ValueError, "item_groups has 3"),
    ("user_group_dist too few groups", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4, P4[:, :1], 2, 0.5),
     ValueError, "user_group_dist"),
    ("user_group_dist too many users", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4, P4.repeat(2, 0), 2, 0.5),
     ValueError, "user_group_dist"),
    ("user_group_dist 1-D", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4, P4[0], 2, 0.5),
     ValueError, "user_group_dist"),
    ("user_group_dist negative", lambda: F.calibrated_popularity(ITEMS4, SCORES4, G4, -P4, 2, 0.5),
     ValueError, "user_group_dist"),
    ("cand_scores NaN", lambda: F.calibrated_popularity(ITEMS4, SCORES4 * np.nan, G4, P4, 2, 0.5),
     ValueError, "cand_scores"),
    ("history dense", lambda: F.group_distribution(np.ones((1, 4)), G4), ValueError, "history"),
    ("item_groups vs history", lambda: F.group_distribution(HIST, G4[:3]), ValueError, "item_groups has 3"),
    ("n_groups too small", lambda: F.group_distribution(HIST, G4, n_groups=1), ValueError, "n_groups=1"),
]


@pytest.mark.parametrize("call, error, match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.filterwarnings("ignore:Library has not been tested")
def test_fairsearchcore_fa_ir_is_fairsearchcore_and_equals_fa_ir_adjusted():
    fsc = pytest.importorskip("fairsearchcore")
    rng = np.random.default_rng(11)
    n_items, k = 40, 10
    protected = rng.random(n_items) < 0.4
    items = np.stack([rng.permutation(n_items)[:25] for _ in range(6)])
    scores = -np.sort(-rng.random(items.shape), axis=1)  # distinct scores, best first
    theirs = F.fairsearchcore_fa_ir(items, scores, protected, k, 0.5, 0.1)
    assert np.array_equal(theirs, F.fa_ir(items, scores, protected, k, 0.5, 0.1, adjust=True))
    with F._integer_hash(fsc.fail_prob):
        direct = fsc.Fair(k, 0.5, 0.1).re_rank(_docs(fsc, items[2], scores[2], protected))
    assert theirs[2].tolist() == [d.id for d in direct][:k]
    with pytest.raises(ValueError, match="lam"):
        F.fairsearchcore_fa_ir(items, scores, protected, k, 0.0)
    with pytest.raises(TypeError, match="protected"):
        F.fairsearchcore_fa_ir(items, scores, protected.astype(int), k, 0.5)
