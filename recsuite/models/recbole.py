"""RecBole 1.2.1 on our split, RecBole's own protocol, and the evaluator cross-check.

* ``fit_recbole``: any RecBole general model (BPR, LightGCN, EASE, MultiVAE, NeuMF, ...) trained by RecBole's own
  ``Trainer`` on our pre-split train/valid/test (RecBole's ``benchmark_filename`` atomic files), without
  ``recbole.quick_start``; the fitted model is a ``Scorer``.
* ``fit_recbole_sequential``: RecBole's sequential recommenders (SASRec, GRU4Rec, ...) on the same split,
  next item from the history (``RecBoleSequentialModel.score_sequences``; notebooks/13_sequential.ipynb).
* ``run_recbole_protocol``: RecBole's own protocol (its random 8:1:1 split), to set our numbers beside RecBole's.
* ``recbole_crosscheck``: RecBole's evaluator against ``recsuite.evaluation.metrics`` on the same lists
  (``tie_sensitive_users`` says when ties could explain a gap).

All RecBole workarounds live in ``recsuite.models.recbole_compat`` (applied on first use).

Introduced in notebooks/04_neural_cf_recbole.ipynb
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.paths import build_dir
from recsuite.evaluation import metrics as M
from recsuite.models.base import Scorer
from recsuite.models.recbole_compat import patch_recbole, quiet_recbole

# ===================================================================================================
# RecBole
# ===================================================================================================
RECBOLE_METRICS = ("recall", "mrr", "ndcg", "hit", "precision", "map")
RECBOLE_METRIC_NAMES = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "Hit", "precision": "Precision",
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
RESERVED_KEYS = ("data_path", "checkpoint_dir", "benchmark_filename", "USER_ID_FIELD", "ITEM_ID_FIELD", "load_col",
             "dataset", "model", "eval_args", "seed", "epochs", "topk", "gpu_id", "use_gpu", "save_dataset",
             "save_dataloaders", "dataset_save_path", "dataloaders_save_path")
DATASET = "recsuite"


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
    def shape(self) -> tuple[int, int]:
        return (len(self.user_map), len(self.item_map))

    @property
    def known_users(self) -> np.ndarray:
        return self.user_map > 0

    @property
    def known_items(self) -> np.ndarray:
        """Boolean (n_items,) mask of the items RecBole ranks (those in its id space)."""
        return self.item_map > 0

    def _internal_scores(self, internal_users: np.ndarray) -> np.ndarray:
        torch = require("torch", "text")
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
                fill = checks.number("fill", fill)
            except TypeError:
                raise TypeError(f"fill must be 'min' or a finite number, got {checks.describe(fill)}") from None
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


def index_column(df, name: str, col: str, n: int, what: str) -> np.ndarray:
    """Column ``col`` of ``df`` as int64 indices in ``[0, n)`` (whole-number floats, e.g. after a merge, accepted)."""
    values = df[col].to_numpy()
    if values.dtype.kind == "f" and np.isfinite(values).all() and (values == np.round(values)).all():
        values = values.astype(np.int64)  # whole-number floats (e.g. after a merge) are indices too
    return checks.indices(f"{name}.{col}", values, n, what=what)


def _frame_pairs(df, name: str, n_users: int, n_items: int) -> pd.DataFrame:
    checks.columns(name, df, ["user_idx", "item_idx"])
    if len(df) == 0:
        raise ValueError(f"{name} is empty; RecBole needs at least one interaction in each file")
    pairs = pd.DataFrame({"user_idx": index_column(df, name, "user_idx", n_users, "user"),
                          "item_idx": index_column(df, name, "item_idx", n_items, "item")})
    # a repeated pair is one positive for RecBole's evaluator (a set) and one for our CSR (binarised)
    return pairs.drop_duplicates().reset_index(drop=True)


def _write_atomic_file(pairs: pd.DataFrame, path: Path) -> None:
    # tokens are our contiguous indices as strings, so RecBole's id_token maps straight back to them
    out = pairs.rename(columns={"user_idx": "user_id:token", "item_idx": "item_id:token"})
    out.to_csv(path, sep="\t", index=False)


def _binary_csr(pairs: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(pairs), np.float32), (pairs.user_idx, pairs.item_idx)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def token_map(field2token_id: dict, n: int) -> np.ndarray:
    """(n,) RecBole internal id of each of our indices (RecBole's tokens are our indices as str; 0 = unknown)."""
    mapping = np.zeros(n, dtype=np.int64)
    for token, internal in field2token_id.items():
        if token != "[PAD]":
            mapping[int(token)] = internal
    return mapping


def recbole_models() -> tuple[str, ...]:
    """The names ``fit_recbole`` accepts: RecBole 1.2.1's general recommenders, spelt as RecBole spells them.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    import recbole.model.general_recommender as general
    from recbole.model.abstract_recommender import GeneralRecommender

    return tuple(sorted(n for n, c in vars(general).items()
                        if inspect.isclass(c) and issubclass(c, GeneralRecommender) and c is not GeneralRecommender))


def _general_model(model):
    # Only RecBole's general recommenders: our atomic files carry user and item ids and nothing else
    # (RecBole's own get_model would also import exlib_recommender, which needs xgboost and lightgbm).
    if not isinstance(model, str):
        raise TypeError(f"model must be a RecBole model name such as 'BPR', got {checks.describe(model)}")
    names = recbole_models()
    if model not in names:
        raise ValueError(f"model {model!r} is not a RecBole general recommender; names are case-sensitive, "
                         f"one of {names}")
    return getattr(importlib.import_module(f"recbole.model.general_recommender.{model.lower()}"), model)


def check_config(config, reserved) -> dict:
    """A RecBole config override: None or a dict of str keys, none of them in ``reserved`` (the keys the fit sets)."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of RecBole parameters or None, got {checks.describe(config)}")
    bad = [k for k in config if not isinstance(k, str)]
    if bad:
        raise TypeError(f"config keys must be str (RecBole parameter names), got {bad!r}")
    clash = sorted(set(config) & set(reserved))
    if clash:
        raise ValueError(f"config may not set {clash}: the function sets them (use its arguments instead)")
    return dict(config)


