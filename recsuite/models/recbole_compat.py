"""Every workaround RecBole 1.2.1 needs on recsuite's stack, applied by one idempotent ``patch_recbole()``.

RecBole 1.2.1 (Zhao et al. 2021, CIKM) is the last release and predates NumPy 2, pandas 3, SciPy 1.13 and
torch 2.6. Our stack is numpy 1.26.4, pandas 2.3.3, scipy 1.17.1, torch 2.13.0. Each workaround says which
upstream issue/PR it answers and whether the *pins* or *code here* covers it:

=====  ==============================================  ====================================================
 #     problem (upstream)                              covered by
=====  ==============================================  ====================================================
 1     ``np.float_``/``np.complex_``/``np.unicode_``   code: ``Config.compatibility_settings`` replaced by
       read in ``Config.compatibility_settings``;      a version that takes the aliases from names NumPy 1
       gone in NumPy 2 (RUCAIBox/RecBole PRs #2203,    and 2 both have. The numpy<2 pin covers it too
       #2187). The evaluator's ``np.float`` (issues    (nothing else in RecBole 1.2.1 is tested on
       #1604, #1617) relies on these aliases.          NumPy 2 here).
 2     chained ``df[col].fillna(..., inplace=True)``   pin: pandas<3. On pandas 2.x the chained call still
       in ``Dataset._fill_nan``/``_load_feat``         writes through (its FutureWarning: ``quiet_recbole``);
       silently does nothing under pandas 3            under pandas 3's copy-on-write it would leave NaN,
       copy-on-write (the warning: pandas-dev/pandas   so ``patch_recbole`` refuses pandas >= 3. Our atomic
       PR #56064; no RecBole issue found)              files have no missing values, so the path is moot.
 3     since torch 2.6 ``torch.load`` defaults to      code: the ``torch`` seen by RecBole's trainer and
       ``weights_only=True``; RecBole's checkpoints    NeuMF modules loads with ``weights_only=False``;
       pickle a whole ``Config`` (issue #2212,         see ``_TrustedCheckpointTorch``. Everywhere else
       PRs #2219, #2187)                               torch's safe default stays on.
 4     ``dok_matrix._update`` removed in SciPy 1.13:   code: ``get_norm_adj_mat`` of LightGCN, NGCF and NCL
       LightGCN/NGCF/NCL cannot be built (issues       rebuilt from a COO matrix (``norm_adj_matrix``), the
       #2034, #2090, #2185)                            same D^-1/2 A D^-1/2 bit for bit, as a
                                                       ``sparse_coo_tensor`` (``torch.sparse.FloatTensor`` is
                                                       deprecated). GCMC, SpectralCF and the KG models keep
                                                       the bug (not used in the course).
 5     ``recbole.quick_start`` imports ``ray`` at      code: recsuite never imports ``recbole.quick_start``
       module level (issues #1518, #1820)              (``recsuite.models.cf`` drives Config/data/Trainer itself).
 6     the trainer writes TensorBoard event files to   code: ``get_tensorboard`` returns a no-op writer; the
       ``./log_tensorboard`` in the working directory  logger is never initialised, so no ``./log`` either.
 7     ``Config`` parses the host's ``sys.argv``       code: ``Config._load_cmd_line`` returns ``{}``; a
       (``--key=value`` from pytest or a launcher      library call is configured by its arguments only.
       would override our config); no issue found
 8     ``Config._init_device`` overwrites              code: the variable is restored after ``Config``
       ``CUDA_VISIBLE_DEVICES`` for the whole process  reads it, so a CPU-only config cannot hide the GPU
       (``""`` on CPU hides every GPU from torch)      from the rest of the lesson.
 9     ``sequential_recommender/sine.py`` calls        code: ``patch_recbole`` imports RecBole's sequential
       ``torch.autograd.set_detect_anomaly(True)`` at  models itself and restores the anomaly flag it found
       import: every backward in the process records   (importing them later is then a no-op). If sine was
       stack traces (2-5x slower training here); no    imported before ``patch_recbole``, the flag is left
       issue found                                     as it is (we cannot tell who set it).
=====  ==============================================  ====================================================

Introduced in notebooks/04_neural_cf_recbole.ipynb
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from contextlib import contextmanager
from types import ModuleType

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.optional import require

_LOCK = threading.Lock()
_PATCHED = False
ORIGINALS: dict[str, object] = {}  # what patch_recbole replaced, by dotted name (tests compare with these)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_stack() -> list[str]:
    """Problems of the installed stack that no code here can fix (empty when the pins hold).

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    problems = []
    if _version_tuple(pd.__version__) >= (3, 0):
        problems.append(
            f"pandas {pd.__version__} is installed, but RecBole 1.2.1 fills missing values with chained "
            "inplace fillna, which does nothing under pandas 3 copy-on-write; install pandas<3 (recsuite pins 2.3.3)"
        )
    return problems


