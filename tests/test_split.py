"""Invariants of the shared protocol, on small synthetic interaction logs."""

import numpy as np
import pandas as pd
import pytest

from recsuite.data import split as S
from recsuite.data import index


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
    warm, cold = S.cold_item_split(df, cold_frac=0.2, seed=3)
    warm2, cold2 = S.cold_item_split(df, cold_frac=0.2, seed=3)
    assert cold.equals(cold2) and warm.equals(warm2)
    assert set(warm.item_id).isdisjoint(cold.item_id)
    assert cold.item_id.nunique() == round(0.2 * df.item_id.nunique())
    assert len(warm) + len(cold) == len(df)
    _, cold3 = S.cold_item_split(df, cold_frac=0.2, seed=4)
    assert set(cold3.item_id) != set(cold.item_id)
    with pytest.raises(ValueError, match="frac"):
        S.cold_item_split(df, cold_frac=1.5)


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
    assert p.catalogue("cold_test").sum() == len(cold)
    assert not np.any(p.catalogue("test")[p.cold_items])
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


def test_time_order_is_user_then_time_then_item_whatever_the_row_order():
    users = np.array([1, 0, 1, 0, 1])
    ts = np.array([5, 9, 5, 2, 1])
    items = np.array([7, 3, 2, 8, 9])
    order = S.time_order(users, ts, items)
    assert list(zip(users[order], ts[order], items[order])) == [(0, 2, 8), (0, 9, 3), (1, 1, 9), (1, 5, 2), (1, 5, 7)]
    perm = np.random.default_rng(0).permutation(5)
    again = S.time_order(users[perm], ts[perm], items[perm])
    assert items[perm][again].tolist() == items[order].tolist()  # the tie rule, not the frame's row order
    with pytest.raises(ValueError, match="1-D and of one length"):
        S.time_order(users, ts[:4], items)


