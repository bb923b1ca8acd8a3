"""Fine-tuning the sentence encoder as a two-tower recommender: history text -> next item text.

The user tower reads a query (an optional profile sentence, then the titles of the user's last n items,
newest first); the item tower reads the item text; both are one Hugging Face encoder (all-MiniLM-L6-v2 by
default) with mean pooling and unit-length outputs, so a score is a cosine. Training pairs slide over each
user's train-period sequence (history -> next item) and the loss is InfoNCE with in-batch negatives
(van den Oord et al. 2018; Karpukhin et al. 2020, DPR; Henderson et al. 2017). Three modes: ``"frozen"``
(the encoder as is, the baseline), ``"lora"`` (low-rank adapters through ``peft``, Hu et al. 2021) and
``"full"`` (every weight). On CUDA the forward passes run under bf16 autocast; on the CPU in fp32.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsuite import _checks
from recsuite.encoders import (
    DEFAULT_MODEL,
    autocast,
    mean_pool,
    model_identity,
    precision,
    quiet_transformers,
    resolve_device,
)

MODES = ("frozen", "lora", "full")
POOLINGS = ("mean", "cls")
HISTORY_PREFIX = "Recently watched: "
HISTORY_SEP = "; "
_CONFIG_FILE = "twotower.json"
_FORMAT_VERSION = 2  # 2: twotower.json records the base model's identity


# ------------------------------------------------------------------------------------------- validation


def _text_array(name: str, texts) -> np.ndarray:
    """A sequence of str as a 1-D object array (so that it can be fancy-indexed by item/user index)."""
    values = _checks.texts(name, texts, allow_empty_list=True)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _interactions(name: str, df) -> pd.DataFrame:
    need = ["user_idx", "item_idx", "timestamp"]
    out = _checks.columns(name, df, need)[need].copy()
    for c in need:
        col = out[c]
        if not pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise TypeError(f"{name}[{c!r}] must hold integers, got dtype {col.dtype}")
        if col.isna().any():
            raise ValueError(f"{name}[{c!r}] must hold integers without NA, got {int(col.isna().sum())} NA")
    if len(out) and (out.user_idx.min() < 0 or out.item_idx.min() < 0):
        raise ValueError(f"{name} has negative user_idx/item_idx; expected contiguous indices >= 0")
    return out.astype(np.int64)


# ------------------------------------------------------------------------------------------- queries


def compose_query(profile: str, titles, prefix: str = HISTORY_PREFIX, sep: str = HISTORY_SEP) -> str:
    """The user-tower text: ``"<profile> Recently watched: t1; t2; ..."`` (either part may be absent).

    Introduced in notebooks/09_finetuning.ipynb
    """
    profile = _checks.text("profile", profile, empty=True)
    titles = _checks.texts("titles", titles, allow_empty_list=True)
    prefix = _checks.text("prefix", prefix, empty=True)
    sep = _checks.text("sep", sep, empty=True)
    history = f"{prefix}{sep.join(titles)}" if len(titles) else ""
    return " ".join(part for part in (profile.strip(), history) if part)


def _sorted_sequences(df: pd.DataFrame) -> pd.DataFrame:
    # Time order with ties broken by item index (= raw item id order, the IndexMap is sorted), as the split.
    return df.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable").reset_index(drop=True)


def _history_matrix(items: np.ndarray, end: np.ndarray, start: np.ndarray, n: int) -> np.ndarray:
    """(rows, n) item indices at positions end-1, end-2, ... (newest first), -1 where before ``start``."""
    pos = end[:, None] - np.arange(1, n + 1)[None, :]
    valid = pos >= start[:, None]
    return np.where(valid, items[np.maximum(pos, 0)], -1)


def _query_texts(hist: np.ndarray, users: np.ndarray, item_text: np.ndarray, user_text, prefix, sep) -> list[str]:
    out = []
    for u, row in zip(users, hist):
        titles = item_text[row[row >= 0]]
        profile = "" if user_text is None else user_text[u]
        out.append(compose_query(profile, list(titles), prefix, sep))
    return out


def _check_lookup(name: str, table: np.ndarray, idx: np.ndarray, what: str) -> None:
    if len(idx) and idx.max() >= len(table):
        raise ValueError(f"{name} has {len(table)} entries but the interactions use {what} index {int(idx.max())}")


def make_training_pairs(
    train_df: pd.DataFrame,
    item_text,
    user_text=None,
    history_len: int = 5,
    min_history: int = 1,
    prefix: str = HISTORY_PREFIX,
    sep: str = HISTORY_SEP,
) -> pd.DataFrame:
    """(history -> next item) pairs from each user's time-ordered train sequence.

    Each user's rows are ordered by timestamp, ties by item index. For every position t >= 1 the query is
    ``compose_query(user_text[u], titles of the last history_len items strictly before t's timestamp,
    newest first)`` and the positive is item t. Items that share t's timestamp are *not* history (they
    were not seen before t), so no interaction at or after the target time ever enters its query; a pair
    whose strict history has fewer than ``min_history`` items is dropped. ``item_text``/``user_text`` are
    sequences indexed by item/user index. Pass only the train period: everything in ``train_df`` may be
    used.

    Returns a DataFrame with ``user_idx``, ``query_text``, ``item_idx`` (the positive), ``timestamp`` (of the
    target), ``history`` (tuple of history item indices, newest first) and ``n_history``.

    Introduced in notebooks/09_finetuning.ipynb
    """
    df = _sorted_sequences(_interactions("train_df", train_df))
    titles = _text_array("item_text", item_text)
    profiles = None if user_text is None else _text_array("user_text", user_text)
    history_len = _checks.positive_int("history_len", history_len)
    prefix, sep = _checks.text("prefix", prefix, empty=True), _checks.text("sep", sep, empty=True)
    min_history = _checks.non_negative_int("min_history", min_history)
    _check_lookup("item_text", titles, df.item_idx.to_numpy(), "item")
    if profiles is not None:
        _check_lookup("user_text", profiles, df.user_idx.to_numpy(), "user")
    if min_history == 0 and profiles is None:
        raise ValueError("min_history=0 needs user_text, otherwise a pair with no history has an empty query")

    users, items, ts = (df[c].to_numpy() for c in ("user_idx", "item_idx", "timestamp"))
    pos = np.arange(len(df))
    user_start = pos - df.groupby("user_idx", sort=False).cumcount().to_numpy()
    tie_start = pos - df.groupby(["user_idx", "timestamp"], sort=False).cumcount().to_numpy()
    n_before = tie_start - user_start  # items with a strictly earlier timestamp
    keep = (pos > user_start) & (n_before >= min_history)
    hist = _history_matrix(items, tie_start[keep], user_start[keep], history_len)
    queries = _query_texts(hist, users[keep], titles, profiles, prefix, sep)
    return pd.DataFrame(
        {
            "user_idx": users[keep],
            "query_text": queries,
            "item_idx": items[keep],
            "timestamp": ts[keep],
            "history": [tuple(int(i) for i in row[row >= 0]) for row in hist],
            "n_history": np.minimum(n_before[keep], history_len),
        }
    )


def user_query_texts(
    history_df: pd.DataFrame,
    item_text,
    user_text=None,
    history_len: int = 5,
    n_users: int | None = None,
    prefix: str = HISTORY_PREFIX,
    sep: str = HISTORY_SEP,
) -> list[str]:
    """One query per user (row = user index) from the last ``history_len`` items of ``history_df``.

    The same text as ``make_training_pairs`` builds, written at the end of the history: for ranking valid
    pass the train frame, for test and cold_test train + valid (``Protocol.history_frame``). Users without
    history get their profile text alone (an empty string without ``user_text``). ``n_users`` defaults to
    ``len(user_text)``, else the largest user index + 1.

    Introduced in notebooks/09_finetuning.ipynb
    """
    df = _sorted_sequences(_interactions("history_df", history_df))
    titles = _text_array("item_text", item_text)
    profiles = None if user_text is None else _text_array("user_text", user_text)
    history_len = _checks.positive_int("history_len", history_len)
    prefix, sep = _checks.text("prefix", prefix, empty=True), _checks.text("sep", sep, empty=True)
    _check_lookup("item_text", titles, df.item_idx.to_numpy(), "item")
    if n_users is None:
        if profiles is not None:
            n_users = len(profiles)
        elif len(df):
            n_users = int(df.user_idx.max()) + 1
        else:
            raise ValueError("history_df is empty and neither n_users nor user_text says how many users there are")
    n_users = _checks.positive_int("n_users", n_users)
    if len(df) and df.user_idx.max() >= n_users:
        raise ValueError(f"n_users={n_users} but history_df has user index {int(df.user_idx.max())}")
    if profiles is not None and len(profiles) != n_users:
        raise ValueError(f"user_text has {len(profiles)} entries, expected n_users={n_users}")

    users = df.user_idx.to_numpy()
    start = np.searchsorted(users, np.arange(n_users), side="left")
    end = np.searchsorted(users, np.arange(n_users), side="right")
    hist = _history_matrix(df.item_idx.to_numpy(), end, start, history_len)
    return _query_texts(hist, np.arange(n_users), titles, profiles, prefix, sep)


# ------------------------------------------------------------------------------------------- the model


def _pad(enc, names, idx, lengths, pad_id) -> dict:
    width = int(lengths[idx].max())
    batch = {}
    for k in names:
        m = np.full((len(idx), width), pad_id if k == "input_ids" else 0, dtype=np.int64)
        for r, i in enumerate(idx):
            m[r, : len(enc[k][i])] = enc[k][i]
        batch[k] = torch.from_numpy(m)
    return batch


class TwoTower(torch.nn.Module):
    """Query and item towers over one Hugging Face encoder: e(x) = pool(encoder(x)) / ||pool(encoder(x))||.

    ``shared=True`` (the default) runs both towers through the same weights (a Siamese bi-encoder,
    Reimers & Gurevych 2019), so the frozen model is exactly notebook 02's encoder; ``shared=False``
    gives the item tower its own copy to train. ``pooling`` is ``"mean"`` (over the attention mask,
    what MiniLM was trained with) or ``"cls"``. Texts are truncated to ``max_length`` tokens (None: 128, or
    the encoder's position limit when smaller; a larger value is refused). A fresh
    model is in mode ``"full"`` (every weight trainable); ``set_mode`` switches it.

    Introduced in notebooks/09_finetuning.ipynb
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = DEFAULT_MODEL,
        shared: bool = True,
        pooling: str = "mean",
        max_length: int | None = None,
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if not isinstance(model_name_or_path, (str, os.PathLike)):
            raise TypeError(f"model_name_or_path must be a model directory or Hub id, got {_checks.describe(model_name_or_path)}")
        if not str(model_name_or_path).strip():
            raise ValueError(f"model_name_or_path must be a model directory or Hub id, got {model_name_or_path!r}")
        _checks.one_of("pooling", pooling, POOLINGS)
        self.shared = _checks.flag("shared", shared)
        self.pooling = pooling
        if max_length is not None:
            max_length = _checks.positive_int("max_length", max_length)
        self.base_name = str(model_name_or_path)
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(self.base_name)
                # fp32 master weights whatever the checkpoint's dtype; CUDA speed comes from autocast.
                self.encoder = AutoModel.from_pretrained(self.base_name, dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"model_name_or_path={self.base_name!r} could not be loaded as a tokenizer + encoder: {err}"
            ) from None
        # Registered only when separate: a shared encoder must appear once in parameters() and state_dict().
        positions = getattr(self.encoder.config, "max_position_embeddings", None)
        if max_length is None:
            max_length = 128 if positions is None else min(128, int(positions))
        elif positions is not None and max_length > positions:
            raise ValueError(f"max_length must be <= {positions} (the encoder's position embeddings), got {max_length}")
        self.max_length = max_length
        self._item_encoder = None if self.shared else copy.deepcopy(self.encoder)
        self.mode = "full"
        self.lora = None  # the LoRA options once apply_lora has run

    @property
    def item_encoder(self):
        return self.encoder if self.shared else self._item_encoder

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def tower(self, name: str):
        _checks.one_of("tower", name, ("query", "item"))
        return self.encoder if name == "query" else self.item_encoder

    def tokenize(self, texts) -> dict:
        """Tensors for a list of texts, padded to the longest, on the model's device."""
        batch = self.tokenizer(
            _checks.texts("texts", texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        dev = self.device
        return {k: v.to(dev) for k, v in batch.items()}

    def embed(self, batch: dict, tower: str = "query"):
        """Unit-length (batch, d) float32 embeddings of tokenised texts (with gradients when enabled)."""
        out = self.tower(tower)(**batch).last_hidden_state
        pooled = mean_pool(out, batch["attention_mask"]) if self.pooling == "mean" else out[:, 0].float()
        return torch.nn.functional.normalize(pooled.float(), p=2, dim=1)

    def forward(self, texts, tower: str = "query"):
        return self.embed(self.tokenize(texts), tower)

    def encode(self, texts, batch_size: int = 64, tower: str = "query", progress: bool = True) -> np.ndarray:
        """Float32 ``(n, d)`` unit embeddings for evaluation, rows in the order of ``texts``.

        Runs under ``torch.inference_mode`` in eval mode (no dropout), in batches of similar token
        length (longest first, padded to each batch's maximum), under bf16 autocast on CUDA.

        Introduced in notebooks/09_finetuning.ipynb
        """
        from recsuite.progress import tqdm

        arr = _text_array("texts", texts)
        batch_size = _checks.positive_int("batch_size", batch_size)
        progress = _checks.flag("progress", progress)
        self.tower(tower)
        out = np.empty((len(arr), self.dim), dtype=np.float32)
        if len(arr) == 0:
            return out
        enc = self.tokenizer(list(arr), truncation=True, max_length=self.max_length, padding=False)
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(arr))
        # Longest first, so that a batch that does not fit in memory fails at once rather than at the end.
        order = np.argsort(-lengths, kind="stable")
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        dev = self.device
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), autocast(dev):
                starts = range(0, len(arr), batch_size)
                for s in tqdm(starts, desc=f"encode {tower}", unit="batch", disable=not progress, leave=False):
                    idx = order[s : s + batch_size]
                    batch = {k: v.to(dev) for k, v in _pad(enc, names, idx, lengths, pad_id).items()}
                    out[idx] = self.embed(batch, tower).cpu().numpy()
        finally:
            self.train(was_training)
        return out


def _check_model(model) -> TwoTower:
    if not isinstance(model, TwoTower):
        raise TypeError(f"model must be a recsuite.finetune.TwoTower, got {_checks.describe(model)}")
    return model


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; a weight shared by both towers is counted once.

    Introduced in notebooks/09_finetuning.ipynb
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_checks.describe(model)}")
    params = list(model.parameters())  # parameters() already de-duplicates shared tensors
    return int(sum(p.numel() for p in params if p.requires_grad)), int(sum(p.numel() for p in params))


