"""recsuite.combine.ranker: the two-stage hybrid (candidate frame, features, labels, LambdaRank fit, tune, rank).

Every expected value below is worked out by hand on matrices small enough to check on paper.
"""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.combine import candidates
from recsuite.combine import ranker as RK
from recsuite.evaluation import metrics as M

# -- candidates ---------------------------------------------------------------------------------------
CF = np.array([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
SEM = np.array([[0.1, 0.9, 0.8, 0.0, 0.7], [0.5, 0.5, 0.1, 0.2, 0.3]])
SEEN = sp.csr_matrix((np.ones(2), ([0, 1], [0, 4])), shape=(2, 5))  # user 0 saw item 0, user 1 item 4


def test_candidate_frame_union_dedup_and_ranks_by_hand():
    fr = candidates.candidate_frame({"cf_mf": CF, "sem_text": SEM}, 2, seen=SEEN)
    # user 0, item 0 seen: cf top-2 {1, 2}, sem top-2 {1, 2} -> {1, 2}
    # user 1, item 4 seen: cf top-2 {3, 2}, sem top-2 {0, 1} (tie 0.5, by index) -> {0, 1, 2, 3}
    assert list(zip(fr.user_idx, fr.item_idx)) == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert list(fr.columns) == ["user_idx", "item_idx", "cf_mf_score", "cf_mf_rank", "sem_text_score", "sem_text_rank"]
    # ranks in each source's full ranking of unseen items (1 = best), also for the other source's picks
    assert fr.cf_mf_rank.tolist() == [1, 2, 4, 3, 2, 1]
    assert fr.sem_text_rank.tolist() == [1, 2, 1, 2, 4, 3]
    np.testing.assert_allclose(fr.sem_text_score, [0.9, 0.8, 0.5, 0.5, 0.1, 0.2], rtol=1e-6)
    assert fr.cf_mf_rank.dtype == np.int32 and fr.cf_mf_score.dtype == np.float32


def test_candidate_frame_per_source_counts_and_masks(csr):
    fr = candidates.candidate_frame({"cf_mf": CF, "sem_text": SEM}, {"cf_mf": 1, "sem_text": 0}, catalogue=np.array([1, 1, 1, 0, 1], bool))
    assert list(zip(fr.user_idx, fr.item_idx)) == [(0, 0), (1, 4)]
    assert "sem_text_rank" in fr  # a source with 0 candidates still gives its features
    # fewer rankable items than n: the masked fill of topk_from_scores never becomes a candidate
    few = candidates.candidate_frame({"cf_mf": CF}, 5, seen=csr([[0, 1, 2, 3], []], 5))
    assert few[few.user_idx == 0].item_idx.tolist() == [4]
    assert len(few[few.user_idx == 1]) == 5


def test_candidate_frame_errors():
    with pytest.raises(ValueError, match="feature-group prefix"):
        candidates.candidate_frame({"mf": CF}, 2)
    with pytest.raises(ValueError, match="feature-group prefix"):
        candidates.candidate_frame({"cf": CF}, 2)
    with pytest.raises(ValueError, match="larger than the catalogue"):
        candidates.candidate_frame({"cf_mf": CF}, 6)
    with pytest.raises(ValueError, match="n_per_source must have one count per source"):
        candidates.candidate_frame({"cf_mf": CF, "sem_t": SEM}, {"cf_mf": 2})
    with pytest.raises(ValueError, match="at least one source a positive count"):
        candidates.candidate_frame({"cf_mf": CF}, {"cf_mf": 0})
    with pytest.raises(ValueError, match="n_per_source must be an int >= 1"):
        candidates.candidate_frame({"cf_mf": CF}, 0)


def test_recall_of_candidates_and_labels_by_hand(csr):
    fr = candidates.candidate_frame({"cf_mf": CF, "sem_text": SEM}, 2, seen=SEEN)
    truth = csr([[2, 3], [1], []], 5)[:2]
    # user 0 finds 1 of {2, 3}; user 1 finds {1}
    assert candidates.recall_of_candidates(fr, truth) == pytest.approx((0.5 + 1.0) / 2)
    lab = candidates.label_frame(fr, truth)
    assert lab.name == "label" and lab.tolist() == [0, 1, 0, 1, 0, 0]
    assert (lab.index == fr.index).all()
    with pytest.raises(ValueError, match="truth_csr has shape"):
        candidates.label_frame(fr, csr([[1]], 5))
    with pytest.raises(ValueError, match="truth_csr must be a scipy.sparse"):
        candidates.label_frame(fr, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="repeats a"):
        candidates.recall_of_candidates(pd.concat([fr, fr]), truth)


# -- features -----------------------------------------------------------------------------------------
def small_frame():
    return pd.DataFrame({"user_idx": [0, 0, 1, 1], "item_idx": [0, 2, 1, 3]})


ITEM_VEC = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])


