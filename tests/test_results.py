"""The results file: merging, atomic rewrite, validation, markdown."""

import json

import pytest

from recsuite import results as R

METRICS = {f"{m}@10": 0.1 for m in R.RANKING_KEYS}


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
