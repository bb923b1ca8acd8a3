"""Multi-task rankers over a candidate frame: shared-bottom, MMoE and ESMM networks, their loss and training.

One row is a (user, candidate item) pair described by numeric features; each row has several targets, here
``click`` (0/1), ``like`` (0/1, a click rated >= 4) and ``rating`` (a float, observed on clicked rows only).

* ``FeatureScaler``: standardised columns, NaN filled with the column mean plus a 0/1 "was missing" column.
* ``SharedBottom`` (Caruana 1997): one shared MLP, one tower per task.
* ``MMoE`` (Ma et al. 2018, KDD): a few expert MLPs and one softmax gate per task that mixes them.
* ``ESMM`` (Ma et al. 2018, SIGIR): pCTCVR = pCTR x pCVR, trained on the entire space of shown rows.
* ``multitask_loss``: BCE on every row for the binary tasks, MSE on the rated rows for ``rating``, weighted.
* ``fit_multitask`` (the package's one training loop, ``run_training``, with early stopping on the valid loss)
  and ``predict`` (probabilities and ratings as NumPy arrays).

Introduced in notebooks/16_multitask.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from recsuite.core import checks
from recsuite.core.device import get_device
from recsuite.core.optional import require
from recsuite.models.training import param_groups, run_training

torch = require("torch", "text")

#: Tasks fitted by squared error on the rows where they are observed (not NaN); every other task is binary.
REGRESSION_TASKS = frozenset({"rating"})
TASKS = ("click", "like", "rating")


# -- features ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class FeatureScaler:
    """Standardisation learned on the training matrix: (x - mean) / std per column, as float32.

    A NaN becomes the column's training mean, so 0 after scaling; each column that had a NaN in training also
    gets a 0/1 "was missing" column, appended after the scaled columns in column order (``missing`` lists
    them). A constant column (or one with a single observed value) keeps std 1; an all-NaN column has mean 0.
    A NaN at transform time in a column without a NaN in training is filled the same way, with no indicator
    (the width is fixed by training). Use ``FeatureScaler.fit(X_train).transform(X)``.

    Introduced in notebooks/16_multitask.ipynb
    """

    mean: np.ndarray  # (d,) float64
    std: np.ndarray  # (d,) float64, > 0
    missing: np.ndarray  # int64 indices of the columns that get a "was missing" indicator

    @classmethod
    def fit(cls, X) -> FeatureScaler:
        """The scaler of ``X`` ((n, d) numbers; NaN allowed, inf refused)."""
        x = _features("X", X)
        if len(x) == 0:
            raise ValueError(f"X must have at least one row to fit a scaler on, got shape {x.shape}")
        seen = ~np.isnan(x)
        count = seen.sum(axis=0)
        filled = np.where(seen, x, 0.0)
        mean = np.divide(filled.sum(axis=0), count, out=np.zeros(x.shape[1]), where=count > 0)
        var = np.divide((np.where(seen, x - mean, 0.0) ** 2).sum(axis=0), count, out=np.zeros(x.shape[1]),
                        where=count > 0)
        std = np.sqrt(var)
        std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)  # constant: only the centring
        return cls(mean=mean, std=std, missing=np.flatnonzero(count < len(x)).astype(np.int64))

    @property
    def n_in(self) -> int:
        return len(self.mean)

    @property
    def n_out(self) -> int:
        """Columns of ``transform``'s output: the scaled ones, then one per ``missing`` column."""
        return len(self.mean) + len(self.missing)

    def transform(self, X) -> np.ndarray:
        """(n, n_out) float32: scaled columns with NaN as 0, then the "was missing" indicators."""
        x = _features("X", X)
        if x.shape[1] != self.n_in:
            raise ValueError(f"X must have {self.n_in} columns, the width the scaler was fitted on, got {x.shape}")
        nan = np.isnan(x)
        z = np.where(nan, 0.0, (x - self.mean) / self.std)
        return np.concatenate([z, nan[:, self.missing]], axis=1).astype(np.float32)

    def feature_names(self, names) -> list[str]:
        """The output columns' names from the input columns' ``names``: each name, then ``<name>_missing``."""
        names = checks.texts("names", names)
        if len(names) != self.n_in:
            raise ValueError(f"names must hold {self.n_in} names, one per fitted column, got {len(names)}")
        return names + [f"{names[j]}_missing" for j in self.missing]


