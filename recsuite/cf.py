"""Collaborative-filtering baselines under the suite's protocol: ``implicit`` models and RecBole models.

Both return an object whose ``.scores()`` is a dense (n_users, n_items) float32 matrix in *our* index space,
so ``Protocol.evaluate`` measures every model the same way.

* ``fit_implicit``: ALS (Hu, Koren & Volinsky 2008), BPR (Rendle et al. 2009) and item-kNN (cosine, BM25,
  TF-IDF) from ``implicit``, with BLAS pinned to one thread and ``implicit.gpu`` used when it has CUDA.
* ``fit_recbole``: any RecBole 1.2.1 general model (BPR, LightGCN, EASE, MultiVAE, NeuMF, ...) trained by
  RecBole's own ``Trainer`` on our pre-split train/valid/test (RecBole's ``benchmark_filename`` atomic
  files), without ``recbole.quick_start``; ``recbole_crosscheck`` compares RecBole's evaluator with
  ``recsuite.metrics`` on the same lists (``tie_sensitive_users`` says when ties could explain a gap).
* ``run_recbole_protocol``: RecBole's own protocol (its random 8:1:1 split), to set our numbers beside
  RecBole's published ones.
* ``fit_ease``: EASE (Steck 2019) in closed form with NumPy, the same model as RecBole's ``EASE``.
* ``tune_fast_model`` / ``tuned_params`` / ``best_fast_model``: the grid search notebook 03 runs on valid
  for ALS, EASE and item-kNN, and the choices it saves (``recsuite.choices``, keyed by protocol and seed).
* ``cf_scores``: cache-or-compute score matrix of a fast CF model at its tuned setting, for the fusion,
  re-ranking and fine-tuning lessons.

All RecBole workarounds live in ``recsuite.compat`` (applied on first use).

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import hashlib
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite import cache

# -- input checks ---------------------------------------------------------------------------------------


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_interactions_csr(matrix, name: str) -> sp.csr_matrix:
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D scipy.sparse users x items matrix, got {type(matrix).__name__}")
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.sum_duplicates()
    if m.nnz and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
        raise ValueError(f"{name} must hold finite non-negative weights (implicit feedback)")
    m.sort_indices()
    return m


def _check_users(user_idx, n_users: int) -> np.ndarray:
    if user_idx is None:
        return np.arange(n_users)
    u = np.asarray(user_idx)
    if u.ndim != 1 or not np.issubdtype(u.dtype, np.integer):
        raise ValueError(f"user_idx must be a 1-D int array of user indices, got dtype {u.dtype} shape {u.shape}")
    if u.size and (u.min() < 0 or u.max() >= n_users):
        raise ValueError(f"user_idx holds {int(u.min())}..{int(u.max())}, outside [0, {n_users})")
    return u.astype(np.int64)


# ===================================================================================================
# implicit
# ===================================================================================================
IMPLICIT_MODELS = ("als", "bpr", "itemknn")
KNN_SIMILARITIES = ("cosine", "bm25", "tfidf")
IMPLICIT_DEFAULTS = {
    "als": {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15, "num_threads": 1},
    # one thread: implicit's multi-threaded BPR is Hogwild SGD, whose result depends on thread timing
    "bpr": {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100, "num_threads": 1},
    "itemknn": {"similarity": "cosine", "K": 100, "K1": 1.2, "B": 0.75, "num_threads": 1},
}


@dataclass
class ImplicitModel:
    """A fitted ``implicit`` model with a dense, vectorised ``scores()`` in our index space.

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    name: str
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
        users = _check_users(user_idx, self.n_users)
        if self.similarity is not None:
            return np.asarray((self.train[users] @ self.similarity).todense(), dtype=np.float32)
        return (self.user_factors[users] @ self.item_factors.T).astype(np.float32, copy=False)


def _implicit_gpu_available() -> bool:
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except ImportError:  # pragma: no cover - implicit is a dependency
        return False


