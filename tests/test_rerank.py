"""Known-answer and consistency checks of recsuite.combine.rerank (MMR, DPP, calibration, weighted objectives)."""

import math
import warnings

import numpy as np
import pytest

from recsuite.combine import batching, objectives
from recsuite.combine import rerank as R
from recsuite.combine.fusion import normalize_scores


@pytest.fixture(params=["gram", "gather"])
def path(request, monkeypatch):
    """Run a test through both ways of getting cosines: the Gram matrix lookup and the gathered vectors."""
    if request.param == "gram":
        monkeypatch.setattr(batching, "GRAM_WORK_RATIO", math.inf)
    else:
        monkeypatch.setattr(batching, "GRAM_MAX_ITEMS", 0)
        monkeypatch.setattr(batching, "BLOCK_BYTES", 4096)  # several blocks of users even on tiny data
        monkeypatch.setattr(batching, "GENRE_BLOCK_BYTES", 4096)  # also for calibrate's and scalarize's genre arrays
    return request.param


# -- a hand-checkable catalogue -----------------------------------------------------------------------
# Four candidates a, b, x, c (item indices 3, 0, 4, 1; item 2 is never a candidate), scores 1, .9, .7, .2.
# Vectors are given unnormalised on purpose. Cosines: a·b = .8, a·x = .3, b·x = .8·.3 = .24, c ⟂ all.
A, B, X, C = 3, 0, 4, 1
VEC = np.zeros((5, 4))
VEC[A] = [1, 0, 0, 0]
VEC[B] = np.array([0.8, 0.6, 0, 0]) * 2.0
VEC[X] = np.array([0.3, 0, math.sqrt(0.91), 0]) * 0.5
VEC[C] = [0, 0, 0, 3.0]
VEC[2] = [1, 1, 1, 1]
ITEMS = np.array([[A, B, X, C]])
SCORES = np.array([[1.0, 0.9, 0.7, 0.2]])


def test_hand_catalogue_cosines():
    u = VEC / np.linalg.norm(VEC, axis=1, keepdims=True)
    assert u[A] @ u[B] == pytest.approx(0.8)
    assert u[A] @ u[X] == pytest.approx(0.3)
    assert u[B] @ u[X] == pytest.approx(0.24)
    assert u[C] @ u[[A, B, X]].T == pytest.approx([0, 0, 0])


# -- MMR ----------------------------------------------------------------------------------------------
# One knob for every re-ranker: lam = 0 is the score order, lam = 1 the most diversity. MMR's gain is
# (1 − lam)·s − lam·max cos (Carbonell & Goldstein's λ is our 1 − lam).
def test_mmr_lam_zero_is_the_score_order(path):
    assert R.mmr(ITEMS, SCORES, VEC, 4, 0.0).tolist() == [[A, B, X, C]]


def test_mmr_lam_one_takes_the_most_dissimilar_after_the_first(path):
    # First a (top score). Then argmax −max cos: b −.8, x −.3, c 0 -> c. Then b −max(.8, 0) = −.8,
    # x −max(.3, 0) = −.3 -> x. Then b.
    assert R.mmr(ITEMS, SCORES, VEC, 4, 1.0).tolist() == [[A, C, X, B]]


def test_mmr_hand_worked_half(path):
    # lam = .5, after a: b .45 − .5·.8 = .05; x .35 − .5·.3 = .20; c .10 − 0 = .10 -> x.
    # After {a, x}: b .45 − .5·max(.8, .24) = .05; c .10 − 0 = .10 -> c. Then b.
    assert R.mmr(ITEMS, SCORES, VEC, 4, 0.5).tolist() == [[A, X, C, B]]
    assert R.mmr(ITEMS, SCORES, VEC, 2, 0.5).tolist() == [[A, X]]


def test_mmr_follows_candidate_columns_not_item_ids(path):
    # The same four candidates in another column order, and a second user: results are per row.
    items = np.array([[C, X, A, B], [A, B, X, C]])
    scores = np.array([[0.2, 0.7, 1.0, 0.9], [1.0, 0.9, 0.7, 0.2]])
    assert R.mmr(items, scores, VEC, 4, 0.5).tolist() == [[A, X, C, B], [A, X, C, B]]


def _mmr_reference(items, scores, vec, k, lam):
    """MMR straight from the formula, one user at a time."""
    u = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-300)
    out = []
    for it, s in zip(items, scores):
        chosen = [int(np.argmax(s))]
        while len(chosen) < k:
            best, best_val = None, -np.inf
            for p in range(len(it)):
                if p in chosen:
                    continue
                val = (1 - lam) * s[p] - lam * max(u[it[p]] @ u[it[c]] for c in chosen)
                if val > best_val:
                    best, best_val = p, val
            chosen.append(best)
        out.append(it[chosen])
    return np.array(out)


def test_mmr_uses_the_scores_as_given(path):
    # Scores × 10, lam = .5, after a: b 4.5 − .4 = 4.1 beats x 3.5 − .15 and c 1.0: the score order.
    # Rescaling per user (min-max) removes the difference again.
    assert R.mmr(ITEMS, SCORES * 10, VEC, 4, 0.5).tolist() == [[A, B, X, C]]
    assert np.array_equal(R.mmr(ITEMS, normalize_scores(SCORES * 10, "minmax"), VEC, 4, 0.5),
                          R.mmr(ITEMS, normalize_scores(SCORES, "minmax"), VEC, 4, 0.5))


def test_mmr_equal_scores_go_to_the_earlier_candidate(path):
    vec = np.eye(4)
    assert R.mmr([[2, 0, 3, 1]], [[1.0, 1.0, 1.0, 1.0]], vec, 4, 0.0).tolist() == [[2, 0, 3, 1]]
    assert R.mmr([[2, 0, 3, 1]], [[1.0, 1.0, 1.0, 1.0]], vec, 4, 0.7).tolist() == [[2, 0, 3, 1]]


# -- MaxSum -------------------------------------------------------------------------------------------
def test_maxsum_ends_are_the_score_order_and_the_farthest_items(path):
    assert R.maxsum(ITEMS, SCORES, VEC, 4, 0.0).tolist() == [[A, B, X, C]]
    # lam = 1, after a: mean distances b .2, x .7, c 1 -> c; then b (.2 + 1)/2 = .6, x (.7 + 1)/2 = .85 -> x.
    assert R.maxsum(ITEMS, SCORES, VEC, 4, 1.0).tolist() == [[A, C, X, B]]


