"""Bad input at the boundary of the small modules: a TypeError for the wrong kind of object, a ValueError for
a wrong value, each naming the argument (features, baselines, cache, choices, tuning, noise, utils, runner)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.core import cache, device
from recsuite.course import choices, runner
from recsuite.course.noise import Expect
from recsuite.data import features
from recsuite.evaluation import selection
from recsuite.models import popularity

ITEMS = pd.DataFrame({"item_id": [1, 2], "genres": [["Action", "Crime"], []]})
USERS = pd.DataFrame({"user_id": [1, 2], "age": [20, 40], "gender": ["M", "F"], "occupation": ["a", "b"],
                      "zip_code": ["12345", "K1A"]})
INTER = pd.DataFrame({"timestamp": [0, 3600]})
HIST = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float32))
TABLE = pd.DataFrame({"ndcg": [0.10, 0.12, 0.119], "se": [0.01, 0.01, 0.01], "loss": [0.0, 0.02, 0.05],
                      "k": [1, 2, 3]})
KEY = {"model": "ALS", "factors": 8}


class FakeProtocol:
    """What choices.protocol_key reads from a recsuite.data.split.Protocol."""

    params = {"seed": 0}
    n_users, n_items = 2, 3

    def frame(self, part):
        return pd.DataFrame({"user_idx": [0], "item_idx": [1]})


PROTO = FakeProtocol()


def nb():
    import nbformat

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("SEED = 0", metadata={"tags": ["parameters"]})]
    return book


# (id, call(tmp_path), expected exception, match on the argument's name)
CASES = [
    # features.age_bucket
    ("age_bucket-str", lambda t: features.age_bucket("twenty"), TypeError, "age"),
    ("age_bucket-objects", lambda t: features.age_bucket([object()]), TypeError, "age"),
    ("age_bucket-negative", lambda t: features.age_bucket([-1]), ValueError, "age"),
    ("age_bucket-nan", lambda t: features.age_bucket([20, np.nan]), ValueError, "age"),
    ("age_bucket-inf", lambda t: features.age_bucket([np.inf]), ValueError, "age"),
    # features.genre_matrix
    ("genre_matrix-not-frame", lambda t: features.genre_matrix([1, 2]), TypeError, "items"),
    ("genre_matrix-no-genres", lambda t: features.genre_matrix(ITEMS[["item_id"]]), ValueError, "items"),
    ("genre_matrix-pipe-string", lambda t: features.genre_matrix(ITEMS.assign(genres=["Action|Crime", "Drama"])),
     TypeError, "genres"),
    ("genre_matrix-none-genres", lambda t: features.genre_matrix(ITEMS.assign(genres=[None, []])), TypeError, "genres"),
    ("genre_matrix-unknown-id", lambda t: features.genre_matrix(ITEMS, item_ids=[1, 99]), ValueError, "item_ids"),
    ("genre_matrix-unknown-id-late", lambda t: features.genre_matrix(ITEMS, item_ids=[1] * 1500 + [99]),
     ValueError, "item_ids"),
    ("genre_matrix-2d-ids", lambda t: features.genre_matrix(ITEMS, item_ids=[[1, 2]]), ValueError, "item_ids"),
    # features.user_features
    ("user_features-not-frame", lambda t: features.user_features({"user_id": [1]}), TypeError, "users"),
    ("user_features-missing-col", lambda t: features.user_features(USERS.drop(columns="zip_code")), ValueError, "users"),
    ("user_features-nan-age", lambda t: features.user_features(USERS.assign(age=[20, np.nan])), ValueError, "age"),
    ("user_features-duplicate-user", lambda t: features.user_features(pd.concat([USERS, USERS])), ValueError, "user_id"),
    ("user_features-int-zip", lambda t: features.user_features(USERS.assign(zip_code=[12345, 11111])), TypeError,
     "zip_code"),
    ("user_features-unknown-id", lambda t: features.user_features(USERS, user_ids=[1, 7]), ValueError, "user_ids"),
    # features.context_features
    ("context_features-not-frame", lambda t: features.context_features([0, 1]), TypeError, "interactions"),
    ("context_features-no-timestamp", lambda t: features.context_features(INTER.rename(columns={"timestamp": "t"})),
     ValueError, "interactions"),
    ("context_features-str-timestamp", lambda t: features.context_features(INTER.assign(timestamp=["a", "b"])),
     TypeError, "timestamp"),
    ("context_features-nan-timestamp", lambda t: features.context_features(INTER.assign(timestamp=[0, np.nan])),
     ValueError, "timestamp"),
    # popularity.popularity_scores
    ("popularity-dense", lambda t: popularity.popularity_scores(np.zeros((2, 2))), TypeError, "history"),
    ("popularity-list", lambda t: popularity.popularity_scores([[1, 0]]), TypeError, "history"),
    ("popularity-nan", lambda t: popularity.popularity_scores(sp.csr_matrix(np.array([[np.nan, 1.0]]))), ValueError,
     "history"),
    ("popularity-no-items", lambda t: popularity.popularity_scores(sp.csr_matrix((2, 0))), ValueError, "history"),
    ("popularity-n_users-float", lambda t: popularity.popularity_scores(HIST, n_users=2.0), TypeError, "n_users"),
    ("popularity-n_users-bool", lambda t: popularity.popularity_scores(HIST, n_users=True), TypeError, "n_users"),
    ("popularity-n_users-zero", lambda t: popularity.popularity_scores(HIST, n_users=0), ValueError, "n_users"),
    ("popularity-no-rows", lambda t: popularity.popularity_scores(sp.csr_matrix((0, 3))), ValueError, "n_users"),
    ("popularity-tie_seed-float", lambda t: popularity.popularity_scores(HIST, tie_seed=0.5), TypeError, "tie_seed"),
    ("popularity-tie_seed-negative", lambda t: popularity.popularity_scores(HIST, tie_seed=-1), ValueError, "tie_seed"),
    # cache.key_digest / read_array / write_array / write_or_warn / atomic_write
    ("key_digest-list", lambda t: cache.key_digest([1, 2]), TypeError, "key"),
    ("key_digest-numpy-scalar", lambda t: cache.key_digest({"k": np.int64(3)}), TypeError, "key"),
    ("key_digest-nan", lambda t: cache.key_digest({"x": float("nan")}), ValueError, "key"),
    ("key_digest-length-str", lambda t: cache.key_digest(KEY, length="8"), TypeError, "length"),
    ("key_digest-length-zero", lambda t: cache.key_digest(KEY, length=0), ValueError, "length"),
    ("read_array-path-int", lambda t: cache.read_array(3, KEY, "scores"), TypeError, "path"),
    ("read_array-key-str", lambda t: cache.read_array(t / "a.npz", "ALS", "scores"), TypeError, "key"),
    ("read_array-name-int", lambda t: cache.read_array(t / "a.npz", KEY, 0), TypeError, "name"),
    ("read_array-name-empty", lambda t: cache.read_array(t / "a.npz", KEY, ""), ValueError, "name"),
    ("write_array-path-none", lambda t: cache.write_array(None, KEY, "scores", np.zeros(2)), TypeError, "path"),
    ("write_array-path-empty", lambda t: cache.write_array("", KEY, "scores", np.zeros(2)), ValueError, "path"),
    ("write_array-key-set", lambda t: cache.write_array(t / "a.npz", {"s": {1}}, "scores", np.zeros(2)), TypeError,
     "key"),
    ("write_array-name-meta", lambda t: cache.write_array(t / "a.npz", KEY, "meta", np.zeros(2)), ValueError, "name"),
    ("write_array-object-array", lambda t: cache.write_array(t / "a.npz", KEY, "scores", [object()]), TypeError,
     "array"),
    ("write_or_warn-what-int", lambda t: cache.write_or_warn(t / "a.npz", KEY, "scores", np.zeros(2), what=1),
     TypeError, "what"),
    ("write_or_warn-stacklevel-zero", lambda t: cache.write_or_warn(t / "a.npz", KEY, "s", np.zeros(2), stacklevel=0),
     ValueError, "stacklevel"),
    ("write_or_warn-key-str", lambda t: cache.write_or_warn(t / "a.npz", "k", "s", np.zeros(2)), TypeError, "key"),
    ("atomic_write-path-int", lambda t: cache.atomic_write(1, lambda fh: None), TypeError, "path"),
    ("atomic_write-write-not-callable", lambda t: cache.atomic_write(t / "a.txt", "data"), TypeError, "write"),
    ("atomic_write-text-str", lambda t: cache.atomic_write(t / "a.txt", lambda fh: None, text="yes"), TypeError,
     "text"),
    ("atomic_write-prefix-int", lambda t: cache.atomic_write(t / "a.txt", lambda fh: None, prefix=1), TypeError,
     "prefix"),
    ("atomic_write-prefix-sep", lambda t: cache.atomic_write(t / "a.txt", lambda fh: None, prefix="../x"), ValueError,
     "prefix"),
    ("atomic_write-mode-str", lambda t: cache.atomic_write(t / "a.txt", lambda fh: None, mode="644"), TypeError,
     "mode"),
    ("atomic_write-mode-big", lambda t: cache.atomic_write(t / "a.txt", lambda fh: None, mode=0o17777), ValueError,
     "mode"),
    # choices.protocol_key / path / as_json / save / load
    ("protocol_key-object", lambda t: choices.protocol_key(object()), TypeError, "protocol"),
    ("path-name-int", lambda t: choices.path(3, PROTO, 0, root=t), TypeError, "name"),
    ("path-name-upper", lambda t: choices.path("CF", PROTO, 0, root=t), ValueError, "name"),
    ("path-seed-float", lambda t: choices.path("cf.als", PROTO, 1.0, root=t), TypeError, "seed"),
    ("path-seed-bool", lambda t: choices.path("cf.als", PROTO, True, root=t), TypeError, "seed"),
    ("path-seed-negative", lambda t: choices.path("cf.als", PROTO, -1, root=t), ValueError, "seed"),
    ("path-root-int", lambda t: choices.path("cf.als", PROTO, 0, root=5), TypeError, "root"),
    ("path-protocol", lambda t: choices.path("cf.als", "proto", 0, root=t), TypeError, "protocol"),
    ("as_json-object", lambda t: choices.as_json({"a": object()}), TypeError, "JSON data"),
    ("as_json-inf", lambda t: choices.as_json([float("inf")]), ValueError, "finite"),
    ("save-notebook-int", lambda t: choices.save("cf.als", 1, PROTO, 0, notebook=3, root=t), TypeError, "notebook"),
    ("save-notebook-empty", lambda t: choices.save("cf.als", 1, PROTO, 0, notebook=" ", root=t), TypeError, "notebook"),
    ("save-seed-str", lambda t: choices.save("cf.als", 1, PROTO, "0", notebook="t", root=t), TypeError, "seed"),
    ("load-compute-not-callable", lambda t: choices.load("cf.none", PROTO, 0, compute=3, root=t), TypeError, "compute"),
    ("load-name-none", lambda t: choices.load(None, PROTO, 0, root=t), TypeError, "name"),
    # selection.one_se_rule / best_within
    ("one_se-table-list", lambda t: selection.one_se_rule([1, 2], "ndcg", 0.0), TypeError, "table"),
    ("one_se-table-repeated-index", lambda t: selection.one_se_rule(TABLE.set_axis([0, 1, 1]), "ndcg", "se"), ValueError,
     "table"),
    ("best_within-table-repeated-index", lambda t: selection.best_within(TABLE.set_axis([0, 0, 1]), "ndcg", "loss", 1.0),
     ValueError, "table"),
    ("one_se-table-empty", lambda t: selection.one_se_rule(pd.DataFrame(), "ndcg", 0.0), ValueError, "table"),
    ("one_se-metric-int", lambda t: selection.one_se_rule(TABLE, 0, 0.0), TypeError, "metric"),
    ("one_se-metric-missing", lambda t: selection.one_se_rule(TABLE, "recall", 0.0), ValueError, "recall"),
    ("one_se-se-none", lambda t: selection.one_se_rule(TABLE, "ndcg", None), TypeError, "se"),
    ("one_se-se-bool", lambda t: selection.one_se_rule(TABLE, "ndcg", True), TypeError, "se"),
    ("one_se-se-negative", lambda t: selection.one_se_rule(TABLE, "ndcg", -0.1), ValueError, "se"),
    ("one_se-se-nan", lambda t: selection.one_se_rule(TABLE, "ndcg", float("nan")), ValueError, "se"),
    ("one_se-se-column-missing", lambda t: selection.one_se_rule(TABLE, "ndcg", "ndcg_se"), ValueError, "ndcg_se"),
    ("one_se-metric-nan", lambda t: selection.one_se_rule(TABLE.assign(ndcg=[0.1, np.nan, 0.1]), "ndcg", 0.0),
     ValueError, "ndcg"),
    ("one_se-decimals-float", lambda t: selection.one_se_rule(TABLE, "ndcg", 0.0, decimals=3.0), TypeError, "decimals"),
    ("one_se-decimals-big", lambda t: selection.one_se_rule(TABLE, "ndcg", 0.0, decimals=13), ValueError, "decimals"),
    ("one_se-simplest-str", lambda t: selection.one_se_rule(TABLE, "ndcg", 0.0, simplest="k"), ValueError, "simplest"),
    ("one_se-simplest-int", lambda t: selection.one_se_rule(TABLE, "ndcg", 0.0, simplest=5), TypeError, "simplest"),
    ("one_se-simplest-flag", lambda t: selection.one_se_rule(TABLE, "ndcg", 0.0, simplest=[("k", 1)]), TypeError,
     "simplest"),
    ("one_se-simplest-column", lambda t: selection.one_se_rule(TABLE, "ndcg", 0.0, simplest=[("K", True)]), ValueError,
     "simplest"),
    ("best_within-table-dict", lambda t: selection.best_within({"ndcg": [1]}, "ndcg", "loss", 0.1), TypeError, "table"),
    ("best_within-maximise-int", lambda t: selection.best_within(TABLE, 1, "loss", 0.1), TypeError, "maximise"),
    ("best_within-budget_column-none", lambda t: selection.best_within(TABLE, "ndcg", None, 0.1), TypeError,
     "budget_column"),
    ("best_within-budget-str", lambda t: selection.best_within(TABLE, "ndcg", "loss", "0.1"), TypeError, "budget"),
    ("best_within-budget-nan", lambda t: selection.best_within(TABLE, "ndcg", "loss", float("nan")), ValueError, "budget"),
    ("best_within-simplest-column-nothing-inside",
     lambda t: selection.best_within(TABLE, "ndcg", "loss", -1.0, simplest=[("K", True)]), ValueError, "simplest"),
    ("best_within-decimals-bool", lambda t: selection.best_within(TABLE, "ndcg", "loss", 0.1, decimals=True), TypeError,
     "decimals"),
    # noise.Expect
    ("Expect-notebook-int", lambda t: Expect(1), TypeError, "notebook"),
    ("Expect-enforce-int", lambda t: Expect("01", enforce=1), TypeError, "enforce"),
    ("Expect-call-name-int", lambda t: Expect("01")(1, 0.1, 0.1, tol=0.1), TypeError, "name"),
    ("Expect-call-value-str", lambda t: Expect("01")("m", "0.1", 0.1, tol=0.1), TypeError, "value"),
    ("Expect-call-expected-nan", lambda t: Expect("01")("m", 0.1, float("nan"), tol=0.1), ValueError, "expected"),
    ("Expect-call-tol-none", lambda t: Expect("01")("m", 0.1, 0.1, tol=None), TypeError, "tol"),
    ("Expect-call-tol-negative", lambda t: Expect("01")("m", 0.1, 0.1, tol=-0.1), ValueError, "tol"),
    ("Expect-choice-name-none", lambda t: Expect("01").choice(None, 1, 1), TypeError, "name"),
    ("Expect-choice-chosen-object", lambda t: Expect("01").choice("c", object(), 1), TypeError, "chosen"),
    ("Expect-choice-expected-nan", lambda t: Expect("01").choice("c", 1, float("nan")), ValueError, "expected"),
    # device.set_seed / get_device
    ("set_seed-str", lambda t: device.set_seed("1"), TypeError, "seed"),
    ("set_seed-negative", lambda t: device.set_seed(-1), ValueError, "seed"),
    ("get_device-int", lambda t: device.get_device(0), TypeError, "device"),
    ("get_device-none", lambda t: device.get_device(None), TypeError, "device"),
    ("get_device-tpu", lambda t: device.get_device("tpu"), ValueError, "device"),
    ("get_device-bad-index", lambda t: device.get_device("cpu:x"), ValueError, "device"),
    # runner
    ("parse_param-int", lambda t: runner.parse_param(1), TypeError, "text"),
    ("parse_param-lower", lambda t: runner.parse_param("seed=1"), ValueError, "UPPER_CASE"),
    ("knob_names-int", lambda t: runner.knob_names(3), TypeError, "source"),
    ("knob_names-syntax", lambda t: runner.knob_names("SEED = = 1"), ValueError, "source"),
    ("inject_parameters-list", lambda t: runner.inject_parameters(nb(), [("SEED", 1)]), TypeError, "parameters"),
    ("inject_parameters-not-literal", lambda t: runner.inject_parameters(nb(), {"SEED": object()}), ValueError,
     "parameters"),
    ("inject_parameters-nb", lambda t: runner.inject_parameters("nb.ipynb", {"SEED": 1}), TypeError, "nb"),
    ("check_parameters-str-paths", lambda t: runner.check_parameters("01.ipynb", {}), TypeError, "paths"),
    ("check_parameters-dict-none", lambda t: runner.check_parameters([], None), TypeError, "parameters"),
    ("execute-paths-int", lambda t: runner.execute([1], None), TypeError, "paths"),
    ("execute-timeout-float", lambda t: runner.execute([], None, timeout=1.5), TypeError, "timeout"),
    ("execute-timeout-zero", lambda t: runner.execute([], None, timeout=0), ValueError, "timeout"),
    ("execute-allow_errors-int", lambda t: runner.execute([], None, allow_errors=1), TypeError, "allow_errors"),
    ("execute-out_dir-int", lambda t: runner.execute([], 3), TypeError, "out_dir"),
    ("execute-parameters-list", lambda t: runner.execute([], None, parameters=["SEED=1"]), TypeError, "parameters"),
    ("main-argv-str", lambda t: runner.main("--inplace"), TypeError, "argv"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_argument(call, error, match, tmp_path):
    with pytest.raises(error, match=match):
        call(tmp_path)


def test_valid_input_still_answers(tmp_path):
    """The checks refuse only bad input: the same calls with good arguments work as before."""
    m, names = features.genre_matrix(ITEMS.assign(genres=[np.array(["Action", "Crime"]), []]))
    assert names == ["Action", "Crime"] and m.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert list(features.user_features(USERS).zip_region) == ["1", "non-US"]
    assert list(features.context_features(INTER).hour) == [0, 1]
    assert popularity.popularity_scores(HIST, n_users=np.int64(3)).shape == (3, 3)
    key = {"model": "ALS", "grid": (1, 2)}  # a tuple reads back as a list: still a hit
    cache.write_array(tmp_path / "a.npz", key, "scores", np.arange(3))
    assert cache.read_array(tmp_path / "a.npz", key, "scores").tolist() == [0, 1, 2]
    assert cache.key_digest(KEY) == cache.key_digest(dict(reversed(KEY.items())))
    assert selection.one_se_rule(TABLE, "ndcg", "se", simplest=[("k", True)]) == 1
    assert selection.best_within(TABLE, "loss", "loss", 0.03) == 1
    assert device.get_device("cpu:0").type == "cpu"
    assert runner.inject_parameters(nb(), {"SEED": 2}) == {"SEED": 2}
