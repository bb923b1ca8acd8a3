"""Collaborative-filtering baselines under the suite's protocol, behind one ``Scorer`` interface.

Every model here is a ``Scorer``: ``n_users``, ``n_items`` and ``scores(user_idx)``, a dense
(len(user_idx), n_items) float matrix in *our* index space, so ``Protocol.evaluate`` measures every model
the same way. The model argument is always ``model``, spelt as RecBole spells it ("ALS", "BPR", "ItemKNN",
"EASE", "LightGCN", "MultiVAE", ...).

* ``fit_implicit``: ALS (Hu, Koren & Volinsky 2008), BPR (Rendle et al. 2009) and item-kNN (cosine, BM25,
  TF-IDF) from ``implicit``, with BLAS pinned to one thread and ``implicit.gpu`` used when it has CUDA.
* ``fit_recbole``: any RecBole 1.2.1 general model (BPR, LightGCN, EASE, MultiVAE, NeuMF, ...) trained by
  RecBole's own ``Trainer`` on our pre-split train/valid/test (RecBole's ``benchmark_filename`` atomic
  files), without ``recbole.quick_start``; ``recbole_crosscheck`` compares RecBole's evaluator with
  ``recsuite.metrics`` on the same lists (``tie_sensitive_users`` says when ties could explain a gap).
* ``run_recbole_protocol``: RecBole's own protocol (its random 8:1:1 split), to set our numbers beside
  RecBole's published ones.
* ``fit_ease``: EASE (Steck 2019) in closed form with NumPy, the same model as RecBole's ``EASE``.
* ``fit_fast_model`` / ``tune_fast_model``: the fast models (ALS, EASE, item-kNN) and the grid search
  notebook 03 runs on valid. The choices it saves and the cached score matrices later lessons read
  (``tuned_params``, ``best_fast_model``, ``cf_scores``) belong to ``recsuite.artifacts``.

All RecBole workarounds live in ``recsuite.compat`` (applied on first use).

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import abc
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite import _checks


# ===================================================================================================
# The scorer interface
# ===================================================================================================
class Scorer(abc.ABC):
    """What every CF model here is: a fitted model that scores every item for any batch of users.

    The contract: ``n_users`` and ``n_items`` give the size of *our* index space (users 0..n_users-1,
    items 0..n_items-1, as in ``recsuite.split.Protocol``); ``scores(user_idx)`` takes a 1-D int array of
    user indices in ``range(n_users)`` (None: every user; checked with ``recsuite._checks.indices``, so a
    float, bool or out-of-range index is refused) and returns a dense float32 or float64 array of shape
    ``(len(user_idx), n_items)`` of finite scores, higher = better, row r for user ``user_idx[r]``. Items
    the user already saw are *not* masked (``Protocol.evaluate`` / ``metrics.topk_from_scores`` do that),
    and scoring the same users twice gives the same numbers.

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    @property
    @abc.abstractmethod
    def n_users(self) -> int:
        """How many users the model scores (our user indices 0..n_users-1)."""

    @property
    @abc.abstractmethod
    def n_items(self) -> int:
        """How many items each score row has (our item indices 0..n_items-1)."""

    @abc.abstractmethod
    def scores(self, user_idx=None) -> np.ndarray:
        """(len(user_idx), n_items) float scores of every item for the given users (None: all users)."""

    def _users(self, user_idx) -> np.ndarray:
        if user_idx is None:
            return np.arange(self.n_users, dtype=np.int64)
        return _checks.indices("user_idx", user_idx, self.n_users, what="user")


def _interactions(name: str, matrix) -> sp.csr_matrix:
    """A users x items CSR of finite non-negative float32 weights (implicit feedback), zeros not stored."""
    m = _checks.sparse(name, matrix, nonnegative=True)
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name} must have at least one user and one item, got shape {m.shape}")
    m.eliminate_zeros()  # a stored 0 is no interaction (implicit would read it as a confidence of 0)
    return m