@contextmanager
def _quiet_peft():
    # peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing`` while wrapping a model;
    # the FutureWarning is about their code, not the learner's, so it is kept out of the lesson.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _lora_config(r, alpha, dropout, target_modules):
    from peft import LoraConfig

    r = _checks.positive_int("r", r)
    alpha = _checks.positive_number("alpha", alpha)
    dropout = _checks.number("dropout", dropout, low=0.0, high=1.0, high_open=True)
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
    seed = _checks.non_negative_int("seed", seed)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a TwoTower or a torch.nn.Module, got {_checks.describe(model)}")
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
    _check_model(model)
    _checks.one_of("mode", mode, MODES)
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


# ------------------------------------------------------------------------------------------- the loss


def info_nce(q, p, temperature: float = 0.05, hard_negatives=None, pos_ids=None, neg_ids=None, log_q=None):
    """InfoNCE with in-batch negatives: mean_i -log softmax_j(q_i . c_j / tau)[i] over candidates c = [p; h].

    van den Oord et al. 2018 (CPC), in the retrieval form of DPR (Karpukhin et al. 2020) and
    Sentence-BERT's MultipleNegativesRankingLoss: row i of ``q`` (B, d) should pick its own positive
    ``p[i]`` among all B positives of the batch (the other B-1 are its negatives) and the M rows of
    ``hard_negatives`` (M, d), appended as extra columns shared by every query. With unit vectors the
    logits are cosines / tau. ``pos_ids`` (B,) and ``neg_ids`` (M,) name the items behind the rows: a
    column holding the *same item* as row i's positive (the item twice in a batch, or a hard negative
    that is the positive) is masked to -inf, because an item cannot be its own negative — unmasked, the
    loss would push a query away from its own target.

    ``log_q`` (B,) applies the sampling-bias correction of Yi et al. 2019 ("Sampling-Bias-Corrected
    Neural Modeling for Large Corpus Item Recommendations"): in-batch negatives are drawn in proportion
    to popularity, so uncorrected the loss teaches the model to push popular items down; subtracting
    log q_j (the probability that item j fills a batch slot) from column j's logit removes that.
    Hard-negative columns are not corrected (they are not drawn by popularity).

    Introduced in notebooks/09_finetuning.ipynb
    """
    temperature = _checks.positive_number("temperature", temperature)
    for name, t in (("q", q), ("p", p)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a 2-D torch tensor (batch, d), got {_checks.describe(t)}")
        if t.ndim != 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be a 2-D float tensor (batch, d), got {t.dtype} of shape {tuple(t.shape)}")
    if q.shape != p.shape or q.shape[0] < 1:
        raise ValueError(f"q and p must have the same shape (batch, d), got {tuple(q.shape)} and {tuple(p.shape)}")
    b = q.shape[0]
    cand = p
    if hard_negatives is not None:
        h = hard_negatives
        if not isinstance(h, torch.Tensor) or h.ndim != 2 or h.shape[1] != q.shape[1]:
            got = getattr(h, "shape", type(h))
            raise ValueError(f"hard_negatives must be a (M, {q.shape[1]}) torch tensor, got {got}")
        cand = torch.cat([p, h.to(p.dtype)], dim=0)
    elif neg_ids is not None:
        raise ValueError("neg_ids was given without hard_negatives")
    logits = (q @ cand.T) / temperature
    if log_q is not None:
        lq = torch.as_tensor(log_q, device=q.device, dtype=logits.dtype).reshape(-1)
        if lq.shape[0] != b or not torch.isfinite(lq).all():
            raise ValueError(
                f"log_q must hold {b} finite log-probabilities (one per positive), got shape {tuple(lq.shape)}"
            )
        logits = torch.cat([logits[:, :b] - lq[None, :], logits[:, b:]], dim=1)
    if pos_ids is not None:
        pid = torch.as_tensor(pos_ids, device=q.device).reshape(-1)
        if pid.shape[0] != b:
            raise ValueError(f"pos_ids must have one id per row of p ({b}), got {pid.shape[0]}")
        same = pid[:, None] == pid[None, :]
        if hard_negatives is not None:
            if neg_ids is None:
                extra = torch.zeros(b, cand.shape[0] - b, dtype=torch.bool, device=q.device)
            else:
                nid = torch.as_tensor(neg_ids, device=q.device).reshape(-1)
                if nid.shape[0] != cand.shape[0] - b:
                    raise ValueError(
                        f"neg_ids must have one id per hard negative ({cand.shape[0] - b}), got {nid.shape[0]}"
                    )
                extra = pid[:, None] == nid[None, :]
            same = torch.cat([same, extra], dim=1)
        same[torch.arange(b), torch.arange(b)] = False  # the target column itself stays
        logits = logits.masked_fill(same, float("-inf"))
    elif neg_ids is not None:
        raise ValueError("neg_ids needs pos_ids to compare against")
    target = torch.arange(b, device=q.device)
    return torch.nn.functional.cross_entropy(logits.float(), target)


# ------------------------------------------------------------------------------------------- training


def _check_pairs(pairs, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    _checks.columns("pairs", pairs, ["query_text", "item_idx"])
    queries = _text_array("pairs['query_text']", pairs["query_text"])
    items = pairs["item_idx"].to_numpy()
    if items.dtype == bool or not np.issubdtype(items.dtype, np.integer):
        raise TypeError(f"pairs['item_idx'] must be integers, got {items.dtype}")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"pairs['item_idx'] must index item_texts [0, {n_items}), got {items.min()}..{items.max()}")
    return queries, items.astype(np.int64)


def _check_hard_negatives(hard_negatives, n_pairs: int, n_items: int):
    if hard_negatives is None:
        return None
    h = np.asarray(hard_negatives)
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2 or h.shape[0] != n_pairs or not np.issubdtype(h.dtype, np.integer):
        raise ValueError(
            f"hard_negatives must be an int array (n_pairs={n_pairs}, k) of item indices (-1 = none), "
            f"got {h.dtype} {h.shape}"
        )
    if h.size and (h.min() < -1 or h.max() >= n_items):
        raise ValueError(f"hard_negatives must hold item indices in [0, {n_items}) or -1, got {h.min()}..{h.max()}")
    return h.astype(np.int64)


def linear_schedule(total: int, warmup: int):
    """The learning-rate factor of step s: linear warm-up over ``warmup`` steps, then linear decay to ``total``.

    Every step gets a positive rate (step 0 included); pass it to ``torch.optim.lr_scheduler.LambdaLR``.

    Introduced in notebooks/09_finetuning.ipynb
    """
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(total - step, 1) / max(total - warmup, 1)

    return factor


def param_groups(model, weight_decay: float):
    """AdamW parameter groups of a model's trainable weights: ``weight_decay`` on all but biases and LayerNorms.

    The BERT convention (Devlin et al. 2019): no weight decay on biases and LayerNorm weights.

    Introduced in notebooks/09_finetuning.ipynb
    """
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n else decay).append(p)
    groups = ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training settings of ``train``, checked once when built; ``lr=None`` picks the mode's rate.

    Each optimiser step sees ``grad_accum`` micro-batches of ``batch_size`` pairs drawn without
    replacement (a seeded shuffle per epoch, incomplete last batch dropped), for ``epochs`` passes or
    ``max_steps`` steps, whichever comes first. AdamW (``weight_decay``, none on biases and LayerNorm)
    with a linear warm-up over ``warmup_ratio`` of the steps then linear decay; gradients clipped at
    ``max_grad_norm`` (None: no clipping); InfoNCE at ``temperature``, with the logQ correction when
    ``logq_correction``. ``lr`` None means ``lora_lr`` for LoRA and ``full_lr`` for full fine-tuning:
    adapters start from zero and tolerate a large rate (on ML-100K with MiniLM, r=8 and batch 32, 1e-3
    lifts validation NDCG@10 from 0.032 to 0.060 in 40 steps, 2e-4 only to 0.039 in 60); a pre-trained
    encoder trained fully needs a small one or it forgets what it knew (Devlin et al. 2019: 2e-5..5e-5).
    ``seed`` fixes the order and dropout. With a ``valid_fn``: evaluate at the start
    (``eval_at_start``), every ``eval_every`` steps (None: once per epoch) and at the end; stop after
    ``patience`` evaluations without improvement (None: never).

    Introduced in notebooks/09_finetuning.ipynb
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    grad_accum: int = 1
    lr: float | None = None
    lora_lr: float = 1e-3
    full_lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    temperature: float = 0.05
    max_grad_norm: float | None = 1.0
    logq_correction: bool = True
    seed: int = 0
    eval_every: int | None = None
    patience: int | None = None
    eval_at_start: bool = True

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("epochs", _checks.positive_int("epochs", self.epochs))
        put("batch_size", _checks.positive_int("batch_size", self.batch_size))
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (in-batch negatives need other rows), got {self.batch_size}")
        put("grad_accum", _checks.positive_int("grad_accum", self.grad_accum))
        for name in ("max_steps", "eval_every", "patience"):
            if getattr(self, name) is not None:
                put(name, _checks.positive_int(name, getattr(self, name)))
        for name in ("lora_lr", "full_lr", "temperature"):
            put(name, _checks.positive_number(name, getattr(self, name)))
        for name in ("lr", "max_grad_norm"):
            if getattr(self, name) is not None:
                put(name, _checks.positive_number(name, getattr(self, name)))
        put("weight_decay", _checks.number("weight_decay", self.weight_decay, low=0.0))
        put("warmup_ratio", _checks.number("warmup_ratio", self.warmup_ratio, low=0.0, high=1.0, high_open=True))
        put("seed", _checks.seed(self.seed))
        put("logq_correction", _checks.flag("logq_correction", self.logq_correction))
        put("eval_at_start", _checks.flag("eval_at_start", self.eval_at_start))

    def learning_rate(self, mode: str) -> float:
        """``lr``, or the default rate of ``mode`` (``"lora"`` or ``"full"``) when ``lr`` is None."""
        _checks.one_of("mode", mode, ("lora", "full"))
        if self.lr is not None:
            return self.lr
        return self.lora_lr if mode == "lora" else self.full_lr


