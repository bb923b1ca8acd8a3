"""InfoNCE with in-batch negatives (van den Oord et al. 2018), optional hard negatives and the logQ correction
(Yi et al. 2019) that keeps popular items from being over-punished as negatives.

Introduced in notebooks/09_finetuning.ipynb
"""

from __future__ import annotations

from recsuite.core import checks
from recsuite.core.optional import require

torch = require("torch", "text")


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
    temperature = checks.positive_number("temperature", temperature)
    for name, t in (("q", q), ("p", p)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a 2-D torch tensor (batch, d), got {checks.describe(t)}")
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


