"""recsuite.serving.service: a real uvicorn server on a free loopback port, spoken to by a real httpx client.

The service is built from a tiny catalogue made here (5 users x 8 items, scores and 3-D vectors chosen so
every expected list can be checked by hand); the free-text path runs the packaged MiniLM on a few texts.
Loading from the lessons' artefacts is tested where it must fail clearly: on an empty RECSUITE_HOME.
"""

import os
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import scipy.sparse as sp

from recsuite.course.serve import MissingArtefacts, load_service
from recsuite.data.movielens import load_movielens_100k
from recsuite.models import semantic
from recsuite.serving.service import (
    MAX_K,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_TITLES,
    BadRequest,
    Service,
    ServiceFault,
    ServiceUnavailable,
    UnknownUser,
    create_app,
    running,
)

USER_IDS = [1, 2, 5, 8, 13]
ITEM_IDS = [101, 102, 103, 104, 105, 106, 107, 108]
TITLES = ["Alpha", "Bravo", "Charlie, The", "Delta", "Echo", "Foxtrot", "Golf", "Hotel"]
VECTORS = np.array([
    [1, 0, 0],    # Alpha
    [0, 1, 0],    # Bravo
    [1, 1, 0],    # Charlie, The
    [1, 0, 1],    # Delta
    [0, 0, 1],    # Echo
    [-1, 0, 0],   # Foxtrot
    [1, 1, 1],    # Golf
    [0, 1, 0.5],  # Hotel
], dtype=np.float32)
# user 1 ranks the items in index order; the others in other orders, so a mix-up of rows shows
SCORES = np.array([
    [9, 8, 7, 6, 5, 4, 3, 2],
    [1, 2, 3, 4, 5, 6, 7, 8],
    [5, 6, 7, 8, 1, 2, 3, 4],
    [2, 9, 4, 7, 6, 5, 8, 3],
    [8, 1, 2, 3, 4, 5, 6, 7],
], dtype=np.float32)
HISTORY = [[0, 1], [7], [2, 3, 4], [], [0]]


def tiny_service(csr, **kw) -> Service:
    return Service(USER_IDS, ITEM_IDS, TITLES, SCORES, csr(HISTORY, 8), VECTORS, model="tiny hand-made", **kw)


def client(url) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30.0, trust_env=False)  # loopback: never through a proxy


@pytest.fixture(scope="module")
def served():
    rows = [(u, i) for u, items in enumerate(HISTORY) for i in items]
    history = sp.csr_matrix((np.ones(len(rows)), tuple(zip(*rows))), shape=(5, 8))
    service = Service(USER_IDS, ITEM_IDS, TITLES, SCORES, history, VECTORS, model="tiny hand-made")
    with running(service) as url, client(url) as http:
        yield http


def ids(body) -> list[int]:
    return [it["item_id"] for it in body["items"]]


# -- GET /health and GET /recommend ---------------------------------------------------------------------


def test_health_reports_the_loaded_service(served):
    r = served.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["n_users"] == 5 and body["n_items"] == 8
    assert body["model"] == "tiny hand-made" and body["loaded_at"].startswith("20")