# -- 1. NumPy aliases -------------------------------------------------------------------------------------
def _compatibility_settings(self) -> None:
    # RecBole's own version reads np.float_, np.complex_, np.unicode_, which NumPy 2 removed (PR #2203).
    # The same aliases, taken from names both NumPy 1.x and 2.x have; identical objects on NumPy 1.26.
    np.bool = np.bool_
    np.int = np.int_
    np.float = np.float64
    np.complex = np.complex128
    np.object = np.object_
    np.str = np.str_
    np.long = np.int_
    np.unicode = np.str_


# -- 3. torch.load of RecBole's own checkpoints ------------------------------------------------------------
class _TrustedCheckpointTorch(ModuleType):
    """``torch`` as seen from one RecBole module: everything delegated, but ``load`` unpickles fully.

    RecBole's ``Trainer._save_checkpoint`` pickles the whole ``Config`` (enums, ``torch.device``, dicts) next
    to the state dict, and ``Trainer.evaluate(load_best_model=True)`` / ``resume_checkpoint`` read it back
    with a bare ``torch.load``, which torch >= 2.6 refuses (weights_only=True). Allow-listing every class a
    Config can hold is brittle, and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` would switch the safe default off
    for every ``torch.load`` in the process (transformers, peft, user code). Rebinding ``torch`` inside the
    two RecBole modules changes only their call sites, which read checkpoints RecBole itself wrote in this
    process (or files a user hands to RecBole explicitly): trusted by construction. An explicit
    ``weights_only=`` at a call site still wins. Upstream: RUCAIBox/RecBole issue #2212 (NeuMF pretrain
    loads), PR #2219 (weights_only=False there), PR #2187 (the same for the trainer and quick_start).
    """

    def __init__(self, torch_module: ModuleType):
        super().__init__("torch")
        self.__dict__["_torch"] = torch_module

    def __getattr__(self, name):
        return getattr(self.__dict__["_torch"], name)

    def load(self, f, *args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return self.__dict__["_torch"].load(f, *args, **kwargs)


# -- 4. normalised adjacency without dok_matrix._update ------------------------------------------------
def norm_adj_matrix(interaction_matrix, n_users: int, n_items: int):
    """The symmetric normalised user-item graph Â = D^-1/2 A D^-1/2 as (COO float32, degree^-1/2 float64).

    ``interaction_matrix`` is a scipy.sparse (n_users, n_items) matrix of finite non-negative weights; every
    stored entry is one edge. A = [[0, R], [R^T, 0]] over n_users + n_items nodes with binary R; D = diag(row sums of A) + 1e-7, as in
    RecBole's LightGCN/NGCF/NCL (He et al. 2020, "LightGCN", SIGIR). Built from COO, so it works on SciPy
    >= 1.13 (where ``dok_matrix._update`` is gone) and equals RecBole's original entry for entry: a dict of
    (row, col) -> 1 is binary, so duplicate interactions count once here too.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    n_users = checks.positive_int("n_users", n_users)
    n_items = checks.positive_int("n_items", n_items)
    if getattr(interaction_matrix, "shape", None) is not None and tuple(interaction_matrix.shape) != (n_users, n_items):
        raise ValueError(f"interaction_matrix has shape {tuple(interaction_matrix.shape)}, "
                         f"expected ({n_users}, {n_items})")
    # every stored entry is an edge, as in RecBole's dict of (row, col) -> 1; NaN, inf or negative weights
    # mean the matrix is not an interaction matrix
    r = checks.sparse("interaction_matrix", interaction_matrix, shape=(n_users, n_items), nonnegative=True).tocoo()
    keys = np.unique(r.row.astype(np.int64) * n_items + r.col.astype(np.int64))  # binary, duplicates merged
    u, i = keys // n_items, keys % n_items
    n = n_users + n_items
    row = np.concatenate([u, i + n_users])
    col = np.concatenate([i + n_users, u])
    degree = np.bincount(row, minlength=n).astype(np.float64)
    # RecBole: diag = (A > 0).sum(1) + 1e-7; D^-1/2 A D^-1/2 evaluated in float64, then cast to float32
    diag = np.power(degree + 1e-7, -0.5)
    order = np.lexsort((col, row))  # row-major, as coo_matrix(csr) gives it
    row, col = row[order], col[order]
    data = (diag[row] * diag[col]).astype(np.float32)
    return sp.coo_matrix((data, (row, col)), shape=(n, n)), diag


def _coo_to_torch(L):
    torch = require("torch", "text")

    indices = torch.from_numpy(np.vstack([L.row, L.col]).astype(np.int64))
    # indices are unique and row-major sorted; checking that costs one pass and silences torch's warning
    return torch.sparse_coo_tensor(
        indices, torch.from_numpy(L.data), L.shape, dtype=torch.float32, check_invariants=True, is_coalesced=True
    )


def _get_norm_adj_mat(self):
    # Replaces LightGCN/NGCF.get_norm_adj_mat (issues #2034, #2090, #2185: dok_matrix._update is gone).
    L, _ = norm_adj_matrix(self.interaction_matrix, self.n_users, self.n_items)
    return _coo_to_torch(L)


def _get_norm_adj_mat_ncl(self):
    # NCL's version also keeps D^-1/2 for its prototype loss.
    torch = require("torch", "text")

    L, diag = norm_adj_matrix(self.interaction_matrix, self.n_users, self.n_items)
    self.diag = torch.from_numpy(diag).to(self.device)
    return _coo_to_torch(L)


# -- 6. no TensorBoard files ----------------------------------------------------------------------------
class NullSummaryWriter:
    """Stands in for ``torch.utils.tensorboard.SummaryWriter``: accepts every call, writes nothing."""

    log_dir = None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _get_tensorboard(logger):
    # RecBole opens ./log_tensorboard/<run> in the working directory for every Trainer; a lesson run from
    # the repo root would litter it. Loss curves stay available through Trainer.train_loss_dict.
    return NullSummaryWriter()


# -- 7./8. Config isolation -------------------------------------------------------------------------------
def _load_cmd_line(self):
    # RecBole reads "--key=value" from sys.argv of whatever process imported it (pytest, a notebook
    # runner) and lets it override config_dict; a library call takes its configuration from arguments.
    return {}


def _wrap_init_device(original):
    def _init_device(self):
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            original(self)
        finally:
            # RecBole writes gpu_id into CUDA_VISIBLE_DEVICES for the whole process; "" (a CPU config)
            # would hide every GPU from torch for the rest of the lesson.
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved

    _init_device.__wrapped__ = original
    return _init_device


def _replace(owner, attr: str, new, key: str) -> None:
    ORIGINALS.setdefault(key, getattr(owner, attr))
    setattr(owner, attr, new)


def patch_recbole() -> None:
    """Apply every RecBole 1.2.1 workaround in this module once (idempotent, thread-safe).

    Never imports ``recbole.quick_start`` (it imports ``ray``). Raises ``RuntimeError`` when the stack
    has a problem only the pins can fix (see ``check_stack``).

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    global _PATCHED
    with _LOCK:
        if _PATCHED:
            return
        problems = check_stack()
        if problems:
            raise RuntimeError("RecBole 1.2.1 cannot run on this stack: " + "; ".join(problems))

        torch = require("torch", "text")
        import recbole.config.configurator as configurator
        import recbole.model.general_recommender.lightgcn as lightgcn
        import recbole.model.general_recommender.ncl as ncl
        import recbole.model.general_recommender.neumf as neumf
        import recbole.model.general_recommender.ngcf as ngcf
        import recbole.trainer.trainer as trainer

        Config = configurator.Config
        # 1. NumPy aliases (PRs #2203, #2187); 7. host argv; 8. CUDA_VISIBLE_DEVICES
        _replace(Config, "compatibility_settings", _compatibility_settings, "Config.compatibility_settings")
        _replace(Config, "_load_cmd_line", _load_cmd_line, "Config._load_cmd_line")
        _replace(Config, "_init_device", _wrap_init_device(Config._init_device), "Config._init_device")

        # 3. torch >= 2.6 weights_only (issue #2212, PRs #2219, #2187): only these two modules' call sites
        trusted = _TrustedCheckpointTorch(torch)
        _replace(trainer, "torch", trusted, "recbole.trainer.trainer.torch")
        _replace(neumf, "torch", trusted, "recbole.model.general_recommender.neumf.torch")

        # 4. SciPy >= 1.13 dok_matrix._update (issues #2034, #2090, #2185)
        _replace(lightgcn.LightGCN, "get_norm_adj_mat", _get_norm_adj_mat, "LightGCN.get_norm_adj_mat")
        _replace(ngcf.NGCF, "get_norm_adj_mat", _get_norm_adj_mat, "NGCF.get_norm_adj_mat")
        _replace(ncl.NCL, "get_norm_adj_mat", _get_norm_adj_mat_ncl, "NCL.get_norm_adj_mat")

        # 9. sine.py switches autograd anomaly detection on for the whole process when imported
        if "recbole.model.sequential_recommender.sine" not in sys.modules:
            anomaly = torch.is_anomaly_enabled()
            import recbole.model.sequential_recommender  # noqa: F401  (imports sine)

            torch.autograd.set_detect_anomaly(anomaly)

        # 6. no ./log_tensorboard (5., ray via recbole.quick_start, issues #1518/#1820: simply never imported)
        _replace(trainer, "get_tensorboard", _get_tensorboard, "recbole.trainer.trainer.get_tensorboard")

        _PATCHED = True


@contextmanager
def quiet_recbole():
    """Silence, for the calls inside, the warnings RecBole 1.2.1 raises on this stack that change nothing.

    * pandas 2.x FutureWarning on RecBole's chained ``fillna(inplace=True)`` (table row 2): on the pinned
      pandas the call still writes through; only the warning goes.
    * torch's FutureWarning on ``torch.cuda.amp.GradScaler(enabled=False)`` built by every Trainer: the
      spelling is deprecated, not the behaviour.
    * pandas 2.x FutureWarning on ``Series.agg(len)``, with which RecBole measures ``token_seq`` fields
      (sequential models' item lists): on the pinned pandas it still acts as ``transform``, one length
      per row; pandas<3 is pinned (row 2).

    Each filter is scoped to the RecBole module that warns and to the ``with`` block (a global filter
    would be undone by pytest and would hide the same warnings from the learner's own code).

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*chained assignment using an inplace method.*", category=FutureWarning,
            module=r"recbole\.data\.dataset\.dataset",
        )
        warnings.filterwarnings(
            "ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning,
            module=r"recbole\.trainer\.trainer",
        )
        warnings.filterwarnings(
            "ignore", message=r".*using <built-in function len> in Series\.agg cannot aggregate.*",
            category=FutureWarning, module=r"recbole\.data\.dataset\.(sequential_)?dataset",
        )
        yield


def is_patched() -> bool:
    """Whether ``patch_recbole`` has run in this process.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    return _PATCHED
