"""recsuite.course.choices: a lesson's choice, stored per protocol and seed, read or recomputed by later lessons."""

import json
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from recsuite.course import choices
from recsuite.data.split import make_protocol


@pytest.fixture(scope="module")
def proto():
    rows = [(u, i, 100 * u + t) for u in range(12) for t, i in enumerate(range(u % 3, u % 3 + 10))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=5)
    return make_protocol(inter[["user_id", "item_id", "rating", "timestamp"]], cold_frac=0.1, seed=0)


def test_save_then_load(proto):
    path = choices.save("cf.als", {"factors": 64, "regularization": 10.0}, proto, seed=0, notebook="03")
    assert path.is_file() and path.parent.name == "seed-0"
    assert choices.load("cf.als", proto, 0) == {"factors": 64, "regularization": 10.0}
    record = json.loads(path.read_text())
    assert record["made_by"] == "03" and record["protocol"] == choices.protocol_key(proto)
    with pytest.raises(FileNotFoundError, match="run the lesson that makes it"):
        choices.load("cf.als", proto, 1)  # another seed has its own choice


def test_missing_choices_are_computed_once(proto):
    calls = []
    value = choices.load("fusion.blend", proto, 0, compute=lambda: calls.append(1) or {"w": 0.2})
    assert value == {"w": 0.2} and calls == [1]
    assert choices.load("fusion.blend", proto, 0, compute=lambda: calls.append(1) or {"w": 9}) == {"w": 0.2}
    assert calls == [1]


def test_a_damaged_file_is_recomputed(proto):
    choices.path("x.y", proto, 0).parent.mkdir(parents=True, exist_ok=True)
    choices.path("x.y", proto, 0).write_text("{not json")
    assert choices.load("x.y", proto, 0, compute=lambda: [1, 2]) == [1, 2]
    assert choices.load("x.y", proto, 0) == [1, 2]
    choices.path("x.y", proto, 0).write_text("[]")  # valid JSON, but not a choice record
    assert choices.load("x.y", proto, 0, compute=lambda: [3]) == [3]
    assert choices.path("x.y", proto, 0).stat().st_mode & 0o777 == 0o644


def test_the_protocol_key_follows_the_split(proto):
    inter = pd.concat([proto.train, proto.valid, proto.test, proto.cold_test])[["user_id", "item_id", "rating", "timestamp"]]
    same = make_protocol(inter, cold_frac=0.1, seed=0)
    other = make_protocol(inter, cold_frac=0.1, seed=3)
    assert choices.protocol_key(same) == choices.protocol_key(proto) != choices.protocol_key(other)


def _writer(args):
    home, i = args
    import os

    os.environ["RECSUITE_HOME"] = home
    rows = [(u, it, 100 * u + t) for u in range(12) for t, it in enumerate(range(u % 3, u % 3 + 10))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=5)
    p = make_protocol(inter[["user_id", "item_id", "rating", "timestamp"]], cold_frac=0.1, seed=0)
    for j in range(20):
        choices.save("race", {"writer": i, "j": j}, p, 0, notebook=f"w{i}")
        assert choices.load("race", p, 0)["j"] in range(20)  # always one whole file
    return True


def test_concurrent_writers_leave_one_whole_file(proto, _isolated_home):
    with mp.get_context("spawn").Pool(2) as pool:
        assert all(pool.map(_writer, [(str(_isolated_home), 0), (str(_isolated_home), 1)]))
    folder = choices.path("race", proto, 0).parent
    assert [p.name for p in folder.iterdir()] == ["race.json"]  # no temporary files left behind


def test_bad_input(proto):
    with pytest.raises(ValueError, match="name must be a lower-case identifier"):
        choices.save("Bad Name", 1, proto, 0, notebook="t")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        choices.load("cf.als", proto, -1)
    with pytest.raises(TypeError, match="protocol must be a recsuite.data.split.Protocol"):
        choices.path("cf.als", object(), 0)
    with pytest.raises(TypeError, match="JSON data"):
        choices.save("cf.als", {"f": object()}, proto, 0, notebook="t")
    with pytest.raises(ValueError, match="finite"):
        choices.save("cf.als", {"f": float("nan")}, proto, 0, notebook="t")
    with pytest.raises(ValueError, match="finite"):
        choices.as_json(np.float64("nan"))
    with pytest.raises(TypeError, match="JSON data"):
        choices.as_json(np.datetime64("2020-01-01"))
    with pytest.raises(ValueError, match="name must be a lower-case identifier"):
        choices.path("cf.als\n", proto, 0)
    with pytest.raises(TypeError, match="notebook must name"):
        choices.save("cf.als", 1, proto, 0, notebook="")


def test_keys_that_become_one_json_key_are_refused(proto):
    with pytest.raises(ValueError, match=r"value has keys 1 and '1', which both become the JSON key '1'"):
        choices.save("cf.als", {1: "a", "1": "b"}, proto, 0, notebook="t")
    with pytest.raises(ValueError, match=r"value\['w'\] has keys"):
        choices.as_json({"w": {np.int64(2): 0.1, "2": 0.2}})
    with pytest.raises(TypeError, match=r"value keys must be str or int.*tuple"):
        choices.as_json({(1, 2): 0.5})
    with pytest.raises(ValueError, match=r"compute\(\)\['w'\] must hold finite numbers"):
        choices.load("fusion.nan", proto, 0, compute=lambda: {"w": float("nan")})
    assert choices.as_json({1: [np.float32(0.5)], "b": (True,)}) == {"1": [0.5], "b": [True]}


def test_a_choice_made_for_another_protocol_is_not_read_back(proto):
    inter = pd.concat([proto.train, proto.valid, proto.test, proto.cold_test])[["user_id", "item_id", "rating",
                                                                                 "timestamp"]]
    other = make_protocol(inter, cold_frac=0.1, seed=3)
    made = choices.save("cf.ease", {"reg_weight": 100.0}, proto, 0, notebook="03")
    target = choices.path("cf.ease", other, 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(made.read_text())  # e.g. a folder copied by hand
    with pytest.raises(FileNotFoundError, match=f"made for protocol '{choices.protocol_key(proto)}'"):
        choices.load("cf.ease", other, 0)
    assert choices.load("cf.ease", other, 0, compute=lambda: {"reg_weight": 7.0}) == {"reg_weight": 7.0}
    assert json.loads(target.read_text())["protocol"] == choices.protocol_key(other)
    assert choices.load("cf.ease", proto, 0) == {"reg_weight": 100.0}


def test_root_must_name_a_folder(proto):
    with pytest.raises(TypeError, match="root must be None or a folder"):
        choices.path("cf.als", proto, 0, root="")