def _check_params(name: str, params, rules: dict) -> dict:
    """``params`` (a dict or None) checked against ``rules``: key -> checker(name, value)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict or None, got {_checks.describe(params)}")
    unknown = sorted(str(k) for k in set(params) - set(rules))
    if unknown:
        raise ValueError(f"{name} accepts only {sorted(rules)}, got unknown {unknown}")
    return {key: rules[key](f"{name}[{key!r}]", value) for key, value in params.items()}


def _non_negative_number(name, value):
    return _checks.number(name, value, low=0.0)


# ===================================================================================================
# implicit
# ===================================================================================================
IMPLICIT_MODELS = ("ALS", "BPR", "ItemKNN")
KNN_SIMILARITIES = ("cosine", "bm25", "tfidf")
IMPLICIT_DEFAULTS = {
    "ALS": {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15, "num_threads": 1},
    # one thread: implicit's multi-threaded BPR is Hogwild SGD, whose result depends on thread timing
    "BPR": {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100, "num_threads": 1},
    "ItemKNN": {"similarity": "cosine", "K": 100, "K1": 1.2, "B": 0.75, "num_threads": 1},
}
#: What each hyperparameter may be (``num_threads`` 0 lets ``implicit`` use every core).
IMPLICIT_RULES = {
    "ALS": {"factors": _checks.positive_int, "regularization": _non_negative_number,
            "alpha": _checks.positive_number, "iterations": _checks.positive_int,
            "num_threads": _checks.non_negative_int},
    "BPR": {"factors": _checks.positive_int, "learning_rate": _checks.positive_number,
            "regularization": _non_negative_number, "iterations": _checks.positive_int,
            "num_threads": _checks.non_negative_int},
    "ItemKNN": {"similarity": lambda n, v: _checks.one_of(n, v, KNN_SIMILARITIES), "K": _checks.positive_int,
                "K1": _non_negative_number, "B": lambda n, v: _checks.number(n, v, low=0.0, high=1.0),
                "num_threads": _checks.non_negative_int},
}


@dataclass
class ImplicitModel(Scorer):
    """A fitted ``implicit`` model (a ``Scorer``) with a dense, vectorised ``scores()`` in our index space.

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    name: str  # "ALS", "BPR" or "ItemKNN"
    params: dict
    fit_seconds: float
    device: str  # "cpu" or "gpu": where it was fit
    train: sp.csr_matrix = field(repr=False)
    model: object = field(repr=False)
    user_factors: np.ndarray | None = field(default=None, repr=False)
    item_factors: np.ndarray | None = field(default=None, repr=False)
    similarity: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def scores(self, user_idx=None) -> np.ndarray:
        """(len(user_idx), n_items) float32: U Vᵀ for ALS/BPR (BPR's item bias rides in the factors), X W for kNN.

        X is the training matrix and W the kNN-pruned item-item similarity (row i: item i's K neighbours),
        the same product ``implicit``'s ``recommend`` ranks by. Seen items are not masked here.
        """
        users = self._users(user_idx)
        if self.similarity is not None:
            return np.asarray((self.train[users] @ self.similarity).todense(), dtype=np.float32)
        return (self.user_factors[users] @ self.item_factors.T).astype(np.float32, copy=False)


def _implicit_gpu_available() -> bool:
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except ImportError:  # pragma: no cover - implicit is a dependency
        return False


