"""The results file: merging, atomic rewrite, validation, markdown."""

import json

import pytest

from recsuite.course import results as R
from recsuite.evaluation.metrics import RANKING

METRICS = {f"{m}@10": 0.1 for m in RANKING}


def test_record_appends_and_replaces_same_key(tmp_path):
    path = tmp_path / "results.json"
    R.record("01", "pop", "popularity", "test", METRICS, fit_seconds=0.5, path=path)
    R.record("01", "pop", "popularity", "valid", METRICS, path=path)
    R.record("01", "pop", "popularity", "test", {**METRICS, "ndcg@10": 0.2}, path=path)
    runs = json.loads(path.read_text())["runs"]
    assert [(r["eval_set"], r["metrics"]["ndcg@10"]) for r in runs] == [("valid", 0.1), ("test", 0.2)]
    assert set(runs[0]) >= {"notebook", "model", "family", "eval_set", "k", "metrics", "fit_seconds", "params"}
    assert not list(tmp_path.glob(".results-*"))  # no temp files left behind


def test_record_keeps_extra_fields_and_numpy_scalars(tmp_path):
    import numpy as np

    path = tmp_path / "r.json"
    row = R.record("03", "BPR", "cf", "test", {**METRICS, "ndcg@10": np.float32(0.25)}, path=path, recbole_eval={"ndcg@10": 0.25})
    assert row["recbole_eval"] == {"ndcg@10": 0.25}
    assert isinstance(json.loads(path.read_text())["runs"][0]["metrics"]["ndcg@10"], float)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "magic"}, "family"),
        ({"eval_set": "train"}, "eval_set"),
        ({"metrics": {"ndcg@10": 0.1}}, "lacks"),
        ({"metrics": {**METRICS, "ndcg@10": float("nan")}}, "finite"),
        ({"fit_seconds": -1}, "fit_seconds"),
    ],
)
def test_record_rejects_bad_rows(tmp_path, kwargs, message):
    args = dict(notebook="01", model="m", family="cf", eval_set="test", metrics=METRICS, path=tmp_path / "r.json")
    with pytest.raises(ValueError, match=message):
        R.record(**(args | kwargs))


def test_corrupt_file_is_an_error_not_overwritten(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"something": 1}')
    with pytest.raises(ValueError, match="not a recsuite results file"):
        R.record("01", "m", "cf", "test", METRICS, path=path)
    assert json.loads(path.read_text()) == {"something": 1}


def test_markdown_lists_each_eval_set_sorted(tmp_path):
    path = tmp_path / "results.json"
    R.record("01", "low", "popularity", "test", METRICS, path=path)
    R.record("03", "high", "cf", "test", {**METRICS, "ndcg@10": 0.3}, path=path)
    text = R.write_markdown(path).read_text()
    assert "## test" in text and "## valid" not in text
    assert text.index("high") < text.index("low")


def test_markdown_survives_results_at_another_k(tmp_path):
    path = tmp_path / "results.json"
    R.record("02", "content", "semantic", "test", {f"{m}@20": 0.1 for m in RANKING}, k=20, path=path)
    text = R.write_markdown(path).read_text()
    assert "## test" in text and "content" in text


def _record_many(path, worker, n):
    for i in range(n):
        R.record("01", f"m{worker}-{i}", "popularity", "test", METRICS, path=path)


def test_two_processes_recording_on_one_file_lose_no_rows(tmp_path):
    import multiprocessing as mp

    path = tmp_path / "results.json"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(path, w, 40)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    runs = R.load(path)["runs"]
    assert len(runs) == 80 and len({r["model"] for r in runs}) == 80


