"""Sequential recommenders: SASRec (Kang & McAuley 2018) in PyTorch and the item-to-item transition baseline.

Both read a user's history in time order (``Protocol.sequences``) instead of as a set, and rank the whole
catalogue from the items read last.

* ``SASRec``: item embeddings plus learned positions, causal self-attention blocks, scores against the shared
  item table. Items are embedded by an ID table, by a learned projection of text vectors (e.g. MiniLM, lesson
  02), or both; a text-projected table gives a new item a vector before anyone has watched it.
* ``train_sasrec``: next-item training on every position of every user (``training_windows``), with the full
  softmax over the training catalogue (Klenitskiy & Vasilev 2023) or the paper's binary cross-entropy with one
  sampled negative, through the package's one training loop (early stopping on a validation metric).
* ``ItemTransitions``: "people who watched a then watched b": counts of item b following item a within a few
  steps, scored from the user's last items.
* ``SequenceScorer``: any of them as a ``Scorer`` over a fixed set of histories.

Introduced in notebooks/13_sequential.ipynb
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from recsuite.core import checks
from recsuite.core.device import get_device
from recsuite.core.optional import require
from recsuite.models.base import Scorer
from recsuite.models.training import param_groups, run_training

torch = require("torch", "text")

PAD = 0  # the padding token; item i is token i + 1
LOSSES = ("softmax", "bce")


# -- histories as arrays -----------------------------------------------------------------------------------------

def pad_last(sequences, max_len: int, n_items: int) -> np.ndarray:
    """(n, max_len) int64 tokens of each history's last ``max_len`` items, left-padded with ``PAD``.

    Token = item index + 1, so the last column always holds the most recent item.

    Introduced in notebooks/13_sequential.ipynb
    """
    max_len = checks.positive_int("max_len", max_len)
    seqs = checks.sequences("sequences", sequences, n_items)
    out = np.zeros((len(seqs), max_len), np.int64)
    for r, s in enumerate(seqs):
        tail = s[-max_len:]
        if len(tail):
            out[r, max_len - len(tail):] = tail + 1
    return out


def training_windows(sequences, max_len: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-item training pairs: (inputs, targets), each (n_windows, max_len) int64 tokens, left-padded.

    Each history is cut from its end into windows of ``max_len + 1`` items that overlap by one; a window's
    inputs are its items but the last and its targets the items one step later, so every item but a user's
    first is a target exactly once per epoch and never sees itself or a later item.

    Introduced in notebooks/13_sequential.ipynb
    """
    max_len = checks.positive_int("max_len", max_len)
    seqs = checks.sequences("sequences", sequences, n_items)
    inputs, targets = [], []
    for s in seqs:
        end = len(s)
        while end >= 2:
            w = s[max(0, end - max_len - 1):end] + 1
            row_in, row_out = np.zeros(max_len, np.int64), np.zeros(max_len, np.int64)
            row_in[max_len - len(w) + 1:], row_out[max_len - len(w) + 1:] = w[:-1], w[1:]
            inputs.append(row_in)
            targets.append(row_out)
            end -= max_len
    if not inputs:
        raise ValueError("sequences must hold at least one history of two or more items to train on, got none")
    return np.stack(inputs), np.stack(targets)


def shuffle_within(sequences, seed: int) -> list[np.ndarray]:
    """Each history with its items in a seeded random order: the same sets, no order to learn from.

    Introduced in notebooks/13_sequential.ipynb
    """
    rng = np.random.default_rng(checks.seed("seed", seed))
    return [rng.permutation(np.asarray(s)) for s in sequences]


# -- the model -----------------------------------------------------------------------------------------------------

def attention_mask(tokens, n_heads: int):
    """Boolean (batch * n_heads, L, L) mask, True = may not attend: a later position, or padding.

    Position i attends to j <= i holding an item; a padding position attends to itself only, so no row of the
    softmax is empty (an all-masked row would give NaN) and nothing real ever reads padding.

    Introduced in notebooks/13_sequential.ipynb
    """
    L = tokens.shape[1]
    later = torch.triu(torch.ones(L, L, dtype=torch.bool, device=tokens.device), diagonal=1)
    pad_key = (tokens == PAD)[:, None, :]  # (B, 1, L): key j is padding
    self_ = torch.eye(L, dtype=torch.bool, device=tokens.device)
    blocked = (later[None] | pad_key) & ~self_[None]
    return blocked.repeat_interleave(n_heads, dim=0)