def fit_implicit(name: str, train_csr, params: dict | None = None, seed: int = 0, device: str = "auto",
                 show_progress: bool = False) -> ImplicitModel:
    """Fit ``implicit``'s ALS, BPR or item-kNN on a users x items CSR; BLAS limited to one thread.

    ALS minimises Σ c_ui (p_ui − x_uᵀy_i)² + λ(‖x‖² + ‖y‖²) with c = 1 + α r (Hu et al. 2008, ICDM);
    BPR maximises Σ ln σ(x_uᵀy_i − x_uᵀy_j) over sampled (u, i seen, j unseen) (Rendle et al. 2009, UAI);
    item-kNN scores s_uj = Σ_i x_ui w_ij with w the K nearest neighbours under cosine / BM25 / TF-IDF
    weighting (Sarwar et al. 2001). ``device="auto"`` uses ``implicit.gpu`` for ALS/BPR when it reports
    CUDA (the PyPI wheel ships the CUDA extension but enables it only when RAPIDS ``rmm`` is installed,
    which recsuite does not pin), "cpu" never; kNN has no GPU variant. ``params`` override
    ``IMPLICIT_DEFAULTS[name]``; ``num_threads`` defaults to 1 so results are reproducible.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from threadpoolctl import threadpool_limits

    if name not in IMPLICIT_MODELS:
        raise ValueError(f"name must be one of {IMPLICIT_MODELS}, got {name!r}")
    X = _check_interactions_csr(train_csr, "train_csr")
    seed = _check_seed(seed)
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"params must be a dict, got {type(params).__name__}")
    unknown = set(params or {}) - set(IMPLICIT_DEFAULTS[name])
    if unknown:
        raise ValueError(f"params for {name!r} accept {sorted(IMPLICIT_DEFAULTS[name])}, got unknown {sorted(unknown)}")
    p = {**IMPLICIT_DEFAULTS[name], **(params or {})}
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    gpu = name != "itemknn" and device != "cpu" and _implicit_gpu_available()
    if device == "gpu" and not gpu:
        raise ValueError("device='gpu' was asked for, but implicit has no CUDA support here (or the model is itemknn)")

    import implicit
    from implicit import nearest_neighbours as nn

    if name == "itemknn" and p["similarity"] not in KNN_SIMILARITIES:
        raise ValueError(f"params['similarity'] must be one of {KNN_SIMILARITIES}, got {p['similarity']!r}")
    # implicit checks the BLAS thread pool when a model is built, so building happens inside the limit too
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        # implicit's own weighting hands a COO matrix to its kNN and then warns about converting it
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        if name == "als":
            kw = dict(factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                      iterations=p["iterations"], random_state=seed, use_gpu=gpu)
            model = implicit.als.AlternatingLeastSquares(**kw, **({} if gpu else {"num_threads": p["num_threads"]}))
        elif name == "bpr":
            kw = dict(factors=p["factors"], learning_rate=p["learning_rate"], regularization=p["regularization"],
                      iterations=p["iterations"], random_state=seed, use_gpu=gpu)
            model = implicit.bpr.BayesianPersonalizedRanking(**kw, **({} if gpu else {"num_threads": p["num_threads"]}))
        elif p["similarity"] == "bm25":
            model = nn.BM25Recommender(K=p["K"], K1=p["K1"], B=p["B"], num_threads=p["num_threads"])
        elif p["similarity"] == "tfidf":
            model = nn.TFIDFRecommender(K=p["K"], num_threads=p["num_threads"])
        else:
            model = nn.CosineRecommender(K=p["K"], num_threads=p["num_threads"])
        start = time.perf_counter()
        model.fit(X, show_progress=show_progress)
    fit_seconds = time.perf_counter() - start

    out = ImplicitModel(name=name, params=p, fit_seconds=fit_seconds, device="gpu" if gpu else "cpu",
                        train=X, model=model)
    if name == "itemknn":
        out.similarity = sp.csr_matrix(model.similarity, dtype=np.float32)
    else:
        cpu = model.to_cpu() if gpu else model
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
class RecBoleModel:
    """A RecBole model trained on our split, scored in our index space.

    RecBole re-maps tokens to its own ids (id 0 is padding), so ``user_map``/``item_map`` hold, for each
    of our indices, RecBole's internal id (0 = not in RecBole's id space). Its id space is built from the
    train, valid and test files together, so users and items that only occur in valid/test are known;
    items with no interaction in any of them (cold items) are not, and ``scores`` gives them ``fill``.

    Introduced in notebooks/03_cf_baselines.ipynb
    """

    model_name: str
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
        users = _check_users(user_idx, self.n_users)
        if not (fill == "min" or (isinstance(fill, (int, float)) and not isinstance(fill, bool))):
            raise ValueError(f"fill must be 'min' or a number, got {fill!r}")
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
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame with user_idx and item_idx columns, got {type(df).__name__}")
    missing = [c for c in ("user_idx", "item_idx") if c not in df.columns]
    if missing:
        raise ValueError(f"{name} must have columns user_idx and item_idx (our indices), missing {missing}")
    if len(df) == 0:
        raise ValueError(f"{name} is empty; RecBole needs at least one interaction in each file")
    pairs = df[["user_idx", "item_idx"]].astype(np.int64)
    for col, n in (("user_idx", n_users), ("item_idx", n_items)):
        v = pairs[col].to_numpy()
        if v.min() < 0 or v.max() >= n:
            raise ValueError(f"{name}.{col} holds {int(v.min())}..{int(v.max())}, outside [0, {n})")
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


def _general_model(model_name):
    # Only RecBole's general recommenders: our atomic files carry user and item ids and nothing else
    # (RecBole's own get_model would also import exlib_recommender, which needs xgboost and lightgbm).
    import importlib
    import importlib.util

    if not isinstance(model_name, str) or not model_name.isidentifier():
        raise ValueError(f"model_name must be a RecBole model name such as 'BPR', got {model_name!r}")
    path = f"recbole.model.general_recommender.{model_name.lower()}"
    module = importlib.import_module(path) if importlib.util.find_spec(path) else None
    if module is None or not hasattr(module, model_name):
        raise ValueError(
            f"model_name {model_name!r} is not a RecBole general recommender "
            "(e.g. 'BPR', 'LightGCN', 'EASE', 'MultiVAE', 'NeuMF', 'ItemKNN'; names are case-sensitive)"
        )
    return getattr(module, model_name)


def fit_recbole(model_name: str, train_df, valid_df, test_df, n_users: int, n_items: int, config: dict | None = None,
                seed: int = 0, epochs: int = 20, k: int = 10, device: str = "auto", workdir=None,
                show_progress: bool = False) -> RecBoleModel:
    """Train a RecBole general model with RecBole's own pipeline on our pre-split train/valid/test.

    The three frames (columns ``user_idx``, ``item_idx``: our indices) become the atomic files
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

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from recsuite.compat import patch_recbole

    patch_recbole()
    model_class = _general_model(model_name)
    n_users, n_items = _check_count(n_users, "n_users"), _check_count(n_items, "n_items")
    seed, epochs, k = _check_seed(seed), _check_count(epochs, "epochs"), _check_count(k, "k")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"config must be a dict of RecBole parameters, got {type(config).__name__}")
    clash = sorted(set(config or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"config may not set {clash}: fit_recbole sets them (use the arguments instead)")
    use_gpu = _check_device(device)

    train = _frame_pairs(train_df, "train_df", n_users, n_items)
    test = _frame_pairs(test_df, "test_df", n_users, n_items)
    refit = valid_df is None
    valid = test if refit else _frame_pairs(valid_df, "valid_df", n_users, n_items)

    params = {**RECBOLE_MODEL_DEFAULTS.get(model_name, {}), **(config or {})}
    if model_class.input_type.name == "POINTWISE" and model_class.type.name == "GENERAL" and \
            params.get("train_neg_sample_args", "default") is None:
        raise ValueError(f"{model_name} is pointwise: it needs train_neg_sample_args (negatives make its 0/1 labels)")

    if workdir is None:
        from recsuite.paths import build_dir

        workdir = build_dir() / "recbole"
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{model_name}-", dir=workdir) as tmp:
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
        model_name=model_name, config=cfg,
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

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA device")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def run_recbole_protocol(model_name: str, dataset: str = "ml-100k", config: dict | None = None, seed: int = 2020,
                         epochs: int = 300, k: int = 10, device: str = "auto", workdir=None,
                         show_progress: bool = False) -> dict:
    """RecBole's own protocol end to end, for comparing with RecBole's published numbers.

    RecBole's dataset files (``ml-100k`` ships inside the package), its default random 8:1:1 split per
    user (``eval_args``), its full-sort evaluation and early stopping on valid MRR@10, and its default seed
    2020 and 300 epochs, as its quick-start example runs them, but without ``recbole.quick_start``.
    ``config`` overrides anything except where files are written. Returns ``recbole_eval`` (test),
    ``best_valid``, ``valid_curve``, ``train_loss``, ``fit_seconds``, ``config``.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from recsuite.compat import patch_recbole

    patch_recbole()
    model_class = _general_model(model_name)
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a RecBole dataset name, got {dataset!r}")
    seed, epochs, k = _check_seed(seed), _check_count(epochs, "epochs"), _check_count(k, "k")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"config must be a dict of RecBole parameters, got {type(config).__name__}")
    clash = sorted(set(config or {}) & {"checkpoint_dir", "dataset", "model", "seed", "epochs"})
    if clash:
        raise ValueError(f"config may not set {clash}: use the arguments instead")
    use_gpu = _check_device(device)
    if workdir is None:
        from recsuite.paths import build_dir

        workdir = build_dir() / "recbole"
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{model_name}-native-", dir=workdir) as tmp:
        cfg = {"dataset": dataset, "seed": seed, "epochs": epochs, "topk": [k], "show_progress": show_progress,
               "checkpoint_dir": str(Path(tmp) / "saved"), "metric_decimal_place": 12,
               "gpu_id": "0" if use_gpu else "", "use_gpu": use_gpu, "worker": 0,
               "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
               **RECBOLE_MODEL_DEFAULTS.get(model_name, {}), **(config or {})}
        run = _run_recbole(model_class, cfg, seed, show_progress=show_progress)
    for key in ("dataset", "model", "recbole_config"):
        run.pop(key)
    return {**run, "config": cfg}


def tie_sensitive_users(scores, truth, k: int, exclude=None, allowed=None) -> int:
    """How many users' metrics@k depend on how equal scores are ordered.

    A user counts when one of their relevant items (``truth``) shares its score with another candidate
    and that score reaches the user's k-th best: then the tie-break decides the item's rank, or whether
    it is in the top k at all. Candidates are the ``allowed`` items minus the ``exclude`` row, as in
    ``metrics.topk_from_scores``.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    s = np.array(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (n_users, n_items), got shape {s.shape}")
    if not sp.issparse(truth) or truth.shape != s.shape:
        raise ValueError(f"truth must be a sparse matrix of shape {s.shape}, got {getattr(truth, 'shape', type(truth))}")
    k = min(_check_count(k, "k"), s.shape[1])
    if allowed is not None:
        s[:, ~np.asarray(allowed, dtype=bool)] = -np.inf
    if exclude is not None:
        ex = sp.coo_matrix(exclude)
        s[ex.row, ex.col] = -np.inf
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1]
    rel = sp.coo_matrix(truth)
    value = s[rel.row, rel.col]
    reach = np.isfinite(value) & (value >= kth[rel.row])
    rows, cols, value = rel.row[reach], rel.col[reach], value[reach]
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

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from recsuite import metrics as M

    if not isinstance(fitted, RecBoleModel):
        raise ValueError(f"fitted must be a RecBoleModel from fit_recbole, got {type(fitted).__name__}")
    s = fitted.scores() if scores is None else np.asarray(scores)
    if s.shape != (fitted.n_users, fitted.n_items):
        raise ValueError(f"scores must have shape {(fitted.n_users, fitted.n_items)}, got {s.shape}")
    k = fitted.k
    topk = M.topk_from_scores(s, k, exclude=fitted.test_history, allowed=fitted.known_items)
    ours = M.evaluate(topk, fitted.test_truth, k=k)
    rows = []
    for m in RECBOLE_METRICS:
        key = f"{m}@{k}"
        rows.append({"metric": key, "recbole": fitted.recbole_eval[key], "recsuite": ours[key]})
    df = pd.DataFrame(rows).set_index("metric")
    df["abs_diff"] = (df.recbole - df.recsuite).abs()
    df.attrs["tie_sensitive_users"] = tie_sensitive_users(s, fitted.test_truth, k, fitted.test_history,
                                                          fitted.known_items)
    return df


