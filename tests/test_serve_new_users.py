"""recsuite.serving.new_users: the new-user recommender and POST /recommend/new through a real server."""

import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.models.cold_start import DemographicPopularity
from recsuite.serving import new_users as NU
from recsuite.serving.service import BadRequest, ServiceUnavailable, running

TITLES = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Godfather, The"]


def _recommender(text=True):
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 6)) < 0.4).astype(np.float32))
    groups = pd.DataFrame({"age_bucket": ["18-24", "25-34", "35-44"] * 10, "gender": ["F", "M"] * 15,
                           "occupation": ["student", "writer", "other"] * 10})
    demo = DemographicPopularity(min_users=5).fit(X, groups)
    item_item = np.eye(6, dtype=np.float32)[::-1].copy()  # a toy personal model: item i points at item 5 - i
    personal = {"Toy": lambda R: R @ item_item}
    scorer = (lambda t: np.arange(6, dtype=np.float32)[None, :] * len(t)) if text else None
    catalogue = np.array([True] * 5 + [False])
    return NU.NewUserRecommender(np.arange(100, 106), TITLES, catalogue, demo, personal,
                                 {1: {"model": "Toy", "weight": 0.5}, 3: {"model": "Demographic", "weight": 0.0}},
                                 groups.occupation.unique(), text_scorer=scorer, text_weight=0.25), demo


def test_scores_are_the_chosen_blend_and_liked_or_outside_items_are_never_recommended():
    rec, demo = _recommender()
    out = rec.recommend(age=20, gender="F", liked_titles=["alpha"], k=6)
    d, info = demo.scores(pd.DataFrame([{"age_bucket": "18-24", "gender": "F", "occupation": None}]))
    personal = np.eye(6, dtype=np.float32)[::-1][0][None, :]
    want = NU.standardise_rows(d) + 0.5 * NU.standardise_rows(personal)
    got = {i["item_id"]: i["score"] for i in out["items"]}
    assert set(got) == {101, 102, 103, 104}  # not the liked 100, not 105 (outside the catalogue)
    np.testing.assert_allclose([got[i] for i in sorted(got)], want[0, 1:5], rtol=1e-5)
    assert out["n"] == 1 and out["liked"] == [{"item_id": 100, "title": "Alpha"}]
    assert out["method"] == f"demographic popularity ({info.level[0]}: {info.cell_users[0]} users) + 0.5 × Toy on 1 liked"
    assert [i["score"] for i in out["items"]] == sorted((i["score"] for i in out["items"]), reverse=True)


def test_the_plan_is_the_largest_chosen_n_not_above_the_liked_count():
    rec, _ = _recommender()
    assert rec.plan(0) == ("Demographic", 0.0) and rec.plan(2) == ("Toy", 0.5) and rec.plan(7) == ("Demographic", 0.0)
    two = rec.recommend(liked_titles=["Alpha", "The Godfather"], k=3)  # natural title form matches
    assert two["n"] == 2 and "Toy on 2 liked" in two["method"]
    assert "Toy" not in rec.recommend(liked_titles=["Alpha", "Beta", "Gamma"], k=2)["method"]
    assert rec.recommend(text="abc", k=2)["method"].endswith("0.25 × the text")


@pytest.mark.parametrize("kwargs, exc, match", [
    ({}, BadRequest, "give at least one"),
    ({"liked_titles": ["Alfa"]}, BadRequest, r"'Alfa' \(close: 'Alpha'\)"),
    ({"occupation": "pilot"}, BadRequest, "occupation must be one of"),
    ({"age": 0}, BadRequest, r"age must be a whole number of years in 1..119"),
    ({"age": True}, BadRequest, "age must be"),
    ({"gender": "X"}, BadRequest, "gender must be one of"),
    ({"text": "a" * 801}, BadRequest, "MAX_TEXT_CHARS"),
])
def test_bad_requests_are_named(kwargs, exc, match):
    rec, _ = _recommender()
    with pytest.raises(exc, match=match):
        rec.recommend(**kwargs)


def test_text_without_a_text_model_is_unavailable_and_bad_construction_is_refused():
    rec, demo = _recommender(text=False)
    with pytest.raises(ServiceUnavailable, match="free text needs a text model"):
        rec.recommend(text="comedy")
    with pytest.raises(ValueError, match=r"blend\['2'\] must be"):
        NU.NewUserRecommender(np.arange(6), TITLES, np.ones(6, bool), demo, {}, {"2": {"model": "EASE", "weight": 1}},
                              ["student"])
    with pytest.raises(TypeError, match="fitted cold_start.DemographicPopularity"):
        NU.NewUserRecommender(np.arange(6), TITLES, np.ones(6, bool), DemographicPopularity(), {}, {}, ["student"])