def test_maxsum_hand_worked_half_differs_from_mmr(path):
    # lam = .5, after a: b .45 + .5·.2 = .55; x .35 + .5·.7 = .70; c .10 + .5·1 = .60 -> x.
    # After {a, x}: b .45 + .5·(.2 + .76)/2 = .69; c .10 + .5·(1 + 1)/2 = .60 -> b (MMR takes c: it only
    # sees b's closest chosen item, a, at cosine .8). Then c.
    assert R.maxsum(ITEMS, SCORES, VEC, 4, 0.5).tolist() == [[A, X, B, C]]
    assert R.mmr(ITEMS, SCORES, VEC, 4, 0.5).tolist() == [[A, X, C, B]]


def _maxsum_reference(items, scores, vec, k, lam):
    u = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-300)
    out = []
    for it, s in zip(items, scores):
        chosen = [int(np.argmax(s))]
        while len(chosen) < k:
            vals = [-np.inf if p in chosen else
                    (1 - lam) * s[p] + lam * np.mean([1 - u[it[p]] @ u[it[c]] for c in chosen]) for p in range(len(it))]
            chosen.append(int(np.argmax(vals)))
        out.append(it[chosen])
    return np.array(out)


@pytest.mark.parametrize("method, reference", [("mmr", _mmr_reference), ("maxsum", _maxsum_reference)])
def test_greedy_rerankers_match_their_formula_on_random_data(path, method, reference):
    rng = np.random.default_rng(1)
    vec = rng.standard_normal((40, 6))
    items = np.stack([rng.choice(40, 12, replace=False) for _ in range(15)])
    scores = rng.random((15, 12))
    for lam in (0.0, 0.25, 0.3, 0.6, 0.7, 1.0):
        np.testing.assert_array_equal(getattr(R, method)(items, scores, vec, 5, lam),
                                      reference(items, scores, vec, 5, lam))


def test_maxsum_raises_the_ild_it_optimises():
    from recsuite.evaluation.metrics import intra_list_diversity

    rng = np.random.default_rng(3)
    vec = (rng.random((60, 8)) < 0.3).astype(float)  # multi-hot, like genres
    items = np.stack([rng.choice(60, 30, replace=False) for _ in range(50)])
    scores = np.sort(rng.random((50, 30)), axis=1)[:, ::-1]
    ild = [intra_list_diversity(R.maxsum(items, scores, vec, 10, lam), vec, 10) for lam in (0.0, 0.5, 1.0)]
    assert ild[0] < ild[1] < ild[2]


def test_maxsum_rejects_bad_input():
    with pytest.raises(ValueError, match="lam must be a finite number in"):
        R.maxsum(ITEMS, SCORES, VEC, 4, 1.5)
    with pytest.raises(ValueError, match="k=5 is larger"):
        R.maxsum(ITEMS, SCORES, VEC, 5, 0.5)
    with pytest.raises(ValueError, match="cand_scores must have the shape"):
        R.maxsum(ITEMS, SCORES[:, :3], VEC, 2, 0.5)


# -- DPP ----------------------------------------------------------------------------------------------
# DPP: Chen et al.'s theta is our 1 − lam, alpha = theta / (2(1 − theta)) = (1 − lam) / (2 lam).
def test_dpp_maps_the_knob_to_chen_et_al_alpha():
    assert R._dpp_alpha(1.0) == 0.0  # theta = 0: L = S, pure diversity
    assert R._dpp_alpha(0.5) == pytest.approx(0.5)  # theta = .5
    assert R._dpp_alpha(0.1) == pytest.approx(4.5)  # theta = .9
    assert R._dpp_alpha(0.4) == pytest.approx(0.6 / (2 * 0.4))  # theta = .6
    assert R._dpp_alpha(0.0) == math.inf and R._dpp_alpha(5e-324) == math.inf  # the score order, no division by 0


def test_dpp_lam_one_never_takes_a_duplicate_before_the_distinct_items(path):
    # lam = 1 (theta = 0): alpha = 0, L = S. Items 0, 1, 2 orthonormal, item 3 = 3 × item 0.
    # Every d² starts at 1: first pick is the first column. Its duplicate then has d² = 1 − 1² = 0, the
    # two orthogonal items keep d² = 1, so they come next (column order); the duplicate only fills the
    # 4th place, by score, once the largest gain is 0.
    vec = np.vstack([np.eye(3), 3 * np.eye(3)[0]])
    scores = [[4.0, 3.0, 2.0, 1.0]]
    assert R.dpp([[0, 3, 1, 2]], scores, vec, 4, 1.0).tolist() == [[0, 1, 2, 3]]
    assert R.dpp([[3, 0, 1, 2]], scores, vec, 4, 1.0).tolist() == [[3, 1, 2, 0]]
    assert R.dpp([[0, 3, 1, 2]], scores, vec, 3, 1.0).tolist() == [[0, 1, 2]]


def test_dpp_lam_one_orthonormal_ish(path):
    # Slightly perturbed orthonormal vectors: the near-duplicate of item 0 still comes last.
    rng = np.random.default_rng(0)
    base = np.eye(3) + 0.01 * rng.standard_normal((3, 3))
    vec = np.vstack([base, base[0] + 1e-3 * rng.standard_normal(3)])
    for items in ([0, 3, 1, 2], [3, 0, 2, 1], [1, 0, 2, 3]):
        top3 = set(R.dpp([items], [[4.0, 3.0, 2.0, 1.0]], vec, 3, 1.0)[0].tolist())
        assert len(top3 & {0, 3}) == 1 and {1, 2} <= top3


# lam = .5 (theta = .5) -> alpha = .5 / (2 · .5) = .5. Scores r = (2 ln 2, 2 ln 1.9, 0) give exp(alpha·r) = (2, 1.9, 1),
# i.e. q = (1, .95, .5) after dividing by the top one. Cosines: S01 = .9, S02 = S12 = 0.
# Start d² = q² = (1, .9025, .25): pick 0. e_1 = q0·q1·S01 / d0 = .855, d1² = .9025 − .855² = .1715;
# e_2 = 0, d2² = .25 > .1715: pick 2, then 1. The score order would be 0, 1, 2.
# lam = .1 (theta = .9) -> alpha = .9 / (2 · .1) = 4.5: q1 = exp(4.5 · 2 ln .95) = .630,
# d1² = .630² · (1 − .81) = .0755;
# q2 = exp(−4.5 · 2 ln 2) = .00195, d2² = 3.8e-6: pick 1, then 2 — the score order.
DPP_VEC = np.array([[1.0, 0, 0], [0.9, math.sqrt(0.19), 0], [0, 0, 1.0]])
DPP_SCORES = np.array([[2 * math.log(2), 2 * math.log(1.9), 0.0]])


def test_dpp_hand_worked(path):
    assert R.dpp([[0, 1, 2]], DPP_SCORES, DPP_VEC, 3, 0.5).tolist() == [[0, 2, 1]]
    assert R.dpp([[0, 1, 2]], DPP_SCORES, DPP_VEC, 3, 0.1).tolist() == [[0, 1, 2]]
    assert R.dpp_single([0, 1, 2], DPP_SCORES[0], DPP_VEC, 3, 0.5).tolist() == [0, 2, 1]
    assert R.dpp_single([0, 1, 2], DPP_SCORES[0], DPP_VEC, 3, 0.1).tolist() == [0, 1, 2]


