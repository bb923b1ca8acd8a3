"""Feature builders and the popularity baseline on hand-made inputs."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.core.device import get_device, set_seed
from recsuite.data import features
from recsuite.models import popularity


def test_age_bucket_edges():
    got = features.age_bucket([7, 18, 24, 25, 56, 73]).astype(str).tolist()
    assert got == ["<18", "18-24", "18-24", "25-34", "56+", "56+"]
    with pytest.raises(ValueError, match="age"):
        features.age_bucket([-1])


def test_genre_matrix_follows_requested_order():
    items = pd.DataFrame({"item_id": [5, 7], "genres": [["Drama", "Comedy"], []]})
    m, names = features.genre_matrix(items, item_ids=[7, 5])
    assert names == ["Comedy", "Drama"]
    np.testing.assert_array_equal(m, [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="missing"):
        features.genre_matrix(items, item_ids=[8])


def test_context_and_user_features():
    ctx = features.context_features(pd.DataFrame({"timestamp": [0, 86400 * 4 + 3600 * 13]}))
    assert ctx.hour.tolist() == [0, 13] and ctx.weekday.tolist() == [3, 0]  # 1970-01-01 was a Thursday
    users = pd.DataFrame({"user_id": [1, 2], "age": [30, 60], "gender": ["F", "M"], "occupation": ["a", "b"], "zip_code": ["55414", "T8H1N"]})
    uf = features.user_features(users, user_ids=[2, 1])
    assert uf.index.tolist() == [2, 1] and uf.zip_region.tolist() == ["non-US", "5"]
    assert uf.age_bucket.tolist() == ["56+", "25-34"]  # aligned with the users, not with row positions


def test_popularity_counts_users_and_breaks_ties_randomly():
    hist = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]]))
    s = popularity.popularity_scores(hist)
    np.testing.assert_array_equal(s[0], [3, 2, 0, 0])
    j = popularity.popularity_scores(hist, tie_seed=0)
    assert np.all(j[:, 0] > j[:, 1]) and np.all(j[:, 1] > j[:, 2:].max(axis=1))
    assert not np.array_equal(j[0, 2:].argsort(), j[1, 2:].argsort()) or not np.array_equal(j[1, 2:].argsort(), j[2, 2:].argsort())
    with pytest.raises(TypeError, match="history"):
        popularity.popularity_scores(np.zeros((2, 2)))


def test_set_seed_and_device():
    import torch

    set_seed(3)
    a = (np.random.rand(), torch.rand(1).item())
    set_seed(3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    assert get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="seed"):
        set_seed(-1)
    with pytest.raises(ValueError, match="device"):
        get_device("tpu")


def test_set_seed_leaves_pythonhashseed_alone_and_refuses_bad_kinds(monkeypatch):
    import os

    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    set_seed(5)
    assert "PYTHONHASHSEED" not in os.environ
    with pytest.raises(TypeError, match="seed"):
        set_seed(1.5)


def test_features_refuse_what_would_become_a_silent_nan_or_an_accident():
    with pytest.raises(ValueError, match=r"age must be numbers of years in \[0, 200\).*250"):
        features.age_bucket([30, 250])  # past the last bin: pd.cut would give NaN
    items = pd.DataFrame({"item_id": [5, 5], "genres": [["Drama"], ["Comedy"]]})
    with pytest.raises(ValueError, match="items repeats item_id values, e.g. \\[5\\]"):
        features.genre_matrix(items)
    users = pd.DataFrame({"user_id": [1, 2], "age": [30, 60], "gender": ["F", None], "occupation": ["a", "b"],
                          "zip_code": ["55414", "T8H1N"]})
    with pytest.raises(ValueError, match=r"users\['gender'\] holds 1 missing values"):
        features.user_features(users)
    with pytest.raises(TypeError, match=r"users\['zip_code'\] must hold str zip codes, got 55414"):
        features.user_features(users.assign(gender=["F", "M"], zip_code=pd.Series([55414, "T8H1N"], dtype=object)))
    with pytest.raises(ValueError, match=r"users\['zip_code'\] holds an empty zip code"):
        features.user_features(users.assign(gender=["F", "M"], zip_code=["", "T8H1N"]))
    with pytest.raises(ValueError, match=r"interactions\['timestamp'\] must be Unix seconds within"):
        features.context_features(pd.DataFrame({"timestamp": [0, 10**12]}))