def test_index_map_rejects_unknown_ids():
    idx = index.IndexMap.from_ids([3, 1, 2], [10, 20])
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

    from recsuite.data.split import make_protocol
    from recsuite.evaluation import bootstrap

    rng = np.random.default_rng(0)
    rows = [(u, i, 100 * u + t) for u in range(30) for t, i in enumerate(rng.choice(40, 15, replace=False))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=4)
    proto = make_protocol(inter[["user_id", "item_id", "rating", "timestamp"]], cold_frac=0.1, seed=0)
    a, b = rng.random((proto.n_users, proto.n_items)), rng.random((proto.n_users, proto.n_items))
    per = proto.per_user(a, "test", k=5)
    assert len(per) == proto.n_users and np.isclose(per.mean(), proto.evaluate(a, "test", k=5)["ndcg@5"])
    np.testing.assert_array_equal(proto.per_user(topk=proto.rank(a, "test", 5), eval_set="test", k=5), per)
    r = proto.compare(a, b, "test", k=5, n_boot=200, seed=1)
    assert r == bootstrap.paired_bootstrap(per, proto.per_user(b, "test", k=5), n_boot=200, seed=1)
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

    df = log()
    ml = types.SimpleNamespace(interactions=df, users=pd.DataFrame({"user_id": df.user_id.unique()}),
                               items=pd.DataFrame({"item_id": df.item_id.unique()}))
    monkeypatch.setattr(S, "load_movielens_100k", lambda *a, **k: ml)
    monkeypatch.setattr(S, "data_home", lambda *a, **k: tmp_path)
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
        (lambda: S.cold_item_split(_DF, cold_frac=0.0), ValueError, "frac"),
        (lambda: S.cold_item_split(_DF, cold_frac=1.0), ValueError, "frac"),
        (lambda: S.cold_item_split(_DF, cold_frac="0.1"), TypeError, "frac"),
        (lambda: S.cold_item_split(_DF, seed=-1), ValueError, "seed"),
        (lambda: S.cold_item_split(_DF, seed=1.5), TypeError, "seed"),
        (lambda: S.make_protocol(_with(_DF, user_id=[1] + ["u"] * (len(_DF) - 1))), TypeError, "'user_id'"),
        (lambda: S.make_protocol(_with(_DF, item_id=_DF.item_id.astype(float))), TypeError, "'item_id'"),
        (lambda: S.make_protocol(_DF, all_item_ids=["a"]), TypeError, "all_item_ids"),
        (lambda: S.make_protocol(pd.concat([_DF, _DF.iloc[:1]])), ValueError, "repeats"),
        (lambda: index.to_csr(_DF, 7, 200), ValueError, "user_idx"),
        (lambda: S.temporal_user_split(pd.concat([_DF, _DF.iloc[:2]])), ValueError, "interactions repeats 2"),
        (lambda: S.temporal_user_split(_DF, ("0.8", "0.1", "0.1")), TypeError, "ratios"),
        (lambda: S.make_protocol(_with(_DF, rating="4")), TypeError, r"interactions\['rating'\] must hold numbers"),
        (lambda: S.make_protocol(_with(_DF, rating=np.nan)), ValueError, r"interactions\['rating'\] holds"),
        (lambda: S.make_protocol(_with(_DF, timestamp=pd.Timestamp("2020-01-01"))), TypeError, "'timestamp'"),
        (lambda: S.make_protocol(_with(_DF, user_id=True)), TypeError, "'user_id'"),
        (lambda: S.make_protocol(_DF, seed=-1), ValueError, "seed"),
        (lambda: S.make_protocol(_DF, cold_frac=2.0), ValueError, "cold_frac"),
        (lambda: S.make_protocol(_DF, all_user_ids=[[1, 2]]), ValueError, "all_user_ids must be a 1-D"),
        (lambda: S.load_protocol(cache="yes"), TypeError, "cache"),
        (lambda: S.load_protocol(ratios=(0.5, 0.6, -0.1)), ValueError, "ratios"),
        (lambda: index.IndexMap(np.array([3, 1]), np.array([1])), ValueError, "user_ids must be sorted distinct ids"),
        (lambda: index.IndexMap(np.array([1]), np.array([], dtype=int)), ValueError, "item_ids must be sorted"),
        (lambda: index.IndexMap.from_ids([1], [np.nan, 2.0]), ValueError, "item_ids holds 1 missing ids"),
        (lambda: index.IndexMap.from_ids([1], [b"sku"]), TypeError, "item_ids must hold integer or str ids"),
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


def test_integer_ids_save_as_before_int_arrays_in_index_npz(tmp_path):
    p = S.make_protocol(log(), cold_frac=0.2, seed=0)
    p.save(tmp_path / "p")
    with np.load(tmp_path / "p" / "index.npz") as z:  # the format existing caches have
        assert z.files == ["user_ids", "item_ids"] and z["user_ids"].dtype == np.int64
        np.testing.assert_array_equal(z["item_ids"], p.index.item_ids)
    q = S.Protocol.load(tmp_path / "p")
    np.testing.assert_array_equal(q.index.user_ids, p.index.user_ids)
    assert q.frame("train").equals(p.frame("train"))


# ids that a CSV or NumPy could change on the way: leading zeros, NA markers, quotes, commas, spaces, non-ASCII,
# a line break, digits only
_ODD_IDS = ["007", "NA", "null", "a,b", 'x"y', " sp", "ünï", "nan", "\\N", "line\nbreak", "7", "0"]


def _string_log():
    df = log(n_users=4, n_items=12)
    users = {u: f"user-{u}" for u in df.user_id.unique()}
    items = dict(zip(sorted(df.item_id.unique()), _ODD_IDS))
    return df.assign(user_id=df.user_id.map(users), item_id=df.item_id.map(items))