def test_a_film_listed_under_two_ids_counts_once():
    _, demo = _recommender()
    twice = ["Alpha", "Beta", "Gamma", "Alpha", "Epsilon", "Zeta"]  # "Alpha" is items 100 and 103
    rec = NU.NewUserRecommender(np.arange(100, 106), twice, np.ones(6, bool), demo, {"Toy": lambda R: R @ np.eye(6)},
                                {1: {"model": "Toy", "weight": 0.5}, 2: {"model": "Demographic", "weight": 0}},
                                ["student"])
    out = rec.recommend(liked_titles=["alpha"], k=6)
    assert out["n"] == 1 and "0.5 × Toy on 1 liked" in out["method"]  # the n = 1 plan, not n = 2's
    assert {i["item_id"] for i in out["liked"]} == {100, 103} and not {100, 103} & {i["item_id"] for i in out["items"]}


@pytest.mark.parametrize("change, exc, match", [
    ({"blend": {1: {"model": "Demographic", "weight": 0.5}}}, ValueError, "its weight must be 0"),
    ({"blend": {1.5: {"model": "Toy", "weight": 0.5}}}, TypeError, "blend keys must be whole numbers"),
    ({"blend": {1: {"model": "Toy", "weight": 0.5}, "1": {"model": "Toy", "weight": 1}}}, ValueError, "n = 1 twice"),
    ({"blend": {1: {"model": "Toy"}}}, ValueError, r"blend\[1\] must be"),
    ({"occupations": "student"}, TypeError, "occupations must be a list"),
    ({"titles": ["Alpha", " ", "Gamma", "Delta", "Epsilon", "Zeta"]}, ValueError, "blank title"),
    ({"item_ids": np.arange(5)}, ValueError, "one title per item"),
    ({"item_ids": np.array([1, 1, 2, 3, 4, 5])}, ValueError, "repeats an id"),
    ({"item_ids": np.arange(6) + 0.5}, TypeError, "item_ids must be a 1-D array of int or str ids"),
    ({"text_weight": 0.0}, ValueError, "text_weight must be > 0 with a text_scorer"),
])
def test_bad_construction_is_named(change, exc, match):
    _, demo = _recommender()
    args = {"item_ids": np.arange(6), "titles": TITLES, "catalogue": np.ones(6, bool), "demographic": demo,
            "personal": {"Toy": lambda R: R}, "blend": {}, "occupations": ["student"]}
    kwargs = {"text_scorer": lambda t: np.zeros((1, 6)), "text_weight": 0.5}
    for k, v in change.items():
        (kwargs if k in kwargs else args)[k] = v
    with pytest.raises(exc, match=match):
        NU.NewUserRecommender(*args.values(), **kwargs)


def test_a_demographic_model_of_another_catalogue_is_refused():
    _, demo = _recommender()
    with pytest.raises(ValueError, match="fit on 6 items, item_ids has 5"):
        NU.NewUserRecommender(np.arange(5), TITLES[:5], np.ones(5, bool), demo, {}, {}, ["student"])


def _post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_endpoint_through_a_real_server():
    rec, _ = _recommender()
    plain, _ = _recommender(text=False)
    with running(NU.create_new_user_app(rec)) as url, running(NU.create_new_user_app(plain)) as url_plain:
        ok, body = _post(f"{url}/recommend/new", {"age": 30, "gender": "M", "liked_titles": ["Beta"], "k": 2})
        assert ok == 200 and len(body["items"]) == 2 and body["n"] == 1
        assert body == rec.recommend(age=30, gender="M", liked_titles=["Beta"], k=2)
        alone = _post(f"{url}/recommend/new", {"occupation": "writer"})  # demographics alone are enough here
        assert alone[0] == 200 and alone[1]["n"] == 0 and len(alone[1]["items"]) == 5
        assert alone[1]["method"].startswith("demographic popularity (occupation: ")  # its cell, not everyone
        for bad in ({}, {"liked_titles": []}, {"liked_titles": ["Nope"]}, {"text": "x" * 801}, {"text": "  "},
                    {"age": 200}, {"age": True}, {"age": "30"}, {"gender": "f"}, {"occupation": "pilot"}, {"k": 0},
                    {"nickname": "a"}):
            status, answer = _post(f"{url}/recommend/new", bad)
            assert status == 422, (bad, status, answer)
        assert "Nope" in str(_post(f"{url}/recommend/new", {"liked_titles": ["Nope"]})[1]["detail"])
        assert _post(f"{url_plain}/recommend/new", {"text": "comedy"})[0] == 503
        with urllib.request.urlopen(f"{url}/health", timeout=30) as r:
            assert json.loads(r.read())["blend"] == {"1": {"model": "Toy", "weight": 0.5},
                                                      "3": {"model": "Demographic", "weight": 0.0}}
