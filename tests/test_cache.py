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


def test_read_keyed_gives_back_the_stored_key(tmp_path):
    path = tmp_path / "a.npz"
    assert cache.read_keyed(path, "scores") is None
    cache.write_array(path, {"k": (1, 2), "model": "m"}, "scores", np.ones(2))
    key, got = cache.read_keyed(path, "scores")
    assert key == {"k": [1, 2], "model": "m"} and got.tolist() == [1.0, 1.0]  # as JSON reads it back
    assert cache.read_keyed(path, "vectors") is None
    np.save(tmp_path / "b.npy", np.ones(3))  # a bare array, not a keyed store
    assert cache.read_keyed(tmp_path / "b.npy", "scores") is None


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


def test_built_folder_builds_once_and_trusts_only_whole_content(tmp_path):
    import json
    from concurrent.futures import ThreadPoolExecutor

    from recsuite.core.cache import FOLDER_MARKER, built_folder

    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "a.bin").write_bytes(b"weights")
        (folder / "b.json").write_text("{}")

    target = tmp_path / "thing"
    assert built_folder(target, {"v": 1}, build) == target and len(calls) == 1
    marker = json.loads((target / FOLDER_MARKER).read_text())
    assert marker["v"] == 1 and set(marker["files"]) == {"a.bin", "b.json"}
    assert built_folder(target, {"v": 1}, build) == target and len(calls) == 1  # whole: not rebuilt
    (target / "a.bin").write_bytes(b"weighTs")  # same size, other content
    built_folder(target, {"v": 1}, build)
    assert len(calls) == 2 and (target / "a.bin").read_bytes() == b"weights"
    built_folder(target, {"v": 2}, build)  # another key
    assert len(calls) == 3 and json.loads((target / FOLDER_MARKER).read_text())["v"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]  # no temporary folder left

    racers = tmp_path / "race"
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: built_folder(racers, {"v": 1}, build), range(4))) == {racers}
    assert sorted(p.name for p in racers.iterdir()) == ["a.bin", "b.json", FOLDER_MARKER]

    def fails(folder):
        (folder / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        built_folder(tmp_path / "broken", {"v": 1}, fails)
    with pytest.raises(ValueError, match="wrote no file"):
        built_folder(tmp_path / "empty", {"v": 1}, lambda folder: None)
    with pytest.raises(TypeError, match="build must be a function"):
        built_folder(tmp_path / "x", {"v": 1}, "build")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race", "thing"]


def test_built_folder_use_runs_beside_the_hash_check_and_never_hands_out_a_damaged_read(tmp_path, monkeypatch):
    """With ``use``, the files are hashed in a background thread while ``use`` reads them; a damaged folder's read
    (or the error it raised) is dropped, the folder rebuilt and read again."""
    import threading

    from recsuite.core.cache import built_folder

    builds, reads = [], []

    def build(folder):
        builds.append(folder)
        (folder / "weights.bin").write_bytes(b"weights" * 1000)
        (folder / "config.json").write_text("{}")

    def use(folder):
        reads.append(threading.get_ident())
        return (folder / "weights.bin").read_bytes()

    target = tmp_path / "model"
    assert built_folder(target, {"v": 1}, build, use) == b"weights" * 1000  # built, then read
    assert len(builds) == 1 and len(reads) == 1

    real, hashed_in, started = cache.sha256_file, [], threading.Event()

    def hash_after_use_started(path):  # a check run before use (not beside it) would wait here in vain
        assert started.wait(10), "the files were hashed before use ran, not beside it"
        hashed_in.append(threading.get_ident())
        return real(path)

    def use_first(folder):
        started.set()
        return use(folder)

    monkeypatch.setattr(cache, "sha256_file", hash_after_use_started)
    assert built_folder(target, {"v": 1}, build, use_first) == b"weights" * 1000 and len(builds) == 1
    assert hashed_in and threading.get_ident() not in hashed_in  # hashed in another thread ...
    assert reads[-1] == threading.get_ident()  # ... while use ran in the caller's
    monkeypatch.setattr(cache, "sha256_file", real)

    raw = bytearray((target / "weights.bin").read_bytes())  # one byte changed in place, size kept
    raw[-1] ^= 0xFF
    (target / "weights.bin").write_bytes(bytes(raw))
    assert built_folder(target, {"v": 1}, build, use) == b"weights" * 1000  # the damaged read was dropped
    assert len(builds) == 2 and len(reads) == 4 and (target / "weights.bin").read_bytes() == b"weights" * 1000

    def fragile(folder):  # a damaged file may fail to load: that error is dropped too
        data = (folder / "weights.bin").read_bytes()
        if data != b"weights" * 1000:
            raise ValueError("corrupt weights")
        return data

    (target / "weights.bin").write_bytes(bytes(raw))
    assert built_folder(target, {"v": 1}, build, fragile) == b"weights" * 1000 and len(builds) == 3

    def broken(folder):  # on a whole folder, use's own error is the caller's
        raise RuntimeError("cannot read")

    with pytest.raises(RuntimeError, match="cannot read"):
        built_folder(target, {"v": 1}, build, broken)
    assert len(builds) == 3
    (target / "weights.bin").unlink()  # a listed file gone: rebuilt, then read
    assert built_folder(target, {"v": 1}, build, use) == b"weights" * 1000 and len(builds) == 4
    with pytest.raises(TypeError, match="use must be None or a function"):
        built_folder(target, {"v": 1}, build, "use")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left
