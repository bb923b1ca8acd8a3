"""Collaborative-filtering baselines under the suite's protocol, behind one ``Scorer`` interface.

Every model here is a ``Scorer``: ``n_users``, ``n_items`` and ``scores(user_idx)``, a dense
(len(user_idx), n_items) float matrix in *our* index space, so ``Protocol.evaluate`` measures every model
the same way. The model argument is always ``model``, spelt as RecBole spells it ("ALS", "BPR", "ItemKNN",
"EASE", "LightGCN", "MultiVAE", ...).

* ``fit_implicit``: ALS (Hu, Koren & Volinsky 2008), BPR (Rendle et al. 2009) and item-kNN (cosine, BM25,
  TF-IDF) from ``implicit``, with BLAS pinned to one thread and ``implicit.gpu`` used when it has CUDA.
* ``fit_fast_model`` / ``tune_fast_model``: the fast models (ALS, EASE, item-kNN) and the grid search
  notebook 03 runs on valid. The choices it saves and the cached score matrices later lessons read
  (``tuned_params``, ``best_fast_model``, ``cf_scores``) belong to ``recsuite.course.artifacts``.

RecBole's models are in ``recsuite.models.recbole``, EASE in ``recsuite.models.ease``.

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.progress import tqdm
from recsuite.data.split import resolve_protocol
from recsuite.evaluation import metrics
from recsuite.evaluation.selection import one_se_rule
from recsuite.models.base import Scorer
from recsuite.models.ease import fit_ease

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
    "ALS": {"factors": checks.positive_int, "regularization": checks.non_negative_number,
            "alpha": checks.positive_number, "iterations": checks.positive_int,
            "num_threads": checks.non_negative_int},
    "BPR": {"factors": checks.positive_int, "learning_rate": checks.positive_number,
            "regularization": checks.non_negative_number, "iterations": checks.positive_int,
            "num_threads": checks.non_negative_int},
    "ItemKNN": {"similarity": lambda n, v: checks.one_of(n, v, KNN_SIMILARITIES), "K": checks.positive_int,
                "K1": checks.non_negative_number, "B": lambda n, v: checks.number(n, v, low=0.0, high=1.0),
                "num_threads": checks.non_negative_int},
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
    def shape(self) -> tuple[int, int]:
        return self.train.shape

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


def fit_implicit(model: str, history, params: dict | None = None, seed: int = 0, device: str = "auto",
                 progress: bool = False) -> ImplicitModel:
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

    checks.one_of("model", model, IMPLICIT_MODELS)
    X = checks.interactions("history", history)
    seed = checks.seed("seed", seed)
    p = {**IMPLICIT_DEFAULTS[model], **checks.params("params", params, IMPLICIT_RULES[model])}
    checks.one_of("device", device, ("auto", "cpu", "gpu"))
    progress = checks.flag("progress", progress)
    gpu = model != "ItemKNN" and device != "cpu" and _implicit_gpu_available()
    if device == "gpu" and not gpu:
        raise ValueError(f"device='gpu' was asked for, but implicit has no CUDA support here (or model={model!r} "
                         "has no GPU variant)")

    implicit = require("implicit", "cf")
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
        fitted.fit(X, show_progress=progress)
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
    return checks.one_of("model", model, FAST_MODELS)


def fit_fast_model(model: str, history, params: dict, seed: int = 0):
    """Fit one of ``FAST_MODELS`` on a users x items CSR with the given (complete) parameters.

    "EASE": ``fit_ease``; "ALS" and "ItemKNN": ``fit_implicit`` on the CPU with one thread (the GPU
    variant gives different numbers, and these models take well under a second on the CPU anyway).
    Returns the fitted model (``.scores()``, ``.fit_seconds``).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    _check_fast_model(model)
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of {model} parameters, got {checks.describe(params)}")
    seed = checks.seed("seed", seed)
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
    CPU makes the same choice (``recsuite.evaluation.selection``). Returns ``(table, params)``: one row per setting
    (``ndcg@10``, its standard error over users, ``recall@10``, ``fit_s``, ``chosen``) and the chosen
    parameters with ``FAST_FIXED`` added. Notebook 03 saves them with ``recsuite.course.choices``;
    ``tuned_params`` reads them (or calls this when they are missing).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    _check_fast_model(model)
    seed = checks.seed("seed", seed)
    progress = checks.flag("progress", progress)
    protocol = resolve_protocol(protocol)
    if grid is not None and not isinstance(grid, (list, tuple)):
        raise TypeError(f"grid must be a list of parameter dicts or None, got {checks.describe(grid)}")
    grid = list(FAST_GRIDS[model] if grid is None else grid)
    if not grid or not all(isinstance(g, dict) for g in grid):
        raise ValueError(f"grid must be a non-empty list of parameter dicts, got {grid!r}")
    tie_keys = [key for key, _ in FAST_SIMPLEST[model]]
    fixed = [(i, sorted(set(g) & set(FAST_FIXED[model]))) for i, g in enumerate(grid)]
    fixed = [(i, keys) for i, keys in fixed if keys]
    if fixed:
        i, keys = fixed[0]
        raise ValueError(f"grid settings may not set {keys} for {model}: they are held fixed at {FAST_FIXED[model]} "
                         f"(FAST_FIXED), got {({k: grid[i][k] for k in keys})} in setting {i}")
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