def test_dpp_lam_zero_is_exactly_the_score_order(path):
    # alpha = ∞: no kernel is built; the k best by score, equal scores to the earlier candidate, even where
    # the vectors are duplicates (d² = 0) or zero, and for a lam so small that alpha overflows.
    vec = np.vstack([np.eye(3), 3 * np.eye(3)[0], np.zeros(3)])
    items, scores = [[0, 3, 4, 1, 2]], [[4.0, 3.0, 3.0, 5.0, 1.0]]
    for lam in (0.0, 5e-324):
        assert R.dpp(items, scores, vec, 4, lam).tolist() == [[1, 0, 3, 4]]
        assert R.dpp_single(items[0], scores[0], vec, 4, lam).tolist() == [1, 0, 3, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert R.dpp(items, scores, vec, 4, 1e-300).tolist() == [[1, 0, 3, 4]]  # alpha 5e299: q = 0 but the top


def test_dpp_small_lam_approaches_the_score_order(path):
    rng = np.random.default_rng(3)
    vec = rng.standard_normal((50, 8))
    items = np.stack([rng.choice(50, 20, replace=False) for _ in range(10)])
    scores = rng.permuted(np.tile(np.arange(20.0), (10, 1)), axis=1)  # distinct, 1 apart
    by_score = np.take_along_axis(items, np.argsort(-scores, axis=1)[:, :6], axis=1)
    overlap = [np.mean([len(set(a) & set(b)) / 6 for a, b in zip(R.dpp(items, scores, vec, 6, lam), by_score)])
               for lam in (1.0, 0.5, 0.05)]
    assert overlap[2] == 1.0
    np.testing.assert_array_equal(R.dpp(items, scores, vec, 6, 0.05), by_score)
    np.testing.assert_array_equal(R.dpp(items, scores, vec, 6, 0.0), by_score)
    assert overlap[0] < overlap[2]


def _random_case(seed, n_users=40, m=15, n_items=60, d=6):
    rng = np.random.default_rng(seed)
    vec = rng.standard_normal((n_items, d))
    vec[5] = 0.0  # an item without a vector
    vec[7] = 2.5 * vec[8]  # two items with the same direction
    items = np.stack([rng.choice(n_items, m, replace=False) for _ in range(n_users)])
    others = np.setdiff1d(np.arange(n_items), [5, 7, 8])
    items[0] = np.concatenate([[5, 7, 8], rng.choice(others, m - 3, replace=False)])
    scores = rng.normal(size=(n_users, m)) * 2
    return items, scores, vec


@pytest.mark.parametrize("lam", [1.0, 0.7, 0.3, 0.05, 0.0])  # theta = 1 − lam: 0, .3, .7, .95 and the score order
@pytest.mark.parametrize("d", [4, 24])  # d = 4 < M: S is rank-deficient and the fill-by-score path runs
def test_dpp_batched_equals_single(path, lam, d):
    items, scores, vec = _random_case(seed=round(100 * (1 - lam)) + d, d=d)
    out = R.dpp(items, scores, vec, 8, lam)
    ref = np.stack([R.dpp_single(i, s, vec, 8, lam) for i, s in zip(items, scores)])
    np.testing.assert_array_equal(out, ref)
    assert all(len(set(row)) == 8 for row in out.tolist())
    assert all(set(row) <= set(cand) for row, cand in zip(out.tolist(), items.tolist()))


def test_dpp_rank_deficient_fills_by_score_and_never_repeats(path):
    # d = 2, five candidates: after two picks every remaining d² is ~0 (S has rank 2), so the remaining
    # three places go by score among the rest. Items 0 and 1 are the same direction.
    vec = np.array([[1.0, 0.0], [2.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]])
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    out = R.dpp([[0, 1, 2, 3, 4]], scores, vec, 5, 1.0)
    # lam = 1 (theta = 0): pick 0 (first column); then d² = 1 − cos²: item1 0, item2 .36, item3 1, item4 .36 -> 3.
    # {0, 3} spans the plane: the rest (1, 2, 4) by score.
    assert out.tolist() == [[0, 3, 1, 2, 4]]
    assert R.dpp_single([0, 1, 2, 3, 4], scores[0], vec, 5, 1.0).tolist() == [0, 3, 1, 2, 4]


def test_dpp_equal_scores_go_to_the_earlier_candidate(path):
    vec = np.eye(4)
    assert R.dpp([[2, 0, 3, 1]], [[1.0] * 4], vec, 4, 0.5).tolist() == [[2, 0, 3, 1]]
    assert R.dpp([[1, 3, 0, 2]], [[1.0] * 4], vec, 4, 1.0).tolist() == [[1, 3, 0, 2]]


def test_dpp_fill_breaks_score_ties_by_candidate_position(path):
    # Five items on one line (d = 1): after the first pick every d² is 0 and the rest go by score.
    # Scores (1, 2, 2, 1, 2): the first pick is the first of the top-scored (column 1, item 2); then the
    # fill by score, equal scores in column order: columns 2, 4, then 0, 3.
    vec = np.ones((5, 1))
    items = [[4, 2, 0, 1, 3]]
    assert R.dpp(items, [[1.0, 2.0, 2.0, 1.0, 2.0]], vec, 5, 0.5).tolist() == [[2, 0, 3, 4, 1]]
    assert R.dpp(items, [[1.0] * 5], vec, 5, 0.5).tolist() == [[4, 2, 0, 1, 3]]
    assert R.dpp_single(items[0], [1.0, 2.0, 2.0, 1.0, 2.0], vec, 5, 0.5).tolist() == [2, 0, 3, 4, 1]


def test_dpp_is_stable_for_large_alpha_and_shifted_scores(path):
    items, scores, vec = _random_case(seed=9, d=24)
    scores = scores * 300  # exp(alpha · r) would overflow without the per-user shift
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = R.dpp(items, scores, vec, 6, 0.001)  # theta = .999, alpha = 499.5
        shifted = R.dpp(items, scores + 1e4, vec, 6, 0.001)
        mid = R.dpp(items, scores / 300, vec, 6, 0.4)
    np.testing.assert_array_equal(out, shifted)
    np.testing.assert_array_equal(mid, R.dpp(items, scores / 300 - 50.0, vec, 6, 0.4))
    assert all(len(set(row)) == 6 for row in out.tolist())


def test_zero_vectors_give_no_nan(path):
    vec = np.zeros((4, 3))
    vec[1] = [1, 0, 0]
    items, scores = [[0, 1, 2, 3]], [[0.4, 0.3, 0.2, 0.1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A zero vector is unlike every other item and like itself (S_ii = 1): with lam = 1 (theta = 0) all
        # four candidates are mutually orthogonal, so the column order decides.
        assert R.dpp(items, scores, vec, 4, 1.0).tolist() == [[0, 1, 2, 3]]
        assert R.mmr(items, scores, vec, 4, 0.5).tolist() == [[0, 1, 2, 3]]
        assert objectives.scalarize(items, scores, 4, {"diversity": 1.0}, item_vectors=vec).tolist() == [[0, 1, 2, 3]]


def test_single_user_and_k_equals_m(path):
    items, scores, vec = _random_case(seed=4, n_users=1, m=6, d=24)
    out = R.dpp(items, scores, vec, 6, 0.5)
    assert sorted(out[0].tolist()) == sorted(items[0].tolist())
    np.testing.assert_array_equal(out[0], R.dpp_single(items[0], scores[0], vec, 6, 0.5))
    assert R.dpp(items, scores, vec, 1, 0.5).tolist() == [[items[0, np.argmax(scores[0])]]]


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_dpp_batched_equals_single_on_a_larger_task(path, lam):
    # Many users in several blocks; user group g draws its 40 candidates from 50 items spanning 4 + 2g
    # dimensions, so the groups run out of rank (and switch to filling by score) at different steps.
    rng = np.random.default_rng(11)
    vec = np.zeros((300, 16))
    for g in range(6):
        vec[50 * g:50 * (g + 1), :4 + 2 * g] = rng.standard_normal((50, 4 + 2 * g))
    items = np.concatenate([50 * g + np.argsort(rng.random((25, 50)), axis=1)[:, :40] for g in range(6)])
    scores = rng.normal(size=(150, 40))
    scores[::7, :5] = 1.0  # some exact score ties
    k = 15
    out = R.dpp(items, scores, vec, k, lam)
    ref = np.stack([R.dpp_single(i, s, vec, k, lam) for i, s in zip(items, scores)])
    np.testing.assert_array_equal(out, ref)
    assert all(len(set(row)) == k for row in out.tolist())


@pytest.mark.parametrize("ratio", [0, math.inf])  # sort each row / boolean (row, item) table
def test_repeated_candidates_are_found_by_either_check(monkeypatch, ratio):
    monkeypatch.setattr(batching, "REPEAT_FLAG_RATIO", ratio)
    monkeypatch.setattr(batching, "BLOCK_BYTES", 16)  # the table in several blocks of rows
    vec = np.eye(6)
    ok = [[0, 1, 2], [3, 4, 5], [5, 0, 3]]
    assert R.mmr(ok, np.ones((3, 3)), vec, 2, 0.5).shape == (3, 2)
    for bad, row in (([[0, 1, 2], [3, 4, 3], [5, 5, 3]], 1), ([[0, 1, 2], [3, 4, 5], [2, 0, 2]], 2)):
        with pytest.raises(ValueError, match=rf"cand_items repeats an item within a row \(first in row {row}\)"):
            R.dpp(bad, np.ones((3, 3)), vec, 2, 0.5)


# -- calibration --------------------------------------------------------------------------------------
# Two genres, a user whose history is half A, half B. Candidates i0 (A, score 1), i1 (A, .9), i2 (B, .1).
# With q~ = .99·q + .01·p: a list of one genre has q~ = (.995, .005), KL = .5 ln(.5/.995) + .5 ln(.5/.005)
# = 1.95852; the half-half list has KL 0. First pick: every single item has KL 1.95852, the score decides:
# i0. Second: i1 gives (1−λ)·.9 − λ·1.95852, i2 gives (1−λ)·.1, so i1 wins iff λ < .8 / 2.75852 = .290.
GENRES2 = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # rows are normalised by calibrate
P2 = np.array([[0.5, 0.5]])
KL_ONE_GENRE = 0.5 * math.log(0.5 / 0.995) + 0.5 * math.log(0.5 / 0.005)


def test_calibrate_hand_worked_crossover():
    items, scores = [[0, 1, 2]], [[1.0, 0.9, 0.1]]
    assert objectives.calibrate(items, scores, GENRES2, P2, 2, 0.0).tolist() == [[0, 1]]
    assert objectives.calibrate(items, scores, GENRES2, P2, 2, 0.28).tolist() == [[0, 1]]
    assert objectives.calibrate(items, scores, GENRES2, P2, 2, 0.30).tolist() == [[0, 2]]
    assert objectives.calibration_kl([[0, 1]], GENRES2, P2, k=2) == pytest.approx(KL_ONE_GENRE)
    assert objectives.calibration_kl([[0, 2]], GENRES2, P2, k=2) == pytest.approx(0.0)


# Three genres, the user's history is (.5, .25, .25). Candidates in score order: four A, two B, two C.
# lam = .99, greedy (KL values with alpha = .01):
#   1st: any A has KL 1.958, any B or C 3.109 -> A1.
#   2nd: {A, B} = {A, C} 0.979 < {A, A} 1.958 -> B1 (higher score than C1).
#   3rd: {A, B, C} 0.058 < {A, B, A} 0.937 < {A, B, B} -> C1.
#   4th: {A, B, C, A} has q = p exactly, KL 0 -> A2.
GENRES3 = np.array([[1, 0, 0]] * 4 + [[0, 1, 0]] * 2 + [[0, 0, 1]] * 2, dtype=float)
P3 = np.array([[2.0, 1.0, 1.0]])  # rows are normalised by calibrate: (.5, .25, .25)
SC3 = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]])


