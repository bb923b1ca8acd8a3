"""recsuite.models.cold_start: demographic popularity with back-off, ALS fold-in, stated preferences."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.models import cold_start as CS


def _toy():
    # users 0-3: young women; 4-5: young men; 6: an old man; 7, 8: new users (no history)
    rows = {0: [0, 1], 1: [0, 1], 2: [0], 3: [1, 2], 4: [3], 5: [3, 4], 6: [5]}
    X = sp.lil_matrix((9, 6), dtype=np.float32)
    for u, items in rows.items():
        X[u, items] = 1.0
    groups = pd.DataFrame({"age_bucket": ["18-24"] * 6 + ["56+", "18-24", "56+"],
                           "gender": ["F"] * 4 + ["M", "M", "M", "F", "M"]})
    return X.tocsr(), groups


def test_cells_back_off_to_coarser_groups_and_then_everyone():
    X, groups = _toy()
    levels = (("age_bucket", "gender"), ("age_bucket",), ())
    scores, info = CS.demographic_popularity(X, groups, [7, 8], min_users=3, levels=levels)
    overall = np.asarray(X.sum(axis=0)).ravel() / 7
    # user 7 (18-24, F): four training users in its cell, who watched items 0, 1, 2 three, three and one time(s)
    np.testing.assert_allclose(scores[0], np.array([3, 3, 1, 0, 0, 0]) / 4 + CS.TIE_WEIGHT * overall, rtol=1e-6)
    # user 8 (56+, M): one user in (56+, M) and in (56+): too few, so everyone
    np.testing.assert_allclose(scores[1], overall * (1 + CS.TIE_WEIGHT), rtol=1e-6)
    assert info.level.tolist() == ["age_bucket × gender", "everyone"]
    assert info.cell_users.tolist() == [4, 7] and info.index.tolist() == [7, 8]


def test_min_users_moves_the_back_off_and_ties_follow_overall_popularity():
    X, groups = _toy()
    levels = (("age_bucket", "gender"), ("age_bucket",), ())
    _, info = CS.demographic_popularity(X, groups, [7], min_users=5, levels=levels)
    assert info.level.tolist() == ["age_bucket"] and info.cell_users.tolist() == [6]  # 18-24: users 0-5
    scores, _ = CS.demographic_popularity(X, groups, [7], min_users=1, levels=levels)
    # items 0 and 1 tie in the cell (3 of 4); overall they tie too (3 each): equal scores, no invented order
    assert scores[0, 0] == pytest.approx(scores[0, 1])
    assert scores[0, 3] > scores[0, 5] == pytest.approx(CS.TIE_WEIGHT / 7)  # unwatched in the cell: overall decides


def test_demographic_popularity_refuses_bad_input():
    X, groups = _toy()
    with pytest.raises(ValueError, match="one row per user index"):
        CS.demographic_popularity(X, groups.iloc[:3], [7])
    with pytest.raises(ValueError, match=r"ending with \(\)"):
        CS.demographic_popularity(X, groups, [7], levels=(("gender",),))
    with pytest.raises(ValueError, match=r"groups must have columns \[.occupation.\], missing"):
        CS.demographic_popularity(X, groups, [7], levels=(("occupation",), ()))
    levels = (("gender",), ())
    with pytest.raises(ValueError, match="users holds"):
        CS.demographic_popularity(X, groups, [9], levels=levels)
    with pytest.raises(ValueError, match="no interactions"):
        CS.demographic_popularity(sp.csr_matrix((9, 6)), groups, [7], levels=levels)
    with pytest.raises(ValueError, match="min_users"):
        CS.demographic_popularity(X, groups, [7], min_users=0, levels=levels)


def test_fold_in_is_implicits_recalculate_user():
    from recsuite.models import cf

    X = sp.random(80, 50, density=0.15, random_state=0, format="csr")
    X.data[:] = 1.0
    m = cf.fit_implicit("ALS", X, {"factors": 8, "regularization": 0.05, "alpha": 2.0, "iterations": 4}, seed=0)
    R = sp.random(6, 50, density=0.08, random_state=1, format="csr")
    R.data[:] = 1.0
    R = sp.vstack([R, sp.csr_matrix((1, 50))]).tocsr()  # and one new user with nothing yet
    mine = CS.als_fold_in(m.item_factors, R, m.params["regularization"], m.params["alpha"])
    theirs = m.model.recalculate_user(np.arange(R.shape[0]), R)
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
    assert not mine[-1].any()


def test_fold_in_of_a_training_user_gives_back_their_factor():
    from recsuite.models import cf

    X = sp.random(60, 40, density=0.2, random_state=2, format="csr")
    X.data[:] = 1.0
    m = cf.fit_implicit("ALS", X, {"factors": 6, "regularization": 0.1, "alpha": 1.0, "iterations": 6}, seed=0)
    again = CS.als_fold_in(m.item_factors, X[:5], 0.1, 1.0)
    # ALS ends on an item step, so a user step from the final item factors moves the users slightly
    assert np.corrcoef(again.ravel(), m.user_factors[:5].ravel())[0, 1] > 0.95


def test_fold_in_refuses_bad_input():
    Y = np.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match=r"rows must have shape \(\*, 5\)"):
        CS.als_fold_in(Y, sp.csr_matrix((2, 4)), 0.1)
    with pytest.raises(TypeError, match="rows must be a 2-D scipy.sparse matrix"):
        CS.als_fold_in(Y, np.ones((2, 5)), 0.1)
    with pytest.raises(ValueError, match="non-negative"):
        CS.als_fold_in(Y, sp.csr_matrix(-np.ones((1, 5))), 0.1)
    with pytest.raises(ValueError, match="alpha"):
        CS.als_fold_in(Y, sp.csr_matrix((1, 5)), 0.1, alpha=0)


def test_genre_sentence():
    assert CS.genre_sentence(["Comedy"]) == "I like comedy films"
    assert CS.genre_sentence(["Comedy", "Romance", "Comedy", "War"]) == "I like comedy, romance and war films"
    assert CS.genre_sentence([]) == ""
    assert CS.genre_sentence(np.array(["Film-Noir"]), prefix="", suffix="") == "film-noir"
    with pytest.raises(TypeError, match="genres must be a list"):
        CS.genre_sentence("Comedy")
    with pytest.raises(ValueError, match=r"genres\[1\]"):
        CS.genre_sentence(["Comedy", ""])


def test_a_fitted_model_scores_new_people_with_what_they_gave():
    X, groups = _toy()
    levels = (("age_bucket", "gender"), ("age_bucket",), ())
    model = CS.DemographicPopularity(levels, min_users=3).fit(X, groups)
    people = pd.DataFrame({"age_bucket": ["18-24", "18-24", None, "56+"], "gender": ["F", None, "F", "M"]})
    scores, info = model.scores(people)
    assert info.level.tolist() == ["age_bucket × gender", "age_bucket", "everyone", "everyone"]
    assert info.cell_users.tolist() == [4, 6, 7, 7]
    same, _ = CS.demographic_popularity(X, groups, [7], min_users=3, levels=levels)
    np.testing.assert_array_equal(scores[0], same[0])  # the one-off function and the kept fit agree
    with pytest.raises(RuntimeError, match="call fit"):
        CS.DemographicPopularity(levels).scores(people)
    with pytest.raises(ValueError, match=r"people must have columns"):
        model.scores(people[["gender"]])
    bad = groups.copy()
    bad.loc[0, "gender"] = None
    with pytest.raises(ValueError, match="missing values"):
        CS.DemographicPopularity(levels).fit(X, bad)


def test_groups_are_read_by_user_index_and_keys_by_value():
    X, groups = _toy()
    levels = (("age_bucket", "gender"), ("age_bucket",), ())
    with pytest.raises(ValueError, match="indexed by user index"):
        CS.DemographicPopularity(levels, min_users=3).fit(X, groups.iloc[::-1])
    numeric = pd.DataFrame({"age": [1, 1, 1, 1, 2, 2, 2, 2, 2]})  # an int column; a person with a gap reads as float
    model = CS.DemographicPopularity((("age",), ()), min_users=3).fit(X, numeric)
    _, info = model.scores(pd.DataFrame({"age": [1, None]}))
    assert info.level.tolist() == ["age", "everyone"]
    model = CS.DemographicPopularity(levels, min_users=3).fit(X, groups)
    before = model.scores(groups.iloc[[7]])[0]
    bad = groups.copy()
    bad.loc[0, "gender"] = None
    with pytest.raises(ValueError, match="missing values"):
        model.fit(X, bad)
    np.testing.assert_array_equal(model.scores(groups.iloc[[7]])[0], before)  # a failed refit keeps the last fit


def test_fold_in_ignores_stored_zeros_and_names_a_singular_system():
    Y = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    one = sp.csr_matrix((np.array([1.0], np.float32), (np.array([0]), np.array([1]))), shape=(1, 5))
    with_zero = sp.csr_matrix((np.array([1.0, 0.0], np.float32), (np.array([0, 0]), np.array([1, 2]))), shape=(1, 5))
    np.testing.assert_array_equal(CS.als_fold_in(Y, with_zero, 0.1), CS.als_fold_in(Y, one, 0.1))
    with pytest.raises(ValueError, match="singular; give regularization > 0"):
        CS.als_fold_in(np.ones((5, 2), np.float32), one, 0.0)
