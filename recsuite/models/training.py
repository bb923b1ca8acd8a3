"""Training shared by the two-tower model and the cross-encoder: the one loop (``run_training`` over
``optimizer_step``: accumulation, a non-finite loss refused, clipping of the trainable weights, the schedule,
early stopping), the linear warm-up schedule, AdamW parameter groups, parameter counts.

Introduced in notebooks/09_finetuning.ipynb
"""

from __future__ import annotations

import math
import time

import numpy as np

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.core.progress import tqdm

torch = require("torch", "text")



def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; a weight shared by both towers is counted once.

    Introduced in notebooks/09_finetuning.ipynb
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {checks.describe(model)}")
    params = list(model.parameters())  # parameters() already de-duplicates shared tensors
    return int(sum(p.numel() for p in params if p.requires_grad)), int(sum(p.numel() for p in params))



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

    The BERT convention (Devlin et al. 2019): no weight decay on biases and LayerNorm weights, recognised as the
    1-D parameters whatever their names (``norm1`` in SASRec, ``LayerNorm`` in BERT).

    Introduced in notebooks/09_finetuning.ipynb
    """
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or n.endswith("bias") else decay).append(p)
    groups = ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


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




def check_valid_fn(valid_fn, patience) -> None:
    """``valid_fn`` is None or a callable ``model -> float``; ``patience`` needs one."""
    if valid_fn is not None and not callable(valid_fn):
        raise TypeError(f"valid_fn must be a callable model -> float, got {checks.describe(valid_fn)}")
    if patience is not None and valid_fn is None:
        raise ValueError("patience needs valid_fn: early stopping watches the validation metric")


def optimizer_step(model, micro_batches, loss_fn, optimizer, scheduler, max_grad_norm: float | None) -> dict:
    """One optimisation step: ``loss_fn(micro_batch)`` for each gradient-accumulation micro-batch, backward on the
    loss divided by their number (the gradient of their mean), a non-finite loss refused, the trainable weights'
    gradient clipped at ``max_grad_norm`` (None: no clipping), then the optimiser and schedule steps.

    Returns ``{"loss", "lr"}``: the step's mean loss and the learning rate it used.

    Introduced in notebooks/09_finetuning.ipynb
    """
    if max_grad_norm is not None:
        max_grad_norm = checks.positive_number("max_grad_norm", max_grad_norm)  # <= 0 would flip or zero the step
    micro = list(micro_batches)
    if not micro:
        raise ValueError("micro_batches must hold at least one micro-batch, got none")
    lr = float(scheduler.get_last_lr()[0])
    step_loss = 0.0
    for batch in micro:
        loss = loss_fn(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {scheduler.last_epoch}; lower lr (now {lr})")
        (loss / len(micro)).backward()
        step_loss += float(loss.detach()) / len(micro)
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": step_loss, "lr": lr}


def run_training(model, steps, loss_fn, optimizer, scheduler, total: int, history: dict, *, max_grad_norm,
                 seed: int, device, valid_fn=None, patience=None, eval_every: int = 1, eval_at_start: bool = True,
                 progress: bool = True, desc: str = "train") -> dict:
    """The one training loop of the package (the two-tower model, the cross-encoder): ``total`` calls of
    ``optimizer_step`` on the micro-batch lists that ``steps`` yields, under ``seed`` (the global torch generator
    is left as it was), with early stopping.

    ``valid_fn(model) -> float`` (higher is better) runs at the start (``eval_at_start``), every ``eval_every``
    steps and at the end; training stops after ``patience`` evaluations without improvement (None: never) and
    the best evaluation's trainable weights are restored (the start counts, so training that never helps gives
    the untrained model back). ``history`` gets ``loss`` and ``lr`` per step, ``valid_step``/``valid``,
    ``best_step``, ``best_valid``, ``stopped_early``, ``steps``, ``wall_time_s``, ``train_time_s`` (without
    evaluation) and ``eval_time_s``; the model is left in eval mode.

    Introduced in notebooks/09_finetuning.ipynb
    """
    check_valid_fn(valid_fn, patience)
    progress = checks.flag("progress", progress)
    total = checks.positive_int("total", total)
    eval_every = checks.positive_int("eval_every", eval_every)
    if patience is not None:
        patience = checks.positive_int("patience", patience)
    if not isinstance(history, dict):
        raise TypeError(f"history must be a dict the loop fills, got {checks.describe(history)}")
    for key in ("loss", "lr", "valid_step", "valid"):
        history.setdefault(key, [])
    history.setdefault("best_step", None)
    history.setdefault("best_valid", None)
    history["stopped_early"] = False
    stopper = EarlyStopping(model, valid_fn, patience, history)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    t0, step, ema, stop = time.perf_counter(), 0, None, False
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model.train()
        if valid_fn is not None and eval_at_start:
            stopper(0)
        bar = tqdm(total=total, desc=desc, unit="step", disable=not progress)
        for micro in steps:
            out = optimizer_step(model, micro, loss_fn, optimizer, scheduler, max_grad_norm)
            step += 1
            history["loss"].append(out["loss"])
            history["lr"].append(out["lr"])
            ema = out["loss"] if ema is None else 0.9 * ema + 0.1 * out["loss"]
            bar.update(1)
            if valid_fn is not None and (step % eval_every == 0 or step == total):
                stop = stopper(step)
                history["stopped_early"] = stop and step < total
            best = {} if history["best_valid"] is None else {"best": f"{history['best_valid']:.4f}"}
            bar.set_postfix({"loss": f"{ema:.3f}", **best})
            if stop or step >= total:
                break
        bar.close()
    wall = time.perf_counter() - t0
    stopper.restore()
    model.eval()
    history.update(steps=step, wall_time_s=wall, train_time_s=max(wall - stopper.seconds, 1e-9),
                   eval_time_s=stopper.seconds)
    return history