def workdir_folder(workdir) -> Path:
    """The folder RecBole's temporary files go under: ``workdir``, or ``build/recbole`` for None (created)."""
    if workdir is None:
        workdir = build_dir() / "recbole"
    if not isinstance(workdir, (str, os.PathLike)) or not str(workdir).strip():
        raise TypeError(f"workdir must be a folder path or None, got {checks.describe(workdir)}")
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"workdir must be a folder, got the file {str(workdir)!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def fit_recbole(model: str, train_df, valid_df, test_df, n_users: int, n_items: int, config: dict | None = None,
                seed: int = 0, epochs: int = 20, k: int = 10, device: str = "auto", workdir=None,
                progress: bool = False) -> RecBoleModel:
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
    patch_recbole()
    model_class = _general_model(model)
    n_users, n_items = checks.positive_int("n_users", n_users), checks.positive_int("n_items", n_items)
    seed, epochs = checks.seed("seed", seed), checks.positive_int("epochs", epochs)
    k = checks.integer("k", k, low=1, high=n_items)
    config = check_config(config, RESERVED_KEYS)
    use_gpu = check_device(device)
    progress = checks.flag("progress", progress)

    train = _frame_pairs(train_df, "train_df", n_users, n_items)
    test = _frame_pairs(test_df, "test_df", n_users, n_items)
    refit = valid_df is None
    valid = test if refit else _frame_pairs(valid_df, "valid_df", n_users, n_items)
    # an evaluated pair that is also in its history is masked by both evaluators: it could never be a hit
    leak_checks = [("test_df", test, "train_df", train)] if refit else [
        ("valid_df", valid, "train_df", train), ("test_df", test, "train_df and valid_df", pd.concat([train, valid]))]
    for name, evaluated, before, history in leak_checks:
        both = evaluated.merge(history, on=["user_idx", "item_idx"])
        if len(both):
            raise ValueError(f"{name} shares {len(both)} (user_idx, item_idx) pairs with {before}, e.g. "
                             f"{tuple(int(v) for v in both.iloc[0])}; a pair must be in one split only")

    params = {**RECBOLE_MODEL_DEFAULTS.get(model, {}), **config}
    if model_class.input_type.name == "POINTWISE" and model_class.type.name == "GENERAL" and\
            params.get("train_neg_sample_args", "default") is None:
        raise ValueError(f"{model} is pointwise: it needs train_neg_sample_args (negatives make its 0/1 labels)")

    workdir = workdir_folder(workdir)
    with tempfile.TemporaryDirectory(prefix=f"{model}-", dir=workdir) as tmp:
        root = Path(tmp)
        (root / DATASET).mkdir()
        for part, pairs in (("train", train), ("valid", valid), ("test", test)):
            _write_atomic_file(pairs, root / DATASET / f"{DATASET}.{part}.inter")
        cfg = {
            "dataset": DATASET, "seed": seed, "reproducibility": True, "epochs": epochs,
            "show_progress": progress,
            "data_path": str(root), "checkpoint_dir": str(root / "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "load_col": {"inter": ["user_id", "item_id"]},
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
            "metrics": [RECBOLE_METRIC_NAMES[m] for m in RECBOLE_METRICS], "topk": [k],
            "valid_metric": f"NDCG@{k}", "metric_decimal_place": 12,
            "gpu_id": "0" if use_gpu else "", "use_gpu": use_gpu, "worker": 0,
            "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
            **params,
        }
        run = run_recbole(model_class, cfg, seed, early_stopping=not refit, progress=progress)

    dataset = run.pop("dataset")
    history = train if refit else pd.concat([train, valid], ignore_index=True)
    return RecBoleModel(
        name=model, config=cfg,
        user_map=token_map(dataset.field2token_id["user_id"], n_users),
        item_map=token_map(dataset.field2token_id["item_id"], n_items),
        user_tokens=np.asarray(dataset.field2id_token["user_id"]),
        item_tokens=np.asarray(dataset.field2id_token["item_id"]),
        test_truth=_binary_csr(test, n_users, n_items), test_history=_binary_csr(history, n_users, n_items), k=k,
        **run,
    )


def run_recbole(model_class, cfg: dict, seed: int, early_stopping: bool = True, progress: bool = False,
                 prepare=None) -> dict:
    """RecBole's pipeline (``recbole.quick_start.run_recbole``) on a config dict: data, model, Trainer, test."""
    # The pipeline of recbole.quick_start.run_recbole, minus ray, logging files and TensorBoard. ``prepare``
    # (optional) adjusts the built train/valid/test datasets in place before the model is made.
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_trainer, init_seed

    with quiet_recbole():
        rb_config = Config(model=model_class, dataset=cfg["dataset"], config_dict=cfg)
        init_seed(seed, True)
        dataset = create_dataset(rb_config)
        train_data, valid_data, test_data = data_preparation(rb_config, dataset)
        if prepare is not None:
            prepare(*(data._dataset for data in (train_data, valid_data, test_data)))
        init_seed(seed, True)  # the model's initialisation does not depend on how much sampling came before
        model = model_class(rb_config, train_data._dataset).to(rb_config["device"])
        trainer = get_trainer(rb_config["MODEL_TYPE"], rb_config["model"])(rb_config, model)
        curve = []
        start = time.perf_counter()
        trainer.fit(train_data, valid_data if early_stopping else None, verbose=False, saved=True,
                    show_progress=progress, callback_fn=lambda epoch, score: curve.append((epoch, float(score))))
        fit_seconds = time.perf_counter() - start
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=progress)
    best = trainer.best_valid_result
    return {
        "dataset": dataset, "model": model, "recbole_config": rb_config,
        "recbole_eval": {key: float(v) for key, v in test_result.items()},
        "best_valid": None if best is None else {key: float(v) for key, v in best.items()},
        "valid_curve": curve, "train_loss": {int(e): float(v) for e, v in trainer.train_loss_dict.items()},
        "fit_seconds": fit_seconds,
    }


