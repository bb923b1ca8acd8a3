"""LoRA (Hu et al. 2021) on the two-tower model through ``peft``: ``apply_lora``, ``set_mode`` (frozen / LoRA / full),
and adapters saved and loaded tied to their base model's identity.

Introduced in notebooks/09_finetuning.ipynb
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from recsuite.core import checks
from recsuite.core.cache import atomic_write
from recsuite.core.optional import require
from recsuite.models.encoders import (
    DEFAULT_MODEL,
    model_identity,
    quiet_transformers,
)
from recsuite.models.two_tower import MODES, TwoTower, check_two_tower

torch = require("torch", "text")


_CONFIG_FILE = "twotower.json"
_FORMAT_VERSION = 2  # 2: twotower.json records the base model's identity


@contextmanager
def _quiet_peft():
    # peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing`` while wrapping a model;
    # the FutureWarning is about their code, not the learner's, so it is kept out of the lesson.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _lora_config(r, alpha, dropout, target_modules):
    from peft import LoraConfig

    r = checks.positive_int("r", r)
    alpha = checks.positive_number("alpha", alpha)
    dropout = checks.number("dropout", dropout, low=0.0, high=1.0, high_open=True)
    if isinstance(target_modules, str):
        target_modules = (target_modules,)
    if not isinstance(target_modules, (list, tuple)) or not target_modules or not all(
        isinstance(t, str) and t for t in target_modules
    ):
        raise ValueError(f"target_modules must be a non-empty sequence of module names, got {target_modules!r}")
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=float(dropout),
        target_modules=list(target_modules),
        bias="none",
        task_type="FEATURE_EXTRACTION",
    )


def apply_lora(
    model,
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.05,
    target_modules=("query", "value"),
    seed: int = 0,
):
    """Wrap the encoder(s) in LoRA adapters: W x + (alpha / r) B A x with A (r x k), B (d x r), B = 0 at start.

    Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", through ``peft``'s
    ``LoraConfig``/``get_peft_model``. Only A and B train; every base weight is frozen. On a BERT-style
    encoder ``("query", "value")`` adapts the attention's query and value projections of every layer, so
    each layer adds 2 * r * (d_in + d_out) weights. ``seed`` makes the random A initialisation repeatable
    without touching the global torch generator. Accepts a ``TwoTower`` (wrapped in place and returned,
    mode ``"lora"``) or a bare ``torch.nn.Module`` (returns the ``PeftModel``).

    Introduced in notebooks/09_finetuning.ipynb
    """
    from peft import PeftModel, get_peft_model

    config = _lora_config(r, alpha, dropout, target_modules)
    seed = checks.non_negative_int("seed", seed)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a TwoTower or a torch.nn.Module, got {checks.describe(model)}")
    if isinstance(model, TwoTower):
        encoders = [model.encoder] if model.shared else [model.encoder, model._item_encoder]
    else:
        encoders = [model]
    for enc in encoders:
        if isinstance(enc, PeftModel):
            raise ValueError("model already has LoRA adapters; build a fresh TwoTower to change them")
        names = {n.rsplit(".", 1)[-1] for n, _ in enc.named_modules()}
        absent = [t for t in sorted(config.target_modules) if t not in names]
        if absent:
            raise ValueError(
                f"target_modules {absent} name no module of this encoder; it has e.g. {sorted(names)[:12]}"
            )

    devices = []
    first = next(model.parameters(), None)
    if first is not None and first.device.type == "cuda":
        devices = [first.device.index or 0]
    with torch.random.fork_rng(devices=devices), _quiet_peft():
        torch.manual_seed(seed)
        if not isinstance(model, TwoTower):
            return get_peft_model(model, copy.deepcopy(config))
        model.encoder = get_peft_model(model.encoder, copy.deepcopy(config))
        if not model.shared:
            model._item_encoder = get_peft_model(model._item_encoder, copy.deepcopy(config))
    model.mode = "lora"
    model.lora = {
        "r": int(config.r),
        "alpha": float(alpha),
        "dropout": float(dropout),
        "target_modules": sorted(config.target_modules),
    }
    return model


def set_mode(model, mode: str, **lora):
    """Choose what trains: ``"frozen"`` (nothing), ``"lora"`` (``apply_lora(model, **lora)``) or ``"full"`` (all).

    Returns the model. Once a model has adapters it switches only between ``"lora"`` (adapters train)
    and ``"frozen"``; build a fresh ``TwoTower`` for full fine-tuning or other LoRA options.

    Introduced in notebooks/09_finetuning.ipynb
    """
    check_two_tower(model)
    checks.one_of("mode", mode, MODES)
    if lora and mode != "lora":
        raise ValueError(f"LoRA options {sorted(lora)} only apply to mode='lora', got mode={mode!r}")
    has_adapters = model.lora is not None
    if mode == "lora" and not has_adapters:
        return apply_lora(model, **lora)
    if has_adapters and (lora or mode == "full"):
        raise ValueError("model already has LoRA adapters; build a fresh TwoTower to change them or train fully")
    for n, p in model.named_parameters():
        p.requires_grad_(mode == "full" or (mode == "lora" and "lora_" in n))
    model.mode = mode
    return model



# ------------------------------------------------------------------------------------------- persistence


def save_adapter(model, path) -> Path:
    """Save what training changed, in ``save_pretrained`` format, plus ``twotower.json``.

    LoRA: peft's ``adapter_config.json`` + ``adapter_model.safetensors`` (a few hundred KB for MiniLM at
    r=8), in ``path`` (shared towers) or ``path/query`` and ``path/item``. Full fine-tuning: the whole
    encoder and its tokenizer (``path`` is then loadable with ``TwoTower(path)`` too). A frozen model has
    nothing to save.

    Introduced in notebooks/09_finetuning.ipynb
    """
    check_two_tower(model)
    if model.lora is None and model.mode != "full":
        raise ValueError(f"model is {model.mode!r} without adapters: nothing was trained, so there is nothing to save")
    kind = "lora" if model.lora is not None else "full"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder (str or path), got {checks.describe(path)}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    towers = {"": model.encoder} if model.shared else {"query": model.encoder, "item": model._item_encoder}
    for sub, enc in towers.items():
        enc.save_pretrained(path / sub if sub else path)
        if kind == "full":
            model.tokenizer.save_pretrained(path / sub if sub else path)
    meta = {
        "format": _FORMAT_VERSION,
        "mode": kind,
        "shared": model.shared,
        "pooling": model.pooling,
        "max_length": model.max_length,
        "base": model.base_name,
        # What load_adapter checks its base against (full weights carry their own encoder).
        "base_identity": list(model_identity(model.base_name)) if kind == "lora" else None,
        "lora": model.lora,
    }
    text = json.dumps(meta, indent=1)
    atomic_write(path / _CONFIG_FILE, lambda fh: fh.write(text), text=True)  # last: it marks a complete save
    return path


def load_adapter(path, base: str | os.PathLike = DEFAULT_MODEL, trainable: bool = False):
    """A ``TwoTower`` rebuilt from ``save_adapter``'s folder: ``base`` + the saved LoRA adapter (or full weights).

    ``base`` must be the encoder the adapter was trained on (its path may differ from the one recorded):
    a LoRA adapter saved with its base's identity (``encoders.model_identity``) refuses any other base
    with a ValueError, since the adapter's low-rank update is meaningless on other weights.
    With ``trainable=False`` (the default) every weight is frozen (mode ``"frozen"``), ready for
    ``encode``; with ``trainable=True`` the saved mode is restored, to train on.

    Introduced in notebooks/09_finetuning.ipynb
    """
    from peft import PeftModel

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder written by save_adapter (str or path), got {checks.describe(path)}")
    path = Path(path)
    trainable = checks.flag("trainable", trainable)
    cfg = path / _CONFIG_FILE
    if cfg.is_file():
        try:
            meta = json.loads(cfg.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{cfg} cannot be read ({err}); save the adapter again with save_adapter") from None
    elif (path / "adapter_config.json").is_file():
        raise ValueError(
            f"path={str(path)!r} holds adapter_config.json but no {_CONFIG_FILE}; its pooling, max_length and base "
            "cannot be known (an interrupted or partial copy?); save it again with save_adapter"
        )
    else:
        raise ValueError(f"path={str(path)!r} holds no saved adapter (expected {_CONFIG_FILE} or adapter_config.json)")
    if not isinstance(meta, dict) or meta.get("mode") not in ("lora", "full"):
        raise ValueError(f"{cfg} has mode={getattr(meta, 'get', lambda _: None)('mode')!r}; expected 'lora' or 'full'")
    missing = [key for key in ("shared", "pooling", "max_length") if key not in meta]
    if missing:
        raise ValueError(f"{cfg} is damaged: it lacks {missing}; save the adapter again with save_adapter")
    shared = bool(meta["shared"])
    if meta["mode"] == "full":
        opts = {"pooling": meta["pooling"], "max_length": meta["max_length"]}
        model = TwoTower(path if shared else path / "query", shared=shared, **opts)
        if not shared:
            fresh = TwoTower(path / "item", shared=True, **opts)
            model._item_encoder = fresh.encoder
        model.base_name = str(meta.get("base", base))
    else:
        recorded = meta.get("base_identity")
        if recorded is not None:
            got = model_identity(base)
            if got[2] != recorded[2]:
                raise ValueError(
                    f"base={str(base)!r} (fingerprint {got[2]}) is not the encoder this adapter was trained on: "
                    f"{path} records base {recorded[0]!r} (fingerprint {recorded[2]}); pass that model as base"
                )
        model = TwoTower(base, shared=shared, pooling=meta["pooling"], max_length=meta["max_length"])
        with quiet_transformers(), _quiet_peft():
            query_dir = path if shared else path / "query"
            model.encoder = PeftModel.from_pretrained(model.encoder, query_dir, is_trainable=trainable)
            if not shared:
                model._item_encoder = PeftModel.from_pretrained(
                    model._item_encoder, path / "item", is_trainable=trainable
                )
        model.lora = meta.get("lora") or {}
    set_mode(model, meta["mode"] if trainable else "frozen")
    model.eval()
    return model
