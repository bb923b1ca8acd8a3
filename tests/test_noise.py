"""recsuite.course.noise.Expect: printed checks with tolerances that fail loudly, except where told not to."""

import json

import numpy as np
import pytest

from recsuite.course.noise import Expect, ExpectationError


def test_inside_the_tolerance_prints_and_returns(capsys):
    expect = Expect("01_x")
    assert expect("test NDCG@10", 0.1261, 0.126, tol=0.004) is None
    assert capsys.readouterr().out.strip() == "test NDCG@10: 0.1261 (expected 0.126 ± 0.004)"
    expect("edge", 0.130, 0.126, tol=0.004)  # the boundary counts as inside


def test_outside_the_tolerance_raises_with_the_numbers():
    with pytest.raises(ExpectationError, match=r"01_x: test NDCG@10 is 0.1310, outside the expected 0.126 ± 0.004 "
                                                r"\(off by \+0.0050\)"):
        Expect("01_x")("test NDCG@10", 0.131, 0.126, tol=0.004)


def test_not_enforced_reports_instead(capsys):
    Expect("01_x", enforce=False)("m", 0.2, 0.1, tol=0.01)
    assert "outside the tolerance (not enforced" in capsys.readouterr().out


def test_record_mode_logs_every_check_and_never_raises(tmp_path, monkeypatch):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("RECSUITE_EXPECT", "record")
    monkeypatch.setenv("RECSUITE_EXPECT_LOG", str(log))
    e = Expect("02_y")
    e("a", 1.0, 0.0, tol=0.5)
    e.choice("rule", {"k": (1, 2)}, {"k": [1, 2]})
    e.choice("other", "x", "y")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["name"], r["ok"]) for r in rows] == [("a", False), ("rule", True), ("other", False)]
    assert rows[0]["value"] == 1.0 and rows[0]["tol"] == 0.5 and rows[1]["value"] == {"k": [1, 2]}


def test_choices_compare_as_data(capsys):
    e = Expect("03_z")
    e.choice("ALS setting", {"factors": np.int64(64)}, {"factors": 64})
    assert capsys.readouterr().out.strip() == "ALS setting: {'factors': 64}"
    with pytest.raises(ExpectationError, match="chose 'b', expected 'a'"):
        e.choice("which", "b", "a")


def test_bad_input_is_named(monkeypatch):
    e = Expect("01_x")
    with pytest.raises(TypeError, match="value of check 'm' must be a number"):
        e("m", "0.1", 0.1, tol=0.01)
    with pytest.raises(ValueError, match="value of check 'm' must be finite"):
        e("m", float("nan"), 0.1, tol=0.01)
    with pytest.raises(ValueError, match="tol of check 'm' must be >= 0"):
        e("m", 0.1, 0.1, tol=-1)
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        e("", 0.1, 0.1, tol=0.01)
    with pytest.raises(TypeError, match="notebook must be a non-empty str"):
        Expect("")
    with pytest.raises(TypeError, match="enforce must be True or False"):
        Expect("x", enforce="yes")
    monkeypatch.setenv("RECSUITE_EXPECT", "loose")
    with pytest.raises(ValueError, match="RECSUITE_EXPECT must be"):
        e("m", 0.5, 0.1, tol=0.01)


def test_defaults_decide_enforcement_and_name_the_changed_knob(capsys):
    knobs = {"TOP_K": 10, "GRID": [1, 2], "SEED": 3}
    at_defaults = Expect("nb", defaults={"TOP_K": 10, "GRID": (1, 2)}, knobs=knobs)
    assert at_defaults.enforce and at_defaults.changed == {}
    with pytest.raises(ExpectationError):
        at_defaults("m", 0.2, 0.1, tol=0.01)
    changed = Expect("nb", defaults={"TOP_K": 20, "GRID": (1, 2)}, knobs=knobs)
    assert not changed.enforce and changed.changed == {"TOP_K": 10}
    changed("m", 0.2, 0.1, tol=0.01)
    assert "not enforced: TOP_K = 10 is not its default" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no value for \\['EPOCHS'\\]"):
        Expect("nb", defaults={"EPOCHS": 3}, knobs=knobs)
    with pytest.raises(ValueError, match="together"):
        Expect("nb", defaults={"TOP_K": 10})
    with pytest.raises(TypeError, match="knobs must be a mapping"):
        Expect("nb", defaults={"TOP_K": 10}, knobs=[10])
