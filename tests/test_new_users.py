"""recsuite.data.new_users: the new-user protocol (held-out users, revealed prefixes, a fixed truth)."""

import numpy as np
import pandas as pd
import pytest

from recsuite.data import new_users as NU
from recsuite.data.split import make_protocol


def _log(n_users=30, n_items=40, per_user=16, seed=3, short_user=None):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        m = 5 if u == short_user else per_user
        items = rng.choice(np.arange(1, n_items + 1), size=m, replace=False)
        ts = np.sort(rng.integers(0, 50, size=m)) * 60  # many equal timestamps: the tie rule matters
        rows += [(u, i, 4, t) for i, t in zip(items, ts)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def proto():
    return make_protocol(_log(), cold_frac=0.1, seed=0)


@pytest.fixture(scope="module")
def split(proto):
    return NU.make_new_user_split(proto, share=0.3, n_max=5, seed=1)


def _warm_history(proto, u):
    f = pd.concat([proto.train, proto.valid, proto.test])
    f = f[(f.user_idx == u) & proto.catalogue("test")[f.item_idx.to_numpy()]]
    return [i for _, i in sorted(zip(f.timestamp, f.item_idx))]  # time, then item index on ties


def test_held_out_users_reach_no_model_and_the_slices_split_them(proto, split):
    assert len(split.users) == round(0.3 * proto.n_users) == 9
    assert set(split.valid_users) | set(split.test_users) == set(split.users)
    assert not set(split.valid_users) & set(split.test_users)
    assert not set(split.history_frame().user_idx) & set(split.users)
    assert split.history()[split.users].nnz == 0
    others = np.setdiff1d(np.arange(proto.n_users), split.users)
    whole = pd.concat([proto.train, proto.valid, proto.test])
    assert len(split.history_frame()) == whole.user_idx.isin(others).sum()  # the training users keep every row
    info = split.check()
    assert info["held_out_users"] == 9 and info["pairs_overlap"] == 0 and info["users_time_checked"] == 9


def test_sequences_are_warm_and_in_time_order_and_prefixes_nest(proto, split):
    for u, seq in zip(split.users, split.sequences):
        assert seq.tolist() == _warm_history(proto, u)
    r1, r3 = split.revealed(1), split.revealed(3)
    assert r1.nnz == len(split.users) and r3.nnz == 3 * len(split.users)
    assert ((r1 - r1.multiply(r3)).nnz) == 0  # the first item is among the first three
    assert split.revealed(0).nnz == 0
    seqs = split.revealed_sequences(3)
    for u, seq in zip(split.users, split.sequences):
        assert seqs[u].tolist() == seq[:3].tolist()
    assert sum(len(s) for s in seqs) == 3 * len(split.users)  # nobody else reveals anything


def test_truth_is_after_n_max_the_same_for_every_n(split):
    for part, users in (("valid", split.valid_users), ("test", split.test_users)):
        truth = split.truth(part)
        assert set(np.flatnonzero(np.diff(truth.indptr))) == set(users)
        for u, seq in zip(split.users, split.sequences):
            if u in users:
                assert set(truth[u].indices) == set(seq[split.n_max:].tolist())
    f = split.truth_frame("test")
    assert (f.step >= split.n_max).all() and f.user_idx.isin(split.test_users).all()


def test_ranking_leaves_out_the_first_n_max_and_the_cold_items(proto, split):
    scores = np.random.default_rng(0).random((proto.n_users, proto.n_items)).astype(np.float32)
    scores[:, proto.cold_items] = 10.0
    for u, seq in zip(split.users, split.sequences):
        scores[u, seq[:split.n_max]] = 5.0  # the user's own first items, scored highest after the cold ones
    top = split.rank(scores, k=8)
    for u, seq in zip(split.users, split.sequences):
        assert not set(top[u]) & set(seq[:split.n_max].tolist())
    assert not np.isin(top, proto.cold_items).any()


def test_a_known_answer_and_pairing(proto, split):
    truth = split.truth("test").toarray()
    perfect = truth + 0.001 * np.arange(proto.n_items)[None, :]
    assert split.evaluate(perfect, "test", k=3) == pytest.approx(1.0)
    worst = -truth.astype(np.float32)
    per_user = split.per_user(worst, "test", k=3)
    assert per_user.shape == (proto.n_users,) and per_user[split.valid_users].isna().all()
    assert per_user[split.test_users].notna().all()
    diff = split.compare(perfect, worst, "test", k=3, n_boot=200, seed=0)
    assert diff.diff > 0.5 and diff.verdict() == "higher" and diff.n_users == len(split.test_users)


def test_users_without_a_truth_are_never_held_out(proto):
    p = make_protocol(_log(short_user=4), cold_frac=0.1, seed=0)
    s = NU.make_new_user_split(p, share=0.3, n_max=5, seed=1)
    short = int(p.index.user_index([4])[0])
    assert short not in set(s.users) and s.ineligible >= 1
    assert short in set(s.history_frame().user_idx)  # it stays a training user, counted, not dropped
    assert all(len(seq) > 5 for seq in s.sequences)


def test_the_draw_is_seeded(proto, split):
    again = NU.make_new_user_split(proto, share=0.3, n_max=5, seed=1)
    assert np.array_equal(again.users, split.users) and np.array_equal(again.valid_users, split.valid_users)
    other = NU.make_new_user_split(proto, share=0.3, n_max=5, seed=2)
    assert not np.array_equal(other.users, split.users)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(share=0.0), ValueError, "strictly between 0 and 1"),
    (dict(share=1.0), ValueError, "strictly between 0 and 1"),
    (dict(valid_share=1.0), ValueError, "strictly between 0 and 1"),
    (dict(share="0.2"), TypeError, "share"),
    (dict(n_max=0), ValueError, "n_max"),
    (dict(n_max=20), ValueError, "more than n_max=20 warm interactions"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(protocol="p"), TypeError, "protocol"),
])
def test_bad_arguments_are_named(proto, kwargs, exc, match):
    kwargs = {"protocol": proto, **kwargs}
    with pytest.raises(exc, match=match):
        NU.make_new_user_split(**kwargs)