def _micro_batches(order, s0, config, queries, positives, items_text, hard, log_q):
    """The ``grad_accum`` micro-batches of one optimiser step: texts and item ids of each."""
    out = []
    for m0 in range(s0, s0 + config.batch_size * config.grad_accum, config.batch_size):
        rows = order[m0 : m0 + config.batch_size]
        pos = positives[rows]
        neg = None
        if hard is not None:
            neg = hard[rows].ravel()
            neg = neg[neg >= 0]
        out.append({
            "queries": list(queries[rows]),
            "items": list(items_text[pos]),
            "pos_ids": pos,
            "negatives": None if neg is None or not len(neg) else list(items_text[neg]),
            "neg_ids": neg,
            "log_q": None if log_q is None else log_q[pos],
        })
    return out


def train_step(model, batch, optimizer, scheduler, config: TrainConfig) -> dict:
    """One optimisation step: encode, InfoNCE, backward, clip, AdamW step, schedule step.

    ``batch`` is one micro-batch or a list of ``config.grad_accum`` of them, each a dict with
    ``queries`` (query texts), ``items`` (their positives' texts), ``pos_ids`` (the positives' item
    indices) and optionally ``negatives`` (hard-negative texts), ``neg_ids`` and ``log_q`` (log sampling
    probability of each positive). Each micro-batch's loss is divided by their number, so the gradient
    is that of their mean. Returns ``{"loss", "lr", "tokens"}``: the step's mean loss, the rate it used
    and the non-padding tokens it encoded.

    Introduced in notebooks/09_finetuning.ipynb
    """
    _check_model(model)
    micro = [batch] if isinstance(batch, dict) else list(batch)
    if not micro or not all(isinstance(b, dict) and {"queries", "items", "pos_ids"} <= set(b) for b in micro):
        raise TypeError("batch must be a dict (or a list of dicts) with 'queries', 'items' and 'pos_ids'")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a recsuite.finetune.TrainConfig, got {_checks.describe(config)}")
    dev = model.device
    lr = float(scheduler.get_last_lr()[0])
    step_loss, tokens = 0.0, 0
    for b in micro:
        qb, pb = model.tokenize(b["queries"]), model.tokenize(b["items"])
        tokens += int(qb["attention_mask"].sum()) + int(pb["attention_mask"].sum())
        with autocast(dev):
            qe, pe, he = model.embed(qb, "query"), model.embed(pb, "item"), None
            if b.get("negatives"):
                hb = model.tokenize(b["negatives"])
                tokens += int(hb["attention_mask"].sum())
                he = model.embed(hb, "item")
        lq = b.get("log_q")
        loss = info_nce(
            qe.float(), pe.float(), config.temperature,
            hard_negatives=None if he is None else he.float(),
            pos_ids=torch.as_tensor(b["pos_ids"]).to(dev),
            neg_ids=None if he is None else torch.as_tensor(b["neg_ids"]).to(dev),
            log_q=None if lq is None else torch.as_tensor(lq).to(dev),
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {scheduler.last_epoch}; lower lr (now {lr})")
        (loss / len(micro)).backward()
        step_loss += float(loss.detach()) / len(micro)
    if config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": step_loss, "lr": lr, "tokens": tokens}


class EarlyStopping:
    """Runs ``valid_fn(model)``, keeps the best trainable weights and counts evaluations without improvement.

    Calling it with a step number evaluates and returns True once ``patience`` evaluations in a row did not
    improve (never with ``patience=None``); ``restore()`` puts the best weights back. ``history`` (a dict)
    gets ``valid_step``, ``valid``, ``best_step`` and ``best_valid``; ``seconds`` is the time spent evaluating.

    Introduced in notebooks/09_finetuning.ipynb
    """

    def __init__(self, model, valid_fn, patience, history):
        self.model, self.valid_fn, self.patience, self.history = model, valid_fn, patience, history
        self.best, self.state, self.bad, self.seconds = -math.inf, None, 0, 0.0

    def __call__(self, step: int) -> bool:
        """Evaluates at ``step``; True when patience is exhausted."""
        t0 = time.perf_counter()
        self.model.eval()
        value = float(self.valid_fn(self.model))
        self.model.train()
        self.seconds += time.perf_counter() - t0
        if not np.isfinite(value):
            raise ValueError(f"valid_fn returned {value!r} at step {step}; expected a finite number")
        self.history["valid_step"].append(step)
        self.history["valid"].append(value)
        if value > self.best:
            self.best, self.bad = value, 0
            self.state = {n: p.detach().to("cpu", copy=True) for n, p in self.model.named_parameters() if p.requires_grad}
            self.history["best_step"], self.history["best_valid"] = step, value
        else:
            self.bad += 1
        return self.patience is not None and self.bad >= self.patience

    def restore(self):
        if self.state is not None:
            with torch.no_grad():
                for n, p in self.model.named_parameters():
                    if n in self.state:
                        p.copy_(self.state[n].to(p.device))


def _setup(model, pairs, item_texts, config, valid_fn, hard_negatives, device, progress):
    """Checks ``train``'s arguments; the data arrays, the step counts, the optimiser, schedule and history."""
    _check_model(model)
    if config is None:
        config = TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a recsuite.finetune.TrainConfig, got {_checks.describe(config)}")
    items_text = _text_array("item_texts", item_texts)
    queries, positives = _check_pairs(pairs, len(items_text))
    hard = _check_hard_negatives(hard_negatives, len(queries), len(items_text))
    if valid_fn is not None and not callable(valid_fn):
        raise TypeError(f"valid_fn must be a callable model -> float, got {_checks.describe(valid_fn)}")
    if config.patience is not None and valid_fn is None:
        raise ValueError("patience needs valid_fn: early stopping watches the validation metric")
    _checks.flag("progress", progress)
    log_q = None
    if config.logq_correction:
        freq = np.bincount(positives, minlength=len(items_text)).astype(np.float64)
        with np.errstate(divide="ignore"):
            log_q = np.log(freq / max(len(positives), 1)).astype(np.float32)  # -inf only for items never drawn
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"model has no trainable parameters (mode={model.mode!r}); use set_mode(model, 'lora' or 'full')"
        )
    lr = config.learning_rate(model.mode)
    per_step = config.batch_size * config.grad_accum
    steps_per_epoch = (len(queries) // config.batch_size) // config.grad_accum
    if steps_per_epoch == 0:
        raise ValueError(
            f"pairs has {len(queries)} rows, fewer than batch_size * grad_accum = {per_step}; expected at least one step"
        )
    total = config.epochs * steps_per_epoch
    total = total if config.max_steps is None else min(config.max_steps, total)
    eval_every = min(steps_per_epoch, total) if config.eval_every is None else config.eval_every
    dev = resolve_device(device)
    model.to(dev)
    n_trainable, n_total = count_parameters(model)
    opt = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=lr)
    warmup = int(round(config.warmup_ratio * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(total, warmup))
    history = {
        "loss": [], "lr": [], "valid_step": [], "valid": [], "best_step": None, "best_valid": None,
        "stopped_early": False, "steps": 0, "epochs": 0.0, "mode": model.mode, "device": str(dev),
        "precision": precision(dev), "trainable_params": n_trainable, "total_params": n_total,
        "batch_size": config.batch_size, "grad_accum": config.grad_accum, "lr_peak": lr,
        "temperature": config.temperature, "logq_correction": config.logq_correction,
    }
    data = (queries, positives, items_text, hard, log_q)
    return config, data, (steps_per_epoch, total, eval_every, per_step), opt, sched, dev, history


def train(model, pairs: pd.DataFrame, item_texts, config: TrainConfig | None = None, *, valid_fn=None,
          hard_negatives=None, device="auto", progress: bool = True) -> dict:
    """Contrastive fine-tuning of a ``TwoTower`` on (query, next item) pairs: a loop over ``train_step``.

    ``config`` (a ``TrainConfig``; None = its defaults) holds the settings. A micro-batch's loss is
    ``info_nce`` over its own positives (``batch_size - 1`` in-batch negatives) plus its rows of
    ``hard_negatives`` ((n_pairs, k) item indices, -1 = none) if given, with repeated items masked and,
    with ``logq_correction``, each in-batch column corrected by log q_j, q_j = item j's share of ``pairs``
    (Yi et al. 2019; without it the model learns to rank popular items down). AdamW over the trainable
    weights only. On CUDA the forward passes run under bf16 autocast (``encoders.precision``); the CPU
    trains in fp32. The global torch generator is left as it was.

    ``valid_fn(model) -> float`` (higher is better, e.g. ``validation_callback``'s NDCG@10) runs as
    ``config`` says; the weights of the best evaluation are restored at the end (the start counts: if
    training never helps, the untrained weights come back). A model with nothing to train (mode
    ``"frozen"``) is refused.

    Returns a dict: ``loss`` and ``lr`` per step, ``valid_step``/``valid`` per evaluation, ``best_step``,
    ``best_valid``, ``stopped_early``, ``steps``, ``epochs``, ``wall_time_s`` (all), ``train_time_s``
    (without evaluation), ``tokens`` and ``tokens_per_s`` (non-padding tokens through both towers),
    ``steps_per_s``, ``samples_per_s``, ``peak_memory_mb`` (CUDA only, else None), ``device``,
    ``precision``, ``mode``, ``trainable_params`` and ``total_params``.

    Introduced in notebooks/09_finetuning.ipynb
    """
    from recsuite.progress import tqdm

    config, data, (per_epoch, total, eval_every, per_step), opt, sched, dev, history = _setup(
        model, pairs, item_texts, config, valid_fn, hard_negatives, device, progress)
    rng = np.random.default_rng(config.seed)
    validate = EarlyStopping(model, valid_fn, config.patience, history)
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    t_start, step, ema, stop, tokens = time.perf_counter(), 0, None, False, 0
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)
        model.train()
        if valid_fn is not None and config.eval_at_start:
            validate(0)
        bar = tqdm(total=total, desc=f"train ({model.mode})", unit="step", disable=not progress)
        while step < total and not stop:  # one pass = one epoch
            order = rng.permutation(len(data[0]))
            for s0 in range(0, per_epoch * per_step, per_step):
                out = train_step(model, _micro_batches(order, s0, config, *data), opt, sched, config)
                step, tokens = step + 1, tokens + out["tokens"]
                history["lr"].append(out["lr"])
                history["loss"].append(out["loss"])
                ema = out["loss"] if ema is None else 0.9 * ema + 0.1 * out["loss"]
                bar.update(1)
                if valid_fn is not None and (step % eval_every == 0 or step == total):
                    stop = validate(step)
                    history["stopped_early"] = stop and step < total
                best = {} if history["best_valid"] is None else {"best": f"{history['best_valid']:.4f}"}
                bar.set_postfix({"loss": f"{ema:.3f}", **best})
                if stop or step >= total:
                    break
        bar.close()
    wall = time.perf_counter() - t_start
    validate.restore()
    model.eval()
    train_time = max(wall - validate.seconds, 1e-9)
    history.update(
        steps=step, epochs=step / per_epoch, wall_time_s=wall, train_time_s=train_time,
        eval_time_s=validate.seconds, tokens=tokens, tokens_per_s=tokens / train_time,
        steps_per_s=step / train_time, samples_per_s=step * per_step / train_time,
        peak_memory_mb=(torch.cuda.max_memory_allocated(dev) / 2**20) if cuda else None,
    )
    return history