def test_add_features_known_cosines_and_groups():
    users = pd.DataFrame({"age": [25, 40], "gender": ["M", "F"], "occupation": ["artist", "doctor"]})
    ctx = pd.DataFrame({"hour": [13.0, np.nan], "weekday": [0.0, np.nan]})
    genres = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]], float)
    out = candidates.add_features(
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
    cols = RK.feature_columns(out)
    assert cols == [
        "sem_profile_cos", "sem_recent_cos", "pop_log_count", "pop_year", "user_age", "user_gender",
        "user_occupation", "genre_match", "ctx_hour", "ctx_weekday",
    ]  # fmt: skip
    assert all(candidates.feature_group(c) in candidates.FEATURE_GROUPS for c in cols)
    assert RK.feature_columns(out, drop_groups=("user", "ctx")) == [
        "sem_profile_cos", "sem_recent_cos", "pop_log_count", "pop_year", "genre_match",
    ]  # fmt: skip
    assert "user_idx" not in RK.feature_columns(out) and "sem_profile_cos" not in small_frame()


def test_categories_come_from_the_whole_user_table():
    users = pd.DataFrame({"gender": ["M", "F", "M"]})
    out = candidates.add_features(pd.DataFrame({"user_idx": [0, 2], "item_idx": [0, 0]}), user_table=users)
    assert out.user_gender.cat.categories.tolist() == ["F", "M"]  # F is in no row of this frame


def test_add_features_errors():
    fr = small_frame()
    with pytest.raises(ValueError, match="item_vectors is required"):
        candidates.add_features(fr, user_profiles=np.ones((2, 2)))
    with pytest.raises(ValueError, match="item_vectors alone adds no feature"):
        candidates.add_features(fr, item_vectors=ITEM_VEC)
    with pytest.raises(ValueError, match="user_profiles has 3 columns but must have 2"):
        candidates.add_features(fr, item_vectors=ITEM_VEC, user_profiles=np.ones((2, 3)))
    with pytest.raises(ValueError, match="item_vectors has 2 rows but the frame indexes row 3"):
        candidates.add_features(fr, item_vectors=ITEM_VEC[:2], user_profiles=np.ones((2, 2)))
    with pytest.raises(ValueError, match="item_popularity must hold non-negative"):
        candidates.add_features(fr, item_popularity=[0, -1, 0, 0])
    with pytest.raises(ValueError, match="item_popularity must be finite without missing"):
        candidates.add_features(fr, item_popularity=[0, np.nan, 0, 0])
    with pytest.raises(ValueError, match="given together"):
        candidates.add_features(fr, genre_matrix=np.ones((4, 2)))
    with pytest.raises(ValueError, match="user_table has 1 rows"):
        candidates.add_features(fr, user_table=pd.DataFrame({"age": [3]}))
    with pytest.raises(ValueError, match="frame must have columns"):
        candidates.add_features(pd.DataFrame({"user": [0]}))
    with pytest.raises(ValueError, match="drop_groups must name groups"):
        RK.feature_columns(fr, drop_groups=("semantic",))


def test_recent_profile_genre_distribution_and_last_context():
    hist = pd.DataFrame(
        {
            "user_idx": [0, 0, 0, 0, 2],
            "item_idx": [0, 1, 2, 3, 1],
            # user 0's last two in time are item 2 (t=30) and item 3 (t=30, the later by item index)
            "timestamp": [10, 20, 30, 30, 4 * 86400 + 13 * 3600],
        }
    )
    rec = candidates.recent_item_profile(hist, ITEM_VEC, n_users=3, n=2)
    np.testing.assert_allclose(rec[0], [1 / math.sqrt(2), 1 / math.sqrt(2)], rtol=1e-6)  # mean of [1,1], [0,0]
    np.testing.assert_allclose(rec[1], [0, 0])  # no history
    np.testing.assert_allclose(rec[2], [0, 1])
    genres = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], float)
    dist = candidates.user_genre_distribution(F_csr(hist, 3, 4), genres)
    np.testing.assert_allclose(dist, [[0.5, 0.5], [0, 0], [0.5, 0.5]])
    ctx = candidates.last_context(hist, n_users=3)
    assert ctx.loc[0].tolist() == [0.0, 3.0]  # t=30 s: 1970-01-01 00:00, a Thursday
    assert ctx.loc[1].isna().all()
    assert ctx.loc[2].tolist() == [13.0, 0.0]  # 4 days later, a Monday, 13:00
    with pytest.raises(ValueError, match="timestamp"):
        candidates.recent_item_profile(hist.drop(columns="timestamp"), ITEM_VEC, 3)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        candidates.recent_item_profile(hist, ITEM_VEC, 3, n=0)


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
    m1 = RK.fit_ranker(train, feats, params=PARAMS, seed=0)
    m2 = RK.fit_ranker(train, feats, params=PARAMS, seed=0)
    p1, p2 = m1.predict(held[feats]), m2.predict(held[feats])
    np.testing.assert_array_equal(p1, p2)
    held["pred"] = p1
    topk = RK.rank_frame(held, "pred", n_users=15, k=12)
    truth = F_csr(held[held.label == 1], 15, 12)
    assert M.ndcg_at_k(topk, truth, k=12) > 0.97
    imp = RK.feature_importance(m1)
    assert imp.feature.iloc[0] == "cf_a" and imp.gain_share.iloc[0] > 0.9
    assert imp.group.tolist()[0] == "cf" and imp.gain_share.sum() == pytest.approx(1.0)