def test_calibrate_matches_the_users_genre_mix():
    items = np.arange(8)[None]
    assert objectives.calibrate(items, SC3, GENRES3, P3, 4, 0.0).tolist() == [[0, 1, 2, 3]]
    out = objectives.calibrate(items, SC3, GENRES3, P3, 4, 0.99)
    assert out.tolist() == [[0, 4, 6, 1]]
    assert objectives.calibration_kl(out, GENRES3, P3, k=4) == pytest.approx(0.0, abs=1e-12)
    assert objectives.calibration_kl([[0, 1, 2, 3]], GENRES3, P3, k=4) == pytest.approx(
        0.5 * math.log(0.5 / 0.995) + 2 * 0.25 * math.log(0.25 / 0.0025))  # q~ = (.995, .0025, .0025)


def _calibrate_reference(items, scores, genres, p, k, lam, alpha=0.01):
    g = genres / np.maximum(genres.sum(1, keepdims=True), 1e-300)
    out = []
    for it, s, pu in zip(items, scores, p):
        pu = pu / pu.sum()
        chosen = []
        for _ in range(k):
            best, best_val = None, -np.inf
            for c in range(len(it)):
                if c in chosen:
                    continue
                q = g[it[chosen + [c]]].sum(0)
                q = q / q.sum() if q.sum() > 0 else q
                qt = (1 - alpha) * q + alpha * pu
                kl = sum(pg * math.log(pg / qg) for pg, qg in zip(pu, qt) if pg > 0)
                val = (1 - lam) * s[chosen + [c]].sum() - lam * kl
                if val > best_val + 1e-12:
                    best, best_val = c, val
            chosen.append(best)
        out.append(it[chosen])
    return np.array(out)