def fit_implicit(model: str, train_csr, params: dict | None = None, seed: int = 0, device: str = "auto",
                 show_progress: bool = False) -> ImplicitModel:
    """Fit ``implicit``'s ALS, BPR or item-kNN (``model`` "ALS", "BPR", "ItemKNN") on a users x items CSR.

    ALS minimises Σ c_ui (p_ui − x_uᵀy_i)² + λ(‖x‖² + ‖y‖²) with c = 1 + α r (Hu et al. 2008, ICDM);
    BPR maximises Σ ln σ(x_uᵀy_i − x_uᵀy_j) over sampled (u, i seen, j unseen) (Rendle et al. 2009, UAI);
    item-kNN scores s_uj = Σ_i x_ui w_ij with w the K nearest neighbours under cosine / BM25 / TF-IDF
    weighting (Sarwar et al. 2001). BLAS is limited to one thread. ``device="auto"`` uses ``implicit.gpu``
    for ALS/BPR when it reports CUDA (the PyPI wheel ships the CUDA extension but enables it only when
    RAPIDS ``rmm`` is installed, which recsuite does not pin), "cpu" never; kNN has no GPU variant.
    ``params`` override ``IMPLICIT_DEFAULTS[model]`` and are checked against ``IMPLICIT_RULES[model]``
    (factors, iterations, K: positive ints; learning_rate, alpha: positive; regularization, K1:
    non-negative; B in [0, 1]); ``num_threads`` defaults to 1 so results are reproducible.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from threadpoolctl import threadpool_limits

    _checks.one_of("model", model, IMPLICIT_MODELS)
    X = _interactions("train_csr", train_csr)
    seed = _checks.seed(seed)
    p = {**IMPLICIT_DEFAULTS[model], **_check_params("params", params, IMPLICIT_RULES[model])}
    _checks.one_of("device", device, ("auto", "cpu", "gpu"))
    show_progress = _checks.flag("show_progress", show_progress)
    gpu = model != "ItemKNN" and device != "cpu" and _implicit_gpu_available()
    if device == "gpu" and not gpu:
        raise ValueError(f"device='gpu' was asked for, but implicit has no CUDA support here (or model={model!r} "
                         "has no GPU variant)")

    import implicit
    from implicit import nearest_neighbours as nn

    # implicit checks the BLAS thread pool when a model is built, so building happens inside the limit too
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit's own weighting hands a COO matrix to its kNN and then warns about converting it
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        if model == "ALS":
            kw = dict(factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                      iterations=p["iterations"], random_state=seed, use_gpu=gpu)
            fitted = implicit.als.AlternatingLeastSquares(**kw, **({} if gpu else {"num_threads": p["num_threads"]}))
        elif model == "BPR":
            kw = dict(factors=p["factors"], learning_rate=p["learning_rate"], regularization=p["regularization"],
                      iterations=p["iterations"], random_state=seed, use_gpu=gpu)
            fitted = implicit.bpr.BayesianPersonalizedRanking(**kw, **({} if gpu else {"num_threads": p["num_threads"]}))
        elif p["similarity"] == "bm25":
            fitted = nn.BM25Recommender(K=p["K"], K1=p["K1"], B=p["B"], num_threads=p["num_threads"])
        elif p["similarity"] == "tfidf":
            fitted = nn.TFIDFRecommender(K=p["K"], num_threads=p["num_threads"])
        else:
            fitted = nn.CosineRecommender(K=p["K"], num_threads=p["num_threads"])
        start = time.perf_counter()
        fitted.fit(X, show_progress=show_progress)
    fit_seconds = time.perf_counter() - start

    out = ImplicitModel(name=model, params=p, fit_seconds=fit_seconds, device="gpu" if gpu else "cpu",
                        train=X, model=fitted)
    if model == "ItemKNN":
        out.similarity = sp.csr_matrix(fitted.similarity, dtype=np.float32)
    else:
        cpu = fitted.to_cpu() if gpu else fitted
        out.user_factors = np.asarray(cpu.user_factors, dtype=np.float32)
        out.item_factors = np.asarray(cpu.item_factors, dtype=np.float32)
    return out


# ===================================================================================================
# RecBole
# ===================================================================================================
RECBOLE_METRICS = ("recall", "mrr", "ndcg", "hit", "precision", "map")
_RECBOLE_METRIC_NAMES = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "Hit", "precision": "Precision",
                         "map": "MAP"}
# Per-model defaults on top of RecBole's own yaml. EASE and MultiVAE are non-sampling models (they read the
# whole user row), so negative sampling is switched off; NeuMF is pointwise: its BCE loss needs the 0/1
# labels that negative sampling creates, 4 negatives per positive as in He et al. 2017.
RECBOLE_MODEL_DEFAULTS = {
    "EASE": {"train_neg_sample_args": None},
    "MultiVAE": {"train_neg_sample_args": None},
    "NeuMF": {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 4, "alpha": 1.0,
                                        "dynamic": False, "candidate_num": 0}},
}
# Keys fit_recbole sets itself: they define the data files and the protocol, so a config may not change them.
_RESERVED = ("data_path", "checkpoint_dir", "benchmark_filename", "USER_ID_FIELD", "ITEM_ID_FIELD", "load_col",
             "dataset", "model", "eval_args", "seed", "epochs", "topk", "gpu_id", "use_gpu", "save_dataset",
             "save_dataloaders", "dataset_save_path", "dataloaders_save_path")
_DATASET = "recsuite"


@dataclass
class RecBoleModel(Scorer):
    """A RecBole model trained on our split, scored in our index space (a ``Scorer``).

    RecBole re-maps tokens to its own ids (id 0 is padding), so ``user_map``/``item_map`` hold, for each
    of our indices, RecBole's internal id (0 = not in RecBole's id space). Its id space is built from the
    train, valid and test files together, so users and items that only occur in valid/test are known;
    items with no interaction in any of them (cold items) are not, and ``scores`` gives them ``fill``.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """

    name: str  # RecBole's model name, e.g. "LightGCN"
    model: object = field(repr=False)
    config: dict = field(repr=False)  # the config_dict handed to RecBole (plain data)
    recbole_config: object = field(repr=False)  # RecBole's merged Config
    user_map: np.ndarray = field(repr=False)
    item_map: np.ndarray = field(repr=False)
    user_tokens: np.ndarray = field(repr=False)  # RecBole id -> token (our index as str; "[PAD]" at 0)
    item_tokens: np.ndarray = field(repr=False)
    recbole_eval: dict  # RecBole's evaluator on test, full sort, history masked (see fit_recbole)
    best_valid: dict | None
    valid_curve: list  # [(epoch, valid score), ...] as RecBole's early stopping saw it
    train_loss: dict  # epoch -> summed training loss
    fit_seconds: float
    test_truth: sp.csr_matrix = field(repr=False)
    test_history: sp.csr_matrix = field(repr=False)
    k: int = 10

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def known_users(self) -> np.ndarray:
        return self.user_map > 0

    @property
    def known_items(self) -> np.ndarray:
        """Boolean (n_items,) mask of the items RecBole ranks (those in its id space)."""
        return self.item_map > 0

    def _internal_scores(self, internal_users: np.ndarray) -> np.ndarray:
        import torch
        from recbole.data.interaction import Interaction

        cfg = self.recbole_config
        uid, iid = cfg["USER_ID_FIELD"], cfg["ITEM_ID_FIELD"]
        n_internal = int(self.model.n_items)
        device = cfg["device"]
        # NeuMF has no full_sort_predict; then every (user, item) pair goes through predict, as in
        # RecBole's Trainer, in chunks of about 2**14 pairs (larger chunks are slower on a CPU: the MLP's
        # activations leave the cache; 2**18 took 4x as long on ML-100K).
        step = max(1, 2**14 // n_internal)
        out = np.empty((len(internal_users), n_internal), dtype=np.float32)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(internal_users), step):
                batch = torch.as_tensor(internal_users[start:start + step], dtype=torch.int64)
                try:
                    s = self.model.full_sort_predict(Interaction({uid: batch}).to(device))
                except NotImplementedError:
                    pairs = Interaction({
                        uid: batch.repeat_interleave(n_internal),
                        iid: torch.arange(n_internal).repeat(len(batch)),
                    }).to(device)
                    s = self.model.predict(pairs)
                out[start:start + len(batch)] = s.view(len(batch), n_internal).float().cpu().numpy()
        return out

    def scores(self, user_idx=None, fill="min") -> np.ndarray:
        """(len(user_idx), n_items) float32 scores in our index space, from the best checkpoint.

        Items outside RecBole's id space get ``fill``: ``"min"`` (default) = that user's lowest score
        minus 1, so they rank last but the matrix stays finite (``topk_from_scores`` refuses inf), or a
        float. Users outside RecBole's id space get a row of ``fill`` (0.0 for ``"min"``).
        """
        users = self._users(user_idx)
        if isinstance(fill, str) and fill != "min":
            raise ValueError(f"fill must be 'min' or a finite number, got {fill!r}")
        if not isinstance(fill, str):
            try:
                fill = _checks.number("fill", fill)
            except TypeError:
                raise TypeError(f"fill must be 'min' or a finite number, got {_checks.describe(fill)}") from None
            except ValueError:
                raise ValueError(f"fill must be 'min' or a finite number, got {fill!r}") from None
            if abs(fill) > np.finfo(np.float32).max:  # the matrix is float32: it would become inf
                raise ValueError(f"fill must fit in float32 (|fill| <= 3.4e38), got {fill!r}")
        known_i = np.flatnonzero(self.known_items)
        rows = np.flatnonzero(self.user_map[users] > 0)
        internal = self._internal_scores(self.user_map[users[rows]])[:, self.item_map[known_i]]
        const = 0.0 if fill == "min" else float(fill)
        out = np.full((len(users), self.n_items), const, dtype=np.float32)
        if fill == "min" and len(known_i) < self.n_items and len(rows):
            out[rows] = (internal.min(axis=1) - 1.0)[:, None]
        out[np.ix_(rows, known_i)] = internal
        return out


def _frame_pairs(df, name: str, n_users: int, n_items: int) -> pd.DataFrame:
    _checks.columns(name, df, ["user_idx", "item_idx"])
    if len(df) == 0:
        raise ValueError(f"{name} is empty; RecBole needs at least one interaction in each file")
    cols = {}
    for col, n, what in (("user_idx", n_users, "user"), ("item_idx", n_items, "item")):
        values = df[col].to_numpy()
        if values.dtype.kind == "f" and np.isfinite(values).all() and (values == np.round(values)).all():
            values = values.astype(np.int64)  # whole-number floats (e.g. after a merge) are indices too
        cols[col] = _checks.indices(f"{name}.{col}", values, n, what=what)
    pairs = pd.DataFrame(cols)
    # a repeated pair is one positive for RecBole's evaluator (a set) and one for our CSR (binarised)
    return pairs.drop_duplicates().reset_index(drop=True)


def _write_atomic(pairs: pd.DataFrame, path: Path) -> None:
    # tokens are our contiguous indices as strings, so RecBole's id_token maps straight back to them
    out = pairs.rename(columns={"user_idx": "user_id:token", "item_idx": "item_id:token"})
    out.to_csv(path, sep="\t", index=False)


def _binary_csr(pairs: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs.user_idx, pairs.item_idx)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _token_map(field2token_id: dict, n: int) -> np.ndarray:
    mapping = np.zeros(n, dtype=np.int64)
    for token, internal in field2token_id.items():
        if token != "[PAD]":
            mapping[int(token)] = internal
    return mapping


def recbole_models() -> tuple[str, ...]:
    """The names ``fit_recbole`` accepts: RecBole 1.2.1's general recommenders, spelt as RecBole spells them.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    import inspect

    import recbole.model.general_recommender as general
    from recbole.model.abstract_recommender import GeneralRecommender

    return tuple(sorted(n for n, c in vars(general).items()
                        if inspect.isclass(c) and issubclass(c, GeneralRecommender) and c is not GeneralRecommender))