def test_fit_ranker_drops_users_without_signal_and_says_so():
    fr = planted(20, 8, seed=3)
    fr.loc[fr.user_idx.isin([0, 1, 2]), "label"] = 0
    fr.loc[fr.user_idx == 3, "label"] = 1
    held = planted(6, 8, seed=4)
    held.loc[held.user_idx == 5, "label"] = 0
    m = RK.fit_ranker(fr, ["cf_a", "sem_noise"], params=PARAMS, valid_frame=held, early_stopping_rounds=5)
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
        RK.fit_ranker(fr.iloc[::-1], ["cf_a"])
    with pytest.raises(ValueError, match="lacks columns \\['nope'\\]"):
        RK.fit_ranker(fr, ["nope"])
    with pytest.raises(ValueError, match="features must be a non-empty list"):
        RK.fit_ranker(fr, "cf_a")
    with pytest.raises(ValueError, match="non-negative integer relevance"):
        RK.fit_ranker(fr.assign(label=fr.cf_a), ["cf_a"])
    with pytest.raises(ValueError, match="nothing to learn"):
        RK.fit_ranker(fr.assign(label=0), ["cf_a"])
    with pytest.raises(ValueError, match="feature 'txt' must be numeric"):
        RK.fit_ranker(fr.assign(txt="x"), ["txt"])
    with pytest.raises(ValueError, match="early_stopping_rounds needs valid_frame"):
        RK.fit_ranker(fr, ["cf_a"], early_stopping_rounds=3)


