"""What one lesson leaves for the next: the settings it chose and the score matrices it built, keyed by
protocol and seed, read from disk and computed when missing.

Notebook 02 chooses the item text and centring (``content_setting``), 03 the CF parameters and model
(``tuned_params``, ``best_fast_model``) and their score matrices (``cf_scores``), 04 the blend
(``blend_setting``, searched by ``tune_blend``) and its full score matrix (``fused_scores``). Settings are
stored with ``recsuite.course.choices``; score matrices are ``recsuite.core.cache`` files whose names hash everything
they were computed from. A later lesson calls these functions and never a constant that a lesson must
match; any knob a learner turns recomputes what it changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite.combine import fusion
from recsuite.core import cache, checks
from recsuite.core.paths import data_home
from recsuite.course import choices
from recsuite.data.split import EVAL_SETS, resolve_protocol
from recsuite.evaluation import metrics
from recsuite.evaluation.selection import one_se_rule
from recsuite.models import cf, encoders, semantic

_SCORES_VERSION = 2


def _fast_model(model) -> str:
    return checks.one_of("model", model, cf.FAST_MODELS)


def _method(method) -> str:
    return checks.one_of("method", method, fusion.METHODS)


def _fast_model_params(model, params, protocol=None, seed: int = 0) -> dict:
    """The full parameters of a fast model: the tuned choice for (protocol, seed) updated by ``params``."""
    _fast_model(model)
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"params must be a dict of {model} parameters or None, got {checks.describe(params)}")
    known = set(cf.FAST_PARAMS[model])
    unknown = sorted(set(params or {}) - known)
    if unknown:
        raise ValueError(f"params for {model!r} accept {sorted(known)}, got unknown {unknown}")
    grid_keys = set(cf.FAST_GRIDS[model][0]) | set(cf.FAST_FIXED[model])
    if params is not None and grid_keys <= set(params):
        return dict(params)  # fully specified: no tuned choice is needed
    if protocol is None:
        raise ValueError(f"params {params!r} leave {sorted(grid_keys - set(params or {}))} of {model} open, and "
                         "without a protocol there is no tuned choice to fill them")
    return {**tuned_params(model, protocol, seed), **(params or {})}


def tuned_params(model: str, protocol=None, seed: int = 0) -> dict:
    """The parameters notebook 03 chose for ``model`` on this protocol with this seed (tuned now if missing).

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    _fast_model(model)
    seed = checks.seed("seed", seed)
    protocol = resolve_protocol(protocol)
    return choices.load(f"cf.{model.lower()}", protocol, seed,
                        compute=lambda: cf.tune_fast_model(model, protocol, seed)[1])