def test_string_ids_make_a_protocol_that_saves_and_loads_exactly(tmp_path):
    df = _string_log()
    p = S.make_protocol(df, cold_frac=0.2, seed=0, all_item_ids=["never-rated"])
    assert p.index.item_ids.dtype == object and p.index.item_ids.tolist() == sorted(set(_ODD_IDS) | {"never-rated"})
    np.testing.assert_array_equal(p.index.item_ids[p.train.item_idx], p.train.item_id)
    assert p.index.user_index(["user-3"]).tolist() == [2]
    p.save(tmp_path / "p")
    q = S.Protocol.load(tmp_path / "p")
    assert q.index.item_ids.tolist() == p.index.item_ids.tolist()
    assert [type(i) for i in q.index.item_ids] == [str] * p.n_items
    for part in ("train", "valid", "test", "cold_test"):
        assert q.frame(part).equals(p.frame(part)), part
    index.IndexMap(p.index.user_ids, p.index.item_ids).save(tmp_path / "idx")  # exactly this name, no ".npz" added
    back = index.IndexMap.load(tmp_path / "idx")
    assert back.item_ids.tolist() == p.index.item_ids.tolist() and back.user_ids.tolist() == p.index.user_ids.tolist()
    with pytest.raises(TypeError, match="item ids must be str ids like the index's"):
        p.index.item_index([100])


def test_string_id_dtype_does_not_matter_and_float_or_missing_ids_are_refused():
    df = _string_log()
    a = S.make_protocol(df, cold_frac=0.2, seed=0)
    b = S.make_protocol(df.astype({"user_id": "string", "item_id": "string"}), cold_frac=0.2, seed=0)
    for part in ("train", "cold_test"):
        assert a.frame(part).equals(b.frame(part))
    with pytest.raises(TypeError, match=r"interactions\['item_id'\] must hold integer or str ids.*float64"):
        S.make_protocol(log().astype({"item_id": float}))
    with pytest.raises(ValueError, match=r"interactions\['item_id'\] holds 1 missing ids"):
        S.make_protocol(log().astype({"item_id": float}).assign(item_id=lambda d: d.item_id.where(d.index != 3)))
    with pytest.raises(ValueError, match=r"interactions\['user_id'\] holds 1 missing ids"):
        S.make_protocol(df.assign(user_id=df.user_id.where(df.index != 0, None)))
    with pytest.raises(ValueError, match="empty ids"):
        S.make_protocol(df.assign(user_id=df.user_id.where(df.index != 0, "")))
    with pytest.raises(ValueError, match="NUL"):
        S.make_protocol(df.assign(item_id=["z\x00"] + df.item_id.tolist()[1:]))


def test_float_ratings_and_timestamps_survive_save_and_load(tmp_path):
    df = log().astype({"rating": float, "timestamp": float})
    df["rating"] = np.linspace(0.5, 5, len(df)) / 3  # not short decimals: a CSV must keep every digit
    df["timestamp"] = df["timestamp"] + 0.1
    p = S.make_protocol(df, cold_frac=0.2, seed=0)
    p.save(tmp_path / "p")
    q = S.Protocol.load(tmp_path / "p")
    for part in ("train", "valid", "test", "cold_test"):
        assert q.frame(part).equals(p.frame(part)), part


def test_to_csr_refuses_repeated_pairs_instead_of_summing_them():
    df = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [1, 1, 0], "rating": [4.0, 5.0, 3.0]})
    with pytest.raises(ValueError, match=r"df repeats 1 \(user_idx, item_idx\) pairs \(first \[0, 1\]\)"):
        index.to_csr(df, 2, 2, values="rating")
    with pytest.raises(ValueError, match="df repeats 1"):
        index.to_csr(df, 2, 2)
    m = index.to_csr(df.iloc[1:], 2, 2, values="rating")
    assert m.toarray().tolist() == [[0.0, 5.0], [3.0, 0.0]]
    with pytest.raises(ValueError, match="NaN"):
        index.to_csr(df.iloc[1:].assign(rating=[np.nan, 1.0]), 2, 2, values="rating")
    with pytest.raises(TypeError, match="values must be a str"):
        index.to_csr(df, 2, 2, values=2)