# -- bad input: one table per public function -------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"family": "magic"}, ValueError, "family must be one of"),
        ({"eval_set": "train"}, ValueError, "eval_set must be one of"),
        ({"metrics": [0.1]}, TypeError, "metrics must be a dict"),
        ({"metrics": {"ndcg@10": 0.1}}, ValueError, "metrics lacks"),
        ({"metrics": {**METRICS, "ndcg@10": float("nan")}}, ValueError, "finite"),
        ({"k": 0}, ValueError, "k must be an int"),
        ({"k": "10"}, TypeError, "k must be an int"),
        ({"fit_seconds": -1.0}, ValueError, "fit_seconds"),
        ({"fit_seconds": "1s"}, TypeError, "fit_seconds"),
        ({"params": [1, 2]}, TypeError, "params must be a dict"),
        ({"notebook": ""}, ValueError, "notebook"),
        ({"notebook": 1}, TypeError, "notebook"),
        ({"model": None}, TypeError, "model"),
        ({"path": 3}, TypeError, "path must be a str or Path"),
    ],
)
def test_record_refuses_bad_input_naming_the_argument(tmp_path, kwargs, error, message):
    args = {"notebook": "01", "model": "pop", "family": "popularity", "eval_set": "test", "metrics": METRICS,
            "path": tmp_path / "r.json"} | kwargs
    with pytest.raises(error, match=message):
        R.record(**args)
    assert not (tmp_path / "r.json").exists()  # nothing half-written


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p: R.table(p, eval_set="train"), ValueError, "eval_set must be one of"),
        (lambda p: R.table(42), TypeError, "path"),
        (lambda p: R.load(p.with_name("bad.json")), ValueError, "not a recsuite results file"),
        (lambda p: R.write_markdown(p.with_name("bad.json")), ValueError, "not a recsuite results file"),
        (lambda p: R.results_path(1.5), TypeError, "path"),
    ],
)
def test_reading_functions_refuse_bad_input(tmp_path, call, error, message):
    (tmp_path / "bad.json").write_text(json.dumps([1, 2]))
    with pytest.raises(error, match=message):
        call(tmp_path / "r.json")


def test_settle_keeps_this_runs_rows_and_prune_drops_old_notebooks(tmp_path):
    import time

    path = tmp_path / "results.json"
    R.record("01", "pop", "popularity", "test", METRICS, path=path)
    R.record("01", "gone", "popularity", "test", METRICS, path=path)  # a model the lesson no longer evaluates
    R.record("02", "content", "semantic", "test", METRICS, path=path)
    since = time.time()
    R.record("01", "pop", "popularity", "valid", METRICS, path=path)
    R.record("01", "pop", "popularity", "test", {**METRICS, "ndcg@10": 0.2}, path=path)
    kept = R.settle("01", since, path=path)
    assert [(r["model"], r["eval_set"]) for r in kept] == [("pop", "valid"), ("pop", "test")]
    assert {r["notebook"] for r in R.load(path)["runs"]} == {"01", "02"}  # another lesson's rows stay
    assert R.settle("03", since, path=tmp_path / "none.json") == []  # no file yet
    assert [r["notebook"] for r in R.prune(["01"], path=path)] == ["02"]
    assert {r["notebook"] for r in R.load(path)["runs"]} == {"01"}
    with pytest.raises(TypeError, match="notebooks"):
        R.prune("01", path=path)


def test_the_leaderboard_from_executed_notebooks(tmp_path):
    row = R.record("01_x", "pop", "popularity", "test", {**METRICS, "ndcg@10": 0.3}, path=tmp_path / "r.json")
    nb = tmp_path / "01_x.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"recsuite": {"results": [row]}}}))
    empty = tmp_path / "02_y.ipynb"
    empty.write_text(json.dumps({"cells": [], "metadata": {}}))
    runs = R.from_notebooks([nb, empty])["runs"]
    assert runs == [row]
    md = R.markdown(R.table(runs=runs), "From the notebooks.")
    assert "| 01_x" in md and "0.3000" in md and "## test" in md
    wrong = tmp_path / "03_z.ipynb"
    wrong.write_text(json.dumps({"cells": [], "metadata": {"recsuite": {"results": [row]}}}))
    with pytest.raises(ValueError, match="03_z"):
        R.from_notebooks([wrong])
    with pytest.raises(ValueError, match="not both"):
        R.table(tmp_path / "r.json", runs=runs)
    with pytest.raises(TypeError, match="runs must be a list"):
        R.table(runs={"runs": runs})
    with pytest.raises(TypeError, match="one path"):
        R.from_notebooks(nb)
    bad = tmp_path / "04_w.ipynb"
    bad.write_text(json.dumps({"cells": [], "metadata": {"recsuite": {"results": [{"notebook": "04_w"}]}}}))
    with pytest.raises(ValueError, match="04_w.ipynb row 0: not a results row"):
        R.from_notebooks([bad])
    broken = tmp_path / "05_v.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="05_v.ipynb: cannot read"):
        R.from_notebooks([broken])
