"""recsuite.course.artifacts: caches that cannot be written or are damaged, and bad input to every public function.

The cache-or-compute behaviour of ``cf_scores`` and ``fused_scores`` themselves is tested with the models
they wrap (test_cf.py, test_fusion.py).
"""

import numpy as np
import pandas as pd
import pytest

from recsuite.course import artifacts as ART


@pytest.fixture(scope="module")
def protocol():
    from recsuite.data.split import make_protocol

    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(1, 21), 10)
    items = np.concatenate([rng.choice(np.arange(1, 26), size=10, replace=False) for _ in range(20)])
    inter = pd.DataFrame({"user_id": users, "item_id": items, "rating": 4,
                          "timestamp": np.arange(len(users)) * 60})
    return make_protocol(inter, cold_frac=0.1, seed=0)


def test_cf_scores_that_cannot_be_cached_warn_and_are_still_returned(protocol, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="could not write the CF score cache"):
        got = ART.cf_scores("EASE", "test", params={"reg_weight": 10.0}, protocol=protocol, cache_dir=blocker)
    want = ART.cf_scores("EASE", "test", params={"reg_weight": 10.0}, protocol=protocol, cache=False)
    np.testing.assert_array_equal(got, want)


def test_a_damaged_cf_score_cache_is_rebuilt(protocol, tmp_path):
    kw = dict(params={"reg_weight": 10.0}, protocol=protocol, cache_dir=tmp_path)
    path = ART.cf_scores_path("EASE", "test", **kw)
    first = ART.cf_scores("EASE", "test", **kw)
    path.write_bytes(path.read_bytes()[:40])  # truncated mid-file
    np.testing.assert_array_equal(ART.cf_scores("EASE", "test", **kw), first)
    assert ART.cf_scores("EASE", "test", **kw).shape == (protocol.n_users, protocol.n_items)