def test_calibrate_matches_the_formula_on_random_data(path):
    rng = np.random.default_rng(5)
    genres = (rng.random((30, 5)) < 0.3) * 1.0
    genres[3] = 0.0  # an item without genres
    p = rng.random((12, 5)) * (rng.random((12, 5)) < 0.6) + np.eye(5)[rng.integers(0, 5, 12)]
    items = np.stack([rng.choice(30, 10, replace=False) for _ in range(12)])
    scores = rng.random((12, 10))
    for lam in (0.0, 0.2, 0.5, 0.9):
        np.testing.assert_array_equal(objectives.calibrate(items, scores, genres, p, 5, lam),
                                      _calibrate_reference(items, scores, genres, p, 5, lam))


def test_calibration_kl_averages_over_users_with_a_history():
    p = np.vstack([P2, [[0.0, 0.0]], P2])
    kl = objectives.calibration_kl([[0, 1], [0, 1], [0, 2]], GENRES2, p, k=2)
    assert kl == pytest.approx((KL_ONE_GENRE + 0.0) / 2)


# -- scalarize ----------------------------------------------------------------------------------------
def test_scalarize_relevance_only_is_top_k():
    rng = np.random.default_rng(6)
    items = np.stack([rng.choice(50, 12, replace=False) for _ in range(8)])
    scores = rng.normal(size=(8, 12))
    expected = np.take_along_axis(items, np.argsort(-scores, axis=1, kind="stable")[:, :5], axis=1)
    np.testing.assert_array_equal(objectives.scalarize(items, scores, 5, {"relevance": 1.0}), expected)
    np.testing.assert_array_equal(objectives.scalarize(items, scores, 5, {"relevance": 2.0, "novelty": 0.0}), expected)


def test_scalarize_relevance_and_diversity_hand_worked(path):
    # Candidates a, b, x, c (scores 1, .9, .7, .2), weights relevance 1, diversity w.
    # 1st: diversity is the same for all, relevance (s − .2)/.8 is largest for a.
    # 2nd over b, x, c: relevance (s − .2)/.7 = (1, .714, 0); gain 1 − max cos = (.2, .7, 1) -> (0, .625, 1).
    #   w = .5: (1, 1.027, .5) -> x.  w = 2: (1, 1.964, 2) -> c.
    # 3rd, w = .5, over b, c: relevance (1, 0); gain (.2, 1) -> (0, 1): (1, .5) -> b.
    # 3rd, w = 2, over b, x: relevance (1, 0); gain 1 − max cos to {a, c}: (.2, .7) -> (0, 1): (1, 2) -> x.
    w = lambda d: {"relevance": 1.0, "diversity": d}  # noqa: E731
    assert objectives.scalarize(ITEMS, SCORES, 4, w(0.5), item_vectors=VEC).tolist() == [[A, X, B, C]]
    assert objectives.scalarize(ITEMS, SCORES, 4, w(2.0), item_vectors=VEC).tolist() == [[A, C, X, B]]


def test_scalarize_novelty_prefers_rare_items():
    pop = np.array([10, 0, 5, 1, 7])
    # Self-information falls with popularity: item 1 (0) > 3 (1) > 2 (5) > 4 (7) > 0 (10).
    out = objectives.scalarize([[0, 1, 2, 3, 4]], [[5.0, 4.0, 3.0, 2.0, 1.0]], 5, {"novelty": 1.0}, item_popularity=pop)
    assert out.tolist() == [[1, 3, 2, 4, 0]]


def test_scalarize_calibration_matches_the_genre_mix():
    out = objectives.scalarize(np.arange(8)[None], SC3, 4, {"calibration": 1.0, "relevance": 0.001},
                      item_genres=GENRES3, user_genre_dist=P3)
    assert out.tolist() == [[0, 4, 6, 1]]


def _scalarize_reference(items, scores, k, w, vec, pop, genres, p, alpha=0.01):
    """scalarize straight from its definition, one user and one candidate at a time."""
    u = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-300)
    info = -np.log2((pop + 1.0) / (pop.sum() + len(pop)))
    g = genres / np.maximum(genres.sum(1, keepdims=True), 1e-300)

    def kl(pu, chosen):
        q = g[chosen].sum(0) if chosen else np.zeros(len(pu))
        q = q / q.sum() if q.sum() > 0 else q
        qt = (1 - alpha) * q + alpha * pu
        return sum(pg * math.log(pg / qg) for pg, qg in zip(pu, qt) if pg > 0)

    def norm(vals):
        lo, hi = min(vals), max(vals)
        return [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in vals]

    out = []
    for it, s, pu in zip(items, scores, p / p.sum(1, keepdims=True)):
        chosen = []
        for _ in range(k):
            rest = [c for c in range(len(it)) if c not in chosen]
            obj = {"relevance": [s[c] for c in rest], "novelty": [info[it[c]] for c in rest],
                   "diversity": [1 - max(u[it[c]] @ u[it[j]] for j in chosen) if chosen else 1.0 for c in rest],
                   "calibration": [kl(pu, list(it[chosen])) - kl(pu, list(it[chosen + [c]])) for c in rest]}
            total = np.zeros(len(rest))
            for name, weight in w.items():
                total += weight * np.array(norm(obj[name]))
            chosen.append(rest[int(np.argmax(total))])
        out.append(it[chosen])
    return np.array(out)


def test_scalarize_matches_its_definition_on_random_data(path):
    rng = np.random.default_rng(7)
    vec = rng.standard_normal((40, 5))
    pop = rng.integers(0, 50, 40)
    genres = (rng.random((40, 4)) < 0.4) * 1.0
    p = rng.random((10, 4)) + 0.05
    items = np.stack([rng.choice(40, 9, replace=False) for _ in range(10)])
    scores = rng.normal(size=(10, 9))
    for w in ({"relevance": 1.0, "diversity": 0.7}, {"relevance": 1.0, "novelty": 0.3, "calibration": 0.5},
              {"relevance": 0.5, "novelty": 0.2, "diversity": 0.4, "calibration": 0.3}):
        out = objectives.scalarize(items, scores, 5, w, item_vectors=vec, item_popularity=pop, item_genres=genres,
                          user_genre_dist=p)
        np.testing.assert_array_equal(out, _scalarize_reference(items, scores, 5, w, vec, pop, genres, p))


