"""recsuite.fusion: normalisation, blending, RRF, candidates, features, the LambdaRank ranker, breakdowns.

Every expected value below is worked out by hand on matrices small enough to check on paper.
"""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite import fusion as F
from recsuite import metrics as M


def csr(rows, n_items):
    pairs = [(u, i) for u, items in enumerate(rows) for i in items]
    r, c = zip(*pairs) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


# -- normalize_scores ---------------------------------------------------------------------------------
def test_zscore_by_hand_ignores_masked_items():
    s = np.array([[1.0, 2.0, 3.0, 100.0]])
    got = F.normalize_scores(s, "zscore", exclude=csr([[3]], 4))
    sd = math.sqrt(2 / 3)  # population std of 1, 2, 3
    np.testing.assert_allclose(got[0, :3], [-1 / sd, 0.0, 1 / sd], rtol=1e-6)
    # the masked item sits 1 below the lowest rankable value, finite, and ranks last
    assert got[0, 3] == pytest.approx(-1 / sd - 1, rel=1e-6)
    # the same as normalising the row without the masked column: item 3's 100 does not move mean or std
    np.testing.assert_allclose(got[0, :3], F.normalize_scores(s[:, :3], "zscore")[0], rtol=1e-6)


def test_minmax_by_hand_with_allowed_mask():
    s = np.array([[-5.0, 2.0, 4.0, 10.0], [0.0, 1.0, 2.0, 3.0]])
    allowed = np.array([False, True, True, True])
    got = F.normalize_scores(s, "minmax", allowed=allowed)
    np.testing.assert_allclose(got[:, 1:], [[0.0, 0.25, 1.0], [0.0, 0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(got[:, 0], [-1.0, -1.0])  # below the lowest allowed value, 0


def test_rank_by_hand_ties_averaged():
    # descending ranks: items 0 and 2 tie for 1st -> 1.5 each, item 3 is 3rd, item 1 4th; (n - r) / (n - 1)
    got = F.normalize_scores(np.array([[3.0, 1.0, 3.0, 2.0]]), "rank")
    np.testing.assert_allclose(got[0], [2.5 / 3, 0.0, 2.5 / 3, 1 / 3], rtol=1e-6)


def test_rank_counts_only_rankable_items():
    s = np.array([[3.0, 1.0, 9.0, 2.0]])
    got = F.normalize_scores(s, "rank", exclude=csr([[2]], 4))
    np.testing.assert_allclose(got[0, [0, 3, 1]], [1.0, 0.5, 0.0])
    assert got[0, 2] == pytest.approx(-1.0)


@pytest.mark.parametrize("method,neutral", [("zscore", 0.0), ("minmax", 0.5), ("rank", 0.5)])
def test_rows_without_spread_are_neutral_not_nan(method, neutral):
    s = np.array([[0.1, 0.1, 0.1, 0.1], [7.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    # row 1: a single rankable item; row 2: nothing rankable at all
    ex = csr([[], [1, 2, 3], [0, 1, 2, 3]], 4)
    got = F.normalize_scores(s, method, exclude=ex)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0], neutral)
    assert got[1, 0] == pytest.approx(neutral)
    assert (got[1, 1:] < got[1, 0]).all()


def test_normalize_does_not_modify_input_and_returns_float32():
    s = np.array([[1.0, 5.0, 2.0]])
    keep = s.copy()
    out = F.normalize_scores(s, "minmax")
    np.testing.assert_array_equal(s, keep)
    assert out.dtype == np.float32


def test_normalize_errors_name_the_argument():
    s = np.ones((2, 3))
    with pytest.raises(ValueError, match="method"):
        F.normalize_scores(s, "softmax")
    with pytest.raises(ValueError, match="scores holds NaN"):
        F.normalize_scores(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="scores must be a non-empty 2-D"):
        F.normalize_scores(np.ones(3))
    with pytest.raises(ValueError, match="allowed must be a boolean mask of shape \\(3,\\)"):
        F.normalize_scores(s, allowed=np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="exclude must be a scipy.sparse matrix of shape \\(2, 3\\)"):
        F.normalize_scores(s, exclude=csr([[0]], 3))


# -- blend --------------------------------------------------------------------------------------------
A = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6]])
B = np.array([[1.0, 40.0, 3.0, 20.0], [10.0, 0.0, 30.0, 5.0]])


def test_blend_weight_one_zero_ranks_like_the_first_source():
    for method in ("zscore", "minmax", "rank"):
        y = F.blend({"cf": A, "sem": B}, {"cf": 1.0, "sem": 0.0}, method=method)
        np.testing.assert_array_equal(M.topk_from_scores(y, 4), M.topk_from_scores(A, 4))


def test_blend_by_hand_and_scale_invariance():
    y = F.blend([A, B], [1.0, 2.0], method="minmax")
    mm = lambda r: (r - r.min(axis=1, keepdims=True)) / np.ptp(r, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(y, mm(A) + 2 * mm(B), rtol=1e-6)
    # the top-1 of user 0 is item 1 (B's favourite) here, although A ranks it last
    assert M.topk_from_scores(y, 1)[0, 0] == 1
    # only the ratio of the weights matters
    y2 = F.blend([A, B], [2.0, 4.0], method="minmax")
    np.testing.assert_array_equal(M.topk_from_scores(y, 4), M.topk_from_scores(y2, 4))


def test_blend_normalisation_matters():
    # raw scores: B's scale (tens) swamps A (tenths); z-scores give both a say
    raw = F.blend([A, B], [1.0, 1.0], method="none")
    np.testing.assert_array_equal(M.topk_from_scores(raw, 4), M.topk_from_scores(B, 4))
    z = F.blend([A, B], [1.0, 1.0], method="zscore")
    assert not np.array_equal(M.topk_from_scores(z, 4), M.topk_from_scores(B, 4))


def test_blend_masks_seen_items_below_everything():
    ex = csr([[0], []], 4)
    y = F.blend([A, B], [1.0, -1.0], exclude=ex)  # a negative weight must not lift a masked item
    assert y[0, 0] < y[0, 1:].min()


def test_blend_errors():
    with pytest.raises(ValueError, match="weights must not all be zero"):
        F.blend([A, B], [0, 0])
    with pytest.raises(ValueError, match="weights must have one entry per source"):
        F.blend({"cf": A, "sem": B}, {"cf": 1.0})
    with pytest.raises(ValueError, match="weights must hold 2 numbers"):
        F.blend([A, B], [1.0])
    with pytest.raises(ValueError, match=r"scores\['s1'\] has shape \(1, 4\)"):
        F.blend([A, B[:1]], [1.0, 1.0])
    with pytest.raises(ValueError, match="scores must be"):
        F.blend(A, [1.0])


# -- reciprocal rank fusion ---------------------------------------------------------------------------
def test_rrf_by_hand_two_sources_three_items():
    s1 = np.array([[3.0, 2.0, 1.0]])  # ranks 1, 2, 3
    s2 = np.array([[1.0, 3.0, 2.0]])  # ranks 3, 1, 2
    got = F.reciprocal_rank_fusion([s1, s2], k=60)
    want = [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62]
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    assert M.topk_from_scores(got, 3)[0].tolist() == [1, 0, 2]


def test_rrf_ranks_within_rankable_items_and_averages_ties():
    s1 = np.array([[3.0, 2.0, 1.0]])
    s2 = np.array([[5.0, 5.0, 0.0]])
    got = F.reciprocal_rank_fusion({"a": s1, "b": s2}, k=0, exclude=csr([[0]], 3))
    # without item 0: s1 ranks items 1, 2 as 1, 2; s2 ranks them 1, 2
    np.testing.assert_allclose(got[0, 1:], [1 / 1 + 1 / 1, 1 / 2 + 1 / 2])
    assert got[0, 0] < got[0, 1:].min()
    tied = F.reciprocal_rank_fusion([s2], k=1)
    assert tied[0, 0] == tied[0, 1] == pytest.approx(1 / (1 + 1.5))


def test_rrf_errors():
    with pytest.raises(ValueError, match="k must be a finite number >= 0"):
        F.reciprocal_rank_fusion([A], k=-1)
    with pytest.raises(ValueError, match="scores_list must hold at least one"):
        F.reciprocal_rank_fusion([])


# -- grid search --------------------------------------------------------------------------------------
def test_grid_search_blend_evaluates_every_combination_best_first():
    truth = csr([[1], [2]], 4)
    evaluate = lambda s: M.ndcg_at_k(M.topk_from_scores(s, 2), truth, k=2)  # noqa: E731
    res = F.grid_search_blend({"cf": A, "sem": B}, evaluate, {"cf": [0.0, 1.0], "sem": [0.0, 1.0]}, metric_name="ndcg@2")
    assert len(res) == 3  # (0, 0) ranks nothing and is skipped
    assert list(res.columns) == ["cf", "sem", "method", "ndcg@2"]
    assert res["ndcg@2"].is_monotonic_decreasing
    for _, row in res.iterrows():
        direct = evaluate(F.blend({"cf": A, "sem": B}, {"cf": row["cf"], "sem": row["sem"]}))
        assert row["ndcg@2"] == pytest.approx(direct)
    # B alone puts item 1 first for user 0 and item 2 first for user 1: both hits at rank 1
    assert (res.loc[0, "cf"], res.loc[0, "sem"], res.loc[0, "ndcg@2"]) == (0.0, 1.0, 1.0)
    listed = F.grid_search_blend({"cf": A, "sem": B}, evaluate, [(1, 0), {"cf": 0, "sem": 1}])
    assert len(listed) == 2 and listed.loc[0, "score"] == 1.0


def test_grid_search_errors():
    ok = lambda s: 0.0  # noqa: E731
    with pytest.raises(ValueError, match="must return a finite number"):
        F.grid_search_blend({"a": A}, lambda s: float("nan"), {"a": [1.0]})
    with pytest.raises(ValueError, match="grid must have one list of weights per source"):
        F.grid_search_blend({"a": A, "b": B}, ok, {"a": [1.0]})
    with pytest.raises(ValueError, match="no combination with a non-zero weight"):
        F.grid_search_blend({"a": A}, ok, {"a": [0.0]})
    with pytest.raises(ValueError, match="evaluate_fn must be callable"):
        F.grid_search_blend({"a": A}, 3, {"a": [1.0]})
    with pytest.raises(ValueError, match="sources must be a dict"):
        F.grid_search_blend([A], ok, {"s0": [1.0]})


# -- candidates ---------------------------------------------------------------------------------------
CF = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
SEM = np.array([[0.1, 0.9, 0.8, 0.0, 0.7], [0.5, 0.5, 0.1, 0.2, 0.3]])
SEEN = csr([[0], [4]], 5)


def test_candidate_frame_union_dedup_and_ranks_by_hand():
    fr = F.candidate_frame({"cf_mf": CF, "sem_text": SEM}, 2, exclude=SEEN)
    # user 0, item 0 seen: cf top-2 {1, 2}, sem top-2 {1, 2} -> {1, 2}
    # user 1, item 4 seen: cf top-2 {3, 2}, sem top-2 {0, 1} (tie 0.5, by index) -> {0, 1, 2, 3}
    assert list(zip(fr.user_idx, fr.item_idx)) == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert list(fr.columns) == ["user_idx", "item_idx", "cf_mf_score", "cf_mf_rank", "sem_text_score", "sem_text_rank"]
    # ranks in each source's full ranking of unseen items (1 = best), also for the other source's picks
    assert fr.cf_mf_rank.tolist() == [1, 2, 4, 3, 2, 1]
    assert fr.sem_text_rank.tolist() == [1, 2, 1, 2, 4, 3]
    np.testing.assert_allclose(fr.sem_text_score, [0.9, 0.8, 0.5, 0.5, 0.1, 0.2], rtol=1e-6)
    assert fr.cf_mf_rank.dtype == np.int32 and fr.cf_mf_score.dtype == np.float32


def test_candidate_frame_per_source_counts_and_masks():
    fr = F.candidate_frame({"cf_mf": CF, "sem_text": SEM}, {"cf_mf": 1, "sem_text": 0}, allowed=np.array([1, 1, 1, 0, 1], bool))
    assert list(zip(fr.user_idx, fr.item_idx)) == [(0, 0), (1, 4)]
    assert "sem_text_rank" in fr  # a source with 0 candidates still gives its features
    # fewer rankable items than n: the masked fill of topk_from_scores never becomes a candidate
    few = F.candidate_frame({"cf_mf": CF}, 5, exclude=csr([[0, 1, 2, 3], []], 5))
    assert few[few.user_idx == 0].item_idx.tolist() == [4]
    assert len(few[few.user_idx == 1]) == 5


def test_candidate_frame_errors():
    with pytest.raises(ValueError, match="feature-group prefix"):
        F.candidate_frame({"mf": CF}, 2)
    with pytest.raises(ValueError, match="feature-group prefix"):
        F.candidate_frame({"cf": CF}, 2)
    with pytest.raises(ValueError, match="larger than the catalogue"):
        F.candidate_frame({"cf_mf": CF}, 6)
    with pytest.raises(ValueError, match="n_per_source must have one count per source"):
        F.candidate_frame({"cf_mf": CF, "sem_t": SEM}, {"cf_mf": 2})
    with pytest.raises(ValueError, match="at least one source a positive count"):
        F.candidate_frame({"cf_mf": CF}, {"cf_mf": 0})
    with pytest.raises(ValueError, match="n_per_source must be an int >= 1"):
        F.candidate_frame({"cf_mf": CF}, 0)


def test_recall_of_candidates_and_labels_by_hand():
    fr = F.candidate_frame({"cf_mf": CF, "sem_text": SEM}, 2, exclude=SEEN)
    truth = csr([[2, 3], [1], []], 5)[:2]
    # user 0 finds 1 of {2, 3}; user 1 finds {1}
    assert F.recall_of_candidates(fr, truth) == pytest.approx((0.5 + 1.0) / 2)
    lab = F.label_frame(fr, truth)
    assert lab.name == "label" and lab.tolist() == [0, 1, 0, 1, 0, 0]
    assert (lab.index == fr.index).all()
    with pytest.raises(ValueError, match="truth_csr has shape"):
        F.label_frame(fr, csr([[1]], 5))
    with pytest.raises(ValueError, match="truth_csr must be a scipy.sparse"):
        F.label_frame(fr, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="repeats a"):
        F.recall_of_candidates(pd.concat([fr, fr]), truth)


# -- features -----------------------------------------------------------------------------------------
def small_frame():
    return pd.DataFrame({"user_idx": [0, 0, 1, 1], "item_idx": [0, 2, 1, 3]})


ITEM_VEC = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])