def _features(name: str, X) -> np.ndarray:
    x = checks.array(name, X, ndim=2, dtype=np.float64, finite=False)
    if np.isinf(x).any():
        raise ValueError(f"{name} holds inf at {int(np.isinf(x).sum())} entries; expected finite values or NaN")
    return x


# -- the networks --------------------------------------------------------------------------------------------------

def _sizes(name: str, value, *, empty: bool) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of layer widths, got {checks.describe(value)}")
    out = tuple(checks.positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))
    if not out and not empty:
        raise ValueError(f"{name} must hold at least one layer width, got an empty tuple")
    return out


def _mlp(n_in: int, sizes: tuple[int, ...], dropout: float):
    """Linear -> ReLU (-> Dropout) per width; returns the stack and its output width."""
    layers = []
    for size in sizes:
        layers += [torch.nn.Linear(n_in, size), torch.nn.ReLU()]
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        n_in = size
    return torch.nn.Sequential(*layers), n_in


def _tower(n_in: int, sizes: tuple[int, ...], dropout: float):
    """An MLP ending in one linear output (a logit or a rating); its last layer is the head's bias."""
    body, width = _mlp(n_in, sizes, dropout)
    return torch.nn.Sequential(*body, torch.nn.Linear(width, 1))


class MultiTaskModel(torch.nn.Module):
    """What the three networks share: ``tasks`` (the trained targets), ``outputs`` (what ``predict`` returns),
    ``heads`` (task -> tower ending in a 1-unit linear layer) and the output dict of ``forward``.

    ``forward(x)`` maps a (batch, n_features) float tensor to a dict of (batch,) tensors: for a binary task
    ``t`` the probability ``t`` and its logit ``t_logit`` (what the loss reads), for ``rating`` the raw value.

    Introduced in notebooks/16_multitask.ipynb
    """

    def __init__(self, n_features: int, tasks, dropout: float):
        super().__init__()
        self.n_features = checks.positive_int("n_features", n_features)
        self.dropout = checks.number("dropout", dropout, low=0.0, high=1.0, high_open=True)
        if isinstance(tasks, str) or not isinstance(tasks, (tuple, list)):
            raise TypeError(f"tasks must be a tuple of task names, got {checks.describe(tasks)}")
        tasks = tuple(checks.text(f"tasks[{i}]", t) for i, t in enumerate(tasks))
        bad = [t for t in tasks if not t.isidentifier() or t.endswith("_logit")]
        if not tasks or bad or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be distinct identifiers not ending in '_logit', at least one, got {tasks}")
        self.tasks = tasks
        self.outputs = tasks

    def _check_x(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor (batch, {self.n_features}), got {checks.describe(x)}")
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x must have shape (batch, {self.n_features}), got {tuple(x.shape)}")
        return x

    def _read_out(self, hidden: dict) -> dict:
        """Each head's tower on its input ``hidden[task]``: probabilities and logits, or the raw rating."""
        out = {}
        for task, h in hidden.items():
            z = self.heads[task](h).squeeze(-1)
            if task in REGRESSION_TASKS:
                out[task] = z
            else:
                out[task], out[f"{task}_logit"] = torch.sigmoid(z), z
        return out


class SharedBottom(MultiTaskModel):
    """Hard parameter sharing (Caruana 1997, "Multitask Learning", Machine Learning 28): y_t = f_t(g(x)).

    One MLP g (widths ``hidden``) shared by every task, then one tower f_t (widths ``tower`` and a 1-unit
    output) per task. Tasks that disagree pull g in different directions (negative transfer), the problem MMoE
    addresses. ``seed`` fixes the initial weights (the global torch generator is left as it was).

    Introduced in notebooks/16_multitask.ipynb
    """

    def __init__(self, n_features: int, hidden=(64,), tower=(32,), tasks=TASKS, dropout: float = 0.0,
                 seed: int = 0):
        super().__init__(n_features, tasks, dropout)
        hidden, tower = _sizes("hidden", hidden, empty=False), _sizes("tower", tower, empty=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(checks.seed("seed", seed))
            self.bottom, width = _mlp(self.n_features, hidden, self.dropout)
            self.heads = torch.nn.ModuleDict({t: _tower(width, tower, self.dropout) for t in self.tasks})

    def forward(self, x) -> dict:
        h = self.bottom(self._check_x(x))
        return self._read_out({t: h for t in self.tasks})


class MMoE(MultiTaskModel):
    """Multi-gate Mixture-of-Experts (Ma, Zhao, Yi, Chen, Hong & Chi 2018, "Modeling Task Relationships in
    Multi-task Learning with Multi-gate Mixture-of-Experts", KDD).

    y_t = h_t(sum_e g_t(x)_e f_e(x)), g_t(x) = softmax(W_t x): ``n_experts`` expert MLPs f_e (widths
    ``expert_hidden``), one gate per task, a linear map of the input without bias as in the paper, and one tower
    h_t per task. Tasks that need different features can weight different experts; with one expert every gate
    is 1 and the model is ``SharedBottom``. ``gates(x)`` returns the mixing weights.

    Introduced in notebooks/16_multitask.ipynb
    """

    def __init__(self, n_features: int, n_experts: int = 4, expert_hidden=(64,), tower=(32,), tasks=TASKS,
                 dropout: float = 0.0, seed: int = 0):
        super().__init__(n_features, tasks, dropout)
        self.n_experts = checks.positive_int("n_experts", n_experts)
        hidden, tower = _sizes("expert_hidden", expert_hidden, empty=False), _sizes("tower", tower, empty=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(checks.seed("seed", seed))
            self.experts = torch.nn.ModuleList(_mlp(self.n_features, hidden, self.dropout)[0]
                                               for _ in range(self.n_experts))
            self.gate = torch.nn.Linear(self.n_features, len(self.tasks) * self.n_experts, bias=False)
            self.heads = torch.nn.ModuleDict({t: _tower(hidden[-1], tower, self.dropout) for t in self.tasks})

    def gates(self, x):
        """(batch, n_tasks, n_experts) softmax weights, tasks in ``self.tasks`` order; each row sums to one."""
        logits = self.gate(self._check_x(x)).view(len(x), len(self.tasks), self.n_experts)
        return torch.softmax(logits, dim=-1)

    def forward(self, x) -> dict:
        experts = torch.stack([f(self._check_x(x)) for f in self.experts], dim=1)  # (B, E, H)
        mixed = torch.einsum("bte,beh->bth", self.gates(x), experts)
        return self._read_out({t: mixed[:, k] for k, t in enumerate(self.tasks)})


class ESMM(MultiTaskModel):
    """Entire Space Multi-task Model (Ma, Zhao, Huang, Wang, Hu, Zhu & Gai 2018, "Entire Space Multi-Task Model:
    An Effective Approach for Estimating Post-Click Conversion Rate", SIGIR).

    pCTCVR = p(click, like | x) = pCTR(x) x pCVR(x), pCVR = p(like | click, x). A conversion (here a like) is
    seen only after a click, so a CVR model trained on clicked rows learns on a biased sample (sample selection
    bias) with few rows (data sparsity). ESMM never takes a loss on pCVR: it fits pCTR to ``click`` and pCTCVR to
    ``like`` on every shown row, and pCVR is what the product leaves. A shared bottom (widths ``hidden``; the
    paper shares the embedding layer) feeds a CTR tower and a CVR tower, and with ``rating=True`` a rating tower
    (trained on the rated rows, so it keeps the selection bias ESMM removes from pCVR).

    Outputs ``click`` = pCTR, ``like`` = pCTCVR, ``cvr`` = pCVR (and ``rating``). The loss reads ``like_logit``,
    logit(pCTCVR) = log p - log(1 - p) with log p = log s(a) + log s(b) and 1 - p = (1 - s(a)) + s(a)(1 - s(b))
    (a, b the CTR and CVR logits, s the sigmoid), both in log space, so no probability is clamped.

    Introduced in notebooks/16_multitask.ipynb
    """

    def __init__(self, n_features: int, hidden=(64,), tower=(32,), dropout: float = 0.0, rating: bool = True,
                 seed: int = 0):
        tasks = ("click", "like", "rating") if checks.flag("rating", rating) else ("click", "like")
        super().__init__(n_features, tasks, dropout)
        self.outputs = ("click", "like", "cvr") + (("rating",) if rating else ())
        hidden, tower = _sizes("hidden", hidden, empty=False), _sizes("tower", tower, empty=True)
        heads = ("click", "cvr") + (("rating",) if rating else ())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(checks.seed("seed", seed))
            self.bottom, width = _mlp(self.n_features, hidden, self.dropout)
            self.heads = torch.nn.ModuleDict({t: _tower(width, tower, self.dropout) for t in heads})

    def forward(self, x) -> dict:
        h = self.bottom(self._check_x(x))
        a = self.heads["click"](h).squeeze(-1)
        b = self.heads["cvr"](h).squeeze(-1)
        log_p = torch.nn.functional.logsigmoid(a) + torch.nn.functional.logsigmoid(b)
        log_not_p = torch.logaddexp(torch.nn.functional.logsigmoid(-a),
                                    torch.nn.functional.logsigmoid(a) + torch.nn.functional.logsigmoid(-b))
        click, cvr = torch.sigmoid(a), torch.sigmoid(b)
        out = {"click": click, "click_logit": a, "like": click * cvr, "like_logit": log_p - log_not_p, "cvr": cvr}
        if "rating" in self.heads:
            out["rating"] = self.heads["rating"](h).squeeze(-1)
        return out


def _check_model(model) -> MultiTaskModel:
    if not isinstance(model, MultiTaskModel):
        raise TypeError("model must be a recsuite.models.multitask SharedBottom, MMoE or ESMM, got "
                        f"{checks.describe(model)}")
    return model


# -- the loss ------------------------------------------------------------------------------------------------------

def _loss(outputs: dict, labels: dict, weights: dict) -> tuple:
    """The weighted loss and its per-task parts, unchecked (the training loop's inner call)."""
    parts = {}
    for task, y in labels.items():
        if task in REGRESSION_TASKS:
            seen = ~torch.isnan(y)
            sq = (outputs[task] - torch.nan_to_num(y)) ** 2 * seen  # NaN rows weigh 0 and pass no gradient
            parts[task] = sq.sum() / seen.sum().clamp(min=1)
        else:
            parts[task] = torch.nn.functional.binary_cross_entropy_with_logits(outputs[f"{task}_logit"], y)
    total = sum(weights.get(t, 1.0) * v for t, v in parts.items())
    return total, parts


def _weights(weights, tasks) -> dict:
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a dict task -> weight, got {checks.describe(weights)}")
    unknown = sorted(str(t) for t in set(weights) - set(tasks))
    if unknown:
        raise ValueError(f"weights names tasks {unknown} that are not among the labels' tasks {sorted(tasks)}")
    out = {t: checks.non_negative_number(f"weights[{t!r}]", w) for t, w in weights.items()}
    if not any(out.get(t, 1.0) > 0 for t in tasks):
        raise ValueError(f"weights must give at least one task a positive weight, got {weights!r}: the loss would be 0")
    return out


def multitask_loss(outputs, batch_labels, weights=None):
    """sum_t w_t L_t over the tasks of ``batch_labels`` (a dict task -> (batch,) labels), a scalar tensor.

    A binary task t: L_t = -mean over all rows of [y log p + (1 - y) log(1 - p)], computed from
    ``outputs[t + "_logit"]`` (with ESMM, t = "like" is pCTCVR: the entire-space loss). ``rating``:
    L = mean over the rows whose label is not NaN of (r_hat - r)^2, and 0 when the batch has none. ``weights``
    (task -> w >= 0) defaults to 1 for every task. ``outputs`` is a model's ``forward`` dict.

    Introduced in notebooks/16_multitask.ipynb
    """
    if not isinstance(outputs, Mapping):
        raise TypeError(f"outputs must be the dict a multi-task model returns, got {checks.describe(outputs)}")
    if not isinstance(batch_labels, Mapping) or not batch_labels:
        raise TypeError(f"batch_labels must be a non-empty dict task -> labels, got {checks.describe(batch_labels)}")
    labels = {}
    for task, y in batch_labels.items():
        key = task if task in REGRESSION_TASKS else f"{task}_logit"
        if key not in outputs:
            raise ValueError(f"batch_labels has task {task!r} but outputs has no {key!r} to fit; outputs has "
                             f"{sorted(outputs)}")
        pred = outputs[key]
        y = torch.as_tensor(y, dtype=pred.dtype, device=pred.device)
        if y.shape != pred.shape:
            raise ValueError(f"batch_labels[{task!r}] must have shape {tuple(pred.shape)}, got {tuple(y.shape)}")
        if task not in REGRESSION_TASKS and not ((y == 0) | (y == 1)).all():
            raise ValueError(f"batch_labels[{task!r}] must hold only 0 and 1, got other values (a NaN included)")
        if task in REGRESSION_TASKS and torch.isinf(y).any():
            raise ValueError(f"batch_labels[{task!r}] holds inf; expected numbers, NaN where unobserved")
        labels[task] = y
    return _loss(outputs, labels, _weights(weights, labels))[0]


# -- training and prediction ---------------------------------------------------------------------------------------

def _inputs(name: str, X, model) -> np.ndarray:
    x = checks.array(name, X, ndim=2, dtype=np.float32, shape=(None, model.n_features), finite=False, empty=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf at {int((~np.isfinite(x)).sum())} entries; expected finite "
                         "features (FeatureScaler fills NaN)")
    return x


def _labels(name: str, labels, n: int, model) -> dict:
    """Every task of ``model``, each an (n,) float32 array: binary ones in {0, 1}, ``rating`` finite or NaN."""
    if not isinstance(labels, Mapping):
        raise TypeError(f"{name} must be a dict task -> (n,) array, got {checks.describe(labels)}")
    unknown, absent = sorted(map(str, set(labels) - set(model.tasks))), [t for t in model.tasks if t not in labels]
    if unknown or absent:
        raise ValueError(f"{name} must have exactly the model's tasks {list(model.tasks)}; unknown {unknown}, "
                         f"missing {absent}")
    out = {}
    for task in model.tasks:
        where = f"{name}[{task!r}]"
        y = np.asarray(labels[task])
        y = y.astype(np.float32) if y.dtype == bool else y
        y = checks.array(where, y, ndim=1, dtype=np.float32, shape=(n,), finite=False)
        if task in REGRESSION_TASKS:
            if np.isinf(y).any():
                raise ValueError(f"{where} holds inf; expected numbers, NaN where unobserved")
        elif not np.isin(y, (0.0, 1.0)).all():
            bad = y[~np.isin(y, (0.0, 1.0))]
            raise ValueError(f"{where} must hold only 0 and 1, got {bad[0]!r} ({len(bad)} such entries)")
        out[task] = y
    if isinstance(model, ESMM) and (out["like"] > out["click"]).any():
        row = int(np.flatnonzero(out["like"] > out["click"])[0])
        raise ValueError(f"{name}['like'] is 1 where {name}['click'] is 0 (row {row}); ESMM's like is a click's "
                         "conversion, so like <= click")
    return out


def _logit(rate: float) -> float:
    rate = min(max(rate, 1e-4), 1 - 1e-4)
    return math.log(rate / (1 - rate))


def _start_biases(model, labels: dict) -> None:
    """Each head's output bias at the training base rate: log-odds for a binary task, the mean for rating."""
    click = float(labels["click"].mean()) if "click" in labels else 0.0
    with torch.no_grad():
        for name, tower in model.heads.items():
            if name in REGRESSION_TASKS:
                seen = labels[name][~np.isnan(labels[name])]
                value = float(seen.mean()) if len(seen) else 0.0
            elif name == "cvr":  # ESMM: p(like | click) = p(like) / p(click)
                value = _logit(float(labels["like"].mean()) / max(click, 1e-12))
            else:
                value = _logit(float(labels[name].mean()))
            tower[-1].bias.fill_(value)


def fit_multitask(model, X, labels, valid=None, *, epochs: int = 20, batch_size: int = 512, lr: float = 1e-3,
                  weight_decay: float = 0.0, weights=None, seed: int = 0, patience: int | None = 3,
                  init_bias: bool = True, device=None, progress: bool = True):
    """Train a ``SharedBottom``, ``MMoE`` or ``ESMM`` on ``multitask_loss`` for up to ``epochs`` passes.

    ``X``: (n, n_features) float32, already scaled and without NaN (``FeatureScaler``). ``labels``: task -> (n,)
    array for exactly the model's ``tasks``; binary tasks in {0, 1}, ``rating`` NaN where unobserved. Each epoch
    is a seeded shuffle in mini-batches of ``batch_size`` rows; Adam (AdamW with ``weight_decay`` off biases) at
    a constant ``lr``, through ``training.run_training``. With ``valid=(X_valid, labels_valid)`` the valid loss is
    measured before training and after every epoch; training stops after ``patience`` epochs without improvement
    and the best epoch's weights are restored (``patience`` is unused without ``valid``). ``init_bias`` first
    sets every head's output bias to the training base rate (log-odds of each binary task, the mean rating;
    ESMM's CVR head at p(like) / p(click)), so no early epochs go to learning offsets and the rating's MSE does
    not swamp the BCE terms at the start; pass False to continue training a fitted model. ``weights`` are the
    task weights of ``multitask_loss``. ``device`` None: ``"auto"`` (CUDA when present). Deterministic under
    ``seed`` on the CPU (the global generators are left as they were).

    Returns ``(model, history)``: the trained model (in eval mode, on ``device``) and ``run_training``'s
    history, plus ``valid_loss`` (one per evaluation; ``valid`` holds its negative, higher is better),
    ``valid_tasks`` (the per-task valid losses per evaluation), ``best_epoch`` (0: the starting weights),
    ``epochs_run``, ``steps_per_epoch`` and ``rows``.

    Introduced in notebooks/16_multitask.ipynb
    """
    model = _check_model(model)
    x = _inputs("X", X, model)
    y = _labels("labels", labels, len(x), model)
    epochs, batch_size = checks.positive_int("epochs", epochs), checks.positive_int("batch_size", batch_size)
    lr, seed = checks.positive_number("lr", lr), checks.seed("seed", seed)
    weight_decay = checks.non_negative_number("weight_decay", weight_decay)
    w = _weights(weights, model.tasks)
    init_bias, progress = checks.flag("init_bias", init_bias), checks.flag("progress", progress)
    if patience is not None:
        patience = checks.positive_int("patience", patience)
    if valid is not None:
        if not isinstance(valid, (tuple, list)) or len(valid) != 2:
            raise TypeError(f"valid must be a pair (X_valid, labels_valid), got {checks.describe(valid)}")
        xv = _inputs("valid[0]", valid[0], model)
        yv = _labels("valid[1]", valid[1], len(xv), model)
    dev = get_device("auto" if device is None else device)
    if init_bias:
        _start_biases(model, y)
    model.to(dev)
    x_t = torch.from_numpy(x).to(dev)
    y_t = {t: torch.from_numpy(v).to(dev) for t, v in y.items()}
    per_epoch = math.ceil(len(x) / batch_size)
    rng = np.random.default_rng(seed)

    def steps():
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(len(x))).to(dev)
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                yield [(x_t[idx], {t: v[idx] for t, v in y_t.items()})]

    history = {"rows": len(x), "steps_per_epoch": per_epoch, "device": str(dev), "valid_loss": [],
               "valid_tasks": []}
    valid_fn = None
    if valid is not None:
        yv_t = {t: torch.from_numpy(v).to(dev) for t, v in yv.items()}

        def valid_fn(m):
            outputs = _forward_all(m, xv, 4096, dev)
            total, parts = _loss(outputs, yv_t, w)
            history["valid_loss"].append(float(total))
            history["valid_tasks"].append({t: float(v) for t, v in parts.items()})
            return -float(total)

    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    run_training(model, steps(), lambda b: _loss(model(b[0]), b[1], w)[0], optimizer, scheduler,
                 epochs * per_epoch, history, max_grad_norm=None, seed=seed, device=dev, valid_fn=valid_fn,
                 patience=patience if valid is not None else None, eval_every=per_epoch, eval_at_start=True,
                 progress=progress, desc=type(model).__name__)
    # without valid there is no best step: best_epoch is None, and the model is the last one
    history["best_epoch"] = history["best_step"] // per_epoch if history["best_step"] is not None else None
    history["epochs_run"] = history["steps"] / per_epoch
    return model, history


def _forward_all(model, x: np.ndarray, batch_size: int, device) -> dict:
    """The model's outputs on every row of ``x``, batch by batch, without gradients, concatenated."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            parts.append(model(torch.from_numpy(x[start:start + batch_size]).to(device)))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def predict(model, X, batch_size: int = 4096, logits: bool = False) -> dict[str, np.ndarray]:
    """The model's outputs on ``X`` as (n,) float64 arrays, in eval mode (no dropout) and without gradients.

    Keys: ``model.outputs``, i.e. the probability of each binary task (ESMM: ``click`` = pCTR, ``like`` =
    pCTCVR, ``cvr`` = pCVR) and the predicted ``rating``; with ``logits`` also each ``<task>_logit``.

    Introduced in notebooks/16_multitask.ipynb
    """
    model = _check_model(model)
    x = _inputs("X", X, model)
    batch_size = checks.positive_int("batch_size", batch_size)
    logits = checks.flag("logits", logits)
    was_training = model.training
    model.eval()
    try:
        out = _forward_all(model, x, batch_size, next(model.parameters()).device)
    finally:
        model.train(was_training)
    keep = [k for k in out if k in model.outputs or (logits and k.endswith("_logit"))]
    return {k: out[k].double().cpu().numpy() for k in keep}
