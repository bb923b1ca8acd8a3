"""Invariants of the shared protocol, on small synthetic interaction logs."""

import numpy as np
import pandas as pd
import pytest

from recsuite import split as S


def log(n_users=6, n_items=20, per_user=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(100, 100 + n_items), size=per_user, replace=False)
        times = rng.integers(0, 5, size=per_user)  # many ties on purpose
        rows += [(u, int(i), 4, int(t)) for i, t in zip(items, times)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_temporal_split_partitions_each_user_in_time_order():
    df = log()
    train, valid, test = S.temporal_user_split(df)
    assert len(train) + len(valid) + len(test) == len(df)
    key = ["user_id", "item_id"]
    assert not pd.concat([train, valid, test]).duplicated(key).any()
    for u, g in df.groupby("user_id"):
        order = g.sort_values(["timestamp", "item_id"])
        tr, va, te = (x[x.user_id == u] for x in (train, valid, test))
        assert (len(tr), len(va), len(te)) == (8, 1, 1)
        assert list(pd.concat([tr, va, te]).item_id) == list(order.item_id)  # ties broken by item_id
        assert tr.timestamp.max() <= va.timestamp.min() <= te.timestamp.min()


def test_temporal_split_short_histories():
    df = pd.DataFrame({"user_id": [1, 1, 2, 2, 2], "item_id": [1, 2, 1, 2, 3], "rating": 5, "timestamp": [1, 2, 1, 2, 3]})
    train, valid, test = S.temporal_user_split(df)
    assert list(train.user_id) == [1, 1, 2]  # a 2-row user stays in train; a 3-row user gives 1/1/1
    assert list(valid.item_id) == [2] and list(test.item_id) == [3]


def test_temporal_split_rejects_bad_ratios_and_frames():
    with pytest.raises(ValueError, match="ratios"):
        S.temporal_user_split(log(), (0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="missing"):
        S.temporal_user_split(log().drop(columns="timestamp"))


def test_cold_item_split_is_seeded_and_holds_out_whole_items():
    df = log()
    warm, cold = S.cold_item_split(df, frac=0.2, seed=3)
    warm2, cold2 = S.cold_item_split(df, frac=0.2, seed=3)
    assert cold.equals(cold2) and warm.equals(warm2)
    assert set(warm.item_id).isdisjoint(cold.item_id)
    assert cold.item_id.nunique() == round(0.2 * df.item_id.nunique())
    assert len(warm) + len(cold) == len(df)
    _, cold3 = S.cold_item_split(df, frac=0.2, seed=4)
    assert set(cold3.item_id) != set(cold.item_id)
    with pytest.raises(ValueError, match="frac"):
        S.cold_item_split(df, frac=1.5)


def test_protocol_has_no_leakage_and_consistent_indices(tmp_path):
    df = log(n_users=8, n_items=30)
    p = S.make_protocol(df, cold_frac=0.2, seed=1, all_item_ids=[999])
    assert p.n_items == df.item_id.nunique() + 1 and p.n_users == 8
    cold = set(p.cold_items)
    for part in ("train", "valid", "test"):
        assert cold.isdisjoint(p.frame(part).item_idx)
    assert set(p.cold_test.item_idx) == cold
    # round trip raw id -> index -> raw id
    np.testing.assert_array_equal(p.index.item_ids[p.train.item_idx], p.train.item_id)
    # history masks exactly the past
    assert (p.history("test") - (p.csr("train") + p.csr("valid"))).nnz == 0
    assert p.candidates("cold_test").sum() == len(cold)
    assert not np.any(p.candidates("test")[p.cold_items])
    p.save(tmp_path / "proto")
    q = S.Protocol.load(tmp_path / "proto")
    for part in ("train", "valid", "test", "cold_test"):
        assert q.frame(part).equals(p.frame(part))
    np.testing.assert_array_equal(q.cold_items, p.cold_items)


def test_protocol_rank_masks_history_and_restricts_catalogue():
    p = S.make_protocol(log(n_users=5, n_items=20), cold_frac=0.25, seed=0)
    scores = np.tile(np.arange(p.n_items, dtype=np.float32)[::-1], (p.n_users, 1))
    top = p.rank(scores, "test", k=3)
    hist = p.history("test").toarray().astype(bool)
    assert not np.any(hist[np.arange(p.n_users)[:, None], top])
    assert np.all(np.isin(top, p.warm_items))
    assert np.all(np.isin(p.rank(scores, "cold_test", k=3), p.cold_items))
    with pytest.raises(ValueError, match="eval_set"):
        p.rank(scores, "train", k=3)


def test_index_map_rejects_unknown_ids():
    idx = S.IndexMap.from_ids([3, 1, 2], [10, 20])
    np.testing.assert_array_equal(idx.user_index([1, 3]), [0, 2])
    with pytest.raises(ValueError, match="item ids not in the index"):
        idx.item_index([30])


def test_evaluate_topk_equals_evaluate_and_rejects_protocol_violations():
    p = S.make_protocol(log(n_users=6, n_items=25), cold_frac=0.2, seed=0)
    scores = np.random.default_rng(0).random((p.n_users, p.n_items)).astype(np.float32)
    top = p.rank(scores, "test", k=3)
    assert p.evaluate_topk(top, "test", k=3) == p.evaluate(scores, "test", k=3)
    seen = p.history("test")
    bad = top.copy()
    bad[0, 0] = seen[0].indices[0]
    with pytest.raises(ValueError, match="history"):
        p.evaluate_topk(bad, "test", k=3)
    with pytest.raises(ValueError, match="catalogue"):
        p.evaluate_topk(np.tile(p.cold_items[:3], (p.n_users, 1)), "test", k=3)


def test_per_user_and_compare_use_the_protocol_masks():
    import pandas as pd

    from recsuite import metrics as M
    from recsuite.split import make_protocol

    rng = np.random.default_rng(0)
    rows = [(u, i, 100 * u + t) for u in range(30) for t, i in enumerate(rng.choice(40, 15, replace=False))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=4)
    proto = make_protocol(inter[["user_id", "item_id", "rating", "timestamp"]], cold_frac=0.1, seed=0)
    a, b = rng.random((proto.n_users, proto.n_items)), rng.random((proto.n_users, proto.n_items))
    per = proto.per_user(a, "test", k=5)
    assert len(per) == proto.n_users and np.isclose(per.mean(), proto.evaluate(a, "test", k=5)["ndcg@5"])
    np.testing.assert_array_equal(proto.per_user(topk=proto.rank(a, "test", 5), eval_set="test", k=5), per)
    r = proto.compare(a, b, "test", k=5, n_boot=200, seed=1)
    assert r == M.paired_bootstrap(per, proto.per_user(b, "test", k=5), n_boot=200, seed=1)
    assert proto.compare(a, a, "test", k=5, n_boot=200).verdict() == "indistinguishable"
    with pytest.raises(ValueError, match="exactly one of scores"):
        proto.per_user(a, "test", topk=proto.rank(a, "test", 5))
    with pytest.raises(ValueError, match="metric must be one of"):
        proto.per_user(a, "test", metric="auc")
    seen = proto.history("test")[0].indices[:1]
    bad = proto.rank(a, "test", 5)
    bad[0, 0] = seen[0]
    with pytest.raises(ValueError, match="already in the test history"):
        proto.per_user(topk=bad, eval_set="test", k=5)
    with pytest.raises(ValueError, match="one row per user"):
        proto.per_user(topk=bad[0], eval_set="test", k=5)
    with pytest.raises(TypeError, match="integer item indices"):
        proto.per_user(topk=bad.astype(float), eval_set="test", k=5)