# ===================================================================================================
# EASE in NumPy
# ===================================================================================================
@dataclass
class EASEModel:
    """A fitted EASE model: the item-item weights B and the matrix X it scores from (``scores() = X B``).

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
        users = _check_users(user_idx, self.n_users)
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

    X = _check_interactions_csr(train_csr, "train_csr")
    if isinstance(reg_weight, bool) or not isinstance(reg_weight, (int, float, np.floating, np.integer)) or \
            not np.isfinite(reg_weight) or reg_weight <= 0:
        raise ValueError(f"reg_weight must be a positive number (the ridge penalty λ), got {reg_weight!r}")
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
_SCORES_VERSION = 2


def _check_fast_model(model) -> str:
    if model not in FAST_MODELS:
        raise ValueError(f"model must be one of {FAST_MODELS}, got {model!r}")
    return model


def _fast_model_params(model, params, protocol=None, seed: int = 0) -> dict:
    """The full parameters of a fast model: the tuned choice for (protocol, seed) updated by ``params``."""
    _check_fast_model(model)
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"params must be a dict of {model} parameters or None, got {type(params).__name__}")
    allowed = {"EASE": {"reg_weight"}, "ALS": set(IMPLICIT_DEFAULTS["als"]) - {"num_threads"},
               "ItemKNN": set(IMPLICIT_DEFAULTS["itemknn"]) - {"num_threads"}}[model]
    unknown = sorted(set(params or {}) - allowed)
    if unknown:
        raise ValueError(f"params for {model!r} accept {sorted(allowed)}, got unknown {unknown}")
    grid_keys = set(FAST_GRIDS[model][0]) | set(FAST_FIXED[model])
    if params is not None and grid_keys <= set(params):
        return dict(params)  # fully specified: no tuned choice is needed
    if protocol is None:
        raise ValueError(f"params {params!r} leave {sorted(grid_keys - set(params or {}))} of {model} open, and "
                         "without a protocol there is no tuned choice to fill them")
    return {**tuned_params(model, protocol, seed), **(params or {})}


def fit_fast_model(model: str, history, params: dict, seed: int = 0):
    """Fit one of ``FAST_MODELS`` on a users x items CSR with the given (complete) parameters.

    "EASE": ``fit_ease``; "ALS" and "ItemKNN": ``fit_implicit`` on the CPU with one thread (the GPU
    variant gives different numbers, and these models take well under a second on the CPU anyway).
    Returns the fitted model (``.scores()``, ``.fit_seconds``).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    _check_fast_model(model)
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict of {model} parameters, got {type(params).__name__}")
    seed = _check_seed(seed)
    if model == "EASE":
        return fit_ease(history, **params)
    return fit_implicit("als" if model == "ALS" else "itemknn", history, params, seed=seed, device="cpu")


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
    from recsuite.split import load_protocol
    from recsuite.tuning import one_se_rule

    _check_fast_model(model)
    seed = _check_seed(seed)
    protocol = load_protocol() if protocol is None else protocol
    _check_protocol(protocol)
    grid = list(FAST_GRIDS[model] if grid is None else grid)
    if not grid or not all(isinstance(g, dict) for g in grid):
        raise ValueError(f"grid must be a non-empty list of parameter dicts, got {grid!r}")
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