def test_add_features_known_cosines_and_groups():
    users = pd.DataFrame({"age": [25, 40], "gender": ["M", "F"], "occupation": ["artist", "doctor"]})
    ctx = pd.DataFrame({"hour": [13.0, np.nan], "weekday": [0.0, np.nan]})
    genres = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]], float)
    out = F.add_features(
        small_frame(),
        item_vectors=ITEM_VEC,
        user_profiles=np.array([[2.0, 0.0], [3.0, 4.0]]),
        recent_item_vectors=np.array([[0.0, 1.0], [0.0, 0.0]]),
        item_popularity=np.array([0, 3, 7, 1]),
        item_year=pd.array([1995, None, 1980, 2001], dtype="Int64"),
        user_table=users,
        genre_matrix=genres,
        user_genre_dist=np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]),
        context=ctx,
    )
    r2 = 1 / math.sqrt(2)
    # (u0, i0): [1,0]·[1,0]; (u0, i2): [1,1]/√2 · [1,0]; (u1, i1): [0,1]·[3,4]/5; (u1, i3): zero item -> 0
    np.testing.assert_allclose(out.sem_profile_cos, [1.0, r2, 0.8, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out.sem_recent_cos, [0.0, r2, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(out.pop_log_count, np.log1p([0, 7, 3, 1]), rtol=1e-6)
    np.testing.assert_allclose(out.pop_year, [1995, 1980, np.nan, 2001])
    # genre: (u0,i0) [1,0,0]·[1,1,0]/√2 ; (u0,i2) [1,1,0]/√2·[1,1,0]/√2 = 1 ; (u1,i1) [0,1,1]/√2·[0,0,1] ; (u1,i3) 0
    np.testing.assert_allclose(out.genre_match, [r2, 1.0, r2, 0.0], rtol=1e-6)
    assert out.user_age.tolist() == [25, 25, 40, 40]
    assert isinstance(out.user_gender.dtype, pd.CategoricalDtype)
    assert out.user_gender.cat.categories.tolist() == ["F", "M"]
    assert out.user_occupation.astype(str).tolist() == ["artist", "artist", "doctor", "doctor"]
    np.testing.assert_allclose(out.ctx_hour, [13, 13, np.nan, np.nan])
    cols = F.feature_columns(out)
    assert cols == [
        "sem_profile_cos", "sem_recent_cos", "pop_log_count", "pop_year", "user_age", "user_gender",
        "user_occupation", "genre_match", "ctx_hour", "ctx_weekday",
    ]  # fmt: skip
    assert all(F._group_of(c) in F.FEATURE_GROUPS for c in cols)
    assert F.feature_columns(out, drop_groups=("user", "ctx")) == [
        "sem_profile_cos", "sem_recent_cos", "pop_log_count", "pop_year", "genre_match",
    ]  # fmt: skip
    assert "user_idx" not in F.feature_columns(out) and "sem_profile_cos" not in small_frame()


def test_categories_come_from_the_whole_user_table():
    users = pd.DataFrame({"gender": ["M", "F", "M"]})
    out = F.add_features(pd.DataFrame({"user_idx": [0, 2], "item_idx": [0, 0]}), user_table=users)
    assert out.user_gender.cat.categories.tolist() == ["F", "M"]  # F is in no row of this frame


def test_add_features_errors():
    fr = small_frame()
    with pytest.raises(ValueError, match="item_vectors is required"):
        F.add_features(fr, user_profiles=np.ones((2, 2)))
    with pytest.raises(ValueError, match="item_vectors alone adds no feature"):
        F.add_features(fr, item_vectors=ITEM_VEC)
    with pytest.raises(ValueError, match="user_profiles has 3 columns but must have 2"):
        F.add_features(fr, item_vectors=ITEM_VEC, user_profiles=np.ones((2, 3)))
    with pytest.raises(ValueError, match="item_vectors has 2 rows but the frame indexes row 3"):
        F.add_features(fr, item_vectors=ITEM_VEC[:2], user_profiles=np.ones((2, 2)))
    with pytest.raises(ValueError, match="item_popularity must hold non-negative"):
        F.add_features(fr, item_popularity=[0, -1, 0, 0])
    with pytest.raises(ValueError, match="item_popularity must be finite without missing"):
        F.add_features(fr, item_popularity=[0, np.nan, 0, 0])
    with pytest.raises(ValueError, match="given together"):
        F.add_features(fr, genre_matrix=np.ones((4, 2)))
    with pytest.raises(ValueError, match="user_table has 1 rows"):
        F.add_features(fr, user_table=pd.DataFrame({"age": [3]}))
    with pytest.raises(ValueError, match="frame must have columns"):
        F.add_features(pd.DataFrame({"user": [0]}))
    with pytest.raises(ValueError, match="drop_groups must name groups"):
        F.feature_columns(fr, drop_groups=("semantic",))


def test_recent_profile_genre_distribution_and_last_context():
    hist = pd.DataFrame(
        {
            "user_idx": [0, 0, 0, 0, 2],
            "item_idx": [0, 1, 2, 3, 1],
            # user 0's last two in time are item 2 (t=30) and item 3 (t=30, the later by item index)
            "timestamp": [10, 20, 30, 30, 4 * 86400 + 13 * 3600],
        }
    )
    rec = F.recent_item_profile(hist, ITEM_VEC, n_users=3, n=2)
    np.testing.assert_allclose(rec[0], [1 / math.sqrt(2), 1 / math.sqrt(2)], rtol=1e-6)  # mean of [1,1], [0,0]
    np.testing.assert_allclose(rec[1], [0, 0])  # no history
    np.testing.assert_allclose(rec[2], [0, 1])
    genres = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], float)
    dist = F.user_genre_distribution(F_csr(hist, 3, 4), genres)
    np.testing.assert_allclose(dist, [[0.5, 0.5], [0, 0], [0.5, 0.5]])
    ctx = F.last_context(hist, n_users=3)
    assert ctx.loc[0].tolist() == [0.0, 3.0]  # t=30 s: 1970-01-01 00:00, a Thursday
    assert ctx.loc[1].isna().all()
    assert ctx.loc[2].tolist() == [13.0, 0.0]  # 4 days later, a Monday, 13:00
    with pytest.raises(ValueError, match="timestamp"):
        F.recent_item_profile(hist.drop(columns="timestamp"), ITEM_VEC, 3)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        F.recent_item_profile(hist, ITEM_VEC, 3, n=0)


def F_csr(df, n_users, n_items):
    return sp.csr_matrix((np.ones(len(df)), (df.user_idx, df.item_idx)), shape=(n_users, n_items))


# -- the learned ranker -------------------------------------------------------------------------------
def planted(n_users, n_cand, seed):
    rng = np.random.default_rng(seed)
    fr = pd.DataFrame(
        {
            "user_idx": np.repeat(np.arange(n_users), n_cand),
            "item_idx": np.tile(np.arange(n_cand), n_users),
            "cf_a": rng.random(n_users * n_cand),
            "sem_noise": rng.random(n_users * n_cand),
            "pop_noise": rng.normal(size=n_users * n_cand),
        }
    )
    fr["label"] = (fr.cf_a > 0.5).astype(np.int8)
    return fr


PARAMS = {"n_estimators": 30, "min_child_samples": 5, "num_leaves": 7}


def test_fit_ranker_learns_a_planted_signal_and_is_deterministic():
    train, held = planted(40, 12, seed=1), planted(15, 12, seed=2)
    feats = ["cf_a", "sem_noise", "pop_noise"]
    m1 = F.fit_ranker(train, feats, params=PARAMS, seed=0)
    m2 = F.fit_ranker(train, feats, params=PARAMS, seed=0)
    p1, p2 = m1.predict(held[feats]), m2.predict(held[feats])
    np.testing.assert_array_equal(p1, p2)
    held["pred"] = p1
    topk = F.rank_frame(held, "pred", n_users=15, k=12)
    truth = F_csr(held[held.label == 1], 15, 12)
    assert M.ndcg_at_k(topk, truth, k=12) > 0.97
    imp = F.feature_importance(m1)
    assert imp.feature.iloc[0] == "cf_a" and imp.gain_share.iloc[0] > 0.9
    assert imp.group.tolist()[0] == "cf" and imp.gain_share.sum() == pytest.approx(1.0)


def test_fit_ranker_drops_users_without_signal_and_says_so():
    fr = planted(20, 8, seed=3)
    fr.loc[fr.user_idx.isin([0, 1, 2]), "label"] = 0
    fr.loc[fr.user_idx == 3, "label"] = 1
    held = planted(6, 8, seed=4)
    held.loc[held.user_idx == 5, "label"] = 0
    m = F.fit_ranker(fr, ["cf_a", "sem_noise"], params=PARAMS, valid_frame=held, early_stopping_rounds=5)
    info = m.fit_info_
    assert info["train"] == {
        "users": 20, "users_kept": 16, "users_dropped_no_positive": 3, "users_dropped_all_positive": 1,
        "rows": 160, "rows_kept": 128,
    }  # fmt: skip
    assert info["valid"]["users_dropped_no_positive"] == 1
    assert "ndcg@10" in m.evals_result_["valid"]


def test_fit_ranker_errors():
    fr = planted(5, 6, seed=5)
    with pytest.raises(ValueError, match="must be sorted by user_idx"):
        F.fit_ranker(fr.iloc[::-1], ["cf_a"])
    with pytest.raises(ValueError, match="lacks columns \\['nope'\\]"):
        F.fit_ranker(fr, ["nope"])
    with pytest.raises(ValueError, match="features must be a non-empty list"):
        F.fit_ranker(fr, "cf_a")
    with pytest.raises(ValueError, match="non-negative integer relevance"):
        F.fit_ranker(fr.assign(label=fr.cf_a), ["cf_a"])
    with pytest.raises(ValueError, match="nothing to learn"):
        F.fit_ranker(fr.assign(label=0), ["cf_a"])
    with pytest.raises(ValueError, match="feature 'txt' must be numeric"):
        F.fit_ranker(fr.assign(txt="x"), ["txt"])
    with pytest.raises(ValueError, match="early_stopping_rounds needs valid_frame"):
        F.fit_ranker(fr, ["cf_a"], early_stopping_rounds=3)


# -- rank_frame ---------------------------------------------------------------------------------------
def test_rank_frame_orders_by_score_then_item_index():
    fr = pd.DataFrame({"user_idx": [1, 0, 0, 0, 1], "item_idx": [4, 3, 1, 2, 0], "s": [0.5, 0.2, 0.9, 0.2, 0.7]})
    top = F.rank_frame(fr, "s", n_users=2, k=2)
    assert top.tolist() == [[1, 2], [0, 4]]  # user 0: 0.9 first, then the 0.2 tie goes to item 2 < 3
    assert top.dtype == np.int64
    np.testing.assert_array_equal(F.rank_frame(fr, fr.s.to_numpy(), 2, 2), top)


def test_rank_frame_pads_from_fallback_or_raises():
    fr = pd.DataFrame({"user_idx": [0, 0], "item_idx": [3, 1], "s": [1.0, 2.0]})
    fallback = np.array([[5.0, 9.0, 1.0, 8.0, 7.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    with pytest.raises(ValueError, match="2 users have fewer than k=3 candidates"):
        F.rank_frame(fr, "s", n_users=2, k=3)
    # user 0: candidates 1, 3, then the fallback's best not listed and not seen (item 4 seen): item 0
    # user 1: no candidates, the fallback's top 3 among allowed items (item 2 not allowed)
    top = F.rank_frame(
        fr, "s", 2, 3, fallback=fallback, exclude=csr([[4], []], 5), allowed=np.array([1, 1, 0, 1, 1], bool)
    )
    assert top.tolist() == [[1, 3, 0], [4, 3, 1]]
    with pytest.raises(ValueError, match="user 0 needs 2 fallback items but only 1 are rankable"):
        F.rank_frame(fr, "s", 2, 4, fallback=fallback, allowed=np.array([1, 1, 0, 1, 0], bool))
    with pytest.raises(ValueError, match="exclude masks"):
        F.rank_frame(fr, "s", 2, 2, exclude=csr([[3], []], 5))
    with pytest.raises(ValueError, match="outside allowed"):
        F.rank_frame(fr, "s", 2, 2, allowed=np.array([1, 1, 1, 0, 1], bool))
    with pytest.raises(ValueError, match="score column 'x'"):
        F.rank_frame(fr, "x", 2, 2)
    with pytest.raises(ValueError, match="fallback must have n_users=2 rows"):
        F.rank_frame(fr, "s", 2, 2, fallback=fallback[:1])


# -- breakdowns ---------------------------------------------------------------------------------------
TOPK = np.array([[1, 2, 3], [0, 2, 4], [0, 1, 2], [4, 3, 2]])
TRUTH = csr([[1, 3], [4], [], [0]], 5)


def test_per_user_metrics_match_recsuite_metrics():
    pu = F.per_user_metrics(TOPK, TRUTH, k=3)
    assert pu.n_relevant.tolist() == [2, 1, 0, 1]
    assert np.isnan(pu.loc[2, "ndcg@3"])
    d = [1 / math.log2(i + 2) for i in range(3)]
    np.testing.assert_allclose(pu["ndcg@3"].to_numpy()[[0, 1, 3]], [(d[0] + d[2]) / (d[0] + d[1]), d[2], 0.0])
    for name, fn in [("ndcg", M.ndcg_at_k), ("recall", M.recall_at_k), ("hit", M.hit_rate_at_k), ("map", M.map_at_k)]:
        assert pu[f"{name}@3"].mean() == pytest.approx(fn(TOPK, TRUTH, k=3))


def test_breakdown_counts_and_means():
    pu = F.per_user_metrics(TOPK, TRUTH, k=3)
    groups = pd.Series(pd.Categorical(["a", "b", "a", "b"], categories=["a", "b", "c"]), name="g")
    out = F.breakdown(pu, groups)
    assert out.index.tolist() == ["a", "b", "c"] and out.index.name == "g"
    assert out.users.tolist() == [1, 2, 0]  # user 2 has no relevant items: not evaluated
    assert out.loc["a", "hit@3"] == 1.0 and out.loc["b", "hit@3"] == 0.5
    assert out.loc["b", "recall@3"] == pytest.approx((1.0 + 0.0) / 2)
    assert np.isnan(out.loc["c", "ndcg@3"])
    arr = F.breakdown(pu, np.array(["x", "x", "y", "y"]), metrics=["hit@3"])
    assert list(arr.columns) == ["users", "hit@3"] and arr.users.tolist() == [2, 1]
    with pytest.raises(ValueError, match="groups is missing for 1 users"):
        F.breakdown(pu, pd.Series(["a", None, "b", "b"]))
    with pytest.raises(ValueError, match="groups has no entry for 2 users"):
        F.breakdown(pu, pd.Series(["a", "b"]))
    with pytest.raises(ValueError, match="metrics must name metric columns"):
        F.breakdown(pu, groups, metrics=["auc"])


def test_activity_groups_terciles_and_fixed_bins():
    hist = csr([[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]], 6)
    g = F.activity_groups(hist)  # counts 1..6, terciles at 2.67 and 4.33
    assert g.astype(str).tolist() == ["cold", "cold", "light", "light", "heavy", "heavy"]
    assert g.cat.ordered and g.index.name == "user_idx"
    np.testing.assert_allclose(g.attrs["thresholds"], [8 / 3, 13 / 3])
    fixed = F.activity_groups(hist, bins=(1, 5), labels=("new", "mid", "power"))
    assert fixed.astype(str).tolist() == ["new", "mid", "mid", "mid", "mid", "power"]
    with pytest.raises(ValueError, match="bins must hold 2 increasing thresholds"):
        F.activity_groups(hist, bins=(5, 1))
    with pytest.raises(ValueError, match="history_csr must be a scipy.sparse"):
        F.activity_groups(np.ones((2, 2)))


def test_item_popularity_bucket_by_hand():
    pop = np.array([50, 0, 10, 10, 3, 1, 2, 0, 5, 4, 1, 30])  # 10 seen items, 2 unseen
    b = F.item_popularity_bucket(pop)
    # seen, by count: 50, 30 | 10, 10, 5 | 4, 3, 2, 1, 1 -> head 20 % = 2 items, mid next 30 % = 3 items
    want = ["head", "unseen", "mid", "mid", "tail", "tail", "tail", "unseen", "mid", "tail", "tail", "head"]
    assert b.astype(str).tolist() == want
    assert b.cat.categories.tolist() == ["head", "mid", "tail", "unseen"]
    # a tie across the cut stays together in the more popular bucket
    tie = F.item_popularity_bucket(np.array([9, 5, 5, 1, 1]), cuts=(0.4,), labels=("head", "tail"), zero_label=None)
    assert tie.astype(str).tolist() == ["head", "head", "head", "tail", "tail"]
    with pytest.raises(ValueError, match="cuts must hold 2 increasing shares"):
        F.item_popularity_bucket(pop, cuts=(0.5, 0.2))


def test_item_breakdown_by_hand():
    groups = pd.Series(pd.Categorical(["head", "head", "tail", "tail", "tail"]), name="bucket")
    out = F.item_breakdown(TOPK, TRUTH, groups, k=3)
    # slots: 12; head items {0, 1} fill 4 of them. Hits: user 0 items 1, 3; user 1 item 4 -> 1 head, 2 tail
    assert out.n_items.tolist() == [2, 3] and out.hits.tolist() == [1, 2]
    np.testing.assert_allclose(out.rec_share, [4 / 12, 8 / 12])
    np.testing.assert_allclose(out.hit_share, [1 / 3, 2 / 3])
    # relevant: items 1, 3, 4, 0 -> head {1, 0}, tail {3, 4}
    np.testing.assert_allclose(out.relevant_share, [0.5, 0.5])
    np.testing.assert_allclose(out.recall, [0.5, 1.0])
    with pytest.raises(ValueError, match="one group per item \\(5\\)"):
        F.item_breakdown(TOPK, TRUTH, groups[:4], k=3)


# -- leakage ------------------------------------------------------------------------------------------
def test_assert_no_future():
    seen = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [1, 2, 1], "timestamp": [10, 20, 5]})
    future = pd.DataFrame({"user_idx": [0, 1], "item_idx": [3, 2], "timestamp": [20, 6]})
    info = F.assert_no_future(seen, future)
    assert info["time_checked"] and info["users_time_checked"] == 2  # equal timestamps are allowed
    with pytest.raises(AssertionError, match="1 future \\(user, item\\) pairs occur in seen"):
        F.assert_no_future(seen, future.assign(item_idx=[2, 2]))
    with pytest.raises(AssertionError, match="1 users have seen interactions after"):
        F.assert_no_future(seen, future.assign(timestamp=[19, 6]))
    pairs_only = F.assert_no_future(seen[["user_idx", "item_idx"]], future)
    assert not pairs_only["time_checked"]
    with pytest.raises(ValueError, match="seen must have columns"):
        F.assert_no_future(seen.rename(columns={"user_idx": "u"}), future)


# -- tuning the ranker --------------------------------------------------------------------------------
def test_user_folds_balanced_seeded_and_checked():
    f = F.user_folds(7, 2, seed=0)
    assert sorted(np.bincount(f).tolist()) == [3, 4] and set(f.tolist()) == {0, 1}
    np.testing.assert_array_equal(f, F.user_folds(7, 2, seed=0))
    assert any(not np.array_equal(F.user_folds(20, 3, seed=s), F.user_folds(20, 3, seed=0)) for s in (1, 2, 3))
    assert np.bincount(F.user_folds(10, 3, seed=4)).tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    with pytest.raises(ValueError, match="n_folds must be in \\[2, n_users=3\\]"):
        F.user_folds(3, 4)
    with pytest.raises(ValueError, match="n_folds must be in"):
        F.user_folds(3, 1)


def test_cross_val_topk_is_out_of_fold_and_pads_users_without_candidates():
    fr = planted(30, 8, seed=11)
    n_users = 32  # users 30 and 31 have no candidates: they get the fallback's lists
    fallback = np.tile(np.arange(8, dtype=float), (n_users, 1))  # item 7 best, then 6, ...
    feats = ["cf_a", "sem_noise"]
    got = F.cross_val_topk(fr, feats, n_users, k=3, params=PARAMS, n_folds=3, seed=5, fallback=fallback)
    # the same thing by hand: each fold ranked by a model fit on the other folds' users only
    folds = F.user_folds(n_users, 3, seed=5)
    scores = np.zeros(len(fr))
    for f in range(3):
        held = folds[fr.user_idx.to_numpy()] == f
        m = F.fit_ranker(fr[~held], feats, params=PARAMS, seed=5)
        scores[held] = m.predict(fr.loc[held, feats])
    np.testing.assert_array_equal(got, F.rank_frame(fr, scores, n_users, 3, fallback=fallback))
    assert got[30].tolist() == [7, 6, 5] and got[31].tolist() == [7, 6, 5]
    truth = F_csr(fr[fr.label == 1], n_users, 8)
    assert M.precision_at_k(got, truth, k=3) > 0.9  # the planted signal is learned out of fold too


def test_tune_ranker_ranks_configurations_best_first():
    fr = planted(40, 10, seed=12)
    # item order is unrelated to the label, so a model that cannot split ranks by item index (chance)
    truth = F_csr(fr[fr.label == 1], 40, 10)
    grid = {"min_child_samples": [10_000, 5], "n_estimators": [20]}
    tab = F.tune_ranker(fr, ["cf_a", "sem_noise"], truth, grid, k=5, n_folds=2, seed=0, base_params={"num_leaves": 7})
    assert list(tab.columns) == ["min_child_samples", "n_estimators", "ndcg@5", "ndcg@5_se", "recall@5"]
    assert tab.min_child_samples.tolist() == [5, 10_000]
    assert tab["ndcg@5"].iloc[0] > 0.95 > tab["ndcg@5"].iloc[1]
    # each row is the out-of-fold NDCG of its configuration, with the standard error over users
    for row in tab.itertuples(index=False):
        params = {"num_leaves": 7, "min_child_samples": row.min_child_samples, "n_estimators": 20}
        topk = F.cross_val_topk(fr, ["cf_a", "sem_noise"], 40, 5, params=params, n_folds=2, seed=0)
        per_user = M.per_user_metrics(topk, truth, k=5)["ndcg@5"].dropna()
        assert row[2] == pytest.approx(M.ndcg_at_k(topk, truth, k=5))
        assert row[3] == pytest.approx(per_user.std(ddof=1) / math.sqrt(len(per_user)))
    assert tab["ndcg@5_se"].iloc[1] > 0
    with pytest.raises(ValueError, match="grid must be a non-empty dict"):
        F.tune_ranker(fr, ["cf_a"], truth, [("num_leaves", 2)])
    with pytest.raises(ValueError, match="grid\\['num_leaves'\\] must be a non-empty list"):
        F.tune_ranker(fr, ["cf_a"], truth, {"num_leaves": []})
    with pytest.raises(ValueError, match="truth_csr must be a scipy.sparse"):
        F.tune_ranker(fr, ["cf_a"], np.ones((40, 10)), {"num_leaves": [2]})


def test_cold_feature_columns_drop_what_a_new_item_lacks():
    fr = pd.DataFrame(columns=["user_idx", "item_idx", "cf_als_score", "cf_als_rank", "sem_content_score",
                               "pop_log_count", "pop_year", "user_age", "genre_match", "ctx_hour", "label"])
    assert F.cold_feature_columns(fr) == ["sem_content_score", "pop_year", "user_age", "genre_match", "ctx_hour"]
    assert F.cold_feature_columns(fr, drop_groups="pop") == ["sem_content_score", "user_age", "genre_match", "ctx_hour"]
    assert F.cold_feature_columns(fr, drop_groups=("cf", "sem", "ctx")) == ["pop_year", "user_age", "genre_match"]
    with pytest.raises(ValueError, match="drop_groups must name groups"):
        F.cold_feature_columns(fr, drop_groups="nope")


# -- fused_scores: cache-or-compute -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_protocol():
    from recsuite.split import make_protocol

    rng = np.random.default_rng(0)
    rows = [(u, i, 1_000 * u + t) for u in range(24) for t, i in enumerate(rng.choice(30, size=12, replace=False))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=4)
    return make_protocol(inter[["user_id", "item_id", "rating", "timestamp"]], cold_frac=0.1, seed=0)


@pytest.fixture(scope="module")
def tiny_vectors(tiny_protocol):
    return np.random.default_rng(1).normal(size=(tiny_protocol.n_items, 8)).astype(np.float32)


@pytest.fixture(autouse=True)
def content_choice(request):
    """Notebook 02's choice for the tiny protocols (tuning it would encode MovieLens titles)."""
    from recsuite import choices

    if "tiny_protocol" in request.fixturenames:
        proto = request.getfixturevalue("tiny_protocol")
        for seed in (0, 1):
            choices.save("semantic.content", {"template": "title", "center": True}, proto, seed, notebook="a test")


def test_tune_blend_takes_the_smallest_gamma_within_one_se(tiny_protocol, tiny_vectors, tmp_path):
    table, choice = F.tune_blend(tiny_protocol, item_vectors=tiny_vectors, cache_dir=tmp_path)
    assert len(table) == len(F.BLEND_METHODS) * (1 + len(F.BLEND_GAMMAS)) + 1 and table.chosen.sum() == 1
    eligible = table[(table["cf"] > 0) & (table["sem"] > 0)]
    top = eligible["ndcg@10"].round(3).idxmax()
    reach = round(eligible["ndcg@10"].round(3)[top] - round(eligible["ndcg@10_se"][top], 3), 3)
    ties = eligible[eligible["ndcg@10"].round(3) >= reach - 1e-12]
    row = table[table.chosen].iloc[0]
    assert row["sem"] == ties["sem"].min() and row["sem"] > 0  # a blend always uses the content score
    assert choice == {"method": row["method"], "weights": {"cf": 1.0, "sem": float(row["sem"])}}
    with pytest.raises(ValueError, match="every γ > 0"):
        F.tune_blend(tiny_protocol, item_vectors=tiny_vectors, gammas=(0.0, 0.5))


def test_fused_scores_is_the_tuned_blend_of_cf_and_content(tiny_protocol, tiny_vectors, tmp_path):
    from recsuite import cf, semantic

    proto = tiny_protocol
    chosen = F.blend_setting(proto, item_vectors=tiny_vectors)  # tuned on valid when missing, then read back
    assert F.blend_setting(proto, item_vectors=tiny_vectors) == chosen
    for es in ("valid", "test", "cold_test"):
        got = F.fused_scores(es, protocol=proto, item_vectors=tiny_vectors, cache_dir=tmp_path)
        assert got.shape == (proto.n_users, proto.n_items) and got.dtype == np.float32
        h = proto.history(es)
        want = F.blend(
            {"cf": cf.cf_scores(cf.best_fast_model(proto), es, protocol=proto, cache=False),
             "sem": semantic.content_scores(h, tiny_vectors, center=True)},
            chosen["weights"], method=chosen["method"], allowed=proto.candidates(es),
            exclude=None if es == "cold_test" else h,
        )
        np.testing.assert_array_equal(got, want)
        # with or without the protocol's masks, the same lists
        np.testing.assert_array_equal(M.topk_from_scores(got, 3), proto.rank(got, es, 3))
    # on cold items CF is constant, so the blend ranks exactly as the content recommender does
    cold = F.fused_scores("cold_test", protocol=proto, item_vectors=tiny_vectors, cache_dir=tmp_path)
    content = semantic.content_scores(proto.history("cold_test"), tiny_vectors)
    np.testing.assert_array_equal(proto.rank(cold, "cold_test", 2), proto.rank(content, "cold_test", 2))


def test_fused_scores_reads_the_cache_and_rebuilds_it_identically(tiny_protocol, tiny_vectors, tmp_path):
    kw = dict(protocol=tiny_protocol, item_vectors=tiny_vectors, cache_dir=tmp_path)
    path = F.fused_scores_path("test", **kw)
    assert not path.exists() and path.name.startswith("fused-test-")
    first = F.fused_scores("test", **kw)
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    stamp = path.stat().st_mtime_ns
    np.testing.assert_array_equal(F.fused_scores("test", **kw), first)
    assert path.stat().st_mtime_ns == stamp  # served from the file
    path.unlink()
    np.testing.assert_array_equal(F.fused_scores("test", **kw), first)
    path.write_bytes(b"truncated")
    np.testing.assert_array_equal(F.fused_scores("test", **kw), first)
    assert np.load(path)["scores"].shape == first.shape


def test_fused_scores_cache_key_and_errors(tiny_protocol, tiny_vectors, tmp_path):
    from recsuite import cf

    kw = dict(protocol=tiny_protocol, cache_dir=tmp_path)
    base = F.fused_scores_path("test", item_vectors=tiny_vectors, **kw)
    chosen = F.blend_setting(tiny_protocol, item_vectors=tiny_vectors)
    assert base == F.fused_scores_path("test", weights=chosen["weights"], method=chosen["method"],
                                       item_vectors=tiny_vectors, **kw)
    others = [
        F.fused_scores_path("valid", item_vectors=tiny_vectors, **kw),
        F.fused_scores_path("test", weights={"cf": 1.0, "sem": 0.5}, item_vectors=tiny_vectors, **kw),
        F.fused_scores_path("test", method="zscore", item_vectors=tiny_vectors, **kw),
        F.fused_scores_path("test", item_vectors=tiny_vectors + 1, **kw),
        F.fused_scores_path("test", cf_model="EASE" if cf.best_fast_model(tiny_protocol) != "EASE" else "ALS",
                            item_vectors=tiny_vectors, **kw),
        F.fused_scores_path("test", item_vectors=tiny_vectors, seed=1, **kw),
    ]
    assert len({base, *others}) == 1 + len(others)
    s = F.fused_scores("test", weights=[1.0, 0.5], item_vectors=tiny_vectors, cache=False, **kw)
    assert not any(tmp_path.iterdir())  # cache=False writes nothing (not even the CF scores)
    assert not np.array_equal(s, F.fused_scores("test", item_vectors=tiny_vectors, cache=False, **kw))
    with pytest.raises(ValueError, match="eval_set must be one of"):
        F.fused_scores("train", item_vectors=tiny_vectors, **kw)
    with pytest.raises(ValueError, match="weights must have one entry per source"):
        F.fused_scores("test", weights={"als": 1.0}, item_vectors=tiny_vectors, **kw)
    with pytest.raises(ValueError, match="method must be one of"):
        F.fused_scores("test", method="softmax", item_vectors=tiny_vectors, **kw)
    with pytest.raises(ValueError, match="item_vectors must have one row per item"):
        F.fused_scores("test", item_vectors=np.vstack([tiny_vectors, tiny_vectors]), **kw)
    with pytest.raises(ValueError, match="protocol must be a recsuite.split.Protocol"):
        F.fused_scores("test", protocol=object(), item_vectors=tiny_vectors, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="cache must be True or False"):
        F.fused_scores("test", item_vectors=tiny_vectors, cache="yes", **kw)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        F.fused_scores("test", item_vectors=tiny_vectors, seed=-1, **kw)
