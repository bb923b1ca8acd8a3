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
import os

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.core.device import get_device
from recsuite.core.optional import require
from recsuite.models.base import Scorer
from recsuite.models.contrastive import info_nce
from recsuite.models.encoders import (
    DEFAULT_MODEL,
    autocast,
    load_pretrained,
    mean_pool,
    padded_batches,
    run_in_eval,
    precision,
)
from recsuite.models.training import (
    check_valid_fn,
    count_parameters,
    linear_schedule,
    optimizer_step,
    param_groups,
    run_training,
)

torch = require("torch", "text")


MODES = ("frozen", "lora", "full")
POOLINGS = ("mean", "cls")


# ------------------------------------------------------------------------------------------- the model


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
        if not isinstance(model_name_or_path, (str, os.PathLike)):
            raise TypeError(f"model_name_or_path must be a model directory or Hub id, got {checks.describe(model_name_or_path)}")
        if not str(model_name_or_path).strip():
            raise ValueError(f"model_name_or_path must be a model directory or Hub id, got {model_name_or_path!r}")
        checks.one_of("pooling", pooling, POOLINGS)
        self.shared = checks.flag("shared", shared)
        self.pooling = pooling
        if max_length is not None:
            max_length = checks.positive_int("max_length", max_length)
        self.base_name = str(model_name_or_path)
        # fp32 master weights whatever the checkpoint's dtype; CUDA speed comes from autocast.
        self.tokenizer, self.encoder = load_pretrained(self.base_name, "model_name_or_path", self.base_name,
                                                       dtype=torch.float32)
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
        checks.one_of("tower", name, ("query", "item"))
        return self.encoder if name == "query" else self.item_encoder

    def tokenize(self, texts) -> dict:
        """Tensors for a list of texts, padded to the longest, on the model's device."""
        batch = self.tokenizer(
            checks.texts("texts", texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
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
        arr = checks.text_array("texts", texts)
        batch_size = checks.positive_int("batch_size", batch_size)
        progress = checks.flag("progress", progress)
        self.tower(tower)
        out = np.empty((len(arr), self.dim), dtype=np.float32)
        if len(arr) == 0:
            return out
        batches = padded_batches(self.tokenizer, list(arr), self.max_length, batch_size)
        return run_in_eval(self, batches, out, lambda batch: self.embed(batch, tower), -(-len(arr) // batch_size),
                           f"encode {tower}", progress)


def check_two_tower(model) -> TwoTower:
    if not isinstance(model, TwoTower):
        raise TypeError(f"model must be a recsuite.models.two_tower.TwoTower, got {checks.describe(model)}")
    return model



# ------------------------------------------------------------------------------------------- training


def _check_pairs(pairs, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    checks.columns("pairs", pairs, ["query_text", "item_idx"])
    queries = checks.text_array("pairs['query_text']", pairs["query_text"])
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
    if h.dtype == bool or not np.issubdtype(h.dtype, np.integer):
        raise TypeError(f"hard_negatives must be an int array (n_pairs={n_pairs}, k) of item indices (-1 = none), "
                        f"got {checks.describe(hard_negatives)}")
    if h.ndim != 2 or h.shape[0] != n_pairs:
        raise ValueError(
            f"hard_negatives must be an int array (n_pairs={n_pairs}, k) of item indices (-1 = none), "
            f"got {h.dtype} {h.shape}"
        )
    if h.size and (h.min() < -1 or h.max() >= n_items):
        raise ValueError(f"hard_negatives must hold item indices in [0, {n_items}) or -1, got {h.min()}..{h.max()}")
    return h.astype(np.int64)



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

        put("epochs", checks.positive_int("epochs", self.epochs))
        put("batch_size", checks.positive_int("batch_size", self.batch_size))
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (in-batch negatives need other rows), got {self.batch_size}")
        put("grad_accum", checks.positive_int("grad_accum", self.grad_accum))
        for name in ("max_steps", "eval_every", "patience"):
            if getattr(self, name) is not None:
                put(name, checks.positive_int(name, getattr(self, name)))
        for name in ("lora_lr", "full_lr", "temperature"):
            put(name, checks.positive_number(name, getattr(self, name)))
        for name in ("lr", "max_grad_norm"):
            if getattr(self, name) is not None:
                put(name, checks.positive_number(name, getattr(self, name)))
        put("weight_decay", checks.number("weight_decay", self.weight_decay, low=0.0))
        put("warmup_ratio", checks.number("warmup_ratio", self.warmup_ratio, low=0.0, high=1.0, high_open=True))
        put("seed", checks.seed("seed", self.seed))
        put("logq_correction", checks.flag("logq_correction", self.logq_correction))
        put("eval_at_start", checks.flag("eval_at_start", self.eval_at_start))

    def learning_rate(self, mode: str) -> float:
        """``lr``, or the default rate of ``mode`` (``"lora"`` or ``"full"``) when ``lr`` is None."""
        checks.one_of("mode", mode, ("lora", "full"))
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
    check_two_tower(model)
    micro = [batch] if isinstance(batch, dict) else list(batch)
    if not micro or not all(isinstance(b, dict) and {"queries", "items", "pos_ids"} <= set(b) for b in micro):
        raise TypeError("batch must be a dict (or a list of dicts) with 'queries', 'items' and 'pos_ids'")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a recsuite.models.two_tower.TrainConfig, got {checks.describe(config)}")
    tokens = [0]
    out = optimizer_step(model, micro, _info_nce_loss(model, config, tokens), optimizer, scheduler,
                         config.max_grad_norm)
    return {**out, "tokens": tokens[0]}


def _info_nce_loss(model, config: TrainConfig, tokens: list):
    """The loss of one micro-batch (see ``train_step``); ``tokens[0]`` counts the non-padding tokens encoded."""
    dev = model.device

    def loss(b):
        qb, pb = model.tokenize(b["queries"]), model.tokenize(b["items"])
        tokens[0] += int(qb["attention_mask"].sum()) + int(pb["attention_mask"].sum())
        with autocast(dev):
            qe, pe, he = model.embed(qb, "query"), model.embed(pb, "item"), None
            if b.get("negatives"):
                hb = model.tokenize(b["negatives"])
                tokens[0] += int(hb["attention_mask"].sum())
                he = model.embed(hb, "item")
        lq = b.get("log_q")
        return info_nce(
            qe.float(), pe.float(), config.temperature,
            hard_negatives=None if he is None else he.float(),
            pos_ids=torch.as_tensor(b["pos_ids"]).to(dev),
            neg_ids=None if he is None else torch.as_tensor(b["neg_ids"]).to(dev),
            log_q=None if lq is None else torch.as_tensor(lq).to(dev),
        )

    return loss



def _setup(model, pairs, item_texts, config, valid_fn, hard_negatives, device, progress):
    """Checks ``train``'s arguments; the data arrays, the step counts, the optimiser, schedule and history."""
    check_two_tower(model)
    if config is None:
        config = TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a recsuite.models.two_tower.TrainConfig, got {checks.describe(config)}")
    items_text = checks.text_array("item_texts", item_texts)
    queries, positives = _check_pairs(pairs, len(items_text))
    hard = _check_hard_negatives(hard_negatives, len(queries), len(items_text))
    check_valid_fn(valid_fn, config.patience)
    checks.flag("progress", progress)
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
    dev = get_device(device)
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
    config, data, (per_epoch, total, eval_every, per_step), opt, sched, dev, history = _setup(
        model, pairs, item_texts, config, valid_fn, hard_negatives, device, progress)
    rng = np.random.default_rng(config.seed)

    def steps():
        while True:  # one pass = one epoch, a new seeded order each
            order = rng.permutation(len(data[0]))
            for s0 in range(0, per_epoch * per_step, per_step):
                yield _micro_batches(order, s0, config, *data)

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    tokens = [0]
    run_training(model, steps(), _info_nce_loss(model, config, tokens), opt, sched, total, history,
                 max_grad_norm=config.max_grad_norm, seed=config.seed, device=dev, valid_fn=valid_fn,
                 patience=config.patience, eval_every=eval_every, eval_at_start=config.eval_at_start,
                 progress=progress, desc=f"train ({model.mode})")
    step, train_time = history["steps"], history["train_time_s"]
    history.update(
        epochs=step / per_epoch, tokens=tokens[0], tokens_per_s=tokens[0] / train_time,
        steps_per_s=step / train_time, samples_per_s=step * per_step / train_time,
        peak_memory_mb=(torch.cuda.max_memory_allocated(dev) / 2**20) if cuda else None,
    )
    return history


# ------------------------------------------------------------------------------------------- scoring


def score_users_items(model, user_texts, item_texts, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Float32 ``(n_users, n_items)`` cosine scores: query-tower(user text) . item-tower(item text).

    Rank the full catalogue with ``Protocol.evaluate`` / ``recsuite.evaluation.metrics.topk_from_scores``.

    Introduced in notebooks/09_finetuning.ipynb
    """
    check_two_tower(model)
    batch_size = checks.positive_int("batch_size", batch_size)
    progress = checks.flag("progress", progress)
    u = model.encode(user_texts, batch_size=batch_size, tower="query", progress=progress)
    v = model.encode(item_texts, batch_size=batch_size, tower="item", progress=progress)
    return np.asarray(u @ v.T, dtype=np.float32)


class TwoTowerScorer(Scorer):
    """A trained ``TwoTower`` as a ``Scorer``: query tower of each user's text . item tower of every item's text.

    The item embeddings are computed once, the user embeddings for the users asked for.

    Introduced in notebooks/09_finetuning.ipynb
    """

    def __init__(self, model, user_texts, item_texts, batch_size: int = 64):
        self.model = check_two_tower(model)
        self.user_texts = checks.text_array("user_texts", user_texts)
        self.batch_size = checks.positive_int("batch_size", batch_size)
        self.item_embeddings = model.encode(checks.texts("item_texts", item_texts), batch_size=self.batch_size,
                                            tower="item", progress=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.user_texts), self.item_embeddings.shape[0])

    def scores(self, user_idx=None) -> np.ndarray:
        texts = list(self.user_texts[self._users(user_idx)])
        u = self.model.encode(texts, batch_size=self.batch_size, tower="query", progress=False)
        return np.asarray(u @ self.item_embeddings.T, dtype=np.float32)


def validation_callback(protocol, user_texts, item_texts, eval_set: str = "valid", k: int = 10, batch_size: int = 64):
    """A ``valid_fn`` for ``train``: NDCG@k of the model's full-catalogue ranking on ``eval_set``.

    ``user_texts`` must be built from that set's history (``user_query_texts(protocol.history_frame(eval_set), ...)``).

    Introduced in notebooks/09_finetuning.ipynb
    """
    if not hasattr(protocol, "evaluate"):
        raise TypeError(f"protocol must be a recsuite.data.split.Protocol, got {checks.describe(protocol)}")
    eval_set = checks.text("eval_set", eval_set)
    batch_size = checks.positive_int("batch_size", batch_size)
    users = checks.text_array("user_texts", user_texts)
    items = checks.text_array("item_texts", item_texts)
    k = checks.positive_int("k", k)
    key = f"ndcg@{k}"

    def ndcg(model) -> float:
        scores = score_users_items(model, users, items, batch_size=batch_size, progress=False)
        return float(protocol.evaluate(scores, eval_set, k=k)[key])

    return ndcg


def hard_negatives_from_scores(
    pairs: pd.DataFrame, scores, *, seen=None, k: int = 1, pool: int = 20, seed: int = 0
) -> np.ndarray:
    """(n_pairs, k) hard-negative item indices: for each pair, ``k`` distinct draws from its user's top-``pool`` items.

    ``scores`` is a (n_users, n_items) matrix from another model (e.g. CF fitted on train). The pool holds
    only eligible items: never one of the user's own positives in ``pairs`` and never an item of
    ``seen`` (users x items CSR, normally the train matrix); a user with fewer than ``pool`` eligible
    items draws from all of them, and one with fewer than ``k`` is refused (ValueError). Ties in the
    scores go to the lower item index. Drawing from a pool rather than taking the very top keeps the
    negatives hard without always using the same few items (Xiong et al. 2021, ANCE).

    Introduced in notebooks/09_finetuning.ipynb
    """
    checks.columns("pairs", pairs, ["user_idx", "item_idx"])
    k = checks.positive_int("k", k)
    pool = checks.positive_int("pool", pool)
    if pool < k:
        raise ValueError(f"pool must be >= k={k}, got {pool}")
    s = checks.array("scores", scores, ndim=2, finite=False)
    if np.isnan(s).any():
        raise ValueError("scores holds NaN; expected a score (or -inf) for every user and item")
    n_users, n_items = s.shape
    users = checks.indices("pairs['user_idx']", pairs["user_idx"].to_numpy(), n_users, what="user (row of scores)")
    items = checks.indices("pairs['item_idx']", pairs["item_idx"].to_numpy(), n_items, what="item (column of scores)")
    seed = checks.seed("seed", seed)
    banned = np.zeros(s.shape, dtype=bool)
    if seen is not None:
        ex = checks.sparse("seen", seen, shape=s.shape)
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