def _general_model(model):
    # Only RecBole's general recommenders: our atomic files carry user and item ids and nothing else
    # (RecBole's own get_model would also import exlib_recommender, which needs xgboost and lightgbm).
    import importlib

    if not isinstance(model, str):
        raise TypeError(f"model must be a RecBole model name such as 'BPR', got {_checks.describe(model)}")
    names = recbole_models()
    if model not in names:
        raise ValueError(f"model {model!r} is not a RecBole general recommender; names are case-sensitive, "
                         f"one of {names}")
    return getattr(importlib.import_module(f"recbole.model.general_recommender.{model.lower()}"), model)


def _check_config(config, reserved) -> dict:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of RecBole parameters or None, got {_checks.describe(config)}")
    bad = [k for k in config if not isinstance(k, str)]
    if bad:
        raise TypeError(f"config keys must be str (RecBole parameter names), got {bad!r}")
    clash = sorted(set(config) & set(reserved))
    if clash:
        raise ValueError(f"config may not set {clash}: the function sets them (use its arguments instead)")
    return dict(config)


def _workdir(workdir) -> Path:
    if workdir is None:
        from recsuite.paths import build_dir

        workdir = build_dir() / "recbole"
    if not isinstance(workdir, (str, os.PathLike)) or not str(workdir).strip():
        raise TypeError(f"workdir must be a folder path or None, got {_checks.describe(workdir)}")
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"workdir must be a folder, got the file {str(workdir)!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def fit_recbole(model: str, train_df, valid_df, test_df, n_users: int, n_items: int, config: dict | None = None,
                seed: int = 0, epochs: int = 20, k: int = 10, device: str = "auto", workdir=None,
                show_progress: bool = False) -> RecBoleModel:
    """Train the RecBole general model ``model`` (e.g. "LightGCN") with RecBole's own pipeline on our split.

    ``model`` is spelt as RecBole spells it (``recbole_models()`` lists the accepted names). The three frames (columns ``user_idx``, ``item_idx``: our indices) become the atomic files
    ``recsuite.train.inter``/``.valid.inter``/``.test.inter`` read through RecBole's ``benchmark_filename``,
    so RecBole trains on exactly our train split, early-stops on NDCG@k of our valid split and
    evaluates on our test split. RecBole's full-sort evaluation masks, per user, the items of the earlier
    files: train for valid and train+valid for test, the same histories as ``Protocol.history`` (it ranks
    every item of its id space: items seen in any of the three files). ``recbole_eval`` is RecBole's
    evaluator on test with the best-on-valid checkpoint (metric_decimal_place 12, so no rounding).

    ``valid_df=None`` refits without early stopping for exactly ``epochs`` epochs (e.g. on train+valid
    with the best epoch count found before); RecBole's valid slot then holds the test file, which it
    never evaluates during training, and the test history becomes ``train_df``.
    ``config`` overrides RecBole/model hyper-parameters (``embedding_size``, ``learning_rate``,
    ``reg_weight``, ``n_layers``, ``stopping_step``, ``train_batch_size``, ...); keys that define the data
    and the protocol are reserved. Files live in a temporary folder under ``workdir`` (default
    ``build/recbole``), removed afterwards. Uses and reseeds the global RNGs (RecBole's ``init_seed``).

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    from recsuite.compat import patch_recbole

    patch_recbole()
    model_class = _general_model(model)
    n_users, n_items = _checks.positive_int("n_users", n_users), _checks.positive_int("n_items", n_items)
    seed, epochs = _checks.seed(seed), _checks.positive_int("epochs", epochs)
    k = _checks.integer("k", k, low=1, high=n_items)
    config = _check_config(config, _RESERVED)
    use_gpu = _check_device(device)
    show_progress = _checks.flag("show_progress", show_progress)

    train = _frame_pairs(train_df, "train_df", n_users, n_items)
    test = _frame_pairs(test_df, "test_df", n_users, n_items)
    refit = valid_df is None
    valid = test if refit else _frame_pairs(valid_df, "valid_df", n_users, n_items)
    # an evaluated pair that is also in its history is masked by both evaluators: it could never be a hit
    checks = [("test_df", test, "train_df", train)] if refit else [
        ("valid_df", valid, "train_df", train), ("test_df", test, "train_df and valid_df", pd.concat([train, valid]))]
    for name, evaluated, before, history in checks:
        both = evaluated.merge(history, on=["user_idx", "item_idx"])
        if len(both):
            raise ValueError(f"{name} shares {len(both)} (user_idx, item_idx) pairs with {before}, e.g. "
                             f"{tuple(int(v) for v in both.iloc[0])}; a pair must be in one split only")

    params = {**RECBOLE_MODEL_DEFAULTS.get(model, {}), **config}
    if model_class.input_type.name == "POINTWISE" and model_class.type.name == "GENERAL" and \
            params.get("train_neg_sample_args", "default") is None:
        raise ValueError(f"{model} is pointwise: it needs train_neg_sample_args (negatives make its 0/1 labels)")

    workdir = _workdir(workdir)
    with tempfile.TemporaryDirectory(prefix=f"{model}-", dir=workdir) as tmp:
        root = Path(tmp)
        (root / _DATASET).mkdir()
        for part, pairs in (("train", train), ("valid", valid), ("test", test)):
            _write_atomic(pairs, root / _DATASET / f"{_DATASET}.{part}.inter")
        cfg = {
            "dataset": _DATASET, "seed": seed, "reproducibility": True, "epochs": epochs,
            "show_progress": show_progress,
            "data_path": str(root), "checkpoint_dir": str(root / "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "load_col": {"inter": ["user_id", "item_id"]},
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
            "metrics": [_RECBOLE_METRIC_NAMES[m] for m in RECBOLE_METRICS], "topk": [k],
            "valid_metric": f"NDCG@{k}", "metric_decimal_place": 12,
            "gpu_id": "0" if use_gpu else "", "use_gpu": use_gpu, "worker": 0,
            "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
            **params,
        }
        run = _run_recbole(model_class, cfg, seed, early_stopping=not refit, show_progress=show_progress)

    dataset = run.pop("dataset")
    history = train if refit else pd.concat([train, valid], ignore_index=True)
    return RecBoleModel(
        name=model, config=cfg,
        user_map=_token_map(dataset.field2token_id["user_id"], n_users),
        item_map=_token_map(dataset.field2token_id["item_id"], n_items),
        user_tokens=np.asarray(dataset.field2id_token["user_id"]),
        item_tokens=np.asarray(dataset.field2id_token["item_id"]),
        test_truth=_binary_csr(test, n_users, n_items), test_history=_binary_csr(history, n_users, n_items), k=k,
        **run,
    )


def _run_recbole(model_class, cfg: dict, seed: int, early_stopping: bool = True, show_progress: bool = False) -> dict:
    # The pipeline of recbole.quick_start.run_recbole, minus ray, logging files and TensorBoard.
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_trainer, init_seed

    from recsuite.compat import quiet_recbole

    with quiet_recbole():
        rb_config = Config(model=model_class, dataset=cfg["dataset"], config_dict=cfg)
        init_seed(seed, True)
        dataset = create_dataset(rb_config)
        train_data, valid_data, test_data = data_preparation(rb_config, dataset)
        init_seed(seed, True)  # the model's initialisation does not depend on how much sampling came before
        model = model_class(rb_config, train_data._dataset).to(rb_config["device"])
        trainer = get_trainer(rb_config["MODEL_TYPE"], rb_config["model"])(rb_config, model)
        curve = []
        start = time.perf_counter()
        trainer.fit(train_data, valid_data if early_stopping else None, verbose=False, saved=True,
                    show_progress=show_progress, callback_fn=lambda epoch, score: curve.append((epoch, float(score))))
        fit_seconds = time.perf_counter() - start
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=show_progress)
    best = trainer.best_valid_result
    return {
        "dataset": dataset, "model": model, "recbole_config": rb_config,
        "recbole_eval": {key: float(v) for key, v in test_result.items()},
        "best_valid": None if best is None else {key: float(v) for key, v in best.items()},
        "valid_curve": curve, "train_loss": {int(e): float(v) for e, v in trainer.train_loss_dict.items()},
        "fit_seconds": fit_seconds,
    }


def _check_device(device: str) -> bool:
    import torch

    _checks.one_of("device", device, ("auto", "cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA device")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def run_recbole_protocol(model: str, dataset: str = "ml-100k", config: dict | None = None, seed: int = 2020,
                         epochs: int = 300, k: int = 10, device: str = "auto", workdir=None,
                         show_progress: bool = False) -> dict:
    """RecBole's own protocol end to end for ``model`` (e.g. "BPR"), to compare with RecBole's published numbers.

    RecBole's dataset files (``ml-100k`` ships inside the package), its default random 8:1:1 split per
    user (``eval_args``), its full-sort evaluation and early stopping on valid MRR@10, and its default seed
    2020 and 300 epochs, as its quick-start example runs them, but without ``recbole.quick_start``.
    ``config`` overrides anything except where files are written. Returns ``recbole_eval`` (test),
    ``best_valid``, ``valid_curve``, ``train_loss``, ``fit_seconds``, ``config``.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    from recsuite.compat import patch_recbole

    patch_recbole()
    model_class = _general_model(model)
    dataset = _checks.text("dataset", dataset)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", dataset):  # a folder name under data_path, no path
        raise ValueError(f"dataset must be a RecBole dataset name (letters, digits, '-', '_', '.'), got {dataset!r}")
    seed, epochs, k = _checks.seed(seed), _checks.positive_int("epochs", epochs), _checks.positive_int("k", k)
    config = _check_config(config, ("checkpoint_dir", "dataset", "model", "seed", "epochs"))
    use_gpu = _check_device(device)
    show_progress = _checks.flag("show_progress", show_progress)
    workdir = _workdir(workdir)
    with tempfile.TemporaryDirectory(prefix=f"{model}-native-", dir=workdir) as tmp:
        cfg = {"dataset": dataset, "seed": seed, "epochs": epochs, "topk": [k], "show_progress": show_progress,
               "checkpoint_dir": str(Path(tmp) / "saved"), "metric_decimal_place": 12,
               "gpu_id": "0" if use_gpu else "", "use_gpu": use_gpu, "worker": 0,
               "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
               **RECBOLE_MODEL_DEFAULTS.get(model, {}), **config}
        run = _run_recbole(model_class, cfg, seed, show_progress=show_progress)
    for key in ("dataset", "model", "recbole_config"):
        run.pop(key)
    return {**run, "config": cfg}


