"""recsuite.evaluation.selection: selection rules that round before they compare, and break ties by simplicity."""

import numpy as np
import pandas as pd
import pytest

from recsuite.evaluation.selection import best_within, one_se_rule


def grid():
    return pd.DataFrame({"factors": [32, 32, 64, 64, 128], "reg": [1.0, 10.0, 1.0, 10.0, 10.0],
                         "ndcg": [0.1342, 0.1310, 0.1275, 0.1369, 0.1374]})


def test_rounded_argmax_with_ties_to_the_simplest():
    # 0.1369 and 0.1374 both round to 0.137: the tie goes to fewer factors
    assert one_se_rule(grid(), "ndcg", 0.0, simplest=[("factors", True)]) == 3
    # a plain argmax would take the last row, and noise of 1e-4 would decide between the two
    assert grid().ndcg.idxmax() == 4


def test_the_choice_survives_noise_below_the_rounding():
    rng = np.random.default_rng(0)
    for _ in range(200):
        noisy = grid().assign(ndcg=grid().ndcg + rng.uniform(-1e-4, 1e-4, 5))
        assert one_se_rule(noisy, "ndcg", 0.0, simplest=[("factors", True)]) == 3


def test_one_standard_error_takes_the_simplest_within_reach():
    g = grid()
    # best 0.137, SE 0.004 -> threshold 0.133: rows 0 (0.134), 3, 4 qualify; fewest factors, then strongest reg
    assert one_se_rule(g, "ndcg", 0.004, simplest=[("factors", True), ("reg", False)]) == 0
    g["se"] = 0.001
    assert one_se_rule(g, "ndcg", "se", simplest=[("factors", True)]) == 3  # threshold 0.136
    # without a simplicity order, ties go to the earlier row
    assert one_se_rule(g, "ndcg", 0.004) == 0


def test_best_within_a_budget():
    t = pd.DataFrame({"lam": [0.0, 0.2, 0.4, 0.6, 0.8], "loss": [0.0, 0.01, 0.0204, 0.029, 0.05],
                      "gain": [0.0, 0.05, 0.1001, 0.1204, 0.2]})
    assert best_within(t, "gain", "loss", 0.03) == 3
    assert best_within(t, "gain", "loss", 0.02) == 2  # 0.0204 rounds to 0.020: inside
    assert best_within(t, "gain", "loss", -0.01) is None
    tied = t.assign(gain=[0.0, 0.1, 0.1, 0.1, 0.3])
    assert best_within(tied, "gain", "loss", 0.03, simplest=[("lam", True)]) == 1
    assert best_within(tied, "gain", "loss", 0.03, simplest=[("lam", False)]) == 3


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no column"):
        one_se_rule(grid(), "recall", 0.0)
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        one_se_rule(pd.DataFrame(), "ndcg", 0.0)
    with pytest.raises(ValueError, match="se must be a non-negative number"):
        one_se_rule(grid(), "ndcg", -1.0)
    with pytest.raises(ValueError, match="must hold finite numbers"):
        one_se_rule(grid().assign(ndcg=[0.1, np.nan, 0.1, 0.1, 0.1]), "ndcg", 0.0)
    with pytest.raises(ValueError, match="decimals must be an int"):
        one_se_rule(grid(), "ndcg", 0.0, decimals=-1)
    with pytest.raises(ValueError, match="simplest must be a list of"):
        one_se_rule(grid(), "ndcg", 0.0, simplest="factors")
    with pytest.raises(TypeError, match="ascending flag must be True or False, got 'False'"):
        one_se_rule(grid(), "ndcg", 0.0, simplest=[("factors", "False")])
    with pytest.raises(ValueError, match="budget must be a finite number"):
        best_within(grid(), "ndcg", "reg", float("nan"))
