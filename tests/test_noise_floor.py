"""The noise-floor report: spreads over variants and seeds, coverage by the tolerances, re-judging against new ones."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("noise_floor", ROOT / "benchmarks" / "noise_floor.py")
nf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nf)


def run(variant, seed, value, verdict):
    result = {"notebook": "03_x", "model": "ALS", "eval_set": "test", "metrics": {"ndcg@10": value, "users": 5}}
    checks = [{"notebook": "03_x", "name": "ALS ndcg", "value": value, "expected": 0.125, "tol": 0.002, "ok": True},
              {"notebook": "03_x", "name": "verdict", "value": verdict, "expected": "higher", "ok": True}]
    return {"variant": variant, "seed": seed, "results": [result], "checks": checks, "status": {}}


RUNS = {"native-seed0": run("native", 0, 0.1250, "higher"), "threads-1-seed0": run("threads-1", 0, 0.1252, "higher"),
        "native-seed1": run("native", 1, 0.1220, "higher"), "native-seed2": run("native", 2, 0.1260, "lower")}


def test_spreads_coverage_and_stability():
    report = nf.analyse(RUNS)
    (metric,) = report["metrics"]
    assert metric["variant_spread"] == pytest.approx(0.0002) and metric["seed_spread"] == pytest.approx(0.004)
    (check,) = report["checks"]
    assert check["min"] == 0.122 and check["max"] == 0.126 and not check["covered"]   # 0.122 is 0.003 away
    (choice,) = report["choices"]
    assert not choice["stable"] and choice["distinct"] == ['"higher"', '"lower"']
    assert "| 03 | ALS | " in nf.summary(report) and "**no**" in nf.markdown(report, "avx2")


def test_against_current_expectations(tmp_path):
    log = tmp_path / "checks.jsonl"
    log.write_text(json.dumps({"notebook": "03_x", "name": "ALS ndcg", "value": 0.125, "expected": 0.124, "tol": 0.003,
                               "ok": True}) + "\n")
    report = nf.analyse(RUNS, nf.current_expectations([log]))
    (check,) = report["checks"]
    assert (check["expected"], check["tol"], check["covered"], check["retired"]) == (0.124, 0.003, True, False)
    (choice,) = report["choices"]
    assert choice["retired"] and "retired" in nf.markdown(report, "avx2")


def test_against_an_empty_log_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no checks"):
        nf.current_expectations([tmp_path / "empty.jsonl"])


def test_a_narrowed_choice_is_judged_on_the_keys_it_keeps(tmp_path):
    runs = {}
    for name, extra in (("native-seed0", "same"), ("native-seed1", "flips")):
        r = run("native", int(name[-1]), 0.125, "higher")
        r["checks"][1]["value"] = {"kept": "higher", "dropped": extra}
        runs[name] = r
    log = tmp_path / "checks.jsonl"
    log.write_text(json.dumps({"notebook": "03_x", "name": "verdict", "value": {"kept": "higher"},
                               "expected": {"kept": "higher"}, "ok": True}) + "\n")
    assert not nf.analyse(runs)["choices"][0]["stable"]
    (choice,) = nf.analyse(runs, nf.current_expectations([log]))["choices"]
    assert choice["stable"] and choice["distinct"] == ['{"kept": "higher"}'] and not choice["retired"]


def test_a_choice_made_the_same_wrong_way_everywhere_is_reported(tmp_path):
    log = tmp_path / "checks.jsonl"
    log.write_text(json.dumps({"notebook": "03_x", "name": "verdict", "value": "lower", "expected": "lower",
                               "ok": True}) + "\n"
                   + json.dumps({"notebook": "03_x", "name": "ALS ndcg", "value": True, "expected": True, "ok": True}) + "\n")
    runs = {k: v for k, v in RUNS.items() if k != "native-seed2"}   # every run says "higher"
    report = nf.analyse(runs, nf.current_expectations([log]))
    (choice,) = report["choices"]
    assert choice["stable"] and not choice["as_expected"]
    (check,) = report["checks"]
    assert check["retired"]          # a numeric check that became a choice is not judged with a tolerance
