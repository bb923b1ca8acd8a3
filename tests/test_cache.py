"""recsuite.cache: the atomic .npz store behind every cache-or-compute helper."""

import numpy as np

from recsuite import cache


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