def tie_sensitive_users(scores, truth, k: int, *, exclude=None, allowed=None) -> int:
    """How many users' metrics@k depend on how equal scores are ordered.

    A user counts when one of their relevant items (``truth``) shares its score with another candidate
    and that score reaches the user's k-th best: then the tie-break decides the item's rank, or whether
    it is in the top k at all. Candidates are the ``allowed`` items minus the ``exclude`` row, as in
    ``metrics.topk_from_scores``.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    s = np.array(_checks.array("scores", scores, ndim=2), dtype=np.float64)  # a copy: masking writes into it
    truth = _checks.sparse("truth", truth, shape=s.shape, nonnegative=True)
    truth.eliminate_zeros()  # a stored 0 is not a relevant item
    k = min(_checks.positive_int("k", k), s.shape[1])
    if allowed is not None:
        s[:, ~_checks.bool_mask("allowed", allowed, s.shape[1])] = -np.inf
    if exclude is not None:
        ex = _checks.sparse("exclude", exclude, shape=s.shape).tocoo()
        ex = ex if not ex.nnz else sp.coo_matrix((ex.data[ex.data != 0], (ex.row[ex.data != 0], ex.col[ex.data != 0])),
                                                 shape=ex.shape)
        s[ex.row, ex.col] = -np.inf
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1]
    rel = sp.coo_matrix(truth)
    value = s[rel.row, rel.col]
    reach = np.isfinite(value) & (value >= kth[rel.row])
    rows, value = rel.row[reach], value[reach]
    tied_users = set()
    for start in range(0, len(rows), 4096):  # chunks of relevant pairs: (chunk, n_items) booleans at a time
        r, v = rows[start:start + 4096], value[start:start + 4096]
        equal = (s[r] == v[:, None]).sum(axis=1) > 1  # the item itself and at least one other candidate
        tied_users.update(r[equal].tolist())
    return len(tied_users)


def recbole_crosscheck(fitted: RecBoleModel, scores=None) -> pd.DataFrame:
    """RecBole's evaluator vs ``recsuite.metrics`` on the same test split, one row per metric@k.

    Ours ranks the model's scores (``fitted.scores()``, or ``scores`` when already computed) with
    ``metrics.topk_from_scores`` over the items RecBole ranks (``known_items``), masking the same history
    (train+valid; train after a refit), and averages over users with at least one test item, as RecBole
    does. Columns: ``recbole``, ``recsuite``, ``abs_diff``. Equal scores are the one legitimate source
    of a difference: we order ties by item index, RecBole by ``torch.topk`` over its internal ids (which
    follow the order items first appear in the train, valid, test files). ``df.attrs["tie_sensitive_users"]``
    counts the users whose metrics depend on that tie-break (``tie_sensitive_users``; e.g. EASE gives a
    user with no training history an all-zero row); when it is 0 the two must agree to rounding.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    from recsuite import metrics as M

    if not isinstance(fitted, RecBoleModel):
        raise TypeError(f"fitted must be a RecBoleModel from fit_recbole, got {_checks.describe(fitted)}")
    if scores is None:
        s = fitted.scores()
    else:  # checked, and kept in the caller's float dtype (a cast could create or break ties)
        a = np.asarray(scores)
        s = _checks.array("scores", a, ndim=2, shape=(fitted.n_users, fitted.n_items),
                          dtype=a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64)
    k = fitted.k
    topk = M.topk_from_scores(s, k, exclude=fitted.test_history, allowed=fitted.known_items)
    ours = M.evaluate(topk, fitted.test_truth, k=k)
    rows = []
    for m in RECBOLE_METRICS:
        key = f"{m}@{k}"
        rows.append({"metric": key, "recbole": fitted.recbole_eval[key], "recsuite": ours[key]})
    df = pd.DataFrame(rows).set_index("metric")
    df["abs_diff"] = (df.recbole - df.recsuite).abs()
    df.attrs["tie_sensitive_users"] = tie_sensitive_users(s, fitted.test_truth, k, exclude=fitted.test_history,
                                                          allowed=fitted.known_items)
    return df


