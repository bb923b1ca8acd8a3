"""Inputs that used to give a silently wrong answer (or an error naming nothing) are refused, naming the argument.

One case per defect of the second bad-input review; each call here returned a wrong number or crashed obscurely
before its fix.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.combine import rerank
from recsuite.core import device, optional
from recsuite.course import results
from recsuite.evaluation import metrics as M
from recsuite.evaluation.selection import one_se_rule
from recsuite.models import cf, semantic
from recsuite.models.popularity import popularity_scores
from recsuite.models.recbole import tie_sensitive_users

TRUTH = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=np.float32))
TOP = np.array([[1, 4], [2, 0]])


def test_integer_scores_rank_exactly_not_through_float32():
    # two Unix timestamps one minute apart are one float32 value: the later one must still come first
    assert M.topk_from_scores(np.array([[1_700_000_000, 1_700_000_063]]), 1).tolist() == [[1]]
    with pytest.raises(TypeError, match="scores must be a real int or float array"):
        M.topk_from_scores(np.array([[1 + 1j, 2]]), 1)
    with pytest.raises(TypeError, match="scores"):
        M.topk_from_scores(np.array([[True, False]]), 1)


def test_evaluate_refuses_item_arrays_of_another_catalogue():
    with pytest.raises(ValueError, match=r"item_popularity must hold one count per item of truth \(5\)"):
        M.evaluate(TOP, TRUTH, k=2, item_popularity=np.array([3, 2, 1]))
    with pytest.raises(ValueError, match=r"item_vectors\['genre'\] must hold one row per item of truth \(5\)"):
        M.evaluate(TOP, TRUTH, k=2, item_vectors={"genre": np.ones((4, 3))})
    row = M.evaluate(TOP, TRUTH, k=2, item_popularity=np.array([3, 2, 1, 0, 1]), item_vectors=np.eye(5))
    assert {"novelty@2", "ild@2"} <= set(row)


def test_negative_relevance_is_refused_not_counted_as_a_hit():
    with pytest.raises(ValueError, match="truth"):
        M.ndcg_at_k(np.array([[0]]), sp.csr_matrix(np.array([[-1.0, 0.0, 0.0]])), 1)
    with pytest.raises(ValueError, match="history must hold non-negative"):
        popularity_scores(sp.csr_matrix(np.array([[-1.0, 0.0]])))


def test_tie_check_refuses_a_k_beyond_the_catalogue():
    with pytest.raises(ValueError, match=r"k must be <= n_items \(5\), got 50"):
        tie_sensitive_users(np.zeros((2, 5)), TRUTH, k=50)


def test_a_grid_may_not_set_what_the_tuning_holds_fixed():
    from recsuite.data.split import make_protocol

    rng = np.random.default_rng(0)
    log = pd.DataFrame([(u, i, 1.0, 100 * u + t) for u in range(20) for t, i in enumerate(rng.choice(30, 8, replace=False))],
                       columns=["user_id", "item_id", "rating", "timestamp"])
    proto = make_protocol(log, cold_frac=0.2, seed=0)
    with pytest.raises(ValueError, match=r"grid settings may not set \['iterations'\] for ALS"):
        cf.tune_fast_model("ALS", protocol=proto, grid=[{"factors": 8, "regularization": 1.0, "iterations": 50}])


def test_one_se_rule_refuses_negative_standard_errors():
    table = pd.DataFrame({"m": [0.5, 0.4], "se": [-0.1, 0.01]})
    with pytest.raises(ValueError, match=r"table\['se'\] must hold non-negative standard errors"):
        one_se_rule(table, "m", se="se")


def test_a_leaderboard_row_holds_numbers_only(tmp_path):
    row = {f"{m}@10": 0.1 for m in M.RANKING}
    with pytest.raises(TypeError, match=r"metrics\['ndcg@10'\] must be a real number, got None"):
        results.record("01", "pop", "popularity", "test", {**row, "ndcg@10": None}, path=tmp_path / "r.json")
    with pytest.raises(TypeError, match=r"metrics\['recall@10'\]"):
        results.record("01", "pop", "popularity", "test", {**row, "recall@10": "0.1"}, path=tmp_path / "r.json")
    assert results.record("01", "pop", "popularity", "test", {**row, "users": 3}, path=tmp_path / "r.json")["metrics"]["users"] == 3


def test_a_positional_template_field_is_named_not_an_index_error():
    items = pd.DataFrame({"title": ["Heat (1995)"], "year": [1995], "genres": [["Action"]]})
    for template in ("{title} {}", "{title} {0}"):
        with pytest.raises(ValueError, match="template may use only the named fields"):
            semantic.item_text(items, template)


def test_a_padded_candidate_slot_is_named():
    with pytest.raises(ValueError, match=r"cand_items holds -1 \(NO_ITEM"):
        rerank.sort_by_score(np.array([[0]]), np.array([[0, -1]]), np.array([[1.0, 0.5]]))


def test_a_device_that_is_not_there_is_refused():
    with pytest.raises(ValueError, match="cuda"):
        device.get_device("cuda:7")


def test_require_names_the_extra_only_for_the_missing_module_itself(tmp_path, monkeypatch):
    with pytest.raises(ImportError, match=r'pip install "recsuite\[cf\]"'):
        optional.require("no_such_module_anywhere", "cf")
    (tmp_path / "half_installed.py").write_text("import no_such_dependency_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_anywhere") as err:
        optional.require("half_installed", "cf")
    assert "recsuite[" not in str(err.value)


def test_a_text_profile_refuses_an_item_template_it_would_ignore():
    from recsuite.models import profiles

    with pytest.raises(ValueError, match="template applies to kind='item-profile' only"):
        profiles.user_vectors("valid", "text-profile", template="title", protocol=object())


def test_tune_blend_refuses_a_single_method_string():
    from recsuite.course import artifacts

    with pytest.raises(TypeError, match="methods must be a list"):
        artifacts.tune_blend(object(), methods="minmax")


def test_an_in_place_run_with_parameters_is_refused(tmp_path):
    import json

    from recsuite.course import runner

    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "id": "p1", "metadata": {"tags": ["parameters"]}, "source": "SEED = 0",
                                          "outputs": [], "execution_count": None}],
                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(ValueError, match="parameters cannot be combined with out_dir=None"):
        runner.execute([nb], None, parameters={"SEED": 1})


def test_a_damaged_model_config_is_named(tmp_path):
    from recsuite.models import encoders

    (tmp_path / "config.json").write_text("{ not json")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match="unreadable config.json"):
        encoders.max_positions(tmp_path)


def test_cost_run_checks_its_parameters_before_starting_a_process():
    from recsuite.scale import cost

    with pytest.raises(ValueError, match=r"unknown \['rnak'\]"):
        cost.cost_run("implicit", 1, rnak=32)
    with pytest.raises(TypeError, match="params must be numbers"):
        cost.cost_run("implicit", 1, seed=object())


def test_features_are_read_by_user_index_not_by_the_tables_row_order():
    from recsuite.combine import candidates

    frame = pd.DataFrame({"user_idx": [0, 1], "item_idx": [0, 0]})
    shuffled = pd.DataFrame({"age": [30, 20]}, index=[1, 0])
    with pytest.raises(ValueError, match=r"user_table must be indexed by user index 0\.\.1 in order"):
        candidates.add_features(frame, user_table=shuffled)
    ok = candidates.add_features(frame, user_table=shuffled.sort_index())
    assert ok["user_age"].tolist() == [20, 30]


# -- the rest of the second review's findings ---------------------------------------------------------------
def test_metrics_refuse_a_truth_with_no_relevant_item_instead_of_scoring_zero():
    empty = sp.csr_matrix((2, 5), dtype=np.float32)
    for metric in (M.ndcg_at_k, M.recall_at_k, M.precision_at_k, M.hit_rate_at_k, M.mrr_at_k, M.map_at_k):
        with pytest.raises(ValueError, match="truth must hold at least one relevant item .*all 2 rows are empty"):
            metric(TOP, empty, 2)
    with pytest.raises(ValueError, match="at least one relevant item"):
        M.evaluate(np.zeros((0, 10), int), sp.csr_matrix((0, 50)))
    with pytest.raises(ValueError, match="gini_index needs at least one recommended item"):
        M.gini_index(np.full((3, 10), -1), n_items=100)
    assert M.ndcg_at_k(TOP, TRUTH, 2) > 0  # one relevant row is enough


def test_candidate_recall_and_calibration_refuse_empty_truth():
    from recsuite.combine import candidates, objectives

    frame = pd.DataFrame({"user_idx": [0, 1], "item_idx": [1, 2]})
    with pytest.raises(ValueError, match="truth_csr must hold at least one relevant item"):
        candidates.recall_of_candidates(frame, sp.csr_matrix((2, 5), dtype=np.float32))
    assert candidates.recall_of_candidates(frame, TRUTH) == pytest.approx(0.25)
    genres = np.eye(5, 3)
    with pytest.raises(ValueError, match="user_genre_dist must give at least one user a genre distribution"):
        objectives.calibration_kl(TOP, genres, np.zeros((2, 3)), k=2)
    with pytest.raises(TypeError, match="topk must be a 2-D int array"):
        objectives.calibration_kl(TOP.astype(float), genres, np.ones((2, 3)) / 3, k=2)


def test_repeated_interactions_are_refused_not_summed_into_a_heavier_edge():
    from recsuite.models.ease import fit_ease

    dup = sp.coo_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [2, 2, 0])), shape=(2, 3))
    with pytest.raises(ValueError, match=r"repeats \(user, item\) entries \(e.g. \(0, 2\) more than once"):
        fit_ease(dup)
    with pytest.raises(ValueError, match="repeats"):
        fit_ease(sp.csr_matrix((np.ones(2), np.array([2, 2]), np.array([0, 2, 2])), shape=(2, 3)))  # CSR duplicates
    fit_ease(sp.coo_matrix(([1.0, 1.0], ([0, 1], [2, 0])), shape=(2, 3)))  # distinct entries fit


def test_negative_history_weights_are_no_interaction_to_average():
    with pytest.raises(ValueError, match="history must hold non-negative weights"):
        semantic.user_profiles(sp.csr_matrix([[-1.0, 0.0]]), np.eye(2, dtype=np.float32))


def test_profile_texts_refuse_an_item_table_with_repeated_ids():
    from recsuite.models import profiles

    users = pd.DataFrame({"user_id": [1], "age": [30], "gender": ["F"], "occupation": ["writer"], "zip": ["1"]})
    inter = pd.DataFrame({"user_id": [1], "item_id": [5], "rating": [4], "timestamp": [1]})
    items = pd.DataFrame({"item_id": [5, 5], "title": ["A", "B"], "year": [1990, 1991], "genres": [["Drama"], ["War"]]})
    with pytest.raises(ValueError, match=r"items_df repeats item_id values, e.g. \[5\]"):
        profiles.profile_texts(users, inter, items)


def test_wrong_kinds_raise_type_errors_and_huge_ints_name_the_argument():
    from recsuite.core import checks

    with pytest.raises(TypeError, match=r"catalogue must be a boolean mask of shape \(3,\)"):
        checks.bool_mask("catalogue", np.array([0, 1, 1]), 3)
    with pytest.raises(ValueError, match=r"catalogue must be a boolean mask of shape \(3,\)"):
        checks.bool_mask("catalogue", np.ones(4, bool), 3)
    with pytest.raises(TypeError, match="scores must be numeric"):
        checks.score_matrix("scores", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="level must be a finite number, got an int of 401 digits"):
        checks.number("level", 10**400)
    assert [s.tolist() for s in checks.sequences("seqs", ([2, 0], [], np.array([1])), 3)] == [[2, 0], [], [1]]
    with pytest.raises(TypeError, match=r"seqs must be a list of 1-D item-index arrays .* use list\(array\)"):
        checks.sequences("seqs", np.array([[0, 1], [1, 2]]), 3)  # a 2-D array is not read row by row
    with pytest.raises(TypeError, match="seqs must be a list of 1-D item-index arrays"):
        checks.sequences("seqs", {0: [1]}, 3)
    with pytest.raises(ValueError, match=r"seqs\[1\] holds 0..3, outside \[0, 3\)"):
        checks.sequences("seqs", [[0], [3, 0]], 3)
    with pytest.raises(TypeError, match="topk must be a 2-D int array"):
        rerank.sort_by_score(np.array([[5.0, 3.0]]), np.array([[5, 3, 9]]), np.array([[0.9, 0.5, 0.1]]))


def test_a_partial_adapter_folder_is_refused_not_loaded_with_invented_settings(tmp_path):
    pytest.importorskip("peft")
    from recsuite.models import lora

    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds adapter_config.json but no twotower.json"):
        lora.load_adapter(tmp_path)