def test_no_users_gives_an_empty_result():
    empty_i, empty_s = np.zeros((0, 3), dtype=int), np.zeros((0, 3))
    assert R.mmr(empty_i, empty_s, V3, 2, 0.5).shape == (0, 2)
    assert R.dpp(empty_i, empty_s, V3, 2, 0.5).shape == (0, 2)
    assert R.dpp(np.zeros((0, 60), dtype=int), np.zeros((0, 60)), np.eye(60), 5, 0.5).shape == (0, 5)
    assert objectives.calibrate(empty_i, empty_s, G3, np.zeros((0, 3)), 2, 0.5).shape == (0, 2)
    assert objectives.scalarize(empty_i, empty_s, 2, {"relevance": 1.0}).shape == (0, 2)


# -- rescaling ----------------------------------------------------------------------------------------
def test_constant_rows_normalised_by_fusion_change_no_choice(path):
    # normalize_scores maps a constant row to 0.5 (minmax) / 0 (zscore); a constant shift per user moves no argmax
    rng = np.random.default_rng(5)
    vec = rng.normal(size=(30, 4))
    cand = np.stack([rng.permutation(30)[:8] for _ in range(3)])
    s = np.vstack([np.full(8, 2.0), np.full(8, -1.0), np.full(8, 7.0)])
    g, p = rng.random((30, 3)), rng.random((3, 3))
    for method in ("minmax", "zscore"):
        n = normalize_scores(s, method).astype(np.float64)
        for f in (lambda x: R.mmr(cand, x, vec, 5, 0.6), lambda x: R.maxsum(cand, x, vec, 5, 0.4),
                  lambda x: R.dpp(cand, x, vec, 5, 0.4), lambda x: objectives.calibrate(cand, x, g, p, 5, 0.5),
                  lambda x: objectives.scalarize(cand, x, 5, {"relevance": 1.0, "diversity": 1.0}, item_vectors=vec)):
            assert np.array_equal(f(n), f(s)), method
        assert np.array_equal(R.mmr(cand, n, vec, 5, 0.6), R.mmr(cand, np.zeros_like(s), vec, 5, 0.6))


# -- candidates and Pareto fronts ---------------------------------------------------------------------
def test_shortlist_respect_the_masks_and_keep_the_scores():
    import scipy.sparse as sp

    scores = np.array([[0.1, 0.9, 0.5, 0.7, 0.3],
                       [0.8, 0.2, 0.6, 0.4, 0.0]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))  # user 0 has seen item 1
    catalogue = np.array([True, True, True, True, False])  # item 4 is outside the catalogue
    items, cand = R.shortlist(scores, 3, seen=seen, catalogue=catalogue)
    # user 0: 1 is seen, 4 not allowed -> 3 (.7), 2 (.5), 0 (.1); user 1: 0 (.8), 2 (.6), 3 (.4)
    assert items.tolist() == [[3, 2, 0], [0, 2, 3]]
    assert items.dtype == np.int64 and cand.dtype == np.float64
    np.testing.assert_allclose(cand, [[0.7, 0.5, 0.1], [0.8, 0.6, 0.4]], rtol=1e-6)
    # without masks it is the plain top-m, equal scores by item index
    assert R.shortlist([[1.0, 2.0, 2.0]], 2)[0].tolist() == [[1, 2]]


def test_shortlist_need_enough_rankable_items_per_user():
    import scipy.sparse as sp

    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [0, 0, 0, 0, 0]]))
    catalogue = np.array([True, True, True, True, False])
    # user 0 can be shown items 0, 2, 3 only (1 seen; 4 seen but outside the catalogue, counted once)
    assert R.shortlist(np.ones((2, 5)), 3, seen=seen, catalogue=catalogue)[0].tolist() == [[0, 2, 3], [0, 1, 2]]
    with pytest.raises(ValueError, match="m=4 is larger than the 3 items user row 0"):
        R.shortlist(np.ones((2, 5)), 4, seen=seen, catalogue=catalogue)


def test_pareto_front_hand_worked():
    pts = np.array([
        [0.30, 0.50],  # front: best in the first objective
        [0.28, 0.60],  # front
        [0.25, 0.55],  # dominated by (0.28, 0.60)
        [0.20, 0.70],  # front: best in the second
        [0.28, 0.60],  # duplicate of a front point: on the front too
        [0.20, 0.65],  # dominated by (0.20, 0.70): equal in one, worse in the other
    ])
    assert R.pareto_front(pts).tolist() == [True, True, False, True, True, False]
    # minimising the second objective instead: negate it
    assert R.pareto_front(pts * [1, -1]).tolist() == [True, False, False, False, False, False]
    assert R.pareto_front([[1.0]]).tolist() == [True]


# -- errors -------------------------------------------------------------------------------------------
V3 = np.eye(3)
G3 = np.eye(3)
P1 = np.array([[1.0, 1.0, 0.0]])
OK_ITEMS, OK_SCORES = [[0, 1, 2]], [[0.3, 0.2, 0.1]]