# ===================================================================================================
# EASE in NumPy
# ===================================================================================================
@dataclass
class EASEModel(Scorer):
    """A fitted EASE model (a ``Scorer``): the item-item weights B and the matrix X it scores from (X B).

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    reg_weight: float
    fit_seconds: float
    train: sp.csr_matrix = field(repr=False)
    weights: np.ndarray = field(repr=False)  # B, (n_items, n_items) float32, zero diagonal

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def scores(self, user_idx=None) -> np.ndarray:
        """(len(user_idx), n_items) float32 scores x_u B; seen items are not masked here."""
        users = self._users(user_idx)
        return np.asarray(self.train[users] @ self.weights, dtype=np.float32)


def fit_ease(train_csr, reg_weight: float = 250.0) -> EASEModel:
    """EASE: the closed-form linear item-item autoencoder of Steck (2019, WWW).

    B = argmin ‖X − XB‖²_F + λ‖B‖²_F subject to diag(B) = 0, solved by P = (XᵀX + λI)⁻¹ and
    B_ij = −P_ij / P_jj (i ≠ j), B_jj = 0. The Gram matrix is inverted in float64 with BLAS on one thread
    (so a refit is bit-identical) and B is stored as float32. RecBole's ``EASE`` is the same model,
    computed in float32 (``reg_weight`` is its name for λ, default 250). Items nobody interacted with get
    all-zero rows and columns of B, so they score 0 for every user.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from threadpoolctl import threadpool_limits

    X = _interactions("train_csr", train_csr)
    reg_weight = _checks.positive_number("reg_weight", reg_weight)  # the ridge penalty λ
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += float(reg_weight)
        P = np.linalg.inv(G)
        B = P / -np.diag(P)  # column j divided by -P_jj
        np.fill_diagonal(B, 0.0)
    fit_seconds = time.perf_counter() - start
    return EASEModel(reg_weight=float(reg_weight), fit_seconds=fit_seconds, train=X, weights=B.astype(np.float32))