def test_the_csr_memo_follows_a_frame_that_changed():
    p = S.make_protocol(log(), cold_frac=0.2, seed=0)
    before = p.history("valid").nnz
    p.train = p.train.iloc[1:]  # replaced
    assert p.history("valid").nnz == before - 1
    test_nnz = p.csr("test").nnz
    p.test.drop(index=p.test.index[:2], inplace=True)  # edited in place: same object
    assert p.csr("test").nnz == test_nnz - 2
    first = p.valid.index[0]
    u, i = int(p.valid.at[first, "user_idx"]), int(p.valid.at[first, "item_idx"])
    free = next(j for j in range(p.n_items) if p.csr("valid")[u, j] == 0 and p.history("test")[u, j] == 0)
    p.valid.loc[first, "item_idx"] = free  # one index changed in place
    assert p.csr("valid")[u, free] == 1 and p.csr("valid")[u, i] == 0


def test_a_protocol_needs_two_items_and_a_warm_one():
    one = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [5, 5, 5], "rating": 4, "timestamp": [1, 2, 3]})
    for call in (lambda: S.make_protocol(one), lambda: S.cold_item_split(one)):
        with pytest.raises(ValueError, match="interactions must hold at least 2 distinct items.*got 1"):
            call()
    two = pd.DataFrame({"user_id": [1, 1], "item_id": [5, 6], "rating": 4, "timestamp": [1, 2]})
    with pytest.raises(ValueError, match="frac=0.9 of 2 items holds out all 2 of them"):
        S.make_protocol(two, cold_frac=0.9)
    warm, cold = S.cold_item_split(two, cold_frac=0.5)
    assert len(warm) == len(cold) == 1


def test_load_protocol_lets_a_bug_propagate_and_keeps_the_cache(tmp_path, monkeypatch):
    import types

    df = log()
    ml = types.SimpleNamespace(interactions=df, users=pd.DataFrame({"user_id": df.user_id.unique()}),
                               items=pd.DataFrame({"item_id": df.item_id.unique()}))
    monkeypatch.setattr(S, "load_movielens_100k", lambda *a, **k: ml)
    monkeypatch.setattr(S, "data_home", lambda *a, **k: tmp_path)
    S.load_protocol(cold_frac=0.2)
    (folder,) = (tmp_path / "processed").iterdir()

    def buggy(cls, folder):
        raise RuntimeError("a bug in the loader")

    monkeypatch.setattr(S.Protocol, "load", classmethod(buggy))
    with pytest.raises(RuntimeError, match="a bug in the loader"):
        S.load_protocol(cold_frac=0.2)
    assert (folder / "params.json").is_file()  # not deleted as if it were damaged


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
        (lambda p: index.IndexMap.from_ids(["a", 1], [1]), TypeError, "user_ids"),
        (lambda p: index.IndexMap.from_ids([1], [1.5]), TypeError, "item_ids"),
        (lambda p: p.index.user_index([99999]), ValueError, "not in the index"),
        (lambda p: p.frame(0), ValueError, "name must be one of"),
        (lambda p: p.csr("nope"), ValueError, "name must be one of"),
        (lambda p: p.history("train"), ValueError, "eval_set must be one of"),
        (lambda p: p.history_frame("x"), ValueError, "eval_set must be one of"),
        (lambda p: p.catalogue("x"), ValueError, "eval_set must be one of"),
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
        (lambda p: index.to_csr(p.train, 0, p.n_items), ValueError, "n_users"),
        (lambda p: index.to_csr(p.train, 2, p.n_items), ValueError, "user_idx"),
        (lambda p: index.to_csr(p.train, p.n_users, p.n_items, values="nope"), ValueError, "missing"),
        (lambda p: p.index.user_index(["a"]), TypeError, "user ids must be integer ids"),
        (lambda p: p.index.item_index([1.5]), TypeError, "item ids must hold integer or str ids"),
        (lambda p: p.save(3), TypeError, "folder"),
        (lambda p: S.Protocol.load(None), TypeError, "folder"),
        (lambda p: p.index.save(5), TypeError, "path"),
    ],
)
def test_protocol_methods_refuse_bad_input(call, error, message):
    p = S.make_protocol(log(n_users=5, n_items=20), cold_frac=0.25, seed=0)
    with pytest.raises(error, match=message):
        call(p)
