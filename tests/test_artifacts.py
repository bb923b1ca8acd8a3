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
])
def test_bad_input_is_a_clear_error(protocol, call, exc, match):
    with pytest.raises(exc, match=match):
        call(protocol)