ERRORS = [
    (lambda: R.mmr(OK_ITEMS, [[0.3, np.nan, 0.1]], V3, 2, 0.5), "cand_scores"),
    (lambda: R.mmr(OK_ITEMS, [[0.3, np.inf, 0.1]], V3, 2, 0.5), "cand_scores"),
    (lambda: R.mmr(OK_ITEMS, OK_SCORES, V3, 4, 0.5), "k=4"),
    (lambda: R.mmr(OK_ITEMS, OK_SCORES, V3, 0, 0.5), "k must"),
    (lambda: R.mmr(OK_ITEMS, [[0.3, 0.2]], V3, 2, 0.5), "cand_scores"),
    (lambda: R.mmr([0, 1, 2], [0.3, 0.2, 0.1], V3, 2, 0.5), "cand_items"),
    (lambda: R.mmr([[0, 1, 3]], OK_SCORES, V3, 2, 0.5), "cand_items holds item index 3"),
    (lambda: R.mmr([[0, -1, 2]], OK_SCORES, V3, 2, 0.5), "cand_items holds -1 \\(NO_ITEM"),
    (lambda: R.mmr([[0, 1, 1]], OK_SCORES, V3, 2, 0.5), "repeats"),
    (lambda: R.mmr([[0.0, 1.0, 2.0]], OK_SCORES, V3, 2, 0.5), "integer"),
    (lambda: R.mmr(OK_ITEMS, OK_SCORES, V3, 2, 1.5), "lam"),
    (lambda: R.mmr(OK_ITEMS, OK_SCORES, V3, 2, -0.1), "lam"),
    (lambda: R.mmr(OK_ITEMS, OK_SCORES, np.ones(3), 2, 0.5), "item_vectors"),
    (lambda: R.mmr(OK_ITEMS, OK_SCORES, [[1.0, np.nan]] * 3, 2, 0.5), "item_vectors"),
    (lambda: R.dpp(OK_ITEMS, OK_SCORES, V3, 2, 1.5), "lam"),
    (lambda: R.dpp(OK_ITEMS, OK_SCORES, V3, 2, -0.5), "lam"),
    (lambda: R.dpp(OK_ITEMS, OK_SCORES, V3, 2, True), "lam"),
    (lambda: R.dpp(OK_ITEMS, OK_SCORES, V3, 2, math.nan), "lam"),
    (lambda: R.dpp(OK_ITEMS, [[0.3, np.nan, 0.1]], V3, 2, 0.5), "cand_scores"),
    (lambda: R.dpp(OK_ITEMS, OK_SCORES, V3, 5, 0.5), "k=5"),
    (lambda: R.dpp([[0, 1, 9]], OK_SCORES, V3, 2, 0.5), "cand_items"),
    (lambda: R.dpp_single([0, 1, 2], [0.3, 0.2], V3, 2, 0.5), "cand_scores"),
    (lambda: R.dpp_single([[0, 1, 2]], [[0.3, 0.2, 0.1]], V3, 2, 0.5), "1-D"),
    (lambda: R.dpp_single([0, 1, 2], [0.3, 0.2, 0.1], V3, 2, 1.5), "lam"),
    (lambda: R.dpp_single([0, 1, 2], [0.3, 0.2, 0.1], V3, 2, -1e-9), "lam"),
    (lambda: R.dpp_single([0, 1, 5], [0.3, 0.2, 0.1], V3, 2, 0.5), "cand_items"),
    (lambda: objectives.calibrate(OK_ITEMS, OK_SCORES, G3, P1, 2, 2.0), "lam"),
    (lambda: objectives.calibrate(OK_ITEMS, OK_SCORES, G3, P1, 2, 0.5, alpha=0.0), "alpha"),
    (lambda: objectives.calibrate(OK_ITEMS, OK_SCORES, -G3, P1, 2, 0.5), "item_genres"),
    (lambda: objectives.calibrate(OK_ITEMS, OK_SCORES, G3, np.ones((2, 3)), 2, 0.5), "user_genre_dist"),
    (lambda: objectives.calibrate(OK_ITEMS, OK_SCORES, G3, np.ones((1, 2)), 2, 0.5), "user_genre_dist"),
    (lambda: objectives.calibrate(OK_ITEMS, [[np.nan, 0, 0]], G3, P1, 2, 0.5), "cand_scores"),
    (lambda: objectives.calibrate([[0, 1, 7]], OK_SCORES, G3, P1, 2, 0.5), "cand_items"),
    (lambda: objectives.calibration_kl([[0, 1]], G3, P1, k=3), "k=3"),
    (lambda: objectives.calibration_kl([[0, 4]], G3, P1, k=2), "topk"),
    (lambda: objectives.calibration_kl([[0, 1]], G3, P1, k=2, alpha=-1), "alpha"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"fun": 1.0}), "unknown objective"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {}), "weights"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"relevance": 0.0}), "all zero"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"relevance": -1.0}), "relevance"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"diversity": 1.0}), "item_vectors"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"novelty": 1.0}), "item_popularity"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"calibration": 1.0}, item_genres=G3), "user_genre_dist"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"novelty": 1.0}, item_popularity=[1, -2, 3]),
     "item_popularity"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"novelty": 1.0, "diversity": 1.0}, item_vectors=V3,
                         item_popularity=[1, 2, 3, 4]), "n_items"),
    (lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 4, {"relevance": 1.0}), "k=4"),
    (lambda: objectives.scalarize([[0, 1, 8]], OK_SCORES, 2, {"novelty": 1.0}, item_popularity=[1, 2, 3]),
     "cand_items"),
    (lambda: R.shortlist([1.0, 2.0], 1), "scores"),
    (lambda: R.shortlist([[1.0, np.nan]], 1), "scores"),
    (lambda: R.shortlist([[1.0, 2.0]], 0), "m must"),
    (lambda: R.shortlist([[1.0, 2.0]], 1.0), "m must"),
    (lambda: R.shortlist([[1.0, 2.0]], 3), "k=3"),
    (lambda: R.shortlist([[1.0, 2.0]], 2, catalogue=[True, False]), "m=2"),
    (lambda: R.shortlist([[1.0, 2.0]], 1, catalogue=[1, 0]), "catalogue"),
    (lambda: R.shortlist([[1.0, 2.0]], 1, seen=np.eye(2)), "seen"),
    (lambda: R.pareto_front([1.0, 2.0]), "objectives"),
    (lambda: R.pareto_front([[1.0, np.inf]]), "objectives"),
]


