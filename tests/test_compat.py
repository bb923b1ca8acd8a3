"""recsuite.models.recbole_compat: each RecBole 1.2.1 workaround is needed on this stack, and works."""

import os
import pickle
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsuite.models import recbole_compat


@pytest.fixture(scope="module", autouse=True)
def patched():
    recbole_compat.patch_recbole()


def make_config(tmp_path, **extra):
    from recbole.config import Config

    return Config(model="BPR", dataset="toy", config_dict={"data_path": str(tmp_path), **extra})


def test_patch_is_idempotent():
    import recbole.model.general_recommender.lightgcn as lightgcn
    import recbole.trainer.trainer as trainer

    before = (lightgcn.LightGCN.get_norm_adj_mat, trainer.torch, trainer.get_tensorboard, dict(recbole_compat.ORIGINALS))
    recbole_compat.patch_recbole()
    recbole_compat.patch_recbole()
    after = (lightgcn.LightGCN.get_norm_adj_mat, trainer.torch, trainer.get_tensorboard, dict(recbole_compat.ORIGINALS))
    assert before == after
    assert recbole_compat.is_patched()
    assert lightgcn.LightGCN.get_norm_adj_mat is recbole_compat._get_norm_adj_mat
    # the originals kept are RecBole's, not an earlier wrapper of ours
    assert recbole_compat.ORIGINALS["recbole.trainer.trainer.torch"] is torch


def test_quick_start_and_ray_are_not_imported():
    assert "recbole.quick_start" not in sys.modules
    assert "ray" not in sys.modules


# -- SciPy >= 1.13: dok_matrix._update -------------------------------------------------------------------
def stand_in(r):
    """What RecBole's get_norm_adj_mat reads from a LightGCN: the train interactions as COO and the sizes."""
    r = sp.coo_matrix(r, dtype=np.float32)

    class Model:
        interaction_matrix = r
        n_users, n_items = r.shape
        device = torch.device("cpu")

    return Model()


def test_original_norm_adj_mat_is_broken_on_this_scipy():
    with pytest.raises(AttributeError, match="_update"):
        recbole_compat.ORIGINALS["LightGCN.get_norm_adj_mat"](stand_in(np.ones((1, 2))))


