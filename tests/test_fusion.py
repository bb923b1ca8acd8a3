"""recsuite.combine.fusion: normalisation, blending, RRF, blend search, the fused scores (and the leakage check).

Every expected value below is worked out by hand on matrices small enough to check on paper.
"""

import math

import numpy as np
import pandas as pd
import pytest

from recsuite.combine import fusion as F
from recsuite.course import artifacts as ART
from recsuite.evaluation import metrics as M


# -- normalize_scores ---------------------------------------------------------------------------------
def test_zscore_by_hand_ignores_masked_items(csr):
    s = np.array([[1.0, 2.0, 3.0, 100.0]])
    got = F.normalize_scores(s, "zscore", seen=csr([[3]], 4))
    sd = math.sqrt(2 / 3)  # population std of 1, 2, 3
    np.testing.assert_allclose(got[0, :3], [-1 / sd, 0.0, 1 / sd], rtol=1e-6)
    # the masked item sits 1 below the lowest rankable value, finite, and ranks last
    assert got[0, 3] == pytest.approx(-1 / sd - 1, rel=1e-6)
    # the same as normalising the row without the masked column: item 3's 100 does not move mean or std
    np.testing.assert_allclose(got[0, :3], F.normalize_scores(s[:, :3], "zscore")[0], rtol=1e-6)


