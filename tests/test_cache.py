"""recsuite.core.cache: the atomic .npz store behind every cache-or-compute helper."""

import os

import numpy as np
import pytest

from recsuite.core import cache


def test_round_trip_and_key_mismatch(tmp_path):
    key = {"model": "m", "shape": [2, 3], "params": {"b": 1, "a": 2}}
    path = tmp_path / "sub" / f"m-{cache.key_digest(key)}.npz"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.write_array(path, key, "scores", x)
    got = cache.read_array(path, key, "scores")
    assert got.dtype == np.float32 and (got == x).all()
    assert cache.read_array(path, {**key, "model": "other"}, "scores") is None  # another key: a miss
    assert cache.read_array(path, key, "vectors") is None  # another array name: a miss
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_missing_and_truncated_files_are_misses(tmp_path):
    key = {"k": 1}
    path = tmp_path / "x.npz"
    assert cache.read_array(path, key, "scores") is None
    cache.write_array(path, key, "scores", np.ones(4))
    path.write_bytes(path.read_bytes()[:40])
    assert cache.read_array(path, key, "scores") is None


def test_key_digest_ignores_dict_order_and_sets_length():
    assert cache.key_digest({"a": 1, "b": [1, 2]}) == cache.key_digest({"b": [1, 2], "a": 1})
    assert cache.key_digest({"a": 1}) != cache.key_digest({"a": 2})
    assert len(cache.key_digest({"a": 1}, 24)) == 24


def test_write_array_names_a_ragged_array(tmp_path):
    with pytest.raises(TypeError, match=r"array must be a numeric or str array \(one shape\)"):
        cache.write_array(tmp_path / "a.npz", {"k": 1}, "scores", [[1.0, 2.0], [3.0]])
    assert not (tmp_path / "a.npz").exists()


def test_a_cache_file_rewritten_in_place_is_read_by_content(tmp_path):
    path = tmp_path / "a.npz"
    cache.write_array(path, {"k": 1}, "scores", np.zeros(3))
    st = path.stat()
    cache.write_array(path, {"k": 2}, "scores", np.ones(3))  # same size: only the content differs
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert cache.read_array(path, {"k": 1}, "scores") is None
    assert cache.read_array(path, {"k": 2}, "scores").tolist() == [1.0, 1.0, 1.0]