class SASRecBlock(torch.nn.Module):
    """One SASRec block: x + Dropout(Attention(LayerNorm(x))), then x + Dropout(FFN(LayerNorm(x))).

    Introduced in notebooks/13_sequential.ipynb
    """

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn = torch.nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.ffn = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(dim, dim))
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x, mask):
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, attn_mask=mask, need_weights=False)[0])
        return x + self.drop(self.ffn(self.norm2(x)))


class SASRec(torch.nn.Module):
    """SASRec (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation").

    h = Blocks(E[s_1..s_L] * sqrt(d) + P), with causal attention; the score of item i after position t is
    <h_t, e_i>, with the same item table E on both sides. E is an ID table (``id_embeddings``), a learned
    projection of fixed ``item_features`` (E = X W), or their sum (the ID part then starts at zero, so training
    begins from the text vectors). Token 0 is padding; item i is token i + 1.

    Introduced in notebooks/13_sequential.ipynb
    """

    def __init__(self, n_items: int, dim: int = 64, n_blocks: int = 2, n_heads: int = 1, max_len: int = 50,
                 dropout: float = 0.2, item_features=None, id_embeddings: bool = True, seed: int = 0):
        super().__init__()
        self.n_items, self.dim = checks.positive_int("n_items", n_items), checks.positive_int("dim", dim)
        self.n_heads, self.max_len = checks.positive_int("n_heads", n_heads), checks.positive_int("max_len", max_len)
        n_blocks = checks.positive_int("n_blocks", n_blocks)
        dropout = checks.number("dropout", dropout, low=0.0, high=1.0)
        if dim % self.n_heads:
            raise ValueError(f"dim must be a multiple of n_heads, got dim={dim}, n_heads={n_heads}")
        if item_features is None and not checks.flag("id_embeddings", id_embeddings):
            raise ValueError("the model needs item vectors: give item_features, or id_embeddings=True, or both")
        with torch.random.fork_rng():
            torch.manual_seed(checks.seed("seed", seed))
            self.item_emb = torch.nn.Embedding(n_items + 1, dim, padding_idx=PAD) if id_embeddings else None
            self.pos_emb = torch.nn.Embedding(self.max_len, dim)
            self.blocks = torch.nn.ModuleList(SASRecBlock(dim, self.n_heads, dropout) for _ in range(n_blocks))
            self.final_norm = torch.nn.LayerNorm(dim)
            self.proj = None
            if item_features is not None:
                x = checks.feature_matrix("item_features", item_features, n_items)
                if x.shape[0] != n_items:  # extra rows would become extra items in the table
                    raise ValueError(f"item_features must have one row per item, {n_items} rows, got {x.shape[0]}")
                self.register_buffer("features", torch.cat([torch.zeros(1, x.shape[1]),
                                                            torch.as_tensor(x, dtype=torch.float32)]))
                self.proj = torch.nn.Linear(x.shape[1], dim, bias=False)
            # Xavier-normal embeddings, as the authors' code initialises every weight matrix
            for emb in (self.item_emb, self.pos_emb):
                if emb is not None:
                    torch.nn.init.xavier_normal_(emb.weight)
        self.drop = torch.nn.Dropout(dropout)
        if self.item_emb is not None:
            with torch.no_grad():
                self.item_emb.weight[PAD].zero_()
                if self.proj is not None:
                    self.item_emb.weight.zero_()  # ID part starts at zero: the text vectors lead

    def item_table(self):
        """(n_items + 1, dim): row 0 padding (zeros), row i + 1 item i."""
        table = 0
        if self.item_emb is not None:
            table = self.item_emb.weight
        if self.proj is not None:
            table = table + self.proj(self.features)
        return table

    def forward(self, tokens, table=None):
        """(B, L) tokens -> (B, L, dim) hidden states; position t has read tokens[:, :t + 1] only."""
        table = self.item_table() if table is None else table
        L = tokens.shape[1]
        if L > self.max_len:
            raise ValueError(f"tokens has {L} positions; the model was built with max_len={self.max_len}")
        real = (tokens != PAD).unsqueeze(-1)
        positions = torch.arange(self.max_len - L, self.max_len, device=tokens.device)
        x = table[tokens] * math.sqrt(self.dim) + self.pos_emb(positions)
        x = self.drop(x) * real
        mask = attention_mask(tokens, self.n_heads)
        for block in self.blocks:
            x = block(x, mask) * real
        return self.final_norm(x)

    def score_last(self, tokens):
        """(B, n_items) scores of every item after each row's last position."""
        table = self.item_table()
        return self(tokens, table)[:, -1] @ table[1:].T


def check_sasrec(model) -> SASRec:
    if not isinstance(model, SASRec):
        raise TypeError(f"model must be a recsuite.models.sequential.SASRec, got {checks.describe(model)}")
    return model