@pytest.mark.parametrize("call, match", ERRORS, ids=[f"{i}-{m}" for i, (_, m) in enumerate(ERRORS)])
def test_bad_input_raises_a_clear_error_naming_it(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


# -- ordering a re-ranked set -------------------------------------------------------------------------
def test_sort_by_score_hand_worked():
    cand = np.array([[5, 3, 9, 1], [2, 7, 4, 6]])
    scores = np.array([[0.9, 0.7, 0.5, 0.1], [0.2, 0.8, 0.8, 0.5]])  # row 1: unsorted, with a tie
    top = np.array([[1, 5, 9], [4, 2, 7]])
    got = R.sort_by_score(top, cand, scores)
    assert got.tolist() == [[5, 9, 1], [7, 4, 2]]  # 7 and 4 tie at 0.8: 7 is the earlier candidate
    assert got.dtype == np.int64


def test_sort_by_score_keeps_the_set_and_is_idempotent(path):
    rng = np.random.default_rng(3)
    vec = rng.normal(size=(40, 6))
    cand = np.stack([rng.permutation(40)[:12] for _ in range(7)])
    scores = np.sort(rng.random((7, 12)), axis=1)[:, ::-1]
    lists = R.mmr(cand, scores, vec, 5, 0.7)
    got = R.sort_by_score(lists, cand, scores)
    assert (np.sort(got, axis=1) == np.sort(lists, axis=1)).all()
    s = np.take_along_axis(scores, (got[:, :, None] == cand[:, None, :]).argmax(axis=2), axis=1)
    assert (np.diff(s, axis=1) <= 0).all()
    assert (R.sort_by_score(got, cand, scores) == got).all()


@pytest.mark.parametrize("top, match", [
    (np.array([[5, 8]]), "topk row 0 holds item 8, which is not among"),
    (np.array([[5, 3], [5, 3]]), "topk has 2 user rows but cand_items has 1"),
    (np.array([5, 3]), "topk must be a 2-D int array"),
    (np.array([[5.0, 3.0]]), "topk must be a 2-D int array"),
])
def test_sort_by_score_rejects_bad_lists(top, match):
    with pytest.raises((TypeError, ValueError), match=match):
        R.sort_by_score(top, np.array([[5, 3, 9]]), np.array([[0.9, 0.5, 0.1]]))


# -- defects fixed in issue 12 ------------------------------------------------------------------------
def test_sort_by_score_rejects_a_repeated_item():
    with pytest.raises(ValueError, match="topk repeats an item"):
        R.sort_by_score([[5, 5]], [[5, 3, 9]], [[0.9, 0.5, 0.1]])


def test_scalarize_survives_a_score_span_that_overflows():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = objectives.scalarize([[0, 1, 2]], [[-1e308, 1e308, 0.0]], 3, {"relevance": 1.0})
    assert got.tolist() == [[1, 2, 0]]


def test_masks_are_keyword_only():
    with pytest.raises(TypeError):
        R.shortlist(np.eye(2), 1, None)


@pytest.mark.parametrize("call", [
    lambda: R.mmr(OK_ITEMS, OK_SCORES, V3, 2.0, 0.5),
    lambda: R.mmr([[0.0, 1.0, 2.0]], OK_SCORES, V3, 2, 0.5),
    lambda: R.maxsum(OK_ITEMS, OK_SCORES, V3, 2, "0.5"),
    lambda: R.dpp(OK_ITEMS, [["a", "b", "c"]], V3, 2, 0.5),
    lambda: R.dpp_single([0, 1, 2], [0.3, 0.2, 0.1], [["a"]] * 3, 2, 0.5),
    lambda: objectives.calibrate(OK_ITEMS, OK_SCORES, G3, P1, None, 0.5),
    lambda: objectives.calibration_kl([[0, 1]], G3, P1, k="2"),
    lambda: objectives.scalarize(OK_ITEMS, OK_SCORES, 2, {"relevance": "1"}),
    lambda: R.shortlist([[1.0, 2.0]], True),
    lambda: R.pareto_front([["a", "b"]]),
    lambda: R.sort_by_score([[0]], [[0.0, 1.0]], [[0.3, 0.2]]),
])
def test_wrong_kind_of_argument_raises_a_type_error(call):
    with pytest.raises(TypeError):
        call()


# -- properties on random inputs (hypothesis) ---------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def rerank_task(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_users, m, n_items = draw(st.integers(1, 5)), draw(st.integers(1, 9)), draw(st.integers(9, 20))
    k = draw(st.integers(1, m))
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(n_items)[:m] for _ in range(n_users)])
    if draw(st.booleans()):
        scores = rng.normal(size=(n_users, m))
    else:  # many ties
        scores = rng.integers(0, 3, size=(n_users, m)).astype(float)
    dim = draw(st.integers(1, 4))
    vec = rng.normal(size=(n_items, dim)) * (rng.random((n_items, 1)) > 0.1)  # some zero vectors
    genres = (rng.random((n_items, 4)) < 0.4).astype(float)
    dist = rng.random((n_users, 4)) * (rng.random((n_users, 1)) > 0.2)
    pop = rng.integers(0, 50, size=n_items)
    return items, scores, vec, genres, dist, pop, k


def _valid_lists(out, items, k):
    assert out.shape == (items.shape[0], k) and out.dtype == np.int64
    for row, cand in zip(out, items):
        assert len(set(row.tolist())) == k  # distinct
        assert set(row.tolist()) <= set(cand.tolist())  # drawn from that user's candidates


def _score_order(items, scores, k):
    order = np.lexsort((np.broadcast_to(np.arange(items.shape[1]), items.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(items, order, axis=1)


@settings(max_examples=50, deadline=None)
@given(rerank_task(), st.floats(0, 1))
def test_property_every_reranker_returns_distinct_candidates(task, knob):
    items, scores, vec, genres, dist, pop, k = task
    outs = [R.mmr(items, scores, vec, k, knob), R.maxsum(items, scores, vec, k, knob),
            R.dpp(items, scores, vec, k, knob), objectives.calibrate(items, scores, genres, dist, k, knob),
            objectives.scalarize(items, scores, k, {"relevance": 1.0, "diversity": knob, "novelty": 1 - knob,
                                           "calibration": 0.5},
                        item_vectors=vec, item_popularity=pop, item_genres=genres, user_genre_dist=dist)]
    for out in outs:
        _valid_lists(out, items, k)
        _valid_lists(R.sort_by_score(out, items, scores), items, k)
    for u in range(items.shape[0]):
        _valid_lists(R.dpp_single(items[u], scores[u], vec, k, knob)[None], items[u:u + 1], k)


@settings(max_examples=50, deadline=None)
@given(rerank_task())
def test_property_lam_zero_is_the_score_order_for_every_reranker(task):
    items, scores, vec, genres, dist, pop, k = task
    want = _score_order(items, scores, k)
    assert np.array_equal(R.mmr(items, scores, vec, k, 0.0), want)
    assert np.array_equal(R.maxsum(items, scores, vec, k, 0.0), want)
    assert np.array_equal(R.dpp(items, scores, vec, k, 0.0), want)
    assert all(np.array_equal(R.dpp_single(items[u], scores[u], vec, k, 0.0), want[u]) for u in range(len(items)))
    assert np.array_equal(objectives.calibrate(items, scores, genres, dist, k, 0.0), want)
    assert np.array_equal(objectives.scalarize(items, scores, k, {"relevance": 1.0}), want)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 4), st.booleans())
def test_property_pareto_front_is_exactly_the_non_dominated_points(seed, n, d, ties):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, d)).astype(float) if ties else rng.normal(size=(n, d))
    front = R.pareto_front(x)
    assert front.any()  # a finite set always has a non-dominated point
    for i in range(n):
        dominated = any((x[j] >= x[i]).all() and (x[j] > x[i]).any() for j in range(n))
        assert front[i] == (not dominated)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(10, 48), st.integers(1, 12), st.integers(1, 40),
       st.sampled_from(["normal", "steep", "ties"]), st.floats(0.02, 1))
def test_property_dpp_equals_dpp_single(seed, n_users, m, k, dim, kind, knob):
    # batched and per-user greedy agree on random data: zero and opposite vectors, steep gains, tied scores
    k = min(k, m)
    rng = np.random.default_rng(seed)
    vec = rng.normal(size=(60, dim)) * (rng.random((60, 1)) > 0.1)
    vec[1] = -2.0 * vec[0]
    items = np.argsort(rng.random((n_users, 60)), axis=1)[:, :m]
    scores = {"normal": lambda: rng.normal(size=(n_users, m)), "steep": lambda: 5 * rng.normal(size=(n_users, m)),
              "ties": lambda: rng.integers(0, 4, size=(n_users, m)).astype(float)}[kind]()
    out = R.dpp(items, scores, vec, k, knob)
    _valid_lists(out, items, k)
    assert all(np.array_equal(out[u], R.dpp_single(items[u], scores[u], vec, k, knob)) for u in range(n_users))