def test_recommend_returns_the_best_unseen_items_in_order(served):
    # user 1 scores items in index order and has seen Alpha (101) and Bravo (102)
    r = served.get("/recommend", params={"user_id": 1, "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == 1 and body["k"] == 3
    assert ids(body) == [103, 104, 105]
    assert [it["title"] for it in body["items"]] == ["Charlie, The", "Delta", "Echo"]
    assert [it["score"] for it in body["items"]] == [7.0, 6.0, 5.0]


def test_recommend_default_k_and_seen_items_never_come_back(served):
    body = served.get("/recommend", params={"user_id": 5}).json()  # row 2 has seen 103, 104, 105
    assert body["k"] == 10
    assert ids(body) == [102, 101, 108, 107, 106]  # 8 - 3 seen = 5: the catalogue ran out before k


def test_explanation_names_the_history_items_closest_in_meaning(served):
    items = served.get("/recommend", params={"user_id": 1, "k": 8}).json()["items"]
    why = {it["title"]: it["explanation"] for it in items}
    # Delta (1, 0, 1) is closer to Alpha (cos 0.71) than to Bravo (0); Hotel (0, 1, .5) the other way round
    assert why["Delta"] == "Because you watched Alpha and Bravo."
    assert why["Hotel"] == "Because you watched Bravo and Alpha."
    one = served.get("/recommend", params={"user_id": 13, "k": 1}).json()["items"][0]  # saw only Alpha
    assert one["item_id"] == 108 and one["explanation"] == "Because you watched Alpha."
    none = served.get("/recommend", params={"user_id": 8, "k": 1}).json()["items"][0]  # no history
    assert none["item_id"] == 102 and "no history" in none["explanation"]


def test_unknown_user_is_a_404_naming_the_id(served):
    r = served.get("/recommend", params={"user_id": 999})
    assert r.status_code == 404
    assert "999" in r.json()["detail"] and "unknown user_id" in r.json()["detail"]


@pytest.mark.parametrize("params", [{"user_id": 1, "k": 0}, {"user_id": 1, "k": 101}, {"user_id": 1, "k": "x"},
                                    {"user_id": 1, "k": 2.5}, {"user_id": "one"}, {}])
def test_bad_query_parameters_are_a_422(served, params):
    r = served.get("/recommend", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "query"


def test_k_of_100_is_accepted(served):
    r = served.get("/recommend", params={"user_id": 2, "k": 100})
    assert r.status_code == 200 and ids(r.json()) == [107, 106, 105, 104, 103, 102, 101]


def test_the_catalogue_limits_warm_recommendations_only(csr):
    catalogue = np.ones(8, dtype=bool)
    catalogue[2] = False  # Charlie is not in the fused model's catalogue
    s = tiny_service(csr, catalogue=catalogue)
    assert [it["item_id"] for it in s.recommend(1, 3)] == [104, 105, 106]
    assert s.recommend_cold(["Alpha", "Bravo"], k=1)[0]["item_id"] == 103  # content ranks every item
    with pytest.raises(UnknownUser, match="unknown user_id 3"):
        s.recommend(3)


# -- POST /recommend/cold ----------------------------------------------------------------------------------


def test_cold_start_from_liked_titles_ranks_by_cosine_to_their_mean(served):
    # p = (Alpha + Bravo) / |.| = (.71, .71, 0): Charlie 1, Golf .82, Hotel .63, Delta .5, Echo 0, Foxtrot -.71
    r = served.post("/recommend/cold", json={"liked_titles": [" alpha", "BRAVO  "], "k": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["k"] == 6 and body["liked"] == [{"item_id": 101, "title": "Alpha"}, {"item_id": 102, "title": "Bravo"}]
    assert ids(body) == [103, 107, 108, 104, 105, 106]
    assert [it["score"] for it in body["items"]] == pytest.approx(
        [1.0, 2 / 6 ** 0.5, 0.5 ** 0.5 / 1.25 ** 0.5, 0.5, 0.0, -(0.5 ** 0.5)], abs=1e-6)
    assert body["items"][0]["explanation"] == "Because you liked Alpha and Bravo."


def test_cold_start_matches_the_natural_title_form_and_defaults_k(served):
    body = served.post("/recommend/cold", json={"liked_titles": ["the charlie"]}).json()
    assert body["k"] == 10 and body["liked"] == [{"item_id": 103, "title": "Charlie, The"}]
    assert 103 not in ids(body) and len(body["items"]) == 7
    assert ids(body)[:2] == [107, 101]  # Golf (cos .82) before Alpha and Bravo (.71, tie by index)


def test_unknown_title_is_a_422_listing_it_with_close_matches(served):
    r = served.post("/recommend/cold", json={"liked_titles": ["Alpha", "Alpah", "Zzzzz"]})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "'Alpah' (close: 'Alpha')" in detail and "'Zzzzz'" in detail and "2 title(s)" in detail


@pytest.mark.parametrize("body", [{}, {"k": 5}, {"liked_titles": []}, {"text": "  "}, {"liked_titles": ["Alpha"], "k": 0},
                                  {"liked_titles": ["Alpha"], "k": 101}, {"liked": ["Alpha"]}, {"liked_titles": "Alpha"}])
def test_cold_request_without_anything_to_go_on_is_a_422(served, body):
    r = served.post("/recommend/cold", json=body)
    assert r.status_code == 422, r.text


def test_text_without_an_encoder_is_a_503_not_the_clients_fault(served):
    r = served.post("/recommend/cold", json={"text": "something"})
    assert r.status_code == 503 and "built without one (encoder=None)" in r.json()["detail"]
    assert served.post("/recommend/cold", json={"liked_titles": ["Alpha"], "k": 1}).status_code == 200  # still up


def test_centred_cold_start_equals_the_content_recommender(csr):
    s = tiny_service(csr, center=True)
    got = s.recommend_cold(["Delta", "Golf"], k=6)
    want = semantic.content_scores(csr([[3, 6]], 8), VECTORS, center=True)[0]
    order = [i for i in np.argsort(-want, kind="stable") if i not in (3, 6)]
    assert [it["item_id"] for it in got] == [ITEM_IDS[i] for i in order]
    assert [it["score"] for it in got] == pytest.approx(want[order], abs=1e-6)


def test_a_title_listed_under_two_ids_names_both(csr):
    titles = list(TITLES)
    titles[5] = "Alpha"  # ML-100K lists a few films twice
    s = Service(USER_IDS, ITEM_IDS, titles, SCORES, csr(HISTORY, 8), VECTORS)
    assert s.match_titles(["ALPHA"]).tolist() == [0, 5]
    assert {it["item_id"] for it in s.recommend_cold(["Alpha"], k=8)} == set(ITEM_IDS) - {101, 106}


# -- free text through the packaged MiniLM -----------------------------------------------------------------

PLOTS = ["Toys that come to life when their owner leaves the room", "A mafia family's crime empire and its heirs",
         "Astronauts stranded on Mars grow potatoes to survive", "A romance aboard a sinking ocean liner",
         "A shark terrorises a beach town in summer", "A detective hunts a serial killer in a rainy city"]


@pytest.fixture(scope="module")
def minilm_served():
    def encoder(texts):
        return semantic.encode_texts(texts, cache=False, progress=False)

    n = len(PLOTS)
    history = sp.csr_matrix((n, n), dtype=np.float32)
    service = Service(list(range(n)), list(range(1, n + 1)), PLOTS, np.zeros((n, n)), history, encoder(PLOTS),
                      center=True, encoder=encoder)
    with running(service) as url, client(url) as http:
        yield http


@pytest.mark.parametrize("text, expected", [("gangsters and organised crime", 2), ("a big fish attacks swimmers", 5),
                                            ("space exploration and survival on another planet", 3)])
def test_free_text_finds_the_item_it_describes(minilm_served, text, expected):
    r = minilm_served.post("/recommend/cold", json={"text": text, "k": 3})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["item_id"] == expected, items
    assert items[0]["explanation"] == "Close in meaning to your description."
    assert items[0]["score"] > items[1]["score"] >= items[2]["score"]


def test_text_and_liked_titles_combine_and_liked_stay_out(minilm_served):
    liked = [PLOTS[0]]
    text_only = minilm_served.post("/recommend/cold", json={"text": "an ocean love story", "k": 6}).json()
    both = minilm_served.post("/recommend/cold", json={"text": "an ocean love story", "liked_titles": liked,
                                                       "k": 6}).json()
    assert ids(text_only)[0] == 4 and len(ids(text_only)) == 6
    assert 1 not in ids(both) and len(ids(both)) == 5
    assert both["liked"] == [{"item_id": 1, "title": PLOTS[0]}]
    assert [it["score"] for it in both["items"]] != [it["score"] for it in text_only["items"] if it["item_id"] != 1]
    assert both["items"][0]["explanation"].startswith("Because you liked Toys that come to life")


# -- loading from the artefacts: fast, and failing clearly ---------------------------------------------------


def test_load_service_on_an_empty_home_names_the_lessons_and_builds_nothing(_isolated_home):
    with pytest.raises(MissingArtefacts) as err:
        load_service()
    msg = str(err.value)
    for needed in ("notebooks/02_llm_semantic_features.ipynb", "notebooks/03_cf_baselines.ipynb",
                   "notebooks/05_fusion.ipynb", "make run", "'semantic.content'", "'cf.best-fast-model'",
                   "'fusion.blend'", "the fused test scores"):
        assert needed in msg
    assert isinstance(err.value, FileNotFoundError)
    data = _isolated_home / "datasets"
    assert not (data / "choices").exists() and not (data / "scores").exists() and not (data / "embeddings").exists()


def test_load_service_lists_only_what_is_missing(_isolated_home):
    from recsuite.course import choices
    from recsuite.data.split import load_protocol

    choices.save("semantic.content", {"template": "title", "center": True}, load_protocol(), 0, notebook="a test")
    with pytest.raises(MissingArtefacts) as err:
        load_service()
    msg = str(err.value)
    assert "the content setting" not in msg
    assert "the item vectors of template 'title'" in msg and "'fusion.blend'" in msg
    with pytest.raises(MissingArtefacts, match="seed 1"):  # another seed's choices are its own
        load_service(seed=1)


def test_load_service_reads_its_artefacts_by_content_and_never_rebuilds_a_damaged_one(_isolated_home):
    from recsuite.course import artifacts, choices
    from recsuite.data.split import load_protocol
    from recsuite.models import semantic

    proto = load_protocol()
    for name, value in [("semantic.content", {"template": "title", "center": True}), ("cf.best-fast-model", "EASE"),
                        ("cf.ease", {"reg_weight": 250.0}),
                        ("fusion.blend", {"method": "minmax", "weights": {"cf": 1.0, "sem": 0.5}})]:
        choices.save(name, value, proto, 0, notebook="a test")
    items = load_movielens_100k().items.set_index("item_id").loc[proto.index.item_ids].reset_index()
    vec_file = semantic.embedding_cache_path(semantic.item_text(items, "title"))
    fused_file = artifacts.fused_scores_path("test", protocol=proto, seed=0)
    for f in (vec_file, fused_file):  # present, but truncated: a stat check would trust them
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(MissingArtefacts) as err:
        load_service()
    msg = str(err.value)
    assert "the item vectors of template 'title'" in msg and str(vec_file) in msg and "damaged" in msg
    assert "the fused test scores" in msg and str(fused_file) in msg
    assert vec_file.read_bytes() == fused_file.read_bytes() == b"PK\x03\x04 truncated"  # nothing rebuilt


def test_compute_false_needs_the_cache():
    from recsuite.models import semantic

    with pytest.raises(ValueError, match="compute=False reads the cache only"):
        semantic.encode_texts(["a"], cache=False, compute=False)
    with pytest.raises(TypeError, match="compute must be True or False"):
        semantic.encode_texts(["a"], compute="no")


def test_python_m_recsuite_serve_fails_at_start_with_the_message(_isolated_home):
    env = {**os.environ, "RECSUITE_HOME": str(_isolated_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "recsuite.course.serve", "--port", "0"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "make run" in done.stderr and "notebooks/05_fusion.ipynb" in done.stderr
    assert "Uvicorn running" not in done.stderr + done.stdout


# -- running(): start, answer, stop ----------------------------------------------------------------------


def test_running_serves_on_a_free_port_and_closes_it_on_exit(csr):
    app = create_app(tiny_service(csr))
    with running(app) as url:
        port = urlsplit(url).port
        assert port > 0 and url == f"http://127.0.0.1:{port}"
        with client(url) as http:
            assert http.get("/recommend", params={"user_id": 1, "k": 1}).json()["items"][0]["item_id"] == 103
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_running_stops_the_server_when_the_block_raises(csr):
    with pytest.raises(KeyError, match="boom"):
        with running(tiny_service(csr)) as url:
            port = urlsplit(url).port
            raise KeyError("boom")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_service_refuses_arrays_that_do_not_fit(csr):
    with pytest.raises(ValueError, match="scores must have shape"):
        Service(USER_IDS, ITEM_IDS, TITLES, SCORES[:, :7], csr(HISTORY, 8), VECTORS)
    with pytest.raises(ValueError, match="titles must hold one title per item"):
        Service(USER_IDS, ITEM_IDS, TITLES[:7], SCORES, csr(HISTORY, 8), VECTORS)
    with pytest.raises(ValueError, match="user_ids must list each id once"):
        Service([1, 1, 5, 8, 13], ITEM_IDS, TITLES, SCORES, csr(HISTORY, 8), VECTORS)
    with pytest.raises(TypeError, match="service must be a recsuite.serving.service.Service"):
        create_app(object())


def test_explanations_are_semantic_explain_for_every_item():
    rng = np.random.default_rng(0)
    n_users, n_items = 4, 30
    vectors = rng.normal(size=(n_items, 8)).astype(np.float32)
    history = sp.random(n_users, n_items, density=0.3, random_state=1, format="csr")
    s = Service(range(n_users), range(n_items), [f"Film {i}" for i in range(n_items)], rng.normal(size=(n_users, n_items)),
                history, vectors, center=True)
    for u in range(n_users):
        seen = history[u].indices
        for it in s.recommend(u, 10):
            top, _ = semantic.explain(seen, it["item_id"], semantic.center(vectors), top=2)
            assert it["explanation"] == f"Because you watched Film {top[0]} and Film {top[1]}."


# -- limits: a request beyond them is a 422 naming the limit, never an answer cut short ----------------------


def fake_encoder(texts):
    """Like Alpha (1, 0, 0) for any text, except the texts that make it misbehave as a broken encoder would."""
    fake_encoder.calls.append(texts)
    bad = {"nan please": np.full((1, 3), np.nan), "wrong shape please": np.ones((1, 2)),
           "zeros please": np.zeros((1, 3)), "words please": [["a", "b", "c"]]}
    if texts[0] == "raise please":
        raise ValueError("the tokenizer broke")  # a ValueError inside the server is no fault of the client's
    return bad.get(texts[0], np.tile([[1.0, 0.0, 0.0]], (len(texts), 1)))


fake_encoder.calls = []


@pytest.fixture(scope="module")
def fake_served():
    rows = [(u, i) for u, items in enumerate(HISTORY) for i in items]
    history = sp.csr_matrix((np.ones(len(rows)), tuple(zip(*rows))), shape=(5, 8))
    service = Service(USER_IDS, ITEM_IDS, TITLES, SCORES, history, VECTORS, encoder=fake_encoder)
    with running(service) as url, client(url) as http:
        yield http


def test_a_text_over_max_text_chars_is_a_422_naming_the_limit_and_is_never_encoded(fake_served):
    fake_encoder.calls.clear()
    ok = fake_served.post("/recommend/cold", json={"text": "x" * MAX_TEXT_CHARS, "k": 1})
    assert ok.status_code == 200 and ids(ok.json()) == [101]  # Alpha: what the fake encoder points at
    r = fake_served.post("/recommend/cold", json={"text": "x" * 200_000, "k": 1})
    assert r.status_code == 422, r.text
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "text"] and f"at most {MAX_TEXT_CHARS} characters" in err["msg"]
    assert fake_encoder.calls == [["x" * MAX_TEXT_CHARS]]


@pytest.mark.parametrize("titles, limit", [(["Alpha"] * (MAX_TITLES + 1), f"at most {MAX_TITLES} items"),
                                           (["A" * (MAX_TITLE_CHARS + 1)], f"at most {MAX_TITLE_CHARS} characters")])
def test_too_many_or_too_long_titles_are_a_422_naming_the_limit(fake_served, titles, limit):
    r = fake_served.post("/recommend/cold", json={"liked_titles": titles})
    assert r.status_code == 422, r.text
    assert limit in r.json()["detail"][0]["msg"] and r.json()["detail"][0]["loc"][:2] == ["body", "liked_titles"]
    assert fake_served.post("/recommend/cold", json={"liked_titles": ["Alpha"] * MAX_TITLES}).status_code == 200


def test_the_limits_are_in_the_openapi_schema(fake_served):
    schema = fake_served.get("/openapi.json").json()["components"]["schemas"]["ColdRequest"]["properties"]
    assert {"maxLength": MAX_TEXT_CHARS}.items() <= schema["text"]["anyOf"][0].items()
    titles = schema["liked_titles"]["anyOf"][0]
    assert titles["maxItems"] == MAX_TITLES and titles["items"]["maxLength"] == MAX_TITLE_CHARS
    assert schema["k"]["maximum"] == MAX_K


def test_service_refuses_a_text_over_the_limit_in_python_too(csr):
    s = tiny_service(csr, encoder=fake_encoder)
    with pytest.raises(BadRequest, match=f"text must be at most MAX_TEXT_CHARS = {MAX_TEXT_CHARS} characters.*got 801"):
        s.recommend_cold(text="y" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(ServiceUnavailable, match="encoder=None"):
        tiny_service(csr).recommend_cold(text="a film")


# -- server faults are 5xx, and only the client's faults 4xx -------------------------------------------------


@pytest.mark.parametrize("text, status, detail", [
    ("nan please", 500, "NaN"), ("wrong shape please", 500, "shape (1, 3)"), ("zeros please", 500, "zero vector"),
    ("words please", 500, "numeric"), ("raise please", 500, "internal server error (ValueError)")])
def test_a_misbehaving_encoder_is_a_500_with_a_clear_detail(fake_served, text, status, detail):
    r = fake_served.post("/recommend/cold", json={"text": text, "k": 2})
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert fake_served.get("/health").status_code == 200  # the server keeps answering


def test_a_bad_encoder_output_is_a_service_fault_in_python(csr):
    s = tiny_service(csr, encoder=fake_encoder)
    with pytest.raises(ServiceFault, match="the encoder's output holds NaN"):
        s.recommend_cold(text="nan please")
    with pytest.raises(ServiceFault, match="zero vector"):
        s.recommend_cold(["Alpha"], text="zeros please")


def test_service_refuses_blank_titles(csr):
    titles = list(TITLES)
    titles[3] = "  "
    with pytest.raises(ValueError, match=r"titles must be non-empty, got an empty or blank title at "
                                         r"item index\(es\) \[3\]"):
        Service(USER_IDS, ITEM_IDS, titles, SCORES, csr(HISTORY, 8), VECTORS)


def test_running_refuses_an_unknown_log_level(csr):
    with pytest.raises(ValueError, match="log_level must be one of"):
        with running(tiny_service(csr), log_level="loud"):
            pass


def test_running_reports_a_server_that_died_while_serving(csr, monkeypatch):
    import asyncio

    import uvicorn

    die = threading.Event()

    async def main_loop(self):  # serves until told to die, then fails as a broken event loop would
        while not die.is_set():
            await asyncio.sleep(0.01)
        raise OSError("the event loop broke")

    monkeypatch.setattr(uvicorn.Server, "main_loop", main_loop)
    with pytest.raises(RuntimeError, match="failed while serving: OSError.*event loop broke"):
        with running(tiny_service(csr)) as url:
            with client(url) as http:
                assert http.get("/health").status_code == 200
            die.set()


def test_recommend_is_topk_from_scores_and_explain_for_every_user():
    """The service ranks one row at a time and explains in one product: the same lists as the package's
    ``topk_from_scores`` (ties by item index, seen and outside items never, short lists when the catalogue runs
    out) and the same reasons as ``semantic.explain``, on scores full of ties."""
    from recsuite.evaluation.metrics import topk_from_scores

    rng = np.random.default_rng(7)
    n_users, n_items, d = 60, 40, 5
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(np.float32)  # four values: ties everywhere
    seen = rng.random((n_users, n_items)) < np.linspace(0, 0.95, n_users)[:, None]  # up to nearly everything
    history = sp.csr_matrix(seen.astype(np.float32))
    catalogue = rng.random(n_items) < 0.8
    vectors = np.eye(d, dtype=np.float32)[rng.integers(0, d, size=n_items)]  # cosines exactly 0 or 1: tied reasons
    titles = [f"Film {i}" for i in range(n_items)]
    s = Service(np.arange(1, n_users + 1), np.arange(500, 500 + n_items), titles, scores, history, vectors,
                catalogue=catalogue)
    unit = s.unit_vectors
    for k in (1, 10, n_items):
        want = topk_from_scores(scores, k, seen=history, catalogue=catalogue)
        for u in range(n_users):
            got = s.recommend(u + 1, k)
            top = want[u][want[u] >= 0]
            assert [it["item_id"] for it in got] == (500 + top).tolist(), (u, k)
            hist = np.flatnonzero(seen[u])
            for it, item in zip(got, top):
                if hist.size == 0:
                    assert it["explanation"].startswith("Recommended by the fused model")
                    continue
                closest, _ = semantic.explain(hist, int(item), unit, top=2)
                names = [f"Film {j}" for j in closest]
                assert it["explanation"] == "Because you watched " + (
                    names[0] if len(names) == 1 else f"{names[0]} and {names[1]}") + "."