def test_minmax_by_hand_with_catalogue():
    s = np.array([[-5.0, 2.0, 4.0, 10.0], [0.0, 1.0, 2.0, 3.0]])
    catalogue = np.array([False, True, True, True])
    got = F.normalize_scores(s, "minmax", catalogue=catalogue)
    np.testing.assert_allclose(got[:, 1:], [[0.0, 0.25, 1.0], [0.0, 0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(got[:, 0], [-1.0, -1.0])  # below the lowest allowed value, 0


def test_rank_by_hand_ties_averaged():
    # descending ranks: items 0 and 2 tie for 1st -> 1.5 each, item 3 is 3rd, item 1 4th; (n - r) / (n - 1)
    got = F.normalize_scores(np.array([[3.0, 1.0, 3.0, 2.0]]), "rank")
    np.testing.assert_allclose(got[0], [2.5 / 3, 0.0, 2.5 / 3, 1 / 3], rtol=1e-6)


def test_rank_counts_only_rankable_items(csr):
    s = np.array([[3.0, 1.0, 9.0, 2.0]])
    got = F.normalize_scores(s, "rank", seen=csr([[2]], 4))
    np.testing.assert_allclose(got[0, [0, 3, 1]], [1.0, 0.5, 0.0])
    assert got[0, 2] == pytest.approx(-1.0)


@pytest.mark.parametrize("method,neutral", [("zscore", 0.0), ("minmax", 0.5), ("rank", 0.5)])
def test_rows_without_spread_are_neutral_not_nan(method, neutral, csr):
    s = np.array([[0.1, 0.1, 0.1, 0.1], [7.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    # row 1: a single rankable item; row 2: nothing rankable at all
    ex = csr([[], [1, 2, 3], [0, 1, 2, 3]], 4)
    got = F.normalize_scores(s, method, seen=ex)
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


def test_normalize_errors_name_the_argument(csr):
    s = np.ones((2, 3))
    with pytest.raises(ValueError, match="method"):
        F.normalize_scores(s, "softmax")
    with pytest.raises(ValueError, match="scores holds NaN"):
        F.normalize_scores(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="scores must be a non-empty 2-D"):
        F.normalize_scores(np.ones(3))
    with pytest.raises(TypeError, match="catalogue must be a boolean mask of shape \\(3,\\)"):
        F.normalize_scores(s, catalogue=np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="seen must be a scipy.sparse matrix of shape \\(2, 3\\)"):
        F.normalize_scores(s, seen=csr([[0]], 3))


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


def test_blend_masks_seen_items_below_everything(csr):
    ex = csr([[0], []], 4)
    y = F.blend([A, B], [1.0, -1.0], seen=ex)  # a negative weight must not lift a masked item
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
    got = F.reciprocal_rank_fusion([s1, s2], rank_offset=60)
    want = [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62]
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    assert M.topk_from_scores(got, 3)[0].tolist() == [1, 0, 2]


def test_rrf_ranks_within_rankable_items_and_averages_ties(csr):
    s1 = np.array([[3.0, 2.0, 1.0]])
    s2 = np.array([[5.0, 5.0, 0.0]])
    got = F.reciprocal_rank_fusion({"a": s1, "b": s2}, rank_offset=0, seen=csr([[0]], 3))
    # without item 0: s1 ranks items 1, 2 as 1, 2; s2 ranks them 1, 2
    np.testing.assert_allclose(got[0, 1:], [1 / 1 + 1 / 1, 1 / 2 + 1 / 2])
    assert got[0, 0] < got[0, 1:].min()
    tied = F.reciprocal_rank_fusion([s2], rank_offset=1)
    assert tied[0, 0] == tied[0, 1] == pytest.approx(1 / (1 + 1.5))


def test_rrf_errors():
    with pytest.raises(ValueError, match="rank_offset must be a finite number"):
        F.reciprocal_rank_fusion([A], rank_offset=-1)
    with pytest.raises(TypeError, match="rank_offset must be a real number"):
        F.reciprocal_rank_fusion([A], rank_offset="60")
    with pytest.raises(TypeError):
        F.reciprocal_rank_fusion([A], 60, None)  # masks are keyword-only
    with pytest.raises(TypeError):
        F.normalize_scores(A, "zscore", None)  # masks are keyword-only
    with pytest.raises(TypeError):
        F.blend([A], [1.0], "zscore", None)  # masks are keyword-only
    with pytest.raises(ValueError, match="scores_list must hold at least one"):
        F.reciprocal_rank_fusion([])


# -- grid search --------------------------------------------------------------------------------------
def test_grid_search_blend_evaluates_every_combination_best_first(csr):
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


# -- leakage ------------------------------------------------------------------------------------------
def test_assert_no_future():
    from recsuite.data import split as S

    seen = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [1, 2, 1], "timestamp": [10, 20, 5]})
    future = pd.DataFrame({"user_idx": [0, 1], "item_idx": [3, 2], "timestamp": [20, 6]})
    info = S.assert_no_future(seen, future)
    assert info["time_checked"] and info["users_time_checked"] == 2  # equal timestamps are allowed
    with pytest.raises(AssertionError, match="1 future \\(user, item\\) pairs occur in seen"):
        S.assert_no_future(seen, future.assign(item_idx=[2, 2]))
    with pytest.raises(AssertionError, match="1 users have seen interactions after"):
        S.assert_no_future(seen, future.assign(timestamp=[19, 6]))
    pairs_only = S.assert_no_future(seen[["user_idx", "item_idx"]], future)
    assert not pairs_only["time_checked"]
    with pytest.raises(ValueError, match="seen must have columns"):
        S.assert_no_future(seen.rename(columns={"user_idx": "u"}), future)


@pytest.mark.parametrize("seen, future, time_col, exc", [
    ("not a frame", pd.DataFrame({"user_idx": [0], "item_idx": [1]}), "timestamp", TypeError),
    (pd.DataFrame({"user_idx": [0.0], "item_idx": [1]}), pd.DataFrame({"user_idx": [0], "item_idx": [2]}), "timestamp", TypeError),
    (pd.DataFrame({"user_idx": [-1], "item_idx": [1]}), pd.DataFrame({"user_idx": [0], "item_idx": [2]}), "timestamp", ValueError),
    (pd.DataFrame({"user_idx": [0], "item_idx": [1]}), pd.DataFrame({"user_idx": [0], "item_idx": [2]}), 3, TypeError),
    (pd.DataFrame({"user_idx": [0], "item_idx": [1], "timestamp": [float("nan")]}),
     pd.DataFrame({"user_idx": [0], "item_idx": [2], "timestamp": [1.0]}), "timestamp", ValueError),
])
def test_assert_no_future_bad_input(seen, future, time_col, exc):
    from recsuite.data import split as S

    with pytest.raises(exc):
        S.assert_no_future(seen, future, time_col=time_col)


# -- fused_scores: cache-or-compute -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_protocol():
    from recsuite.data.split import make_protocol

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
    from recsuite.course import choices

    if "tiny_protocol" in request.fixturenames:
        proto = request.getfixturevalue("tiny_protocol")
        for seed in (0, 1):
            choices.save("semantic.content", {"template": "title", "center": True}, proto, seed, notebook="a test")


def test_tune_blend_takes_the_smallest_gamma_within_one_se(tiny_protocol, tiny_vectors, tmp_path):
    table, choice = ART.tune_blend(tiny_protocol, item_vectors=tiny_vectors, cache_dir=tmp_path)
    assert len(table) == len(ART.BLEND_METHODS) * (1 + len(ART.BLEND_GAMMAS)) + 1 and table.chosen.sum() == 1
    eligible = table[(table["cf"] > 0) & (table["sem"] > 0)]
    top = eligible["ndcg@10"].round(3).idxmax()
    reach = round(eligible["ndcg@10"].round(3)[top] - round(eligible["ndcg@10_se"][top], 3), 3)
    ties = eligible[eligible["ndcg@10"].round(3) >= reach - 1e-12]
    row = table[table.chosen].iloc[0]
    assert row["sem"] == ties["sem"].min() and row["sem"] > 0  # a blend always uses the content score
    assert choice == {"method": row["method"], "weights": {"cf": 1.0, "sem": float(row["sem"])}}
    with pytest.raises(ValueError, match="every γ > 0"):
        ART.tune_blend(tiny_protocol, item_vectors=tiny_vectors, gammas=(0.0, 0.5))


def test_fused_scores_is_the_tuned_blend_of_cf_and_content(tiny_protocol, tiny_vectors, tmp_path):
    from recsuite.models import semantic

    proto = tiny_protocol
    chosen = ART.blend_setting(proto, item_vectors=tiny_vectors)  # tuned on valid when missing, then read back
    assert ART.blend_setting(proto, item_vectors=tiny_vectors) == chosen
    for es in ("valid", "test", "cold_test"):
        got = ART.fused_scores(es, protocol=proto, item_vectors=tiny_vectors, cache_dir=tmp_path)
        assert got.shape == (proto.n_users, proto.n_items) and got.dtype == np.float32
        h = proto.history(es)
        want = F.blend(
            {"cf": ART.cf_scores(ART.best_fast_model(proto), es, protocol=proto, cache=False),
             "sem": semantic.content_scores(h, tiny_vectors, center=True)},
            chosen["weights"], method=chosen["method"], catalogue=proto.catalogue(es),
            seen=None if es == "cold_test" else h,
        )
        np.testing.assert_array_equal(got, want)
        # with or without the protocol's masks, the same lists
        np.testing.assert_array_equal(M.topk_from_scores(got, 3), proto.rank(got, es, 3))
    # on cold items CF is constant, so the blend ranks exactly as the content recommender does
    cold = ART.fused_scores("cold_test", protocol=proto, item_vectors=tiny_vectors, cache_dir=tmp_path)
    content = semantic.content_scores(proto.history("cold_test"), tiny_vectors)
    np.testing.assert_array_equal(proto.rank(cold, "cold_test", 2), proto.rank(content, "cold_test", 2))


def test_fused_scores_reads_the_cache_and_rebuilds_it_identically(tiny_protocol, tiny_vectors, tmp_path):
    kw = dict(protocol=tiny_protocol, item_vectors=tiny_vectors, cache_dir=tmp_path)
    path = ART.fused_scores_path("test", **kw)
    assert not path.exists() and path.name.startswith("fused-test-")
    first = ART.fused_scores("test", **kw)
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    stamp = path.stat().st_mtime_ns
    np.testing.assert_array_equal(ART.fused_scores("test", **kw), first)
    assert path.stat().st_mtime_ns == stamp  # served from the file
    path.unlink()
    np.testing.assert_array_equal(ART.fused_scores("test", **kw), first)
    path.write_bytes(b"truncated")
    np.testing.assert_array_equal(ART.fused_scores("test", **kw), first)
    assert np.load(path)["scores"].shape == first.shape


def test_fused_scores_cache_key_and_errors(tiny_protocol, tiny_vectors, tmp_path):
    kw = dict(protocol=tiny_protocol, cache_dir=tmp_path)
    base = ART.fused_scores_path("test", item_vectors=tiny_vectors, **kw)
    chosen = ART.blend_setting(tiny_protocol, item_vectors=tiny_vectors)
    assert base == ART.fused_scores_path("test", weights=chosen["weights"], method=chosen["method"],
                                       item_vectors=tiny_vectors, **kw)
    others = [
        ART.fused_scores_path("valid", item_vectors=tiny_vectors, **kw),
        ART.fused_scores_path("test", weights={"cf": 1.0, "sem": 0.5}, item_vectors=tiny_vectors, **kw),
        ART.fused_scores_path("test", method="zscore", item_vectors=tiny_vectors, **kw),
        ART.fused_scores_path("test", item_vectors=tiny_vectors + 1, **kw),
        ART.fused_scores_path("test", cf_model="EASE" if ART.best_fast_model(tiny_protocol) != "EASE" else "ALS",
                            item_vectors=tiny_vectors, **kw),
        ART.fused_scores_path("test", item_vectors=tiny_vectors, seed=1, **kw),
    ]
    assert len({base, *others}) == 1 + len(others)
    s = ART.fused_scores("test", weights=[1.0, 0.5], item_vectors=tiny_vectors, cache=False, **kw)
    assert not any(tmp_path.iterdir())  # cache=False writes nothing (not even the CF scores)
    assert not np.array_equal(s, ART.fused_scores("test", item_vectors=tiny_vectors, cache=False, **kw))
    with pytest.raises(ValueError, match="eval_set must be one of"):
        ART.fused_scores("train", item_vectors=tiny_vectors, **kw)
    with pytest.raises(ValueError, match="weights must have one entry per source"):
        ART.fused_scores("test", weights={"als": 1.0}, item_vectors=tiny_vectors, **kw)
    with pytest.raises(ValueError, match="method must be one of"):
        ART.fused_scores("test", method="softmax", item_vectors=tiny_vectors, **kw)
    with pytest.raises(ValueError, match="item_vectors must have one row per item"):
        ART.fused_scores("test", item_vectors=np.vstack([tiny_vectors, tiny_vectors]), **kw)
    with pytest.raises(TypeError, match="protocol must be a recsuite.data.split.Protocol"):
        ART.fused_scores("test", protocol=object(), item_vectors=tiny_vectors, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="cache must be True or False"):
        ART.fused_scores("test", item_vectors=tiny_vectors, cache="yes", **kw)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        ART.fused_scores("test", item_vectors=tiny_vectors, seed=-1, **kw)