# ===================================================================================================
# The tuned fast models: chosen on valid by notebook 03 (or on demand), cached for later lessons
# ===================================================================================================
FAST_MODELS = ("ALS", "EASE", "ItemKNN")
#: The grids notebook 03 states before looking at any number; ``tune_fast_model`` searches them on valid.
FAST_GRIDS = {
    "ALS": tuple({"factors": f, "regularization": r} for f in (32, 64, 128) for r in (1.0, 3.0, 10.0, 30.0)),
    "EASE": tuple({"reg_weight": lam} for lam in (50.0, 100.0, 200.0, 400.0, 800.0)),
    "ItemKNN": tuple({"similarity": s, "K": K} for s in ("cosine", "tfidf", "bm25") for K in (10, 20, 50, 200)),
}
#: Held fixed while the grid is searched.
FAST_FIXED = {"ALS": {"alpha": 1.0, "iterations": 15}, "EASE": {}, "ItemKNN": {}}
#: Ties after rounding go to the simplest setting: fewest factors / neighbours, strongest regularisation.
FAST_SIMPLEST = {"ALS": [("factors", True), ("regularization", False)], "EASE": [("reg_weight", False)],
                 "ItemKNN": [("K", True)]}
#: The parameters each fast model takes (``fit_fast_model`` refuses any other key).
FAST_PARAMS = {"ALS": tuple(sorted(set(IMPLICIT_DEFAULTS["ALS"]) - {"num_threads"})), "EASE": ("reg_weight",),
               "ItemKNN": tuple(sorted(set(IMPLICIT_DEFAULTS["ItemKNN"]) - {"num_threads"}))}