def test_norm_adj_matches_hand_built_three_node_graph():
    # one user who saw both items: A = [[0,1,1],[1,0,0],[1,0,0]], degrees (2, 1, 1)
    import recbole.model.general_recommender.lightgcn as lightgcn

    L = lightgcn.LightGCN.get_norm_adj_mat(stand_in(np.array([[1.0, 1.0]]))).to_dense().numpy()
    a = 1 / np.sqrt(2)
    expected = np.array([[0, a, a], [a, 0, 0], [a, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(L, expected, rtol=1e-6)
    assert L.dtype == np.float32


def original_algorithm(r):
    """RecBole's get_norm_adj_mat with only the removed dok._update replaced by item assignment."""
    r = sp.coo_matrix(r)
    n_users, n_items = r.shape
    A = sp.dok_matrix((n_users + n_items, n_users + n_items), dtype=np.float32)
    A[r.row, r.col + n_users] = 1
    A[r.col + n_users, r.row] = 1
    diag = np.power(np.array((A > 0).sum(axis=1)).ravel() + 1e-7, -0.5)
    D = sp.diags(diag)
    return sp.coo_matrix(D @ A @ D).toarray().astype(np.float32), diag


def test_norm_adj_equals_recbole_original_bit_for_bit():
    rng = np.random.default_rng(0)
    r = (rng.random((7, 9)) < 0.3).astype(np.float32)
    r[3] = 0  # a user without interactions
    r[:, 5] = 0  # an item without interactions
    coo = sp.coo_matrix(r)
    # a duplicated interaction counts once, as in RecBole's dict-based construction
    dup = sp.coo_matrix((np.r_[coo.data, 1.0], (np.r_[coo.row, coo.row[0]], np.r_[coo.col, coo.col[0]])), shape=r.shape)
    L, diag = recbole_compat.norm_adj_matrix(dup, 7, 9)
    want, want_diag = original_algorithm(r)
    assert np.array_equal(L.toarray(), want)
    assert np.array_equal(diag, want_diag)
    np.testing.assert_allclose(L.toarray(), L.toarray().T)


def test_norm_adj_checks_shape():
    with pytest.raises(ValueError, match="expected"):
        recbole_compat.norm_adj_matrix(sp.coo_matrix(np.ones((2, 3))), 3, 2)


@pytest.mark.parametrize("args, error, match", [
    ((np.ones((2, 3)), 2, 3), TypeError, "interaction_matrix must be a 2-D scipy.sparse"),
    ((sp.coo_matrix(np.ones((2, 3))), 2.0, 3), TypeError, "n_users"),
    ((sp.coo_matrix(np.ones((2, 3))), 2, True), TypeError, "n_items"),
    ((sp.coo_matrix(np.ones((2, 3))), 0, 3), ValueError, "n_users"),
    ((sp.coo_matrix(np.ones((2, 3))), 2, -3), ValueError, "n_items"),
    ((sp.coo_matrix(np.array([[1.0, np.nan, 0.0], [0.0, 1.0, 1.0]])), 2, 3), ValueError, "NaN"),
    ((sp.coo_matrix(np.array([[1.0, -1.0, 0.0], [0.0, 1.0, 1.0]])), 2, 3), ValueError, "non-negative"),
    (("not a matrix", 1, 2), TypeError, "interaction_matrix"),
    ((sp.coo_matrix(np.ones((2, 3))), 2, 4), ValueError, "expected"),
])
def test_norm_adj_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        recbole_compat.norm_adj_matrix(*args)


def test_norm_adj_counts_every_stored_entry_once_whatever_its_weight():
    weighted = sp.coo_matrix((np.array([5.0, 2.0, 2.0]), (np.array([0, 1, 1]), np.array([1, 0, 0]))), shape=(2, 2))
    binary = sp.coo_matrix((np.ones(2), (np.array([0, 1]), np.array([1, 0]))), shape=(2, 2))
    np.testing.assert_array_equal(recbole_compat.norm_adj_matrix(weighted, 2, 2)[0].toarray(),
                                  recbole_compat.norm_adj_matrix(binary, 2, 2)[0].toarray())


def test_ncl_keeps_its_degree_vector():
    import recbole.model.general_recommender.ncl as ncl

    model = stand_in(np.array([[1.0, 0.0], [1.0, 1.0]]))
    ncl.NCL.get_norm_adj_mat(model)
    np.testing.assert_allclose(model.diag.numpy(), np.power(np.array([1, 2, 2, 1]) + 1e-7, -0.5))


# -- torch >= 2.6: weights_only ----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_recbole_checkpoints_load_only_through_the_patched_call_sites(tmp_path):
    import recbole.trainer.trainer as trainer

    config = make_config(tmp_path)
    path = tmp_path / "ckpt.pth"
    # what Trainer._save_checkpoint writes: the whole Config next to the weights
    torch.save({"config": config, "epoch": 3, "state_dict": {"w": torch.ones(2)}}, path, pickle_protocol=4)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch's safe default stays on everywhere else
    ckpt = trainer.torch.load(path, map_location="cpu")
    assert ckpt["epoch"] == 3 and ckpt["config"]["model"] == "BPR"
    with pytest.raises(pickle.UnpicklingError):
        trainer.torch.load(path, weights_only=True)  # an explicit choice at a call site still wins
    assert trainer.torch.ones(1).item() == 1.0  # everything else is plain torch


# -- Config isolation -----------------------------------------------------------------------------------
def test_config_ignores_the_host_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=999", "--nbval-cell-timeout=1200"])
    config = make_config(tmp_path, epochs=3)
    assert config["epochs"] == 3
    assert config["nbval-cell-timeout"] is None


def test_config_leaves_cuda_visible_devices_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    config = make_config(tmp_path, gpu_id="")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"
    assert config["device"] == torch.device("cpu")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    make_config(tmp_path)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_numpy_aliases_come_from_names_numpy2_still_has(tmp_path):
    make_config(tmp_path)
    assert np.float is np.float64 and np.complex is np.complex128 and np.unicode is np.str_


def test_tensorboard_writer_writes_nothing(tmp_path, monkeypatch):
    import recbole.trainer.trainer as trainer

    monkeypatch.chdir(tmp_path)
    writer = trainer.get_tensorboard(None)
    writer.add_scalar("loss", 1.0, 0)
    writer.add_hparams({"lr": 0.1}, {"ndcg": 0.2})
    assert isinstance(writer, recbole_compat.NullSummaryWriter)
    assert list(tmp_path.iterdir()) == []


# -- what only the pins can fix ---------------------------------------------------------------------------
def test_stack_check_refuses_pandas_3(monkeypatch):
    import pandas as pd

    assert recbole_compat.check_stack() == []
    monkeypatch.setattr(pd, "__version__", "3.0.1")
    problems = recbole_compat.check_stack()
    assert len(problems) == 1 and "pandas 3.0.1" in problems[0]
    monkeypatch.setattr(recbole_compat, "_PATCHED", False)
    with pytest.raises(RuntimeError, match="pandas<3"):
        recbole_compat.patch_recbole()
