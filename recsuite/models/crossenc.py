"""The cross-encoder: one pretrained encoder reads "user history [SEP] item" and outputs one relevance logit.

Where the two-tower model of notebook 09 encodes the user and the item apart and scores them by a cosine
(cheap: items are encoded once), a cross-encoder reads both texts together, so every token of the history
attends to every token of the item — more expressive, and one forward pass per (user, item) pair, which is
why it only re-ranks a short candidate list (Nogueira & Cho 2019, "Passage Re-ranking with BERT"). The
classic recipe: BERT-style input ``[CLS] query [SEP] item [SEP]``, one output, binary cross-entropy on
observed positives and sampled negatives, AdamW. Here the input is pooled by the mean over tokens (the
pooling all-MiniLM-L6-v2 was trained with) and a linear head gives the logit.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from recsuite.core import checks
from recsuite.core.device import get_device
from recsuite.core.optional import require
from recsuite.models.base import CandidateScorer
from recsuite.models.encoders import (
    DEFAULT_MODEL,
    autocast,
    load_pretrained,
    mean_pool,
    model_identity,
    padded_batches,
    run_in_eval,
    precision,
)
from recsuite.models.training import check_valid_fn, linear_schedule, param_groups, run_training

torch = require("torch", "text")


class CrossEncoder(torch.nn.Module):
    """A Hugging Face encoder + a linear head: ``logit(query, item) = w . meanpool(enc([CLS] q [SEP] i [SEP])) + b``.

    The encoder is a fresh copy of ``model`` (every weight trainable); the head starts from N(0, 0.02²)
    weights drawn with ``seed`` and a zero bias. Pairs longer than ``max_length`` tokens are cut from the
    longer side first (``longest_first``), so a long history never pushes the item out.

    Introduced in notebooks/11_serving.ipynb
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_MODEL, max_length: int = 128, seed: int = 0):
        super().__init__()
        self.max_length = checks.positive_int("max_length", max_length)
        seed = checks.seed("seed", seed)
        source, local_dir, _ = model_identity(model)
        self.tokenizer, self.encoder = load_pretrained(local_dir if Path(source).is_dir() else source, "model", model)
        limit = getattr(self.encoder.config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_length > limit:
            raise ValueError(f"max_length must be <= {limit} (the encoder's max_position_embeddings), got {max_length}")
        self.source = source
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g) * 0.02)
            self.head.bias.zero_()
        self.eval()

    @property
    def device(self):
        return self.head.weight.device

    def tokenize(self, queries, items, padding=True) -> dict:
        """The tokenizer's pair encoding of ``queries[i] [SEP] items[i]`` (torch tensors on the model's device)."""
        enc = self.tokenizer(list(queries), list(items), truncation="longest_first", max_length=self.max_length,
                             padding=padding, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def logits(self, batch: dict):
        """(n,) logits of a tokenised batch."""
        hidden = self.encoder(**batch).last_hidden_state
        return self.head(mean_pool(hidden, batch["attention_mask"])).squeeze(-1)

    def forward(self, queries, items):
        return self.logits(self.tokenize(queries, items))

    def score(self, queries, items, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Float32 ``(n,)`` logits of the pairs (queries[i], items[i]), in input order.

        The pairs are tokenised once and run longest first in batches padded to their own longest pair,
        under ``torch.inference_mode`` and the package's autocast (bf16 on a CUDA GPU, fp32 on the CPU).
        """
        queries = checks.texts("queries", queries)
        items = checks.texts("items", items)
        if len(queries) != len(items):
            raise ValueError(f"queries and items must pair up one to one, got {len(queries)} queries and {len(items)} items")
        batch_size = checks.positive_int("batch_size", batch_size)
        out = np.empty(len(queries), dtype=np.float32)
        batches = padded_batches(self.tokenizer, queries, self.max_length, batch_size, text_pairs=items)
        return run_in_eval(self, batches, out, self.logits, -(-len(queries) // batch_size), "cross-encode",
                           checks.flag("progress", progress))


def _check_model(model) -> CrossEncoder:
    if not isinstance(model, CrossEncoder):
        raise TypeError(f"model must be a recsuite.models.crossenc.CrossEncoder, got {checks.describe(model)}")
    return model


def sample_negatives(users, seen, n_negatives: int, weights=None, seed: int = 0, max_rounds: int = 100) -> np.ndarray:
    """``(len(users), n_negatives)`` item indices drawn for each user from the items that user has not seen.

    Items are drawn with probability proportional to ``weights`` (None: uniform; e.g. item popularity,
    so that negatives are as popular as the positives and "popular" alone does not separate them), with
    replacement, and every draw that hits an item in the user's row of ``seen`` is drawn again
    (rejection sampling). An item with weight 0 is never drawn. Deterministic in ``seed``.

    Introduced in notebooks/11_serving.ipynb
    """
    seen = checks.sparse("seen", seen)
    n_users, n_items = seen.shape
    users = checks.indices("users", users, n_users, what="user index")
    n_negatives = checks.positive_int("n_negatives", n_negatives)
    if weights is None:
        p = np.full(n_items, 1.0 / n_items)
    else:
        w = checks.array("weights", weights, ndim=1, shape=(n_items,))
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be non-negative with a positive sum, one per item")
        p = w / w.sum()
    drawable = p > 0
    seen_drawable = np.asarray(seen.multiply(drawable[None, :].astype(np.float32)).getnnz(axis=1))
    if len(users) and (seen_drawable[users] >= drawable.sum()).any():
        bad = int(users[np.argmax(seen_drawable[users] >= drawable.sum())])
        raise ValueError(f"user index {bad} has seen every item that can be drawn: no negative exists for it")
    rng = np.random.default_rng(checks.seed("seed", seed))
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    out = np.searchsorted(cdf, rng.random((len(users), n_negatives)), side="right")
    rows = np.repeat(users, n_negatives)
    for _ in range(checks.positive_int("max_rounds", max_rounds)):
        hit = np.asarray(seen[rows, out.ravel()]).ravel() > 0
        if not hit.any():
            return out.astype(np.int64)
        flat = out.ravel()
        flat[hit] = np.searchsorted(cdf, rng.random(int(hit.sum())), side="right")
        out = flat.reshape(out.shape)
    raise ValueError(f"some negatives still hit seen items after {max_rounds} rounds of redrawing; "
                     "the users have seen almost every drawable item (raise max_rounds or change weights)")


@dataclasses.dataclass(frozen=True)
class CrossTrainConfig:
    """Settings of ``train``: ``max_steps`` AdamW steps, each ``grad_accum`` micro-batches of ``batch_size`` positives
    with their negatives (rows drawn without replacement in a seeded order, a new order when one runs out).

    The encoder learns at ``lr`` (a pretrained encoder needs a small rate, Devlin et al. 2019), the new head
    at ``head_lr``; linear warm-up over ``warmup_ratio`` of the steps then linear decay; weight decay except
    on biases and LayerNorms; gradients clipped at ``max_grad_norm``. With a ``valid_fn``: evaluated at the
    start (``eval_at_start``), every ``eval_every`` steps and at the end; stops after ``patience`` evaluations
    without improvement (None: never) and restores the best weights. The names are those of
    ``two_tower.TrainConfig``, and both train in ``training.run_training``.

    Introduced in notebooks/11_serving.ipynb
    """

    max_steps: int = 60
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    eval_every: int = 20
    patience: int | None = None
    eval_at_start: bool = True
    seed: int = 0

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "grad_accum", "eval_every"):
            object.__setattr__(self, name, checks.positive_int(name, getattr(self, name)))
        for name in ("lr", "head_lr"):
            object.__setattr__(self, name, checks.positive_number(name, getattr(self, name)))
        object.__setattr__(self, "weight_decay", checks.number("weight_decay", self.weight_decay, low=0.0))
        object.__setattr__(self, "warmup_ratio",
                           checks.number("warmup_ratio", self.warmup_ratio, low=0.0, high=1.0, high_open=True))
        if self.max_grad_norm is not None:
            object.__setattr__(self, "max_grad_norm", checks.positive_number("max_grad_norm", self.max_grad_norm))
        if self.patience is not None:
            object.__setattr__(self, "patience", checks.positive_int("patience", self.patience))
        object.__setattr__(self, "seed", checks.seed("seed", self.seed))
        object.__setattr__(self, "eval_at_start", checks.flag("eval_at_start", self.eval_at_start))


def train(model, queries, positives, negatives, item_texts, config: CrossTrainConfig | None = None, *,
          valid_fn=None, device="auto", progress: bool = True) -> dict:
    """Pointwise BCE fine-tuning of a ``CrossEncoder`` on (query, positive item) pairs with sampled negatives.

    Row i of the training data is the query ``queries[i]``, its observed next item ``positives[i]`` (label 1)
    and the items ``negatives[i]`` (label 0; e.g. from ``sample_negatives``). Each step draws
    ``config.grad_accum`` micro-batches of ``config.batch_size`` rows (a seeded shuffle, without replacement within
    an epoch) and minimises

        L = - mean over the step's pairs of [ y log σ(s) + (1 - y) log(1 - σ(s)) ],

    s the model's logit (``binary_cross_entropy_with_logits``). ``valid_fn(model) -> float`` (higher is better,
    e.g. NDCG@10 of re-ranked validation candidates) drives early stopping; the best evaluation's weights are
    restored (the untrained model counts, so training that never helps gives the untrained model back). The
    global torch generator is left as it was.

    Returns a dict: ``loss`` per step, ``valid_step``/``valid``, ``best_step``, ``best_valid``,
    ``stopped_early``, ``steps``, ``pairs`` (pairs seen), ``wall_time_s``, ``train_time_s``, ``eval_time_s``,
    ``pairs_per_s``, ``device`` and ``precision``.

    Introduced in notebooks/11_serving.ipynb
    """
    model = _check_model(model)
    config = CrossTrainConfig() if config is None else config
    if not isinstance(config, CrossTrainConfig):
        raise TypeError(f"config must be a recsuite.models.crossenc.CrossTrainConfig, got {checks.describe(config)}")
    texts = np.asarray(checks.texts("item_texts", item_texts), dtype=object)
    queries = np.asarray(checks.texts("queries", queries), dtype=object)
    positives = checks.indices("positives", positives, len(texts), what="item index")
    negatives = checks.indices("negatives", negatives, len(texts), ndim=2, what="item index")
    if len(positives) != len(queries) or len(negatives) != len(queries):
        raise ValueError(f"queries, positives and negatives must have one row per pair, got {len(queries)}, "
                         f"{len(positives)} and {len(negatives)}")
    if negatives.shape[1] == 0:
        raise ValueError(f"negatives must have at least one column (label-0 items per positive), got shape "
                         f"{negatives.shape}")
    clash = np.flatnonzero((negatives == positives[:, None]).any(axis=1))
    if clash.size:
        raise ValueError(f"negatives must not hold the row's own positive (row {int(clash[0])} has item "
                         f"{int(positives[clash[0]])} as both); draw them with sample_negatives")
    if len(queries) < config.batch_size:
        raise ValueError(f"there are {len(queries)} pairs, fewer than batch_size={config.batch_size}")
    check_valid_fn(valid_fn, config.patience)
    progress = checks.flag("progress", progress)
    dev = get_device(device)
    model.to(dev)
    head = {id(p) for p in model.head.parameters()}
    groups = []
    for g in param_groups(model, config.weight_decay):
        for is_head in (False, True):
            ps = [p for p in g["params"] if (id(p) in head) == is_head]
            if ps:
                groups.append({"params": ps, "weight_decay": g["weight_decay"], "lr": config.head_lr if is_head else config.lr})
    opt = torch.optim.AdamW(groups)
    total = config.max_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(total, int(round(config.warmup_ratio * total))))
    n_neg = negatives.shape[1]
    labels = torch.tensor(([1.0] + [0.0] * n_neg) * config.batch_size, device=dev)
    history = {"device": str(dev), "precision": precision(dev), "negatives_per_positive": n_neg}
    rng = np.random.default_rng(config.seed)

    def steps():
        order = np.empty(0, dtype=np.int64)
        while True:
            micro = []
            for _ in range(config.grad_accum):
                if len(order) < config.batch_size:
                    order = rng.permutation(len(queries))  # a new epoch
                rows, order = order[:config.batch_size], order[config.batch_size:]
                micro.append(rows)
            yield micro

    def bce(rows):
        items = np.concatenate([positives[rows, None], negatives[rows]], axis=1).ravel()
        with autocast(dev):
            logits = model(np.repeat(queries[rows], 1 + n_neg), texts[items])
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)

    run_training(model, steps(), bce, opt, sched, total, history, max_grad_norm=config.max_grad_norm,
                 seed=config.seed, device=dev, valid_fn=valid_fn, patience=config.patience,
                 eval_every=config.eval_every, eval_at_start=config.eval_at_start, progress=progress,
                 desc="train (BCE)")
    pairs = history["steps"] * config.grad_accum * config.batch_size * (1 + n_neg)
    history.update(pairs=pairs, pairs_per_s=pairs / history["train_time_s"])
    return history


def rerank_scores(model, query_texts, candidates, item_texts, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Float32 ``(n_users, M)`` cross-encoder logits of each user's candidates: row u scores
    ``(query_texts[u], item_texts[candidates[u, j]])``; sort a row to re-rank it (``llmrank.order_by``).

    Introduced in notebooks/11_serving.ipynb
    """
    model = _check_model(model)
    texts = np.asarray(checks.texts("item_texts", item_texts), dtype=object)
    queries = np.asarray(checks.texts("query_texts", query_texts), dtype=object)
    cands = checks.indices("candidates", candidates, len(texts), ndim=2, what="item index")
    if len(cands) != len(queries):
        raise ValueError(f"candidates must have one row per query, got {len(cands)} rows for {len(queries)} queries")
    flat = model.score(np.repeat(queries, cands.shape[1]), texts[cands.ravel()], batch_size=batch_size, progress=progress)
    return flat.reshape(cands.shape)


class CrossEncoderRanker(CandidateScorer):
    """A ``CrossEncoder`` as a ``CandidateScorer``: the logit of (user's query text, candidate's item text).

    Introduced in notebooks/11_serving.ipynb
    """

    def __init__(self, model, query_texts, item_texts, batch_size: int = 64):
        self.model = _check_model(model)
        self.query_texts = checks.text_array("query_texts", query_texts)
        self.item_texts = checks.text_array("item_texts", item_texts)
        self.batch_size = checks.positive_int("batch_size", batch_size)

    def score_candidates(self, user_idx, candidates) -> np.ndarray:
        users, cands = self._check(user_idx, candidates, len(self.query_texts), len(self.item_texts))
        return rerank_scores(self.model, list(self.query_texts[users]), cands, list(self.item_texts),
                             batch_size=self.batch_size, progress=False)