def score_sequences(model, sequences, batch_size: int = 256) -> np.ndarray:
    """(len(sequences), n_items) float32 scores of every item after each history's last ``max_len`` items.

    An empty history reads padding only, which every block zeroes: its scores are <b, e_i> with b the final
    LayerNorm's bias, the same for every such user (a prior the model learned).

    Introduced in notebooks/13_sequential.ipynb
    """
    model = check_sasrec(model)
    batch_size = checks.positive_int("batch_size", batch_size)
    tokens = pad_last(sequences, model.max_len, model.n_items)
    device = next(model.parameters()).device
    out = np.empty((len(tokens), model.n_items), np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            batch = torch.as_tensor(tokens[start:start + batch_size], device=device)
            out[start:start + len(batch)] = model.score_last(batch).float().cpu().numpy()
    model.train(was_training)
    return out


# -- training ------------------------------------------------------------------------------------------------------

def next_item_loss(model, inputs, targets, loss: str = "softmax", catalogue=None):
    """Mean next-item loss over the positions that have a target.

    ``softmax``: cross-entropy over every item of ``catalogue`` (a (n_items,) bool tensor; None = all), the
    full softmax that Klenitskiy & Vasilev (2023) found lifts SASRec above BERT4Rec. ``bce``: the paper's
    -log sigma(s_pos) - log(1 - sigma(s_neg)) with one negative drawn uniformly from the catalogue per position
    (Petrov & Macdonald 2023, gSASRec, show that so few negatives make the model overconfident about popular items).

    Introduced in notebooks/13_sequential.ipynb
    """
    checks.one_of("loss", loss, LOSSES)
    table = model.item_table()
    h = model(inputs, table)
    has = targets != PAD
    h, pos = h[has], targets[has] - 1
    items = table[1:]
    pool = torch.arange(model.n_items, device=h.device) if catalogue is None else torch.nonzero(catalogue)[:, 0]
    if loss == "softmax":  # logits over the catalogue's items only: target i is at position (# catalogue items < i)
        where = pos if catalogue is None else torch.cumsum(catalogue, 0)[pos] - 1
        return torch.nn.functional.cross_entropy(h @ items[pool].T, where)
    neg = pool[torch.randint(len(pool), (len(pos),), device=h.device)]
    s_pos = (h * items[pos]).sum(-1)
    s_neg = (h * items[neg]).sum(-1)
    return -(torch.nn.functional.logsigmoid(s_pos) + torch.nn.functional.logsigmoid(-s_neg)).mean()


def train_sasrec(model, sequences, *, epochs: int = 30, batch_size: int = 128, lr: float = 1e-3,
                 weight_decay: float = 0.0, loss: str = "softmax", catalogue=None, valid_fn=None, patience=None,
                 seed: int = 0, device="auto", progress: bool = True) -> dict:
    """Train ``model`` to predict each next item of ``sequences`` (oldest first) for ``epochs`` epochs.

    An epoch is one pass over ``training_windows`` in a seeded random order, in batches of ``batch_size``
    windows; Adam(W) at a constant ``lr`` (Kang & McAuley's 0.001). ``catalogue`` (bool (n_items,), None = every
    item) is what the loss ranks the target against; items outside it are never trained towards.
    ``valid_fn(model) -> float`` runs after every epoch; with ``patience`` training stops after that many epochs
    without improvement and the best epoch's weights come back (``run_training``). Returns the history
    (``loss`` per step, ``valid`` per epoch, ``best_step``/``best_epoch``, times).

    Introduced in notebooks/13_sequential.ipynb
    """
    model = check_sasrec(model)
    epochs, batch_size = checks.positive_int("epochs", epochs), checks.positive_int("batch_size", batch_size)
    lr, seed = checks.positive_number("lr", lr), checks.seed("seed", seed)
    weight_decay = checks.non_negative_number("weight_decay", weight_decay)
    checks.one_of("loss", loss, LOSSES)
    dev = get_device(device)
    inputs, targets = training_windows(sequences, model.max_len, model.n_items)
    cat = None
    if catalogue is not None:
        mask = checks.bool_mask("catalogue", catalogue, model.n_items)
        cat = torch.as_tensor(mask, device=dev)
        outside = np.unique(targets[targets != PAD] - 1)
        outside = outside[~mask[outside]]
        if len(outside):
            raise ValueError(f"catalogue leaves out {len(outside)} items the sequences train towards, e.g. item "
                             f"{int(outside[0])}; a target must be rankable")
    model.to(dev)
    per_epoch = math.ceil(len(inputs) / batch_size)
    total = epochs * per_epoch
    rng = np.random.default_rng(seed)

    def steps():
        for _ in range(epochs):
            order = rng.permutation(len(inputs))
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                yield [(torch.as_tensor(inputs[idx], device=dev), torch.as_tensor(targets[idx], device=dev))]

    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    history = {"windows": len(inputs), "steps_per_epoch": per_epoch}
    run_training(model, steps(), lambda b: next_item_loss(model, *b, loss=loss, catalogue=cat), optimizer,
                 scheduler, total, history, max_grad_norm=None, seed=seed, device=dev, valid_fn=valid_fn,
                 patience=patience, eval_every=per_epoch, eval_at_start=False, progress=progress, desc="SASRec")
    if history["best_step"] is not None:
        history["best_epoch"] = history["best_step"] // per_epoch
    history["epochs_run"] = history["steps"] / per_epoch
    return history


# -- item-to-item transitions ------------------------------------------------------------------------------------

class ItemTransitions:
    """Item-to-item neighbours from order: T[a, b] counts how often b follows a within ``gap`` steps.

    Scores of a history: sum over its last ``last`` items s_{-j} of ``decay`` ** (j - 1) * T~[s_{-j}], where T~
    is T with each row divided by its sum (the chance of b coming next after a). ``gap = 1`` is a first-order
    Markov chain (Rendle et al. 2010 factorise one); larger gaps smooth it over near neighbours.

    Introduced in notebooks/13_sequential.ipynb
    """

    def __init__(self, n_items: int, gap: int = 3, last: int = 5, decay: float = 0.7):
        self.n_items = checks.positive_int("n_items", n_items)
        self.gap, self.last = checks.positive_int("gap", gap), checks.positive_int("last", last)
        self.decay = checks.number("decay", decay, low=0.0, high=1.0)
        self.matrix = None

    def fit(self, sequences) -> ItemTransitions:
        seqs = checks.sequences("sequences", sequences, self.n_items)
        src, dst = [], []
        for s in seqs:
            for g in range(1, self.gap + 1):
                src.append(s[:-g])
                dst.append(s[g:])
        src, dst = np.concatenate(src or [np.zeros(0, np.int64)]), np.concatenate(dst or [np.zeros(0, np.int64)])
        t = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(self.n_items, self.n_items))
        t.sum_duplicates()
        rows = np.asarray(t.sum(axis=1)).ravel()
        self.matrix = (sp.diags(np.where(rows > 0, 1.0 / np.maximum(rows, 1), 0.0).astype(np.float32)) @ t).tocsr()
        return self

    def scores(self, sequences) -> np.ndarray:
        """(len(sequences), n_items) float32; an empty history scores 0 everywhere."""
        if self.matrix is None:
            raise ValueError("fit the model on training sequences before scoring")
        seqs = checks.sequences("sequences", sequences, self.n_items)
        rows, cols, vals = [], [], []
        for r, s in enumerate(seqs):
            tail = s[-self.last:][::-1]
            rows.append(np.full(len(tail), r))
            cols.append(tail)
            vals.append(self.decay ** np.arange(len(tail)))
        weights = sp.csr_matrix((np.concatenate(vals or [[]]).astype(np.float32),
                                 (np.concatenate(rows or [[]]).astype(np.int64),
                                  np.concatenate(cols or [[]]).astype(np.int64))),
                                shape=(len(seqs), self.n_items))
        return np.asarray((weights @ self.matrix).todense(), dtype=np.float32)


