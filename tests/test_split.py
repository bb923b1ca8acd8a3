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
    assert p.allowed_mask("cold_test").sum() == len(cold)
    assert not np.any(p.allowed_mask("test")[p.cold_items])
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


def test_sequences_are_each_users_history_oldest_first():
    p = S.make_protocol(log(n_users=5, n_items=20), cold_frac=0.25, seed=0)
    for eval_set in ("valid", "test"):
        seqs = p.sequences(eval_set)
        f = p.history_frame(eval_set)
        assert len(seqs) == p.n_users
        for u, seq in enumerate(seqs):
            rows = f[f.user_idx == u]
            by_hand = sorted(zip(rows.timestamp, rows.item_idx))  # time, then item index on ties
            assert seq.tolist() == [i for _, i in by_hand]
        assert sum(len(s) for s in seqs) == len(f)  # nothing dropped, nothing from another user


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


def test_make_protocol_refuses_repeated_user_item_pairs():
    df = log()
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="interactions repeats"):
        S.make_protocol(df)


def test_split_refuses_nan_timestamps():
    df = log()
    df["timestamp"] = df["timestamp"].astype(float)
    df.loc[3, "timestamp"] = np.nan
    with pytest.raises(ValueError, match="timestamp"):
        S.temporal_user_split(df)
    with pytest.raises(ValueError, match="timestamp"):
        S.make_protocol(df)


def _save(proto, folder):
    proto.save(folder)


def test_two_processes_saving_one_protocol_both_succeed(tmp_path):
    import multiprocessing as mp

    p = S.make_protocol(log(), cold_frac=0.2, seed=0)
    folder = tmp_path / "proto"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_save, args=(p, folder)) for _ in range(2)]
    for q in procs:
        q.start()
    for q in procs:
        q.join(60)
        assert q.exitcode == 0
    back = S.Protocol.load(folder)
    assert back.frame("train").equals(p.frame("train"))
    assert [f.name for f in tmp_path.iterdir()] == ["proto"]  # no temp folder left behind


def test_load_protocol_rebuilds_a_damaged_cache(tmp_path, monkeypatch):
    import types

    from recsuite import data, paths

    df = log()
    ml = types.SimpleNamespace(interactions=df, users=pd.DataFrame({"user_id": df.user_id.unique()}),
                               items=pd.DataFrame({"item_id": df.item_id.unique()}))
    monkeypatch.setattr(data, "load_movielens_100k", lambda *a, **k: ml)
    monkeypatch.setattr(paths, "data_home", lambda *a, **k: tmp_path)
    first = S.load_protocol(cold_frac=0.2)
    (folder,) = (tmp_path / "processed").iterdir()
    (folder / "train.csv.gz").write_bytes(b"\x1f\x8b")  # truncated
    again = S.load_protocol(cold_frac=0.2)
    assert again.frame("train").equals(first.frame("train"))
    (folder / "test.csv.gz").unlink()  # deleted
    assert S.load_protocol(cold_frac=0.2).frame("test").equals(first.frame("test"))


# -- bad input: one table per public function -------------------------------------------------------------
def _with(df, **cols):
    out = df.copy()
    for c, v in cols.items():
        out[c] = v
    return out