def test_bad_calls_on_a_split_are_named(proto, split):
    with pytest.raises(ValueError, match="n must be"):
        split.revealed(split.n_max + 1)
    with pytest.raises(ValueError, match="part must be one of"):
        split.truth("cold_test")
    with pytest.raises(ValueError, match=r"scores must have shape \(n_users, n_items\)"):
        split.rank(np.zeros((2, proto.n_items)))
    with pytest.raises(ValueError, match="metric must be one of"):
        split.per_user(np.zeros((proto.n_users, proto.n_items)), metric="auc")


def test_a_horizon_keeps_only_the_next_items_after_n_max(split):
    f = split.truth_frame("test", horizon=2)
    assert (f.step >= split.n_max).all() and (f.step < split.n_max + 2).all()
    assert f.groupby("user_idx").size().max() <= 2
    near, far = split.truth("test", horizon=2), split.truth("test")
    assert near.nnz == len(f) and (near - near.multiply(far)).nnz == 0  # the near truth is part of the whole one
    with pytest.raises(ValueError, match="horizon"):
        split.truth("test", horizon=0)


def test_evaluate_all_reads_only_the_parts_lists(proto, split):
    rng = np.random.default_rng(1)
    a = rng.random((proto.n_users, proto.n_items)).astype(np.float32)
    b = a.copy()
    others = np.setdiff1d(np.arange(proto.n_users), split.test_users)
    b[others] = rng.random((len(others), proto.n_items))  # only users outside the test slice change
    assert split.evaluate_all(a, "test", k=5) == split.evaluate_all(b, "test", k=5)
    row = split.evaluate_all(a, "test", k=5)
    assert row["users"] == len(split.test_users) and row["ndcg@5"] == pytest.approx(split.evaluate(a, "test", k=5))
    table = split.summary()
    assert table.loc["new users: test", "users"] == len(split.test_users)
    assert table.loc["new users: test", "truth ratings"] == split.truth("test").nnz
    assert table.loc["training users", "training ratings"] == len(split.history_frame())