def check_device(device: str) -> bool:
    """Whether RecBole should use the GPU for ``device`` ("auto", "cpu", "cuda"); "cuda" without one is refused."""
    torch = require("torch", "text")

    checks.one_of("device", device, ("auto", "cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA device")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def run_recbole_protocol(model: str, dataset: str = "ml-100k", config: dict | None = None, seed: int = 2020,
                         epochs: int = 300, k: int = 10, device: str = "auto", workdir=None,
                         progress: bool = False) -> dict:
    """RecBole's own protocol end to end for ``model`` (e.g. "BPR"), to compare with RecBole's published numbers.

    RecBole's dataset files (``ml-100k`` ships inside the package), its default random 8:1:1 split per
    user (``eval_args``), its full-sort evaluation and early stopping on valid MRR@10, and its default seed
    2020 and 300 epochs, as its quick-start example runs them, but without ``recbole.quick_start``.
    ``config`` overrides anything except where files are written. Returns ``recbole_eval`` (test),
    ``best_valid``, ``valid_curve``, ``train_loss``, ``fit_seconds``, ``config``.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    patch_recbole()
    model_class = _general_model(model)
    dataset = checks.text("dataset", dataset)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", dataset):  # a folder name under data_path, no path
        raise ValueError(f"dataset must be a RecBole dataset name (letters, digits, '-', '_', '.'), got {dataset!r}")
    seed, epochs, k = checks.seed("seed", seed), checks.positive_int("epochs", epochs), checks.positive_int("k", k)
    config = check_config(config, ("checkpoint_dir", "dataset", "model", "seed", "epochs"))
    use_gpu = check_device(device)
    progress = checks.flag("progress", progress)
    workdir = workdir_folder(workdir)
    with tempfile.TemporaryDirectory(prefix=f"{model}-native-", dir=workdir) as tmp:
        cfg = {"dataset": dataset, "seed": seed, "epochs": epochs, "topk": [k], "show_progress": progress,
               "checkpoint_dir": str(Path(tmp) / "saved"), "metric_decimal_place": 12,
               "gpu_id": "0" if use_gpu else "", "use_gpu": use_gpu, "worker": 0,
               "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
               **RECBOLE_MODEL_DEFAULTS.get(model, {}), **config}
        run = run_recbole(model_class, cfg, seed, progress=progress)
    for key in ("dataset", "model", "recbole_config"):
        run.pop(key)
    return {**run, "config": cfg}


def tie_sensitive_users(scores, truth, k: int, *, seen=None, catalogue=None) -> int:
    """How many users' metrics@k depend on how equal scores are ordered.

    A user counts when one of their relevant items (``truth``) shares its score with another candidate
    and that score reaches the user's k-th best: then the tie-break decides the item's rank, or whether
    it is in the top k at all. Candidates are the ``catalogue`` items minus the ``seen`` row, as in
    ``metrics.topk_from_scores``.

    Introduced in notebooks/04_neural_cf_recbole.ipynb
    """
    s = np.array(checks.array("scores", scores, ndim=2), dtype=np.float64)  # a copy: masking writes into it
    truth = checks.sparse("truth", truth, shape=s.shape, nonnegative=True)
    truth.eliminate_zeros()  # a stored 0 is not a relevant item
    k = checks.positive_int("k", k)
    if k > s.shape[1]:
        raise ValueError(f"k must be <= n_items ({s.shape[1]}), got {k}")
    if catalogue is not None:
        s[:, ~checks.bool_mask("catalogue", catalogue, s.shape[1])] = -np.inf
    if seen is not None:
        ex = checks.sparse("seen", seen, shape=s.shape).tocoo()
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
    """RecBole's evaluator vs ``recsuite.evaluation.metrics`` on the same test split, one row per metric@k.

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
    if not isinstance(fitted, RecBoleModel):
        raise TypeError(f"fitted must be a RecBoleModel from fit_recbole, got {checks.describe(fitted)}")
    if scores is None:
        s = fitted.scores()
    else:  # checked, and kept in the caller's float dtype (a cast could create or break ties)
        a = np.asarray(scores)
        s = checks.array("scores", a, ndim=2, shape=(fitted.n_users, fitted.n_items),
                          dtype=a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64)
    k = fitted.k
    topk = M.topk_from_scores(s, k, seen=fitted.test_history, catalogue=fitted.known_items)
    ours = M.evaluate(topk, fitted.test_truth, k=k)
    rows = []
    for m in RECBOLE_METRICS:
        key = f"{m}@{k}"
        rows.append({"metric": key, "recbole": fitted.recbole_eval[key], "recsuite": ours[key]})
    df = pd.DataFrame(rows).set_index("metric")
    df["abs_diff"] = (df.recbole - df.recsuite).abs()
    df.attrs["tie_sensitive_users"] = tie_sensitive_users(s, fitted.test_truth, k, seen=fitted.test_history,
                                                          catalogue=fitted.known_items)
    return df