class SequenceScorer(Scorer):
    """A sequential model as a ``Scorer``: the histories it reads are fixed, ``scores(user_idx)`` ranks after them.

    ``score_fn(list of histories) -> (n, n_items)`` is e.g. ``lambda s: score_sequences(model, s)``,
    ``ItemTransitions.scores`` or ``RecBoleSequentialModel.score_sequences``; ``sequences`` has one history per
    user (``Protocol.sequences(eval_set)``).

    Introduced in notebooks/13_sequential.ipynb
    """

    def __init__(self, score_fn, sequences, n_items: int):
        if not callable(score_fn):
            raise TypeError(f"score_fn must be a callable histories -> scores, got {checks.describe(score_fn)}")
        self.score_fn, self._n_items = score_fn, checks.positive_int("n_items", n_items)
        self.sequences = checks.sequences("sequences", sequences, self._n_items)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.sequences), self._n_items)

    def scores(self, user_idx=None) -> np.ndarray:
        users = self._users(user_idx)
        out = np.asarray(self.score_fn([self.sequences[u] for u in users]))
        if out.shape != (len(users), self._n_items) or not np.isfinite(out).all():
            raise ValueError(f"score_fn must return finite scores of shape {(len(users), self._n_items)}, "
                             f"got shape {out.shape}")
        return out