def _check_protocol(protocol) -> None:
    if not all(hasattr(protocol, a) for a in ("history", "csr", "rank", "n_users", "n_items", "params")):
        raise ValueError(f"protocol must be a recsuite.split.Protocol, got {type(protocol).__name__}")


def tuned_params(model: str, protocol=None, seed: int = 0) -> dict:
    """The parameters notebook 03 chose for ``model`` on this protocol with this seed (tuned now if missing).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from recsuite import choices
    from recsuite.split import load_protocol

    _check_fast_model(model)
    seed = _check_seed(seed)
    protocol = load_protocol() if protocol is None else protocol
    _check_protocol(protocol)
    return choices.load(f"cf.{model.lower()}", protocol, seed,
                        compute=lambda: tune_fast_model(model, protocol, seed)[1])


def best_fast_model(protocol=None, seed: int = 0) -> str:
    """The fast model with the best valid NDCG@10 (rounded to three decimals) at its tuned setting.

    Ties go to the first of ``FAST_MODELS``. Notebook 03 saves this choice; later lessons read it.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    from recsuite import choices
    from recsuite.split import load_protocol

    seed = _check_seed(seed)
    protocol = load_protocol() if protocol is None else protocol
    _check_protocol(protocol)

    def compute():
        from recsuite import metrics

        valid = {}
        for model in FAST_MODELS:
            fitted = fit_fast_model(model, protocol.history("valid"), tuned_params(model, protocol, seed), seed=seed)
            valid[model] = round(metrics.ndcg_at_k(protocol.rank(fitted.scores(), "valid", 10), protocol.csr("valid"), 10), 3)
        return max(FAST_MODELS, key=lambda m: (valid[m], -FAST_MODELS.index(m)))

    return choices.load("cf.best-fast-model", protocol, seed, compute=compute)