def best_fast_model(protocol=None, seed: int = 0) -> str:
    """The fast model with the best valid NDCG@10 (rounded to three decimals) at its tuned setting.

    Ties go to the first of ``cf.FAST_MODELS``. Notebook 03 saves this choice; later lessons read it.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    seed = checks.seed("seed", seed)
    protocol = resolve_protocol(protocol)

    def compute():
        valid = {}
        for model in cf.FAST_MODELS:
            fitted = cf.fit_fast_model(model, protocol.history("valid"), tuned_params(model, protocol, seed), seed=seed)
            valid[model] = round(metrics.ndcg_at_k(protocol.rank(fitted.scores(), "valid", 10), protocol.csr("valid"), 10), 3)
        return max(cf.FAST_MODELS, key=lambda m: (valid[m], -cf.FAST_MODELS.index(m)))

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
        cache_dir = data_home() / "scores"
    return Path(cache_dir) / f"{key['model']}-{key['eval_set']}-{cache.key_digest(key)}.npz"


def _resolve(model, eval_set, params, protocol, seed):
    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {eval_set!r}")
    seed = checks.seed("seed", seed)
    protocol = resolve_protocol(protocol)
    model = best_fast_model(protocol, seed) if model is None else _fast_model(model)
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
    checks.flag("cache", cache)
    model, p, seed, protocol = _resolve(model, eval_set, params, protocol, seed)
    key = _scores_key(model, p, eval_set, seed, protocol)
    path = _scores_file(key, cache_dir) if cache else None
    if path is not None:
        hit = _read(path, key)
        if hit is not None:
            return hit
    scores = cf.fit_fast_model(model, protocol.history(eval_set), p, seed).scores()
    if path is not None:
        _write(path, key, scores)
    return scores


def _read(path: Path, key: dict):
    scores = cache.read_array(path, key, "scores")
    if scores is None or scores.shape != tuple(key["shape"]) or scores.dtype != np.float32:
        return None  # absent, truncated or foreign: recompute and overwrite
    return scores


def _write(path: Path, key: dict, scores: np.ndarray) -> None:
    cache.write_or_warn(path, key, "scores", np.asarray(scores, dtype=np.float32), what="CF score cache", stacklevel=4)


# -- a lesson's own score matrix, left for later lessons to pair against ------------------------------------
_LESSON_FORMAT = 2  # 2: the SHA-256 covers the model's name and params as well as the scores


def _lesson_key(lesson, eval_set: str, protocol, seed) -> tuple[dict, object]:
    lesson = checks.text("lesson", lesson)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", lesson):
        raise ValueError(f"lesson must be a notebook's stem such as '09_finetuning' (letters, digits, '_', '.', '-'), "
                         f"got {lesson!r}")
    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {eval_set!r}")
    seed, protocol = checks.seed("seed", seed), resolve_protocol(protocol)
    key = _scores_key("", {}, eval_set, seed, protocol)
    del key["model"], key["params"]
    return {**key, "lesson": lesson, "format": _LESSON_FORMAT}, protocol


def lesson_scores_path(lesson: str, eval_set: str = "test", protocol=None, seed: int = 0, cache_dir=None) -> Path:
    """The file ``save_lesson_scores`` writes and ``lesson_scores`` reads: one per lesson, eval set, seed and split.

    Introduced in notebooks/13_sequential.ipynb
    """
    key, _ = _lesson_key(lesson, eval_set, protocol, seed)
    folder = data_home() / "scores" if cache_dir is None else Path(cache_dir)
    return folder / f"{key['lesson']}-{eval_set}-{cache.key_digest(key)}.npz"


def save_lesson_scores(lesson: str, model: str, scores, eval_set: str = "test", params: dict | None = None,
                       protocol=None, seed: int = 0, cache_dir=None) -> Path:
    """Leave ``lesson``'s (n_users, n_items) ``scores`` of ``model`` on ``eval_set`` for a later lesson to pair with.

    A lesson whose model is too slow to rebuild elsewhere (lesson 09's fine-tuned two-tower) calls this once; a
    later lesson reads it with ``lesson_scores`` and pairs per user on the same protocol. The file holds the
    model's name, its ``params`` (JSON) and the SHA-256 of the scores next to the split's history digest, and
    is replaced atomically; the lesson's newest run wins. Returns the path.

    Introduced in notebooks/13_sequential.ipynb
    """
    key, protocol = _lesson_key(lesson, eval_set, protocol, seed)
    model = checks.text("model", model)
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of JSON data (the model's settings), got {checks.describe(params)}")
    a = np.asarray(scores)
    real = np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    if a.shape != tuple(key["shape"]) or not real:
        raise ValueError(f"scores must be a numeric (n_users, n_items) = {tuple(key['shape'])} matrix, got "
                         f"{checks.describe(scores)}")
    if not np.isfinite(a).all():
        raise ValueError(f"scores holds {int((~np.isfinite(a)).sum())} NaN or infinite values; expected finite scores")
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below with its reason
        a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError("scores holds values beyond float32's range (about 3.4e38), in which the scores are stored")
    try:
        about = json.dumps({"model": model, "params": params}, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"params must hold only finite JSON data (str, int, float, bool, None, lists, dicts), got "
                        f"{err}") from None
    path = lesson_scores_path(key["lesson"], eval_set, protocol, key["seed"], cache_dir)
    stored = {**key, "model": model, "params": params, "sha256": _lesson_digest(about, a)}
    cache.write_array(path, stored, "scores", a)
    return path


def _lesson_digest(about: str, scores: np.ndarray) -> str:
    """SHA-256 of the model's name and params (sorted JSON) and the scores' bytes: a change to any of them shows."""
    return hashlib.sha256(about.encode() + b"\0" + np.ascontiguousarray(scores).tobytes()).hexdigest()


def lesson_scores(lesson: str, eval_set: str = "test", protocol=None, seed: int = 0, cache_dir=None) -> dict | None:
    """What ``save_lesson_scores`` left for ``lesson`` on this split and seed: {"model", "params", "scores"}, or None.

    None when the lesson has not run here (no file, or one for another split or seed under a colliding name); a
    file that cannot be read, or whose model, params and scores do not hash to the SHA-256 stored with them, is
    refused with a ``ValueError`` naming it: a damaged result is never read, nor silently taken for a missing one.

    Introduced in notebooks/13_sequential.ipynb
    """
    key, protocol = _lesson_key(lesson, eval_set, protocol, seed)
    path = lesson_scores_path(key["lesson"], eval_set, protocol, key["seed"], cache_dir)
    if not path.exists():
        return None
    hit = cache.read_keyed(path, "scores")
    if hit is None:
        raise ValueError(f"{path} cannot be read as {lesson}'s scores (truncated or not ours); run {lesson} again")
    stored, scores = hit
    about = {k: stored.pop(k, None) for k in ("model", "params", "sha256")}
    if stored != json.loads(json.dumps(key)) or scores.shape != tuple(key["shape"]) or scores.dtype != np.float32:
        return None  # another split, seed or version under a colliding name: not this lesson's result
    text = json.dumps({"model": about["model"], "params": about["params"]}, sort_keys=True)
    if about["sha256"] != _lesson_digest(text, scores):
        raise ValueError(f"{path} holds a model, params or scores that do not match the SHA-256 stored with them: the "
                         f"file was changed after {lesson} wrote it; run {lesson} again")
    return {"model": about["model"], "params": about["params"], "scores": scores}


def content_setting(protocol=None, seed: int = 0) -> dict:
    """The item-text template and centring notebook 02 chose on this protocol (``tune_content`` if missing).

    ``{"template": ..., "center": ...}`` for the packaged MiniLM: pass them to ``item_vectors`` and
    ``content_scores``. Introduced in notebooks/02_llm_semantic_features.ipynb
    """

    seed = checks.seed("seed", seed)
    protocol = resolve_protocol(protocol)
    return choices.load("semantic.content", protocol, seed, compute=lambda: semantic.tune_content(protocol, seed)[1])


# -- the lesson's full-matrix fusion: the blend chosen on valid, cached for later lessons ------------
#: The blend grid notebook 05 searches on valid: γ with α = 1 for each normalisation (γ = 0, ALS alone,
#: and the content recommender alone are shown for reference but not chosen: the blend must rank cold
#: items, which only the content score can).
BLEND_METHODS = ("minmax", "zscore", "rank")
BLEND_GAMMAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
_FUSED_VERSION = 2


def _blend_sources(eval_set, protocol, seed, item_vectors=None, cf_model=None, cache_dir=None, cache=True):
    """The two sources of the fused model on ``eval_set``: tuned CF scores and the chosen content scores."""

    setting = content_setting(protocol, seed)
    v = semantic.item_vectors(setting["template"], index=protocol.index, progress=False) if item_vectors is None\
        else item_vectors
    return {
        "cf": cf_scores(cf_model, eval_set, protocol=protocol, seed=seed, cache=cache, cache_dir=cache_dir),
        "sem": semantic.content_scores(protocol.history(eval_set), v, center=setting["center"]),
    }


def tune_blend(protocol=None, seed: int = 0, item_vectors=None, cf_model: str | None = None, cache_dir=None,
               methods=BLEND_METHODS, gammas=BLEND_GAMMAS) -> tuple[pd.DataFrame, dict]:
    """Search the blend α·norm(s_CF) + γ·norm(s_sem) on valid (notebook 05's search) and choose one.

    s_CF is ``cf.cf_scores`` of the tuned CF model, s_sem the content recommender of notebook 02's chosen
    setting. Every method x γ (α = 1) is scored by valid NDCG@10; the choice is the one-standard-error
    rule on values rounded to three decimals (``recsuite.evaluation.selection.one_se_rule``): among the blends within one
    SE of the best, the simplest — the smallest γ, the least content on top of CF — then the first of
    ``methods``, so another CPU chooses the same. Returns ``(table, {"method": ..., "weights": {"cf":
    1.0, "sem": γ}})``; the table also has γ = 0 (CF alone) and the content recommender alone.

    Introduced in notebooks/05_fusion.ipynb
    """
    for name, value in (("methods", methods), ("gammas", gammas)):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
            raise TypeError(f"{name} must be a list, got {checks.describe(value)}; wrap a single value in a list")
    methods = [_method(m) for m in methods]
    gammas = [checks.number(f"gammas[{i}]", g) for i, g in enumerate(gammas)]
    protocol = resolve_protocol(protocol)
    if not methods or not gammas or min(gammas) <= 0:
        raise ValueError(f"methods and gammas must be non-empty and every γ > 0, got {methods!r}, {gammas!r}")
    src = _blend_sources("valid", protocol, seed, item_vectors, cf_model, cache_dir)
    masks = {"catalogue": protocol.catalogue("valid"), "seen": protocol.history("valid")}

    def score(method, weights):
        y = fusion.blend(src, weights, method=method, **masks)
        ndcg = metrics.per_user_metrics(protocol.rank(y, "valid", 10), protocol.csr("valid"), 10)["ndcg@10"]
        return {"method": method, **weights, "ndcg@10": float(ndcg.mean()),
                "ndcg@10_se": float(ndcg.std() / np.sqrt(ndcg.count()))}

    rows = [score(m, {"cf": 1.0, "sem": g}) for m in methods for g in [0.0, *gammas]]
    rows.append(score(methods[0], {"cf": 0.0, "sem": 1.0}))
    table = pd.DataFrame(rows)
    table["method_order"] = table.method.map({m: i for i, m in enumerate(methods)})
    eligible = table[(table["cf"] > 0) & (table["sem"] > 0)]
    chosen = one_se_rule(eligible, "ndcg@10", se="ndcg@10_se", simplest=[("sem", True), ("method_order", True)])
    table["chosen"] = table.index == chosen
    choice = {"method": str(table.method[chosen]), "weights": {"cf": 1.0, "sem": float(table["sem"][chosen])}}
    return table.drop(columns="method_order"), choice


def blend_setting(protocol=None, seed: int = 0, item_vectors=None, cf_model: str | None = None) -> dict:
    """The blend notebook 05 chose on this protocol and seed (``tune_blend`` when it is missing).

    With other ``item_vectors`` or another ``cf_model`` than the lesson's, the choice is made for those
    sources and kept under its own name.

    Introduced in notebooks/05_fusion.ipynb
    """
    protocol = resolve_protocol(protocol)
    name = "fusion.blend"
    if item_vectors is not None or cf_model is not None:
        vec = "default" if item_vectors is None else _array_digest(np.asarray(item_vectors))
        name += "-" + _array_digest(np.frombuffer(f"{vec}|{cf_model}".encode(), dtype=np.uint8))[:12]
    return choices.load(name, protocol, seed,
                        compute=lambda: tune_blend(protocol, seed, item_vectors=item_vectors, cf_model=cf_model)[1])


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(repr((a.shape, str(a.dtype))).encode() + a.tobytes()).hexdigest()[:20]


def _fused_inputs(eval_set, weights, method, protocol, item_vectors, cf_model, seed, cache_dir):
    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {eval_set!r}")
    checks.seed("seed", seed)
    protocol = resolve_protocol(protocol)
    if item_vectors is not None:
        v = checks.feature_matrix("item_vectors", item_vectors, protocol.n_items)
        if v.shape[0] != protocol.n_items:
            raise ValueError(f"item_vectors must have one row per item ({protocol.n_items}), got shape {v.shape}")
    if weights is None or method is None:
        chosen = blend_setting(protocol, seed, item_vectors, cf_model)
        weights = chosen["weights"] if weights is None else weights
        method = chosen["method"] if method is None else method
    w = fusion.source_weights(weights, ["cf", "sem"])
    method = _method(method)
    cf_file = cf_scores_path(cf_model, eval_set, protocol=protocol, seed=seed, cache_dir=cache_dir)
    setting = content_setting(protocol, seed)
    if item_vectors is None:
        ids = np.asarray(protocol.index.item_ids)
        # the vectors are item_vectors(template): the chosen template and the packaged encoder over the protocol's items
        sem = {"template": setting["template"], "model": encoders.model_identity()[2], "items": _array_digest(ids)}
    else:
        sem = {"vectors": _array_digest(v)}
    key = {
        "version": _FUSED_VERSION,
        "eval_set": eval_set,
        "method": method,
        "weights": {"cf": float(w[0]), "sem": float(w[1])},
        # the CF file name hashes the model, its parameters, the seed, the protocol and the history it is fit on
        "cf": cf_file.name,
        "sem": {**sem, "center": bool(setting["center"])},
        "protocol": dict(getattr(protocol, "params", {}) or {}),
        "shape": [int(protocol.n_users), int(protocol.n_items)],
    }
    return key, w, method, protocol


def _fused_file(key: dict, cache_dir):

    if cache_dir is None:
        cache_dir = data_home() / "scores"
    return Path(cache_dir) / f"fused-{key['eval_set']}-{cache.key_digest(key)}.npz"


def fused_scores_path(eval_set: str = "test", weights=None, method: str | None = None, protocol=None,
                      item_vectors=None, cf_model: str | None = None, seed: int = 0, cache_dir=None):
    """The file ``fused_scores`` reads and writes for these arguments (its name hashes all of them).

    Introduced in notebooks/05_fusion.ipynb
    """
    key, *_ = _fused_inputs(eval_set, weights, method, protocol, item_vectors, cf_model, seed, cache_dir)
    return _fused_file(key, cache_dir)


def fused_scores(eval_set: str = "test", weights=None, method: str | None = None, protocol=None,
                 item_vectors=None, cf_model: str | None = None, seed: int = 0, cache: bool = True,
                 cache_dir=None, compute: bool = True) -> np.ndarray:
    """Float32 (n_users, n_items) scores of notebook 05's full-matrix fusion on ``eval_set`` (cache-or-compute).

    y = α·norm(s_CF) + γ·norm(s_sem) (``blend``) with s_CF = ``cf_scores(cf_model, eval_set, seed=seed)``
    (default: the best tuned fast CF model), s_sem = ``semantic.content_scores`` of notebook 02's chosen
    template and centring, and the method and weights notebook 05 chose on valid for this protocol and
    seed (``blend_setting``) unless given. Both sources see only ``protocol.history(eval_set)``;
    normalisation runs over the ranked catalogue of ``eval_set``, and the seen items (valid, test) and the
    items outside the catalogue come back below every rankable item, so ``Protocol.evaluate`` and
    ``topk_from_scores`` rank the same lists with or without their masks. ``item_vectors`` defaults to
    ``semantic.item_vectors`` of the chosen template (MiniLM, cached). With ``cache=True`` the matrix is
    kept under ``cache_dir`` (default ``datasets/scores``), written atomically, in a file whose name hashes
    eval set, weights, method, CF model and seed, vectors and protocol; a missing file is rebuilt from the
    cached CF scores and item vectors; with ``compute=False`` a missing, damaged or foreign file raises
    ``FileNotFoundError`` naming it instead.

    Introduced in notebooks/05_fusion.ipynb
    """
    checks.flag("cache", cache)
    if not checks.flag("compute", compute) and not cache:
        raise ValueError("compute=False reads the cache only; it needs cache=True, got cache=False")
    key, w, method, protocol = _fused_inputs(eval_set, weights, method, protocol, item_vectors, cf_model, seed, cache_dir)
    path = _fused_file(key, cache_dir)
    if cache:
        hit = _read(path, key)
        if hit is not None:
            return hit
    if not compute:
        raise FileNotFoundError(f"the fused {eval_set} scores {path} are missing, damaged or foreign, and compute=False")
    sources = _blend_sources(eval_set, protocol, seed, item_vectors, cf_model, cache_dir, cache)
    seen = None if eval_set == "cold_test" else protocol.history(eval_set)  # as Protocol.rank masks
    scores = fusion.blend(sources, w, method=method, catalogue=protocol.catalogue(eval_set), seen=seen)
    if cache:
        _write(path, key, scores)
    return scores