_DF = log()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: S.temporal_user_split(_DF.to_dict()), TypeError, "DataFrame"),
        (lambda: S.temporal_user_split(_DF.drop(columns="timestamp")), ValueError, "missing"),
        (lambda: S.temporal_user_split(_with(_DF, timestamp=np.nan)), ValueError, "NaN"),
        (lambda: S.temporal_user_split(_DF, (0.5, 0.5)), ValueError, "ratios"),
        (lambda: S.temporal_user_split(_DF, (0.9, 0.2, -0.1)), ValueError, "ratios"),
        (lambda: S.cold_item_split(_DF, frac=0.0), ValueError, "frac"),
        (lambda: S.cold_item_split(_DF, frac=1.0), ValueError, "frac"),
        (lambda: S.cold_item_split(_DF, frac="0.1"), TypeError, "frac"),
        (lambda: S.cold_item_split(_DF, seed=-1), ValueError, "seed"),
        (lambda: S.cold_item_split(_DF, seed=1.5), TypeError, "seed"),
        (lambda: S.make_protocol(_with(_DF, user_id=_DF.user_id.astype(str))), TypeError, "'user_id'"),
        (lambda: S.make_protocol(_with(_DF, item_id=_DF.item_id.astype(float))), TypeError, "'item_id'"),
        (lambda: S.make_protocol(_DF, all_item_ids=["a"]), TypeError, "all_item_ids"),
        (lambda: S.make_protocol(pd.concat([_DF, _DF.iloc[:1]])), ValueError, "repeats"),
        (lambda: S.to_csr(_DF, 7, 200), ValueError, "user_idx"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_protocol_rank_names_scores_and_its_shape():
    p = S.make_protocol(log(n_users=5, n_items=20), cold_frac=0.25, seed=0)
    with pytest.raises(ValueError, match=r"scores must have shape \(n_users, n_items\)"):
        p.rank(np.zeros((p.n_users, p.n_items - 1)), "test", 3)
    with pytest.raises(ValueError, match="eval_set"):
        p.rank(np.zeros((p.n_users, p.n_items)), "train", 3)
    with pytest.raises(ValueError, match="name must be one of"):
        p.frame("nope")


def test_string_ids_are_refused_before_a_protocol_that_cannot_be_loaded(tmp_path):
    df = log()
    p = S.make_protocol(df, cold_frac=0.2, seed=0)
    p.save(tmp_path / "p")
    q = S.Protocol.load(tmp_path / "p")
    np.testing.assert_array_equal(q.index.user_ids, p.index.user_ids)
    with pytest.raises(TypeError, match="map string or float ids to integers"):
        S.make_protocol(df.assign(user_id="u" + df.user_id.astype(str)))


def test_short_lists_are_padded_with_minus_one_and_evaluate_cleanly():
    p = S.make_protocol(log(n_users=5, n_items=20), cold_frac=0.1, seed=0)  # 2 cold items < k = 5
    scores = np.random.default_rng(0).normal(size=(p.n_users, p.n_items))
    top = p.rank(scores, "cold_test", 5)
    assert (top[:, len(p.cold_items):] == -1).all()
    assert set(top[:, :len(p.cold_items)].ravel()) <= set(p.cold_items.tolist())
    row = p.evaluate_topk(top, "cold_test", 5)
    assert row == p.evaluate(scores, "cold_test", 5)
    assert row["coverage@5"] == 1.0
    assert (p.per_user(topk=top, eval_set="cold_test", k=5).dropna() <= 1).all()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p: S.IndexMap.from_ids(["a", "b"], [1]), TypeError, "user_ids"),
        (lambda p: S.IndexMap.from_ids([1], [1.5]), TypeError, "item_ids"),
        (lambda p: p.index.user_index([99999]), ValueError, "not in the index"),
        (lambda p: p.frame(0), ValueError, "name must be one of"),
        (lambda p: p.csr("nope"), ValueError, "name must be one of"),
        (lambda p: p.history("train"), ValueError, "eval_set must be one of"),
        (lambda p: p.history_frame("x"), ValueError, "eval_set must be one of"),
        (lambda p: p.allowed_mask("x"), ValueError, "eval_set must be one of"),
        (lambda p: p.item_popularity("x"), ValueError, "eval_set must be one of"),
        (lambda p: p.sequences("train"), ValueError, "eval_set must be one of"),
        (lambda p: p.rank(np.zeros((p.n_users, p.n_items)), "test", 0), ValueError, "k must be"),
        (lambda p: p.evaluate(np.zeros((p.n_users - 1, p.n_items)), "test", 3), ValueError, "scores must have shape"),
        (lambda p: p.evaluate_topk(np.zeros((p.n_users, 3)), "test", 3), TypeError, "integer"),
        (lambda p: p.evaluate_topk(np.zeros((1, 3), int), "test", 3), ValueError, "one row per user"),
        (lambda p: p.per_user(eval_set="test"), ValueError, "exactly one of"),
        (lambda p: p.per_user(np.zeros((p.n_users, p.n_items)), "test", metric="auc"), ValueError, "metric"),
        (lambda p: p.compare(np.zeros((p.n_users, p.n_items)), np.zeros((p.n_users, p.n_items)), "test",
                             topk="no"), TypeError, "topk"),
        (lambda p: S.to_csr(p.train, 0, p.n_items), ValueError, "n_users"),
        (lambda p: S.to_csr(p.train, 2, p.n_items), ValueError, "user_idx"),
        (lambda p: S.to_csr(p.train, p.n_users, p.n_items, values="nope"), ValueError, "missing"),
    ],
)
def test_protocol_methods_refuse_bad_input(call, error, message):
    p = S.make_protocol(log(n_users=5, n_items=20), cold_frac=0.25, seed=0)
    with pytest.raises(error, match=message):
        call(p)