def _history_digest(history: sp.csr_matrix) -> str:
    h = sp.csr_matrix(history)
    h.sum_duplicates()
    h.sort_indices()
    digest = hashlib.sha256(repr(h.shape).encode())
    for arr in (h.indptr.astype(np.int64), h.indices.astype(np.int64), (h.data != 0).astype(np.int8)):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def _scores_key(model: str, params: dict, eval_set: str, seed: int, protocol) -> dict:
    return {
        "version": _SCORES_VERSION, "model": model, "params": params, "eval_set": eval_set, "seed": seed,
        "protocol": dict(getattr(protocol, "params", {}) or {}),
        "history": _history_digest(protocol.history(eval_set)),
        "shape": [int(protocol.n_users), int(protocol.n_items)],
    }


def _scores_file(key: dict, cache_dir) -> Path:
    if cache_dir is None:
        from recsuite.paths import data_home

        cache_dir = data_home() / "scores"
    return Path(cache_dir) / f"{key['model']}-{key['eval_set']}-{cache.key_digest(key)}.npz"


def _resolve(model, eval_set, params, protocol, seed):
    from recsuite.split import EVAL_SETS, load_protocol

    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {eval_set!r}")
    seed = _check_seed(seed)
    protocol = load_protocol() if protocol is None else protocol
    _check_protocol(protocol)
    model = best_fast_model(protocol, seed) if model is None else _check_fast_model(model)
    return model, _fast_model_params(model, params, protocol, seed), seed, protocol


