"""RecBole's sequential recommenders (SASRec, GRU4Rec) on our split: fit_recbole_sequential, score_sequences."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recsuite.models import recbole_sequential as recbole

N_USERS, N_ITEMS, CYCLE = 30, 40, 39  # items 0..38 form the cycle; item 39 occurs only late in test
TINY = {
    "SASRec": {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1, "learning_rate": 0.01,
               "train_batch_size": 64},
    "GRU4Rec": {"embedding_size": 16, "hidden_size": 16, "learning_rate": 0.01, "train_batch_size": 64},
}


def cyclic_split():
    """Each user walks i, i+1, i+2, ... (mod 39) in time: 11 train, 2 valid, 2 test steps.

    User 0's last test interaction is item 39, in no other row: outside RecBole's id space, which holds
    the first test item of each user only.
    """
    rng = np.random.default_rng(0)
    rows = []
    for u in range(N_USERS):
        start = int(rng.integers(CYCLE))
        rows += [(u, (start + t) % CYCLE, 1000 * u + t) for t in range(15)]
    df = pd.DataFrame(rows, columns=["user_idx", "item_idx", "timestamp"])
    df.loc[14, "item_idx"] = N_ITEMS - 1
    step = df.groupby("user_idx").cumcount()
    return df[step < 11], df[(step >= 11) & (step < 13)], df[step >= 13]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    train, valid, test = cyclic_split()
    work = tmp_path_factory.mktemp("recbole_seq")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models = {name: recbole.fit_recbole_sequential(name, train, valid, test, N_USERS, N_ITEMS, config=cfg,
                                                       epochs=10, seed=0, workdir=work)
                  for name, cfg in TINY.items()}
    return models, [w for w in caught if "recbole" in w.filename], work


def histories(length=5):
    """One history per cycle position: (s, s+1, ..., s+length-1) and its true next item."""
    starts = np.arange(CYCLE)
    seqs = [(s + np.arange(length)) % CYCLE for s in starts]
    return seqs, (starts + length) % CYCLE


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec"])
def test_sequential_models_fit_and_score_our_items(fitted, name):
    models, _, _ = fitted
    m = models[name]
    seqs, _ = histories()
    s = m.score_sequences(seqs + [np.arange(60) % CYCLE], batch_size=7)  # a history longer than max_len too
    assert s.shape == (CYCLE + 1, N_ITEMS) and s.dtype == np.float32 and np.isfinite(s).all()
    assert len(m.train_loss) >= 1 and m.best_valid is not None and m.valid_curve
    assert set(m.recbole_eval) == {f"{k}@10" for k in recbole.RECBOLE_METRICS}
    assert m.known_items.sum() == CYCLE and not m.known_items[N_ITEMS - 1]
    # batching does not change a row: the same histories scored one at a time
    np.testing.assert_allclose(m.score_sequences(seqs[:3], batch_size=1), s[:3], rtol=1e-5, atol=1e-5)


def test_fit_leaves_no_files_warnings_or_anomaly_mode(fitted):
    _, caught, work = fitted
    assert [str(w.message) for w in caught] == []  # RecBole's known noise is silenced, nothing else appears
    assert list(work.iterdir()) == []  # the temporary folder is removed
    assert not torch.is_anomaly_enabled()  # RecBole's sine.py switches it on at import (recbole_compat row 9)


def test_trained_sasrec_ranks_the_true_next_item_near_the_top(fitted):
    models, _, _ = fitted
    seqs, nxt = histories()
    s = models["SASRec"].score_sequences(seqs)
    rank = (s > s[np.arange(len(nxt)), nxt][:, None]).sum(axis=1)  # 0 = the next item scores highest
    hit3 = (rank < 3).mean()
    assert hit3 >= 0.8, f"hit@3 {hit3:.2f}; chance is 3/{N_ITEMS} = {3 / N_ITEMS:.3f}"
    assert models["SASRec"].recbole_eval["hit@10"] >= 0.5  # RecBole's evaluator on the test rows agrees


def test_items_outside_recbole_id_space_get_row_min_minus_one(fitted):
    models, _, _ = fitted
    m = models["GRU4Rec"]
    seqs, _ = histories()
    s = m.score_sequences(seqs + [np.array([N_ITEMS - 1])])
    known = s[:-1, :N_ITEMS - 1]
    np.testing.assert_array_equal(s[:-1, N_ITEMS - 1], known.min(axis=1) - 1.0)
    # the unknown item is dropped from a history: (39, s...) reads as (s...)
    np.testing.assert_allclose(m.score_sequences([np.r_[N_ITEMS - 1, seqs[0]]]), s[:1], rtol=1e-5, atol=1e-5)
    # an empty history (also after the drop) is a constant row: nothing ranks above anything
    assert (s[-1] == 0).all()
    assert (m.score_sequences([np.array([], dtype=np.int64)]) == 0).all()


def _read(folder, part):
    return pd.read_csv(folder / f"recsuite.{part}.inter", sep="\t", dtype=str, keep_default_na=False)


def test_written_rows_are_the_augmentation_of_train(tmp_path):
    # user 0: items 5, 3 at t=1 (a tie: item order 3, 5), then 7, 2; user 1: 9 only; max_len 2
    train = pd.DataFrame({"user_idx": [0, 0, 0, 0, 1], "item_idx": [5, 3, 7, 2, 9], "timestamp": [1, 1, 2, 3, 1]})
    valid = pd.DataFrame({"user_idx": [0, 0, 1, 2], "item_idx": [8, 6, 4, 1], "timestamp": [5, 4, 2, 1]})
    test = pd.DataFrame({"user_idx": [1, 0, 1], "item_idx": [0, 1, 2], "timestamp": [9, 9, 8]})
    order = [recbole._ordered_interactions(df, name, 3, 10) for df, name in
             ((train, "train_df"), (valid, "valid_df"), (test, "test_df"))]
    counts = recbole._write_sequential_files(tmp_path, *order, n_users=3, max_len=2)
    assert counts == {"train": 3, "valid": 2, "test": 2}
    header = ["user_id:token", "item_id_list:token_seq", "item_id:token"]
    # one row per train interaction after the user's first; history = previous <= 2 train items
    assert _read(tmp_path, "train").values.tolist() == [["0", "3", "5"], ["0", "3 5", "7"], ["0", "5 7", "2"]]
    # valid: the user's last <= 2 train items -> first valid item (user 0: 6 at t=4); user 2 has no history
    assert _read(tmp_path, "valid").values.tolist() == [["0", "7 2", "6"], ["1", "9", "4"]]
    # test: last <= 2 of train+valid in time -> first test item (user 1: 2 at t=8)
    assert _read(tmp_path, "test").values.tolist() == [["0", "6 8", "1"], ["1", "9 4", "2"]]
    assert list(_read(tmp_path, "test").columns) == header

    # a refit: no valid file of its own (the slot holds test), and the test history is train alone
    counts = recbole._write_sequential_files(tmp_path, order[0], None, order[2], n_users=3, max_len=3)
    assert counts == {"train": 3, "test": 2, "valid": 2}
    assert _read(tmp_path, "test").values.tolist() == [["0", "5 7 2", "1"], ["1", "9", "2"]]
    assert _read(tmp_path, "valid").values.tolist() == _read(tmp_path, "test").values.tolist()


def test_the_augmentation_matches_protocol_sequences_order(tmp_path):
    # the train rows' histories, read back, are prefixes of the time-ordered sequence (ties by item index)
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"user_idx": rng.integers(0, 4, 60), "item_idx": rng.integers(0, 12, 60),
                          "timestamp": rng.integers(0, 5, 60)})
    order = recbole._ordered_interactions(train, "train_df", 4, 12)
    recbole._write_sequential_files(tmp_path, order, None, order, n_users=4, max_len=50)
    rows = _read(tmp_path, "train")
    for u in range(4):
        f = train[train.user_idx == u]
        seq = f.item_idx.to_numpy()[np.lexsort((f.item_idx, f.timestamp))].astype(str).tolist()
        mine = rows[rows["user_id:token"] == str(u)]
        assert mine["item_id:token"].tolist() == seq[1:]
        assert mine["item_id_list:token_seq"].tolist() == [" ".join(seq[:j]) for j in range(1, len(seq))]


def test_refit_runs_exactly_epochs_without_early_stopping(tmp_path):
    train, valid, test = cyclic_split()
    m = recbole.fit_recbole_sequential("GRU4Rec", pd.concat([train, valid]), None, test, N_USERS, N_ITEMS,
                                       config=TINY["GRU4Rec"], epochs=2, workdir=tmp_path)
    assert sorted(m.train_loss) == [0, 1] and m.valid_curve == [] and m.best_valid is None
    assert m.score_sequences([np.array([0, 1])]).shape == (1, N_ITEMS)


def test_model_names():
    names = recbole.recbole_sequential_models()
    assert {"SASRec", "GRU4Rec", "BERT4Rec"} <= set(names)
    assert not {"Caser", "SASRecF", "KSR", "DIN"} & set(names)  # user ids, item features, KG, labels


@pytest.mark.parametrize("kwargs, error, match", [
    ({"model": "sasrec"}, ValueError, "case-sensitive"),
    ({"model": "BPR"}, ValueError, "not a supported RecBole sequential"),
    ({"model": "SASRecF"}, ValueError, "item feature"),
    ({"model": "Caser"}, ValueError, "user id"),
    ({"model": 3}, TypeError, "model must be"),
    ({"config": {"MAX_ITEM_LIST_LENGTH": 20}}, ValueError, "MAX_ITEM_LIST_LENGTH"),
    ({"config": {"alias_of_item_id": []}}, ValueError, "alias_of_item_id"),
    ({"config": {"epochs": 3}}, ValueError, "epochs"),
    ({"config": "SASRec"}, TypeError, "config must be a dict"),
    ({"max_len": 0}, ValueError, "max_len"),
    ({"drop": "timestamp"}, ValueError, r"train_df must have columns .*missing \['timestamp'\]"),
    ({"bad_item": N_ITEMS}, ValueError, "train_df.item_idx holds"),
    ({"nan_time": True}, ValueError, "train_df.timestamp holds 1 missing"),
])
def test_bad_inputs_raise(tmp_path, kwargs, error, match):
    train, valid, test = cyclic_split()
    if "drop" in kwargs:
        train = train.drop(columns=kwargs.pop("drop"))
    if "bad_item" in kwargs:
        train = train.copy()
        train.iloc[0, 1] = kwargs.pop("bad_item")
    if kwargs.pop("nan_time", False):
        train = train.astype({"timestamp": float})
        train.iloc[0, 2] = np.nan
    args = {"model": "SASRec", "config": None, **kwargs}
    with pytest.raises(error, match=match):
        recbole.fit_recbole_sequential(args.pop("model"), train, valid, test, N_USERS, N_ITEMS, workdir=tmp_path,
                                       **args)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize("sequences, error, match", [
    ([np.array([0, N_ITEMS])], ValueError, r"sequences\[0\] holds"),
    ([np.array([1, 2]), np.array([-1])], ValueError, r"sequences\[1\] holds"),
    ([np.array([1.5])], TypeError, r"sequences\[0\] must be an int array"),
    ([np.array([[1, 2]])], ValueError, r"sequences\[0\] must be 1-D"),
    (np.array([[1, 2]]), TypeError, "sequences must be a list of 1-D item-index arrays"),
])
def test_score_sequences_refuses_bad_histories(fitted, sequences, error, match):
    models, _, _ = fitted
    with pytest.raises(error, match=match):
        models["SASRec"].score_sequences(sequences)
    with pytest.raises(ValueError, match="batch_size"):
        models["SASRec"].score_sequences([np.array([1])], batch_size=0)


def test_files_without_rows_are_refused(tmp_path):
    one = pd.DataFrame({"user_idx": [0, 1], "item_idx": [0, 1], "timestamp": [0, 0]})
    two = pd.DataFrame({"user_idx": [0, 0], "item_idx": [0, 1], "timestamp": [0, 1]})
    with pytest.raises(ValueError, match="single train interaction"):
        recbole.fit_recbole_sequential("GRU4Rec", one, one, one, 2, 2, k=1, workdir=tmp_path)
    with pytest.raises(ValueError, match="no user with a valid item has an earlier item"):
        recbole.fit_recbole_sequential("GRU4Rec", two, pd.DataFrame({"user_idx": [1], "item_idx": [0], "timestamp": [2]}),
                                       two, 2, 2, k=1, workdir=tmp_path)