# -- rank_frame ---------------------------------------------------------------------------------------
def test_rank_frame_orders_by_score_then_item_index():
    fr = pd.DataFrame({"user_idx": [1, 0, 0, 0, 1], "item_idx": [4, 3, 1, 2, 0], "s": [0.5, 0.2, 0.9, 0.2, 0.7]})
    top = RK.rank_frame(fr, "s", n_users=2, k=2)
    assert top.tolist() == [[1, 2], [0, 4]]  # user 0: 0.9 first, then the 0.2 tie goes to item 2 < 3
    assert top.dtype == np.int64
    np.testing.assert_array_equal(RK.rank_frame(fr, fr.s.to_numpy(), 2, 2), top)


def test_rank_frame_pads_from_fallback_or_raises(csr):
    fr = pd.DataFrame({"user_idx": [0, 0], "item_idx": [3, 1], "s": [1.0, 2.0]})
    fallback = np.array([[5.0, 9.0, 1.0, 8.0, 7.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    with pytest.raises(ValueError, match="2 users have fewer than k=3 candidates"):
        RK.rank_frame(fr, "s", n_users=2, k=3)
    # user 0: candidates 1, 3, then the fallback's best not listed and not seen (item 4 seen): item 0
    # user 1: no candidates, the fallback's top 3 among allowed items (item 2 not allowed)
    top = RK.rank_frame(
        fr, "s", 2, 3, fallback=fallback, seen=csr([[4], []], 5), catalogue=np.array([1, 1, 0, 1, 1], bool)
    )
    assert top.tolist() == [[1, 3, 0], [4, 3, 1]]
    with pytest.raises(ValueError, match="user 0 needs 2 fallback items but only 1 are rankable"):
        RK.rank_frame(fr, "s", 2, 4, fallback=fallback, catalogue=np.array([1, 1, 0, 1, 0], bool))
    with pytest.raises(ValueError, match="seen items as candidates"):
        RK.rank_frame(fr, "s", 2, 2, seen=csr([[3], []], 5))
    with pytest.raises(ValueError, match="outside the catalogue"):
        RK.rank_frame(fr, "s", 2, 2, catalogue=np.array([1, 1, 1, 0, 1], bool))
    with pytest.raises(ValueError, match="score column 'x'"):
        RK.rank_frame(fr, "x", 2, 2)
    with pytest.raises(ValueError, match="fallback must have n_users=2 rows"):
        RK.rank_frame(fr, "s", 2, 2, fallback=fallback[:1])


# -- tuning the ranker --------------------------------------------------------------------------------
def test_user_folds_balanced_seeded_and_checked():
    f = RK.user_folds(7, 2, seed=0)
    assert sorted(np.bincount(f).tolist()) == [3, 4] and set(f.tolist()) == {0, 1}
    np.testing.assert_array_equal(f, RK.user_folds(7, 2, seed=0))
    assert any(not np.array_equal(RK.user_folds(20, 3, seed=s), RK.user_folds(20, 3, seed=0)) for s in (1, 2, 3))
    assert np.bincount(RK.user_folds(10, 3, seed=4)).tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    with pytest.raises(ValueError, match="n_folds must be in \\[2, n_users=3\\]"):
        RK.user_folds(3, 4)
    with pytest.raises(ValueError, match="n_folds must be in"):
        RK.user_folds(3, 1)


def test_cross_val_topk_is_out_of_fold_and_pads_users_without_candidates():
    fr = planted(30, 8, seed=11)
    n_users = 32  # users 30 and 31 have no candidates: they get the fallback's lists
    fallback = np.tile(np.arange(8, dtype=float), (n_users, 1))  # item 7 best, then 6, ...
    feats = ["cf_a", "sem_noise"]
    got = RK.cross_val_topk(fr, feats, n_users, k=3, params=PARAMS, n_folds=3, seed=5, fallback=fallback)
    # the same thing by hand: each fold ranked by a model fit on the other folds' users only
    folds = RK.user_folds(n_users, 3, seed=5)
    scores = np.zeros(len(fr))
    for f in range(3):
        held = folds[fr.user_idx.to_numpy()] == f
        m = RK.fit_ranker(fr[~held], feats, params=PARAMS, seed=5)
        scores[held] = m.predict(fr.loc[held, feats])
    np.testing.assert_array_equal(got, RK.rank_frame(fr, scores, n_users, 3, fallback=fallback))
    assert got[30].tolist() == [7, 6, 5] and got[31].tolist() == [7, 6, 5]
    truth = F_csr(fr[fr.label == 1], n_users, 8)
    assert M.precision_at_k(got, truth, k=3) > 0.9  # the planted signal is learned out of fold too


def test_tune_ranker_ranks_configurations_best_first():
    fr = planted(40, 10, seed=12)
    # item order is unrelated to the label, so a model that cannot split ranks by item index (chance)
    truth = F_csr(fr[fr.label == 1], 40, 10)
    grid = {"min_child_samples": [10_000, 5], "n_estimators": [20]}
    tab = RK.tune_ranker(fr, ["cf_a", "sem_noise"], truth, grid, k=5, n_folds=2, seed=0, base_params={"num_leaves": 7})
    assert list(tab.columns) == ["min_child_samples", "n_estimators", "ndcg@5", "ndcg@5_se", "recall@5"]
    assert tab.min_child_samples.tolist() == [5, 10_000]
    assert tab["ndcg@5"].iloc[0] > 0.95 > tab["ndcg@5"].iloc[1]
    # each row is the out-of-fold NDCG of its configuration, with the standard error over users
    for row in tab.itertuples(index=False):
        params = {"num_leaves": 7, "min_child_samples": row.min_child_samples, "n_estimators": 20}
        topk = RK.cross_val_topk(fr, ["cf_a", "sem_noise"], 40, 5, params=params, n_folds=2, seed=0)
        per_user = M.per_user_metrics(topk, truth, k=5)["ndcg@5"].dropna()
        assert row[2] == pytest.approx(M.ndcg_at_k(topk, truth, k=5))
        assert row[3] == pytest.approx(per_user.std(ddof=1) / math.sqrt(len(per_user)))
    assert tab["ndcg@5_se"].iloc[1] > 0
    with pytest.raises(ValueError, match="grid must be a non-empty dict"):
        RK.tune_ranker(fr, ["cf_a"], truth, [("num_leaves", 2)])
    with pytest.raises(ValueError, match="grid\\['num_leaves'\\] must be a non-empty list"):
        RK.tune_ranker(fr, ["cf_a"], truth, {"num_leaves": []})
    with pytest.raises(ValueError, match="truth_csr must be a scipy.sparse"):
        RK.tune_ranker(fr, ["cf_a"], np.ones((40, 10)), {"num_leaves": [2]})


def test_cold_feature_columns_drop_what_a_new_item_lacks():
    fr = pd.DataFrame(columns=["user_idx", "item_idx", "cf_als_score", "cf_als_rank", "sem_content_score",
                               "pop_log_count", "pop_year", "user_age", "genre_match", "ctx_hour", "label"])
    assert RK.cold_feature_columns(fr) == ["sem_content_score", "pop_year", "user_age", "genre_match", "ctx_hour"]
    assert RK.cold_feature_columns(fr, drop_groups="pop") == ["sem_content_score", "user_age", "genre_match", "ctx_hour"]
    assert RK.cold_feature_columns(fr, drop_groups=("cf", "sem", "ctx")) == ["pop_year", "user_age", "genre_match"]
    with pytest.raises(ValueError, match="drop_groups must name groups"):
        RK.cold_feature_columns(fr, drop_groups="nope")


@pytest.mark.parametrize("kwargs, exc", [
    ({"n_users": "4"}, TypeError),
    ({"n_users": True}, TypeError),
    ({"n_users": 0}, ValueError),
    ({"n_users": 4, "n_folds": 0}, ValueError),
    ({"n_users": 4, "n_folds": 2.0}, TypeError),
])
def test_user_folds_bad_input(kwargs, exc):
    with pytest.raises(exc):
        RK.user_folds(**kwargs)


# -- bad input: every public function answers a clear TypeError/ValueError --------------------------------
def _hist(**over):
    cols = {"user_idx": [0, 0, 1], "item_idx": [0, 1, 2], "timestamp": [10, 20, 30]}
    return pd.DataFrame({**cols, **over})


_FR = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [0, 1, 2], "cf_a": [0.1, 0.9, 0.5], "label": [0, 1, 1]})
_TRUTH = sp.csr_matrix((np.ones(2), ([0, 1], [1, 2])), shape=(2, 5))
_BAD = {
    "candidate_frame: sources not a dict": (lambda: candidates.candidate_frame([CF], 2), (TypeError, ValueError)),
    "candidate_frame: NaN scores": (lambda: candidates.candidate_frame({"cf_a": np.full((2, 5), np.nan)}, 2), ValueError),
    "candidate_frame: float n": (lambda: candidates.candidate_frame({"cf_a": CF}, 2.0), TypeError),
    "candidate_frame: bool n": (lambda: candidates.candidate_frame({"cf_a": CF}, True), TypeError),
    "candidate_frame: masks keyword-only": (lambda: candidates.candidate_frame({"cf_a": CF}, 2, SEEN), TypeError),
    "candidate_frame: allowed of ints": (lambda: candidates.candidate_frame({"cf_a": CF}, 2, catalogue=[1, 1, 1, 0, 1]), TypeError),
    "candidate_frame: dense exclude": (lambda: candidates.candidate_frame({"cf_a": CF}, 2, seen=np.zeros((2, 5))), ValueError),
    "recall_of_candidates: not a frame": (lambda: candidates.recall_of_candidates([(0, 1)], _TRUTH), (TypeError, ValueError)),
    "recall_of_candidates: float ids": (
        lambda: candidates.recall_of_candidates(_FR.assign(item_idx=[0.0, 1.0, 2.0]), _TRUTH), (TypeError, ValueError)),
    "recall_of_candidates: user outside truth": (lambda: candidates.recall_of_candidates(_FR, _TRUTH[:1]), ValueError),
    "label_frame: negative id": (lambda: candidates.label_frame(_FR.assign(user_idx=[-1, 0, 1]), _TRUTH), ValueError),
    "label_frame: dense truth": (lambda: candidates.label_frame(_FR, _TRUTH.toarray()), (TypeError, ValueError)),
    "add_features: NaN vectors": (
        lambda: candidates.add_features(_FR, item_vectors=np.full((3, 2), np.nan), user_profiles=np.ones((2, 2))), ValueError),
    "add_features: text popularity": (lambda: candidates.add_features(_FR, item_popularity=["a", "b", "c"]), ValueError),
    "add_features: 2-D popularity": (lambda: candidates.add_features(_FR, item_popularity=np.ones((3, 1))), ValueError),
    "add_features: user_table not a frame": (lambda: candidates.add_features(_FR, user_table=np.ones((2, 1))), TypeError),
    "recent_item_profile: text timestamps": (
        lambda: candidates.recent_item_profile(_hist(timestamp=["a", "b", "c"]), ITEM_VEC, 2), (TypeError, ValueError)),
    "recent_item_profile: NaN timestamp": (
        lambda: candidates.recent_item_profile(_hist(timestamp=[1.0, np.nan, 3.0]), ITEM_VEC, 2), ValueError),
    "recent_item_profile: user outside n_users": (lambda: candidates.recent_item_profile(_hist(), ITEM_VEC, 1), ValueError),
    "recent_item_profile: float n": (lambda: candidates.recent_item_profile(_hist(), ITEM_VEC, 2, n=2.5), TypeError),
    "user_genre_distribution: dense history": (
        lambda: candidates.user_genre_distribution(np.ones((2, 4)), np.ones((4, 2))), (TypeError, ValueError)),
    "user_genre_distribution: rows != items": (
        lambda: candidates.user_genre_distribution(_TRUTH, np.ones((6, 2))), ValueError),
    "user_genre_distribution: negative genres": (
        lambda: candidates.user_genre_distribution(_TRUTH, -np.ones((5, 2))), ValueError),
    "last_context: no timestamp": (lambda: candidates.last_context(_hist().drop(columns="timestamp"), 2), ValueError),
    "last_context: n_users str": (lambda: candidates.last_context(_hist(), "2"), TypeError),
    "last_context: user outside n_users": (lambda: candidates.last_context(_hist(), 1), ValueError),
    "feature_columns: not a frame": (lambda: RK.feature_columns({"cf_a": [1]}), TypeError),
    "feature_columns: drop_groups int": (lambda: RK.feature_columns(_FR, drop_groups=3), TypeError),
    "feature_columns: unknown group": (lambda: RK.feature_columns(_FR, drop_groups=["semantic"]), ValueError),
    "cold_feature_columns: drop_groups int": (lambda: RK.cold_feature_columns(_FR, drop_groups=3), TypeError),
    "cold_feature_columns: not a frame": (lambda: RK.cold_feature_columns("frame"), TypeError),
    "fit_ranker: label as a feature": (lambda: RK.fit_ranker(_FR, ["cf_a", "label"]), ValueError),
    "fit_ranker: a key as a feature": (lambda: RK.fit_ranker(_FR, ["user_idx"]), ValueError),
    "fit_ranker: repeated feature": (lambda: RK.fit_ranker(_FR, ["cf_a", "cf_a"]), ValueError),
    "fit_ranker: feature not a str": (lambda: RK.fit_ranker(_FR, [3]), TypeError),
    "fit_ranker: params a list": (lambda: RK.fit_ranker(_FR, ["cf_a"], params=[("num_leaves", 3)]), TypeError),
    "fit_ranker: seed float": (lambda: RK.fit_ranker(_FR, ["cf_a"], seed=1.5), TypeError),
    "fit_ranker: empty frame": (lambda: RK.fit_ranker(_FR.iloc[:0], ["cf_a"]), ValueError),
    "fit_ranker: NaN label": (lambda: RK.fit_ranker(_FR.assign(label=[0, np.nan, 1]), ["cf_a"]), ValueError),
    "feature_importance: unfitted": (lambda: RK.feature_importance(object()), ValueError),
    "rank_frame: masks keyword-only": (lambda: RK.rank_frame(_FR, "cf_a", 2, 1, None, SEEN), TypeError),
    "rank_frame: NaN score": (lambda: RK.rank_frame(_FR, [np.nan, 1.0, 2.0], 2, 1), ValueError),
    "rank_frame: score of wrong length": (lambda: RK.rank_frame(_FR, [1.0, 2.0], 2, 1), ValueError),
    "rank_frame: bool k": (lambda: RK.rank_frame(_FR, "cf_a", 2, True), TypeError),
    "rank_frame: user outside n_users": (lambda: RK.rank_frame(_FR, "cf_a", 1, 1), ValueError),
    "rank_frame: repeated candidate": (lambda: RK.rank_frame(pd.concat([_FR, _FR]), "cf_a", 2, 1), ValueError),
    "rank_frame: dense exclude": (lambda: RK.rank_frame(_FR, "cf_a", 2, 1, seen=np.zeros((2, 5))), ValueError),
    "rank_frame: item outside fallback": (lambda: RK.rank_frame(_FR, "cf_a", 2, 1, fallback=np.ones((2, 2))), ValueError),
    "cross_val_topk: masks keyword-only": (
        lambda: RK.cross_val_topk(_FR, ["cf_a"], 2, 1, None, 2, 0, "label", None, SEEN), TypeError),
    "cross_val_topk: user outside n_users": (lambda: RK.cross_val_topk(_FR, ["cf_a"], 1), ValueError),
    "cross_val_topk: label as a feature": (lambda: RK.cross_val_topk(_FR, ["label"], 2, n_folds=2), ValueError),
    "cross_val_topk: n_folds > n_users": (lambda: RK.cross_val_topk(_FR, ["cf_a"], 2, n_folds=3), ValueError),
    "tune_ranker: masks keyword-only": (
        lambda: RK.tune_ranker(_FR, ["cf_a"], _TRUTH, {"num_leaves": [3]}, 1, 2, 0, None, "label", None, SEEN),
        TypeError),
    "tune_ranker: grid values a str": (lambda: RK.tune_ranker(_FR, ["cf_a"], _TRUTH, {"objective": "lambdarank"}), ValueError),
    "tune_ranker: base_params a list": (
        lambda: RK.tune_ranker(_FR, ["cf_a"], _TRUTH, {"num_leaves": [3]}, base_params=[1]), TypeError),
    "tune_ranker: k zero": (lambda: RK.tune_ranker(_FR, ["cf_a"], _TRUTH, {"num_leaves": [3]}, k=0), ValueError),
}


@pytest.mark.parametrize("case", list(_BAD), ids=list(_BAD))
def test_ranker_bad_input(case):
    call, exc = _BAD[case]
    with pytest.raises(exc):
        call()


def test_masks_are_keyword_only_and_fallback_stays_positional(csr):
    fr = pd.DataFrame({"user_idx": [0, 1], "item_idx": [1, 2], "s": [1.0, 1.0]})
    fallback = np.tile(np.arange(5, dtype=float), (2, 1))
    # fallback is positional-or-keyword: the positional call pads exactly like the keyword one
    np.testing.assert_array_equal(RK.rank_frame(fr, "s", 2, 2, fallback), RK.rank_frame(fr, "s", 2, 2, fallback=fallback))
    assert RK.rank_frame(fr, "s", 2, 2, fallback, seen=csr([[4], []], 5)).tolist() == [[1, 3], [2, 4]]



def test_target_frame_reads_click_like_and_rating_from_the_held_out_ratings():
    fr = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2], "item_idx": [3, 1, 3, 0, 2]})
    held = pd.DataFrame({"user_idx": [0, 1, 1, 2], "item_idx": [1, 3, 4, 0], "rating": [5.0, 3.0, 4.0, 4.0]})
    t = candidates.target_frame(fr, held)
    assert t.click.tolist() == [0, 1, 1, 0, 0] and t.like.tolist() == [0, 1, 0, 0, 0]
    assert np.isnan(t.rating.to_numpy()[[0, 3, 4]]).all() and t.rating.tolist()[1:3] == [5.0, 3.0]
    truth = sp.csr_matrix([[0, 1, 0, 0, 0], [0, 0, 0, 1, 1], [1, 0, 0, 0, 0]])
    assert (t.click == candidates.label_frame(fr, truth)).all()
    assert candidates.target_frame(fr, held, like_threshold=3).like.tolist() == [0, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="at least one rating"):
        candidates.target_frame(fr, held.iloc[:0])
    with pytest.raises(TypeError, match="booleans"):
        candidates.target_frame(fr, held.assign(rating=held.rating > 3))
    with pytest.raises(ValueError, match="held_out repeats"):
        candidates.target_frame(fr, pd.concat([held, held.iloc[:1]]))
    with pytest.raises(ValueError, match="rating"):
        candidates.target_frame(fr, held.drop(columns="rating"))
