"""Hand-computed checks of recsuite.evaluation.metrics (k small enough to verify on paper)."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.core.device import usable_cores
from recsuite.evaluation import bootstrap
from recsuite.evaluation import metrics as M


def csr(rows, n_items):
    r, c = zip(*[(u, i) for u, items in enumerate(rows) for i in items]) if any(rows) else ((), ())
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


# user 0: relevant {1, 3}; list [1, 2, 3] -> hits at ranks 1 and 3
# user 1: relevant {4};    list [0, 2, 4] -> hit at rank 3
# user 2: no relevant items -> ignored by ranking metrics
TOPK = np.array([[1, 2, 3], [0, 2, 4], [0, 1, 2]])
TRUTH = csr([[1, 3], [4], []], 5)
D = [1 / math.log2(i + 2) for i in range(3)]


def test_ndcg_hand_computed():
    u0 = (D[0] + D[2]) / (D[0] + D[1])
    u1 = D[2] / D[0]
    assert M.ndcg_at_k(TOPK, TRUTH, k=3) == pytest.approx((u0 + u1) / 2)


def test_recall_precision_hit_mrr_map_hand_computed():
    assert M.recall_at_k(TOPK, TRUTH, k=3) == pytest.approx((2 / 2 + 1 / 1) / 2)
    assert M.precision_at_k(TOPK, TRUTH, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert M.hit_rate_at_k(TOPK, TRUTH, k=3) == pytest.approx(1.0)
    assert M.mrr_at_k(TOPK, TRUTH, k=3) == pytest.approx((1 + 1 / 3) / 2)
    # MAP: u0 = (P@1 + P@3) / min(2, 3) = (1 + 2/3) / 2; u1 = P@3 / 1 = 1/3
    assert M.map_at_k(TOPK, TRUTH, k=3) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)


def test_k_cuts_the_lists():
    assert M.recall_at_k(TOPK, TRUTH, k=1) == pytest.approx((1 / 2 + 0) / 2)
    assert M.ndcg_at_k(TOPK, TRUTH, k=1) == pytest.approx(0.5)


def test_perfect_ranking_scores_one():
    topk = np.array([[3, 1, 0], [4, 0, 1]])
    truth = csr([[1, 3], [4]], 5)
    for f in (M.ndcg_at_k, M.hit_rate_at_k, M.mrr_at_k, M.map_at_k, M.recall_at_k):
        assert f(topk, truth, k=3) == pytest.approx(1.0), f.__name__
    # precision is hits / k, so a perfect list for |rel| < k stays below 1 (RecBole's definition)
    assert M.precision_at_k(topk, truth, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_empty_ranking_scores_zero():
    topk = np.array([[0, 2], [1, 2]])
    truth = csr([[1, 3], [4]], 5)
    for f in (M.ndcg_at_k, M.recall_at_k, M.precision_at_k, M.hit_rate_at_k, M.mrr_at_k, M.map_at_k):
        assert f(topk, truth, k=2) == 0.0, f.__name__


def test_no_relevant_users_at_all_is_refused_not_scored_zero():
    with pytest.raises(ValueError, match="all 3 rows are empty"):
        M.ndcg_at_k(TOPK, csr([[], [], []], 5), k=3)


def test_evaluate_row_matches_single_metrics_and_beyond():
    row = M.evaluate(TOPK, TRUTH, k=3, catalogue=np.ones(5, bool), item_popularity=np.array([4, 0, 1, 1, 2]))
    assert row["ndcg@3"] == pytest.approx(M.ndcg_at_k(TOPK, TRUTH, 3))
    assert row["map@3"] == pytest.approx(M.map_at_k(TOPK, TRUTH, 3))
    assert row["users"] == 2
    assert row["coverage@3"] == pytest.approx(1.0)
    assert {"gini@3", "novelty@3"} <= set(row)


def test_evaluate_catalog_restricts_coverage_and_rejects_outside_items():
    row = M.evaluate(np.array([[2, 3], [3, 4]]), csr([[2], [4]], 5), k=2, catalogue=np.isin(np.arange(5), [2, 3, 4]))
    assert row["coverage@2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside the catalogue"):
        M.evaluate(np.array([[0, 3], [3, 4]]), csr([[2], [4]], 5), k=2, catalogue=np.isin(np.arange(5), [2, 3, 4]))


def test_coverage_gini_hand_computed():
    topk = np.array([[0, 1], [0, 1]])
    assert M.catalog_coverage(topk, 4, k=2) == pytest.approx(0.5)
    # counts sorted [0, 0, 2, 2]: G = sum((2i - 5) x_i) / (4 * 4) = ((1)*2 + (3)*2) / 16 = 0.5
    assert M.gini_index(topk, 4, k=2) == pytest.approx(0.5)
    assert M.gini_index(np.array([[0, 1], [2, 3]]), 4, k=2) == pytest.approx(0.0)


def test_intra_list_diversity_hand_computed():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    # list [0, 1]: cos 0 -> 1; list [0, 2]: cos 1/sqrt2 -> 1 - 0.7071
    got = M.intra_list_diversity(np.array([[0, 1], [0, 2]]), v, k=2)
    assert got == pytest.approx((1 + 1 - 1 / math.sqrt(2)) / 2)
    # zero vectors have cosine 0 to everything
    assert M.intra_list_diversity(np.array([[0, 3]]), v, k=2) == pytest.approx(1.0)


def test_novelty_hand_computed_and_unseen_items_finite():
    pop = np.array([3, 1, 0])  # p = (c + 1) / (4 + 3) = 4/7, 2/7, 1/7
    got = M.novelty(np.array([[0, 2]]), pop, k=2)
    assert got == pytest.approx((-math.log2(4 / 7) - math.log2(1 / 7)) / 2)


def test_topk_from_scores_orders_masks_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    top = M.topk_from_scores(scores, 3)
    assert top.dtype == np.int64
    np.testing.assert_array_equal(top, [[1, 3, 2], [0, 1, 2]])
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0]]))
    np.testing.assert_array_equal(M.topk_from_scores(scores, 2, seen=seen), [[3, 2], [1, 2]])
    catalogue = np.array([True, False, True, True])
    np.testing.assert_array_equal(M.topk_from_scores(scores, 2, catalogue=catalogue), [[3, 2], [0, 2]])


def test_topk_from_scores_matches_a_full_stable_sort_on_random_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float64)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(M.topk_from_scores(scores, 7), expected)


@pytest.mark.parametrize(
    "topk, truth, k, message",
    [
        (TOPK[:2], TRUTH, 3, "rows"),
        (TOPK, TRUTH, 4, "larger than the top-k lists"),
        (TOPK.astype(float), TRUTH, 3, "int array"),
        (np.array([[1, 2, 9], [0, 2, 4], [0, 1, 2]]), TRUTH, 3, "outside the catalogue"),
        (np.array([[1, 1, 3], [0, 2, 4], [0, 1, 2]]), TRUTH, 3, "repeats an item"),
        (TOPK, TRUTH.toarray(), 3, "scipy.sparse"),
        (TOPK, TRUTH, 0, "k must be an int >= 1"),
        (TOPK, TRUTH, 2.0, "k must be an int"),
        (TOPK, TRUTH, True, "k must be an int"),
        (np.array([[1, 2, -2], [0, 2, 4], [0, 1, 2]]), TRUTH, 3, "only -1"),
        (TOPK[0], TRUTH, 3, "2-D"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(topk, truth, k, message):
    with pytest.raises((TypeError, ValueError), match=message):
        M.ndcg_at_k(topk, truth, k=k)


def test_topk_from_scores_rejects_nan_inf_and_bad_masks():
    with pytest.raises(ValueError, match="NaN or inf"):
        M.topk_from_scores(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        M.topk_from_scores(np.array([[0.0, np.inf]]), 1)
    with pytest.raises(ValueError, match="k=3 is larger"):
        M.topk_from_scores(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="seen"):
        M.topk_from_scores(np.zeros((2, 2)), 1, seen=np.zeros((2, 2)))
    with pytest.raises(TypeError, match="catalogue"):
        M.topk_from_scores(np.zeros((2, 2)), 1, catalogue=np.array([1, 0]))


def test_per_user_metrics_average_to_the_metrics():
    pu = M.per_user_metrics(TOPK, TRUTH, k=3)
    assert pu.n_relevant.tolist() == [2, 1, 0]
    assert np.isnan(pu.loc[2, "ndcg@3"])
    assert pu["ndcg@3"].mean() == pytest.approx(M.ndcg_at_k(TOPK, TRUTH, 3))
    np.testing.assert_array_equal(M.hit_matrix(TOPK, TRUTH, 3), [[1, 0, 1], [0, 0, 1], [0, 0, 0]])


# -- paired bootstrap ----------------------------------------------------------------------------------
def test_paired_bootstrap_of_a_constant_shift_is_exact():
    rng = np.random.default_rng(0)
    b = rng.random(500)
    r = bootstrap.paired_bootstrap(b + 0.01, b, n_boot=500, seed=1)
    assert r.diff == pytest.approx(0.01) and r.lo == pytest.approx(0.01) and r.hi == pytest.approx(0.01)
    assert r.excludes_zero and r.verdict() == "higher" and r.verdict(min_effect=0.02) == "indistinguishable"
    assert bootstrap.paired_bootstrap(b, b + 0.01, seed=1).verdict() == "lower"


def test_the_one_rule_needs_an_interval_off_zero_and_a_gap_over_the_floor():
    b = np.random.default_rng(0).random(400)
    below = bootstrap.paired_bootstrap(b + 0.75 * bootstrap.NOISE_FLOOR, b, seed=1)
    above = bootstrap.paired_bootstrap(b + 1.25 * bootstrap.NOISE_FLOOR, b, seed=1)
    assert below.excludes_zero and below.verdict() == "indistinguishable" and above.verdict() == "higher"
    assert below.verdict(min_effect=0.0) == "higher"  # a library user's own floor replaces the course's
    # a relative difference is held to the same absolute gap: NOISE_FLOOR / mean(b)
    rel = bootstrap.paired_bootstrap(b + 0.75 * bootstrap.NOISE_FLOOR, b, seed=1, relative=True)
    assert rel.floor == pytest.approx(bootstrap.NOISE_FLOOR / b.mean()) and rel.verdict() == "indistinguishable"
    assert bootstrap.paired_bootstrap(b - 0.01, b, seed=1, relative=True).verdict() == "lower"
    assert above.report("A − B") == f"A − B: {above} -> higher"
    assert rel.interval().startswith("[+") and rel.interval().endswith("%]")


def test_verdict_table_lays_out_comparisons_in_order():
    b = np.random.default_rng(2).random(300)
    table = bootstrap.verdict_table({"up": bootstrap.paired_bootstrap(b + 0.02, b),
                                     "flat": bootstrap.paired_bootstrap(b, b)})
    assert table.index.tolist() == ["up", "flat"] and table.verdict.tolist() == ["higher", "indistinguishable"]
    assert table.loc["up", "difference"] == pytest.approx(0.02) and table.loc["up", "95 % interval"] == "[+0.0200, +0.0200]"
    with pytest.raises(TypeError, match=r"comparisons\['x'\] must be a PairedDifference"):
        bootstrap.verdict_table({"x": 0.1})
    with pytest.raises(TypeError, match="must map names"):
        bootstrap.verdict_table([bootstrap.paired_bootstrap(b, b)])
    with pytest.raises(ValueError, match="at least one comparison"):
        bootstrap.verdict_table({})


def test_verdict_table_names_the_interval_by_its_level():
    b = np.random.default_rng(3).normal(size=400)
    wide = bootstrap.paired_bootstrap(b + 0.1, b, level=0.99)
    assert list(bootstrap.verdict_table({"w": wide}).columns) == ["difference", "99 % interval", "verdict"]
    mixed = bootstrap.verdict_table({"w": wide, "n": bootstrap.paired_bootstrap(b + 0.1, b)})
    assert list(mixed.columns) == ["difference", "interval", "level", "verdict"]
    assert mixed.level.tolist() == [0.99, 0.95] and mixed.loc["w", "interval"] == wide.interval()


def test_the_comparison_figure_draws_each_verdict_and_refuses_mixed_kinds():
    import matplotlib

    matplotlib.use("Agg")
    from recsuite.course import figures

    b = np.random.default_rng(3).random(300)
    comps = {"up": bootstrap.paired_bootstrap(b + 0.02, b), "down": bootstrap.paired_bootstrap(b - 0.02, b),
             "flat": bootstrap.paired_bootstrap(b + 0.001, b)}
    ax = figures.paired_differences(comps, title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["up", "down", "flat"]
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in ax.lines if line.get_marker() == "o"][:3]
    assert colours == [matplotlib.colors.to_hex(figures.VERDICT_COLOURS[v]) for v in ("higher", "lower", "indistinguishable")]
    with pytest.raises(ValueError, match="mixes relative and absolute"):
        figures.paired_differences({"a": comps["up"], "r": bootstrap.paired_bootstrap(b + 0.02, b, relative=True)})
    matplotlib.pyplot.close("all")


def test_pairing_makes_the_interval_narrower_than_independent_ones():
    rng = np.random.default_rng(1)
    user = rng.random(900) * 0.3  # most of the per-user variance is the user, shared by both models
    a, b = user + rng.normal(0.004, 0.01, 900), user + rng.normal(0.0, 0.01, 900)
    r = bootstrap.paired_bootstrap(a, b, seed=0)
    se_unpaired = np.sqrt(a.var() / 900 + b.var() / 900)
    assert r.hi - r.lo < 2 * 1.96 * se_unpaired / 3
    assert r.lo < r.diff < r.hi and r.n_users == 900 and r.level == 0.95


def test_paired_bootstrap_skips_users_without_relevant_items_and_is_seeded():
    a = np.array([0.5, np.nan, 0.2, 0.1, 0.4])
    b = np.array([0.4, np.nan, 0.2, 0.3, 0.1])
    r = bootstrap.paired_bootstrap(a, b, n_boot=200, seed=3)
    assert r.n_users == 4 and r.diff == pytest.approx((1.2 - 1.0) / 4)
    assert r == bootstrap.paired_bootstrap(pd.Series(a), pd.Series(b), n_boot=200, seed=3)
    rel = bootstrap.paired_bootstrap(a, b, n_boot=200, seed=3, relative=True)
    assert rel.diff == pytest.approx(1.2 / 1.0 - 1) and str(rel).startswith("+20.0% [")
    assert str(r).startswith("+0.0500 [")


def test_paired_bootstrap_rejects_bad_input():
    a = np.array([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="the same users"):
        bootstrap.paired_bootstrap(a, a[:2])
    with pytest.raises(ValueError, match="NaN .* for different users"):
        bootstrap.paired_bootstrap(a, np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="must be one per-user column"):
        bootstrap.paired_bootstrap(pd.DataFrame({"x": a}), a)
    with pytest.raises(ValueError, match="1-D array"):
        bootstrap.paired_bootstrap(a[None, :], a[None, :])
    with pytest.raises(ValueError, match="Series with different indexes"):  # same users, another order
        bootstrap.paired_bootstrap(pd.Series(a, index=[0, 1, 2]), pd.Series(a[[1, 2, 0]], index=[1, 2, 0]))
    with pytest.raises(ValueError, match="n_boot must be an int >= 100"):
        bootstrap.paired_bootstrap(a, a, n_boot=10)
    with pytest.raises(ValueError, match="level must be a finite number in"):
        bootstrap.paired_bootstrap(a, a, level=95)
    with pytest.raises(ValueError, match="at least 2 users"):
        bootstrap.paired_bootstrap(np.array([0.1, np.nan]), np.array([0.2, np.nan]))
    with pytest.raises(ValueError, match="divides by mean\\(b\\), which is 0"):
        bootstrap.paired_bootstrap(a, np.zeros(3), relative=True)
    with pytest.raises(ValueError, match="min_effect must be a finite number in \\[0.0"):
        bootstrap.paired_bootstrap(a, a).verdict(-1)


def test_catalog_coverage_refuses_ids_outside_the_catalogue():
    with pytest.raises(ValueError, match="outside"):
        M.catalog_coverage(np.array([[0, 7]]), 4, k=2)
    with pytest.raises(TypeError, match="n_items"):
        M.catalog_coverage(np.array([[0, 1]]), 4.0, k=2)


@pytest.mark.parametrize("fn", [M.catalog_coverage, M.gini_index])
def test_catalogue_metrics_refuse_out_of_range_ids(fn):
    with pytest.raises(ValueError, match="outside"):
        fn(np.array([[0, 4]]), 4, k=2)
    with pytest.raises(ValueError, match="negative"):
        fn(np.array([[0, -2]]), 4, k=2)  # -1 means "no item"; anything lower is refused


def test_novelty_refuses_out_of_range_ids():
    with pytest.raises(ValueError, match="outside"):
        M.novelty(np.array([[0, 4]]), np.ones(4), k=2)


# -- short lists: -1 pads, and every metric reads it as "no item" ---------------------------------------
def test_topk_from_scores_pads_short_lists_with_minus_one_never_a_masked_item():
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0]]))
    catalogue = np.array([True, True, True, False])
    top = M.topk_from_scores(scores, 3, seen=seen, catalogue=catalogue)
    np.testing.assert_array_equal(top, [[2, -1, -1], [2, 1, 0]])
    assert top.dtype == np.int64
    assert M.NO_ITEM == -1


def test_topk_from_scores_masks_are_keyword_only():
    scores = np.zeros((1, 3))
    with pytest.raises(TypeError):
        M.topk_from_scores(scores, 1, None)  # noqa


def test_minus_one_padding_is_never_a_hit_nor_an_item():
    # user 1's -1 would otherwise read as item n_items-1 of user 0's row in the flattened lookup
    truth = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 0]]))
    padded = np.array([[3, -1], [0, -1]])
    assert M.hit_matrix(padded, truth, 2).tolist() == [[True, False], [True, False]]
    assert M.precision_at_k(padded, truth, 2) == 0.5  # a padded slot is a miss, P@k still divides by k
    assert M.recall_at_k(padded, truth, 2) == 1.0
    only_pad = np.array([[-1, -1], [-1, -1]])
    for name in M.RANKING:
        assert getattr(M, {"hit": "hit_rate", "ndcg": "ndcg", "recall": "recall", "precision": "precision",
                           "mrr": "mrr", "map": "map"}[name] + "_at_k")(only_pad, truth, 2) == 0.0
    pu = M.per_user_metrics(only_pad, truth, 2)
    assert (pu[[f"{m}@2" for m in M.RANKING]] == 0).all().all()
    assert M.catalog_coverage(np.array([[0, -1], [1, -1]]), 4, k=2) == 0.5
    assert M.gini_index(np.array([[0, -1], [1, -1]]), 2, k=2) == 0.0
    with pytest.raises(ValueError, match="at least one recommended item"):
        M.gini_index(only_pad, 4, k=2)
    pop = np.array([3.0, 1.0, 0.0, 0.0])
    assert M.novelty(np.array([[0, -1]]), pop, k=2) == pytest.approx(M.novelty(np.array([[0]]), pop, k=1))
    vec = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    assert M.intra_list_diversity(np.array([[0, 1, -1], [2, -1, -1]]), vec, k=3) == pytest.approx(1.0)
    row = M.evaluate(np.array([[0, -1], [1, -1]]), truth, k=2, catalogue=np.array([True, True, True, False]))
    assert row["coverage@2"] == pytest.approx(2 / 3)


def test_padding_leaves_full_lists_bit_identical():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(40, 30))
    ex = sp.random(40, 30, density=0.2, random_state=1, format="csr")
    catalogue = rng.random(30) > 0.2
    top = M.topk_from_scores(scores, 10, seen=ex, catalogue=catalogue)
    assert (top >= 0).all()
    s = scores.copy()
    s[:, ~catalogue] = -np.inf
    s[ex.toarray() != 0] = -np.inf
    np.testing.assert_array_equal(top, np.argsort(-s, axis=1, kind="stable")[:, :10])


def _stable_topk(scores, k, seen=None, catalogue=None):
    """The definition: a full stable sort by score of each row, masked entries -inf and then -1."""
    s = np.asarray(scores).astype(np.float32 if np.asarray(scores).dtype == np.float32 else np.float64)
    if catalogue is not None:
        s[:, ~catalogue] = -np.inf
    if seen is not None:
        s[seen.toarray() != 0] = -np.inf
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    if seen is not None or catalogue is not None:
        top[np.take_along_axis(s, top, axis=1) == -np.inf] = M.NO_ITEM
    return top


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("k", [1, 10, 37])
def test_topk_from_scores_is_the_stable_sort_in_any_blocks_and_threads(monkeypatch, dtype, k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(60, 500)) * 3
    scores[:20] = np.round(scores[:20])  # many ties at the cut
    scores[20:25] = 0.0  # all tied
    scores[25, ::2] = -0.0  # -0.0 and 0.0 are equal scores
    scores = scores.astype(dtype)
    seen = sp.random(60, 500, density=0.3, random_state=k).toarray()
    seen[30, :] = 1.0  # nothing rankable: all -1
    seen[31, : 500 - k // 2] = 1.0  # fewer than k rankable items
    seen = sp.csr_matrix(seen)
    catalogue = rng.random(500) > 0.1
    for mask in [{}, {"seen": seen}, {"seen": seen, "catalogue": catalogue}]:
        expected = _stable_topk(scores, k, **mask)
        got = M.topk_from_scores(scores, k, **mask)
        np.testing.assert_array_equal(got, expected)
        for block, threads in [(1, "1"), (1000, "2"), (1 << 19, "3")]:
            monkeypatch.setattr(M, "_BLOCK", block)
            monkeypatch.setenv("OMP_NUM_THREADS", threads)
            np.testing.assert_array_equal(M.topk_from_scores(np.asfortranarray(scores), k, **mask), expected)


def test_topk_threads_follow_omp_num_threads(monkeypatch):
    monkeypatch.setattr(M, "_BLOCK", 100)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    blocks, threads = M._row_blocks(50, 30)
    assert threads == 1 and blocks[0].start == 0 and blocks[-1].stop == 50
    monkeypatch.delenv("OMP_NUM_THREADS")
    blocks, threads = M._row_blocks(50, 30)
    assert 1 <= threads <= usable_cores() and len(blocks) % threads == 0
    assert {b.stop - b.start for b in blocks} <= {3, 4} and blocks[-1].stop == 50
    assert M._row_blocks(0, 30) == ([], 1)


def test_hit_lookup_by_table_and_by_search_agree(monkeypatch):
    rng = np.random.default_rng(5)
    top = np.argsort(rng.random((40, 30)), axis=1)[:, :8]
    top[rng.random(top.shape) < 0.2] = M.NO_ITEM
    truth = sp.random(40, 30, density=0.2, random_state=2, format="csr")
    truth.data[::4] = 0.0  # stored zeros are not relevant
    table = M.hit_matrix(top, truth, 8)
    monkeypatch.setattr(M, "_DENSE_LOOKUP", 0)
    np.testing.assert_array_equal(M.hit_matrix(top, truth, 8), table)
    dense = truth.toarray() != 0
    np.testing.assert_array_equal(table, (top != M.NO_ITEM) & dense[np.arange(40)[:, None], top])


# -- bad input: one table per public function -------------------------------------------------------------
_T = np.array([[0, 1], [2, 3]])
_TRUTH2 = sp.csr_matrix(np.eye(2, 4))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: M.hit_matrix(_T, _TRUTH2.toarray(), 2), TypeError, "truth"),
        (lambda: M.hit_matrix(_T.astype(float), _TRUTH2, 2), TypeError, "topk"),
        (lambda: M.per_user_metrics(_T, _TRUTH2, 3), ValueError, "larger than the top-k lists"),
        (lambda: M.per_user_metrics(_T[:1], _TRUTH2, 2), ValueError, "rows"),
        (lambda: M.catalog_coverage(_T, 0, 2), ValueError, "n_items"),
        (lambda: M.catalog_coverage(_T, 3, 2), ValueError, "outside"),
        (lambda: M.gini_index(_T, "4", 2), TypeError, "n_items"),
        (lambda: M.gini_index(sp.csr_matrix(_T), 4, 2), TypeError, "topk"),
        (lambda: M.novelty(_T, np.array([1.0, -1, 0, 0]), 2), ValueError, "item_popularity"),
        (lambda: M.novelty(_T, np.ones((2, 2)), 2), ValueError, "item_popularity"),
        (lambda: M.novelty(_T, np.array([1.0, np.nan, 0, 0]), 2), ValueError, "item_popularity"),
        (lambda: M.novelty(np.array([[-1, -1]]), np.ones(4), 2), ValueError, "at least one"),
        (lambda: M.intra_list_diversity(_T, np.ones(4), 2), ValueError, "item_vectors"),
        (lambda: M.intra_list_diversity(_T, np.ones((4, 2)), 1), ValueError, "at least 2"),
        (lambda: M.intra_list_diversity(_T, np.full((4, 2), np.inf), 2), ValueError, "item_vectors"),
        (lambda: M.intra_list_diversity(np.array([[0, -1]]), np.ones((4, 2)), 2), ValueError, "two or more"),
        (lambda: M.topk_from_scores(np.zeros(3), 1), ValueError, "2-D"),
        (lambda: M.topk_from_scores(np.array([["a", "b"]]), 1), TypeError, "scores must be a real int or float"),
        (lambda: M.topk_from_scores(np.zeros((1, 3)), 0), ValueError, "k must be"),
        (lambda: M.topk_from_scores(np.zeros((1, 3)), 1.0), TypeError, "k must be"),
        (lambda: M.topk_from_scores(np.zeros((1, 3)), 1, catalogue=np.ones(2, bool)), ValueError, "catalogue"),
        (lambda: M.topk_from_scores(np.zeros((1, 3)), 1, seen=sp.csr_matrix((2, 3))), ValueError, "seen"),
        (lambda: M.evaluate(_T, _TRUTH2, 2, catalogue=True), ValueError, "catalogue"),
        (lambda: M.evaluate(_T, _TRUTH2, 2, catalogue=np.zeros(4, bool)), ValueError, "catalogue"),
        (lambda: M.evaluate(_T, _TRUTH2, 2, catalogue=[0, 9]), TypeError, "catalogue"),
        (lambda: M.evaluate(_T, _TRUTH2, 2, catalogue=np.array([True, True, False, False])), ValueError, "outside the catalogue"),
        (lambda: M.evaluate(_T, _TRUTH2, 2, item_popularity=np.ones(3)), ValueError, "one count per item"),
    ],
)
def test_every_public_function_refuses_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