def cf_scores_path(model: str | None = None, eval_set: str = "test", params: dict | None = None, protocol=None,
                   seed: int = 0, cache_dir=None) -> Path:
    """The file ``cf_scores`` reads and writes for these arguments.

    The name hashes the model, its full parameters, ``eval_set``, ``seed``, the protocol's parameters and
    a digest of the history matrix it is fit on, so a different split or configuration never reads a stale file.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    model, p, seed, protocol = _resolve(model, eval_set, params, protocol, seed)
    return _scores_file(_scores_key(model, p, eval_set, seed, protocol), cache_dir)


def cf_scores(model: str | None = None, eval_set: str = "test", params: dict | None = None, protocol=None,
              seed: int = 0, cache: bool = True, cache_dir=None) -> np.ndarray:
    """Float32 (n_users, n_items) scores of a tuned fast CF model fit on ``protocol.history(eval_set)`` (cache-or-compute).

    ``model`` is "ALS", "EASE" or "ItemKNN", or None for ``best_fast_model(protocol, seed)``; its
    parameters are the ones notebook 03 chose for this protocol and seed (``tuned_params``), updated by
    ``params``. ``protocol`` defaults to ``load_protocol()``. The fit sees only the history of
    ``eval_set`` (train for valid, train+valid for test and cold_test), so the matrix is safe to blend and
    re-rank on that set. Cold items have no interactions, so every CF model scores them alike (0 for ALS,
    EASE and ItemKNN). Seen items are not masked (``Protocol.evaluate`` does that). With ``cache=True`` the
    matrix is stored under ``cache_dir`` (default ``datasets/scores``) in a file named by
    ``cf_scores_path`` and written atomically; a missing file is rebuilt in about a second.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    if not isinstance(cache, (bool, np.bool_)):
        raise ValueError(f"cache must be True or False, got {cache!r}")
    model, p, seed, protocol = _resolve(model, eval_set, params, protocol, seed)
    key = _scores_key(model, p, eval_set, seed, protocol)
    path = _scores_file(key, cache_dir) if cache else None
    if path is not None:
        hit = _read_scores(path, key)
        if hit is not None:
            return hit
    scores = fit_fast_model(model, protocol.history(eval_set), p, seed).scores()
    if path is not None:
        _write_scores(path, key, scores)
    return scores


def _read_scores(path: Path, key: dict):
    scores = cache.read_array(path, key, "scores")
    if scores is None or scores.shape != tuple(key["shape"]) or scores.dtype != np.float32:
        return None  # absent, truncated or foreign: recompute and overwrite
    return scores


def _write_scores(path: Path, key: dict, scores: np.ndarray) -> None:
    cache.write_array(path, key, "scores", np.asarray(scores, dtype=np.float32))