def _check_fast_model(model) -> str:
    return _checks.one_of("model", model, FAST_MODELS)


def fit_fast_model(model: str, history, params: dict, seed: int = 0):
    """Fit one of ``FAST_MODELS`` on a users x items CSR with the given (complete) parameters.

    "EASE": ``fit_ease``; "ALS" and "ItemKNN": ``fit_implicit`` on the CPU with one thread (the GPU
    variant gives different numbers, and these models take well under a second on the CPU anyway).
    Returns the fitted model (``.scores()``, ``.fit_seconds``).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    _check_fast_model(model)
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of {model} parameters, got {_checks.describe(params)}")
    seed = _checks.seed(seed)
    unknown = sorted(str(key) for key in set(params) - set(FAST_PARAMS[model]))
    if unknown:
        raise ValueError(f"params for {model!r} accepts only {list(FAST_PARAMS[model])}, got unknown {unknown}")
    if model == "EASE":
        return fit_ease(history, **params)
    return fit_implicit(model, history, params, seed=seed, device="cpu")


def tune_fast_model(model: str, protocol=None, seed: int = 0, grid=None, progress: bool = False):
    """Search ``FAST_GRIDS[model]`` on valid: fit on train, score valid, choose by rounded NDCG@10.

    Every setting is fit on ``protocol.history("valid")`` and ranked on valid; the choice is the best
    valid NDCG@10 rounded to three decimals, ties to the simplest setting (``FAST_SIMPLEST``), so another
    CPU makes the same choice (``recsuite.tuning``). Returns ``(table, params)``: one row per setting
    (``ndcg@10``, its standard error over users, ``recall@10``, ``fit_s``, ``chosen``) and the chosen
    parameters with ``FAST_FIXED`` added. Notebook 03 saves them with ``recsuite.choices``;
    ``tuned_params`` reads them (or calls this when they are missing).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from recsuite.progress import tqdm

    from recsuite import metrics
    from recsuite.split import resolve_protocol
    from recsuite.tuning import one_se_rule

    _check_fast_model(model)
    seed = _checks.seed(seed)
    progress = _checks.flag("progress", progress)
    protocol = resolve_protocol(protocol)
    if grid is not None and not isinstance(grid, (list, tuple)):
        raise TypeError(f"grid must be a list of parameter dicts or None, got {_checks.describe(grid)}")
    grid = list(FAST_GRIDS[model] if grid is None else grid)
    if not grid or not all(isinstance(g, dict) for g in grid):
        raise ValueError(f"grid must be a non-empty list of parameter dicts, got {grid!r}")
    tie_keys = [key for key, _ in FAST_SIMPLEST[model]]
    lacking = [i for i, g in enumerate(grid) if not set(tie_keys) <= set(g)]
    if lacking:
        raise ValueError(f"every grid setting for {model} must set {tie_keys} (ties go to the simplest), "
                         f"settings {lacking} do not")
    history, truth = protocol.history("valid"), protocol.csr("valid")
    rows = []
    for config in tqdm(grid, desc=model, leave=False, disable=not progress):
        fitted = fit_fast_model(model, history, {**config, **FAST_FIXED[model]}, seed=seed)
        per_user = metrics.per_user_metrics(protocol.rank(fitted.scores(), "valid", 10), truth, 10)
        ndcg = per_user["ndcg@10"]
        rows.append({**config, "ndcg@10": float(ndcg.mean()), "ndcg@10_se": float(ndcg.std() / np.sqrt(ndcg.count())),
                     "recall@10": float(per_user["recall@10"].mean()), "fit_s": fitted.fit_seconds})
    table = pd.DataFrame(rows)
    chosen = one_se_rule(table, "ndcg@10", se=0.0, simplest=FAST_SIMPLEST[model])
    table["chosen"] = table.index == chosen
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in grid[chosen].items()}
    return table, {**params, **FAST_FIXED[model]}