# ------------------------------------------------------------------------------------------- scoring


def score_users_items(model, user_texts, item_texts, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Float32 ``(n_users, n_items)`` cosine scores: query-tower(user text) . item-tower(item text).

    Rank the full catalogue with ``Protocol.evaluate`` / ``recsuite.metrics.topk_from_scores``.

    Introduced in notebooks/09_finetuning.ipynb
    """
    _check_model(model)
    batch_size = _checks.positive_int("batch_size", batch_size)
    progress = _checks.flag("progress", progress)
    u = model.encode(user_texts, batch_size=batch_size, tower="query", progress=progress)
    v = model.encode(item_texts, batch_size=batch_size, tower="item", progress=progress)
    return np.asarray(u @ v.T, dtype=np.float32)


def validation_callback(protocol, user_texts, item_texts, eval_set: str = "valid", k: int = 10, batch_size: int = 64):
    """A ``valid_fn`` for ``train``: NDCG@k of the model's full-catalogue ranking on ``eval_set``.

    ``user_texts`` must be built from that set's history (``user_query_texts(protocol.history_frame(eval_set), ...)``).

    Introduced in notebooks/09_finetuning.ipynb
    """
    if not hasattr(protocol, "evaluate"):
        raise TypeError(f"protocol must be a recsuite.split.Protocol, got {_checks.describe(protocol)}")
    eval_set = _checks.text("eval_set", eval_set)
    batch_size = _checks.positive_int("batch_size", batch_size)
    users = _text_array("user_texts", user_texts)
    items = _text_array("item_texts", item_texts)
    k = _checks.positive_int("k", k)
    key = f"ndcg@{k}"

    def ndcg(model) -> float:
        scores = score_users_items(model, users, items, batch_size=batch_size, progress=False)
        return float(protocol.evaluate(scores, eval_set, k=k)[key])

    return ndcg


def hard_negatives_from_scores(
    pairs: pd.DataFrame, scores, *, exclude=None, k: int = 1, pool: int = 20, seed: int = 0
) -> np.ndarray:
    """(n_pairs, k) hard-negative item indices: for each pair, ``k`` distinct draws from its user's top-``pool`` items.

    ``scores`` is a (n_users, n_items) matrix from another model (e.g. CF fitted on train). The pool holds
    only eligible items: never one of the user's own positives in ``pairs`` and never an item of
    ``exclude`` (users x items CSR, normally the train matrix); a user with fewer than ``pool`` eligible
    items draws from all of them, and one with fewer than ``k`` is refused (ValueError). Ties in the
    scores go to the lower item index. Drawing from a pool rather than taking the very top keeps the
    negatives hard without always using the same few items (Xiong et al. 2021, ANCE).

    Introduced in notebooks/09_finetuning.ipynb
    """
    _checks.columns("pairs", pairs, ["user_idx", "item_idx"])
    k = _checks.positive_int("k", k)
    pool = _checks.positive_int("pool", pool)
    if pool < k:
        raise ValueError(f"pool must be >= k={k}, got {pool}")
    s = _checks.array("scores", scores, ndim=2, finite=False)
    if np.isnan(s).any():
        raise ValueError("scores holds NaN; expected a score (or -inf) for every user and item")
    n_users, n_items = s.shape
    users = _checks.indices("pairs['user_idx']", pairs["user_idx"].to_numpy(), n_users, what="user (row of scores)")
    items = _checks.indices("pairs['item_idx']", pairs["item_idx"].to_numpy(), n_items, what="item (column of scores)")
    seed = _checks.seed(seed)
    banned = np.zeros(s.shape, dtype=bool)
    if exclude is not None:
        ex = _checks.sparse("exclude", exclude, shape=s.shape)
        rows, cols = ex.nonzero()
        banned[rows, cols] = True
    banned[users, items] = True  # a user's own positives are never their negatives
    uniq, inverse = np.unique(users, return_inverse=True)
    eligible = (~banned[uniq]).sum(axis=1)
    if len(uniq) and eligible.min() < k:
        u = int(uniq[eligible.argmin()])
        raise ValueError(
            f"user {u} has {int(eligible.min())} eligible items (not a positive, not excluded), fewer than k={k}"
        )
    width = min(pool, n_items)
    # Eligible items first, then by descending score, ties by item index (lexsort is stable).
    order = np.lexsort((-s[uniq], banned[uniq]), axis=1)[:, :width] if len(uniq) else np.empty((0, width), np.int64)
    size = np.minimum(eligible, width)[inverse]  # the pool of each pair's user
    rng = np.random.default_rng(seed)
    keys = rng.random((len(users), width))
    keys[np.arange(width)[None, :] >= size[:, None]] = np.inf  # beyond the pool: never drawn
    cols = np.argsort(keys, axis=1)[:, :k]
    return np.take_along_axis(order[inverse], cols, axis=1).astype(np.int64)


# ------------------------------------------------------------------------------------------- persistence


def save_adapter(model, path) -> Path:
    """Save what training changed, in ``save_pretrained`` format, plus ``twotower.json``.

    LoRA: peft's ``adapter_config.json`` + ``adapter_model.safetensors`` (a few hundred KB for MiniLM at
    r=8), in ``path`` (shared towers) or ``path/query`` and ``path/item``. Full fine-tuning: the whole
    encoder and its tokenizer (``path`` is then loadable with ``TwoTower(path)`` too). A frozen model has
    nothing to save.

    Introduced in notebooks/09_finetuning.ipynb
    """
    _check_model(model)
    if model.lora is None and model.mode != "full":
        raise ValueError(f"model is {model.mode!r} without adapters: nothing was trained, so there is nothing to save")
    kind = "lora" if model.lora is not None else "full"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder (str or path), got {_checks.describe(path)}")
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
    (path / _CONFIG_FILE).write_text(json.dumps(meta, indent=1))
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
        raise TypeError(f"path must be a folder written by save_adapter (str or path), got {_checks.describe(path)}")
    path = Path(path)
    trainable = _checks.flag("trainable", trainable)
    cfg = path / _CONFIG_FILE
    if cfg.is_file():
        try:
            meta = json.loads(cfg.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{cfg} cannot be read ({err}); save the adapter again with save_adapter") from None
    elif (path / "adapter_config.json").is_file():
        meta = {"mode": "lora", "shared": True, "pooling": "mean", "max_length": 128, "lora": None}
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