def test_lesson_scores_round_trip_and_stay_on_their_split_and_seed(protocol, tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random((protocol.n_users, protocol.n_items)).astype(np.float32)
    assert ART.lesson_scores("09_finetuning", "test", protocol, cache_dir=tmp_path) is None  # not run here yet
    path = ART.save_lesson_scores("09_finetuning", "two-tower", scores, "test", {"steps": 40}, protocol, 0, tmp_path)
    assert path == ART.lesson_scores_path("09_finetuning", "test", protocol, 0, tmp_path) and path.exists()
    got = ART.lesson_scores("09_finetuning", "test", protocol, cache_dir=tmp_path)
    assert got["model"] == "two-tower" and got["params"] == {"steps": 40}
    np.testing.assert_array_equal(got["scores"], scores)
    assert ART.lesson_scores("09_finetuning", "valid", protocol, cache_dir=tmp_path) is None
    assert ART.lesson_scores("09_finetuning", "test", protocol, seed=1, cache_dir=tmp_path) is None
    assert ART.lesson_scores("10_other", "test", protocol, cache_dir=tmp_path) is None
    ART.save_lesson_scores("09_finetuning", "newer run", scores + 1, "test", None, protocol, 0, tmp_path)
    newer = ART.lesson_scores("09_finetuning", "test", protocol, cache_dir=tmp_path)  # the newest run wins
    assert newer["model"] == "newer run" and newer["params"] == {} and newer["scores"][0, 0] == scores[0, 0] + 1


def test_lesson_scores_changed_after_writing_are_refused(protocol, tmp_path):
    from recsuite.core import cache

    scores = np.zeros((protocol.n_users, protocol.n_items), np.float32)
    path = ART.save_lesson_scores("09_finetuning", "m", scores, "test", None, protocol, 0, tmp_path)
    key, _ = cache.read_keyed(path, "scores")
    cache.write_array(path, key, "scores", scores + 0.5)  # same key and SHA-256, other numbers
    with pytest.raises(ValueError, match="do not match the SHA-256"):
        ART.lesson_scores("09_finetuning", "test", protocol, cache_dir=tmp_path)
    cache.write_array(path, {**key, "params": {"steps": 4000}}, "scores", scores)  # the scores kept, params changed
    with pytest.raises(ValueError, match="do not match the SHA-256"):
        ART.lesson_scores("09_finetuning", "test", protocol, cache_dir=tmp_path)
    path.write_bytes(path.read_bytes()[:60])  # truncated: refused by name, never taken for "not run here"
    with pytest.raises(ValueError, match="cannot be read"):
        ART.lesson_scores("09_finetuning", "test", protocol, cache_dir=tmp_path)


@pytest.mark.parametrize("call, exc, match", [
    (lambda p: ART.tuned_params("als", p), ValueError, "model must be one of"),
    (lambda p: ART.tuned_params("EASE", p, seed=-1), ValueError, "seed"),
    (lambda p: ART.tuned_params("EASE", "protocol"), TypeError, "protocol must be a recsuite.data.split.Protocol"),
    (lambda p: ART.best_fast_model(p, seed=1.5), TypeError, "seed"),
    (lambda p: ART.best_fast_model(object()), TypeError, "protocol"),
    (lambda p: ART.cf_scores("EASE", "train", protocol=p), ValueError, "eval_set"),
    (lambda p: ART.cf_scores("BPR", "test", protocol=p), ValueError, "model must be one of"),
    (lambda p: ART.cf_scores("EASE", "test", params=[("reg_weight", 1.0)], protocol=p), TypeError, "params"),
    (lambda p: ART.cf_scores("EASE", "test", params={"factors": 3}, protocol=p), ValueError, "unknown"),
    (lambda p: ART.cf_scores("EASE", "test", params={"reg_weight": 1.0}, protocol=p, cache="yes"),
     (TypeError, ValueError), "cache"),
    (lambda p: ART.cf_scores_path("EASE", "cold", protocol=p), ValueError, "eval_set"),
    (lambda p: ART.content_setting(protocol=[]), TypeError, "protocol"),
    (lambda p: ART.content_setting(p, seed="0"), TypeError, "seed"),
    (lambda p: ART.blend_setting(protocol=1), TypeError, "protocol"),
    (lambda p: ART.tune_blend(p, methods=("softmax",)), ValueError, "method must be one of"),
    (lambda p: ART.tune_blend(p, gammas=(0.0,)), ValueError, "every γ > 0"),
    (lambda p: ART.fused_scores("train", protocol=p), ValueError, "eval_set"),
    (lambda p: ART.fused_scores("test", weights={"cf": 1.0, "sem": 0.5}, method="softmax", protocol=p),
     ValueError, "method must be one of"),
    (lambda p: ART.fused_scores("test", weights={"als": 1.0}, method="zscore", protocol=p), ValueError, "weights"),
    (lambda p: ART.fused_scores("test", protocol="p"), TypeError, "protocol"),
    (lambda p: ART.fused_scores_path("test", protocol=p, seed=-3), ValueError, "seed"),
    (lambda p: ART.lesson_scores("../09", protocol=p), ValueError, "lesson must be a notebook's stem"),
    (lambda p: ART.lesson_scores("09", "train", protocol=p), ValueError, "eval_set"),
    (lambda p: ART.lesson_scores_path(9, protocol=p), TypeError, "lesson"),
    (lambda p: ART.save_lesson_scores("09", "m", np.zeros((2, 2)), protocol=p), ValueError, r"scores must be .*\(2, 2\)"),
    (lambda p: ART.save_lesson_scores("09", "m", np.full((p.n_users, p.n_items), np.nan), protocol=p),
     ValueError, "NaN"),
    (lambda p: ART.save_lesson_scores("09", "m", np.zeros((p.n_users, p.n_items)), params=[1], protocol=p),
     TypeError, "params must be a dict"),
    (lambda p: ART.save_lesson_scores("09", "", np.zeros((p.n_users, p.n_items)), protocol=p), ValueError, "model"),
    (lambda p: ART.save_lesson_scores("09", "m", np.zeros((p.n_users, p.n_items)), params={"w": {1, 2}}, protocol=p),
     TypeError, "params must hold only finite JSON data"),
    (lambda p: ART.save_lesson_scores("09", "m", np.full((p.n_users, p.n_items), 1e39), protocol=p),
     ValueError, "float32's range"),
])
def test_bad_input_is_a_clear_error(protocol, call, exc, match):
    with pytest.raises(exc, match=match):
        call(protocol)
