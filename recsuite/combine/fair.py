"""Re-ranking for fair exposure of item groups: FA*IR's protected-share tables and greedy re-ranker (``fa_ir``), and
Calibrated Popularity (``calibrated_popularity``), which matches a list's popularity mix to the user's history.

Both re-rankers share the signature and the knob of ``recsuite.combine.rerank``: ``cand_items`` / ``cand_scores``
are int / float (n_users, M) candidates, usually sorted by score; ``lam`` in [0, 1], and **lam = 0 is the score
order** (the top-k candidates by score, equal scores to the earlier candidate); a larger lam moves further
toward the goal, up to lam = 1. Scores are used as given: rescale them with
``recsuite.combine.fusion.normalize_scores(cand_scores, "minmax")`` first where the re-ranker mixes them with
another term (Calibrated Popularity does; FA*IR only compares scores). Each returns an int64 (n_users, k) array of
item indices, best first. The greedy loops run over the k output positions; each step is one masked argmax over
a block of users.

``adjusted_mtable`` needs the optional ``fairsearchcore`` package (the ``fair`` extra).

Introduced in notebooks/15_fairness.ipynb
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
from scipy.special import rel_entr
from scipy.stats import binom

from recsuite.combine import batching
from recsuite.combine.batching import blocks, check_candidates, distribution_rows
from recsuite.combine.candidates import user_genre_distribution
from recsuite.core import checks as C
from recsuite.core import optional

__all__ = [
    "adjusted_mtable",
    "calibrated_popularity",
    "fa_ir",
    "fair_mtable",
    "fairsearchcore_fa_ir",
    "group_distribution",
]


# -- FA*IR's tables -------------------------------------------------------------------------------------
def _table_args(k, p, alpha) -> tuple[int, float, float]:
    k = C.positive_int("k", k)
    p = C.number("p", p, low=0.0, high=1.0)
    alpha = C.number("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
    return k, p, alpha


def fair_mtable(k: int, p: float, alpha: float = 0.1) -> np.ndarray:
    """FA*IR's minimum number of protected items in each prefix 1..k of a ranking (Zehlike et al. 2017, "FA*IR: A
    Fair Top-k Ranking Algorithm", CIKM).

    m(i) = F⁻¹(α; i, p), the α-quantile of Binomial(i, p): the fewest protected items among the top i that a
    one-sided binomial test at level α still accepts as drawn with proportion p. Each prefix is tested at the
    unadjusted α (``adjusted_mtable`` corrects for testing k prefixes). p = 0 gives all zeros, p = 1 gives
    m(i) = i. Returns int64 (k,), m(1) first; non-decreasing in i and in p.

    Introduced in notebooks/15_fairness.ipynb
    """
    k, p, alpha = _table_args(k, p, alpha)
    if p == 0.0:
        return np.zeros(k, dtype=np.int64)
    m = binom.ppf(alpha, np.arange(1, k + 1), p)
    return np.maximum(m, 0).astype(np.int64)


# fairsearchcore 1.0.4 memoises its fail probabilities in a dict keyed by LegalAssignmentKey, whose __hash__ adds
# up candidate counts that come from a pandas column's sum: a NumPy int64, not a Python int, so Python refuses the
# hash ("TypeError: __hash__ method should return an integer") and no adjusted table can be computed. The hash
# below is of the same fields that the key's __eq__ compares, so equal keys still hash alike and the memo — and
# the table — are what fairsearchcore computes where its hash works. It is swapped in only for the call (one
# call at a time) and the original is put back, so fairsearchcore is left as it was found.
_HASH_LOCK = threading.Lock()


@contextmanager
def _integer_hash(fail_prob):
    key = fail_prob.LegalAssignmentKey
    with _HASH_LOCK:
        original = key.__dict__["__hash__"]
        key.__hash__ = lambda self: hash((int(self.remaining_candidates), len(self.remaining_block_sizes),
                                          int(self.current_block_number), int(self.candidates_assigned_so_far)))
        try:
            yield
        finally:
            key.__hash__ = original


def adjusted_mtable(k: int, p: float, alpha: float = 0.1) -> np.ndarray:
    """FA*IR's table with α adjusted for testing k prefixes (Zehlike et al. 2017, Algorithm 2), by ``fairsearchcore``.

    Testing every prefix at level α fails a fair ranking (protected items drawn i.i.d. with probability p) more
    often than α. The adjusted table is ``fair_mtable(k, p, α_c)`` for the corrected α_c <= α whose overall fail
    probability is closest to α (found by bisection on α_c, the fail probability computed exactly). As
    α_c <= α and the quantile grows with α, it is elementwise <= ``fair_mtable(k, p, alpha)``: a stricter test
    per prefix asks for fewer protected items. ``fairsearchcore`` (the ``fair`` extra) computes it, exactly as
    its ``Fair(k, p, alpha).create_adjusted_mtable()``, which its authors tested for 10 <= k <= 400,
    0.02 <= p <= 0.98, 0.01 <= alpha <= 0.15; pure Python, k = 100 takes ~1.5 s. Its fail probability leaves
    out prefix k (``compute_aux_mtable`` stops at k − 1), so over all k prefixes the table can fail a fair
    ranking a little more often than α (k = 10, p = .5, α = .1: 0.111). Returns int64 (k,).

    Introduced in notebooks/15_fairness.ipynb
    """
    k, p, alpha = _table_args(k, p, alpha)
    fsc = optional.require("fairsearchcore", "fair")
    with _integer_hash(fsc.fail_prob):
        table = fsc.mtable_generator.MTableGenerator(k, p, alpha, True).mtable_as_list()
    return np.asarray(table, dtype=np.int64)


# -- FA*IR's re-ranker ----------------------------------------------------------------------------------
def _item_array(name: str, value, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (n_items,) of {what}, got shape {a.shape}")
    return a


def _check_items_within(items: np.ndarray, name: str, n_items: int) -> None:
    if items.size and int(items.max()) >= n_items:
        raise ValueError(f"{name} has {n_items} entries but cand_items holds item index {int(items.max())}; "
                         "expected one entry per item of the catalogue (n_items,)")


def _fa_ir_args(cand_items, cand_scores, protected, k):
    prot = _item_array("protected", protected, "booleans")
    if prot.dtype != bool:
        raise TypeError(f"protected must be a boolean mask (n_items,), got {C.describe(prot)}")
    items, scores, k = check_candidates(cand_items, cand_scores, k, None)
    _check_items_within(items, "protected", len(prot))
    return prot, items, scores, k


def fa_ir(cand_items, cand_scores, protected, k: int, lam: float, alpha: float = 0.1,
          adjust: bool = False) -> np.ndarray:
    """FA*IR re-ranking (Zehlike et al. 2017, CIKM, Algorithm 1), greedily for all users at once.

    ``protected`` is a boolean (n_items,) mask (in the lesson: the long-tail items), ``lam`` = p, the target
    minimum proportion of protected items, and m = ``fair_mtable(k, lam, alpha)`` (``adjusted_mtable`` with
    ``adjust=True``). At position i, while the list holds fewer than m(i) protected items, the best remaining
    protected candidate is taken; otherwise the best remaining candidate. When no protected candidate remains,
    the best remaining candidate is taken, so the list then falls short of m where the candidates do. Every
    prefix of the list thus holds at least m(i) protected items whenever the candidates have them; lam = 0
    (m = 0) is the score order; lam = 1 (m(i) = i) puts every protected candidate first, by score. "Best" is by
    score, equal scores to the earlier candidate, also between a protected and a non-protected candidate.

    ``fairsearchcore``'s ``Fair(k, p, alpha).re_rank`` picks the same items in the same order, with two
    differences: it uses the adjusted table (``adjust=True``), and at a position where the table is met it
    gives equal scores to the protected candidate, here to the earlier one (which keeps lam = 0 the score
    order). It also takes each group's candidates in their input order, as if sorted; here scores decide.

    Introduced in notebooks/15_fairness.ipynb
    """
    prot, items, scores, k = _fa_ir_args(cand_items, cand_scores, protected, k)
    lam = C.number("lam", lam, low=0.0, high=1.0)
    adjust = C.flag("adjust", adjust)
    table = adjusted_mtable(k, lam, alpha) if adjust and lam > 0 else fair_mtable(k, lam, alpha)
    n_users, m = items.shape
    out = np.empty((n_users, k), dtype=np.int64)
    size = max(1, batching.BLOCK_BYTES // (m * 8 * 4))
    for rows in blocks(n_users, size):
        it, s = items[rows], scores[rows]
        ar = np.arange(len(it))
        pc = prot[it]  # (B, M): is the candidate protected
        free = np.ones(it.shape, dtype=bool)  # not taken yet
        count = np.zeros(len(it), dtype=np.int64)  # protected items in the list so far
        for t in range(k):
            need = (count < table[t]) & (free & pc).any(axis=1)
            allowed = free & (pc | ~need[:, None])
            pos = np.where(allowed, s, -np.inf).argmax(axis=1)  # equal scores: the earlier candidate
            out[rows, t] = it[ar, pos]
            free[ar, pos] = False
            count += pc[ar, pos]
    return out


# -- Calibrated Popularity ------------------------------------------------------------------------------
def fairsearchcore_fa_ir(cand_items, cand_scores, protected, k: int, lam: float, alpha: float = 0.1) -> np.ndarray:
    """FA*IR by its authors' package, ``fairsearchcore`` (``Fair(k, lam, alpha).re_rank``, the adjusted table): the
    reference that ``fa_ir(..., adjust=True)`` is checked against, one user at a time.

    Same arguments and output as ``fa_ir``; ``lam`` must lie in (0, 1), where fairsearchcore defines p. Each
    user's candidates go in as ``FairScoreDoc(item, score, protected)``; the table is built once per call. Its
    tie rule differs from ``fa_ir``'s (see there) only where a protected and a non-protected candidate have equal
    scores. A Python loop over users: a reference for checking, not for serving.

    Introduced in notebooks/15_fairness.ipynb
    """
    prot, items, scores, k = _fa_ir_args(cand_items, cand_scores, protected, k)
    lam = C.number("lam", lam, low=0.0, high=1.0, low_open=True, high_open=True)
    k, lam, alpha = _table_args(k, lam, alpha)
    fsc = optional.require("fairsearchcore", "fair")
    out = np.empty((items.shape[0], k), dtype=np.int64)
    with _integer_hash(fsc.fail_prob):
        ranker = fsc.Fair(k, lam, alpha)
        for u in range(items.shape[0]):
            docs = [fsc.models.FairScoreDoc(int(i), float(x), bool(prot[i])) for i, x in zip(items[u], scores[u])]
            out[u] = [d.id for d in ranker.re_rank(docs)[:k]]
    return out


def _check_groups(item_groups) -> np.ndarray:
    g = _item_array("item_groups", item_groups, "group ids")
    if g.dtype == bool or not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"item_groups must be an int array (n_items,) of group ids, got {C.describe(g)}")
    if g.size and int(g.min()) < 0:
        raise ValueError(f"item_groups must hold group ids >= 0 (0, 1, ... e.g. head/mid/tail), got {int(g.min())}")
    return g.astype(np.int64)


def group_distribution(history, item_groups, n_groups: int | None = None) -> np.ndarray:
    """Each user's share of history items per item group: float32 (n_users, G), rows summing to 1.

    ``history`` is a users x items sparse matrix; each item with a non-zero entry counts once, whatever its value
    (a rating is not a weight). ``item_groups`` holds each item's group id in [0, G) (e.g. 0/1/2 for head/mid/
    tail, ``recsuite.evaluation.breakdown.item_popularity_bucket(...).cat.codes``); G = ``n_groups``, or the
    largest id + 1. A user without history gets a row of zeros, and from ``calibrated_popularity`` the score order.
    The P_u of Abdollahpouri et al. 2021, ``user_genre_distribution`` with one group per item.

    Introduced in notebooks/15_fairness.ipynb
    """
    h = C.binary_truth("history", history)
    g = _check_groups(item_groups)
    if len(g) != h.shape[1]:
        raise ValueError(f"item_groups has {len(g)} entries but history has {h.shape[1]} item columns; "
                         "expected one group id per item")
    top = int(g.max()) + 1 if g.size else 0
    if n_groups is None:
        n_groups = top
    else:
        n_groups = C.positive_int("n_groups", n_groups)
        if top > n_groups:
            raise ValueError(f"item_groups holds group id {top - 1}, outside [0, {n_groups}) for n_groups={n_groups}")
    return user_genre_distribution(h, np.eye(n_groups, dtype=np.float32)[g])


def _js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (natural log, in [0, ln 2]) over the last axis; 0·log 0 = 0."""
    m = 0.5 * (p + q)
    return 0.5 * (rel_entr(p, m) + rel_entr(q, m)).sum(axis=-1)


def calibrated_popularity(cand_items, cand_scores, item_groups, user_group_dist, k: int, lam: float) -> np.ndarray:
    """Calibrated Popularity (Abdollahpouri, Mansoury, Burke, Mobasher & Malthouse 2021, "User-centered Evaluation
    of Popularity Bias in Recommender Systems", UMAP), greedily for all users at once.

    Each step adds the candidate i maximising (1 − λ)·s_i − λ·JS(P_u ‖ Q(S ∪ {i})): P_u the user's history
    distribution over the item groups (rows of ``user_group_dist``, normalised; ``group_distribution`` makes
    them), Q(L) the share of each group among the items of list L (``item_groups``: one int id per item, e.g.
    head/mid/tail = 0/1/2), JS the Jensen–Shannon divergence (natural log, so in [0, ln 2]; finite where KL is
    not). As in ``recsuite.combine.objectives.calibrate``, Σ_{j∈S} s_j is the same for every candidate and left
    out. lam = 0 is the score order; lam = 1 only matches the popularity mix, the best-scored candidate among
    those that bring Q equally close. Equal objectives go to the better score, then the earlier candidate. A
    user whose row of ``user_group_dist`` is all zero (no history) has JS 0 and gets the score order.
    Pass min-max rescaled scores (``normalize_scores(cand_scores, "minmax")``), so that both terms lie in [0, 1].

    Introduced in notebooks/15_fairness.ipynb
    """
    groups = _check_groups(item_groups)
    items, scores, k = check_candidates(cand_items, cand_scores, k, None)
    _check_items_within(items, "item_groups", len(groups))
    p = distribution_rows("user_group_dist", user_group_dist)
    n_users, m = items.shape
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if p.shape[0] != n_users or p.shape[1] < n_groups:
        raise ValueError(f"user_group_dist must have shape (n_users, G) = ({n_users}, G) with G > {n_groups - 1}, "
                         f"the largest id in item_groups; got {p.shape}")
    lam = C.number("lam", lam, low=0.0, high=1.0)
    g_count = p.shape[1]
    out = np.empty((n_users, k), dtype=np.int64)
    size = max(1, batching.BLOCK_BYTES // (8 * max(m * 4, g_count * g_count)))
    eye = np.eye(g_count)
    for rows in blocks(n_users, size):
        it, s, pu = items[rows], scores[rows], p[rows]
        ar = np.arange(len(it))
        gc = groups[it]  # (B, M): each candidate's group
        has = pu.sum(axis=1) > 0  # users without history: JS 0, the score order
        counts = np.zeros((len(it), g_count))
        free = np.ones(it.shape, dtype=bool)
        for t in range(k):
            # a candidate of group g makes Q = (counts + e_g) / (t + 1): one JS per user and group, not per candidate
            js = _js(pu[:, None, :], (counts[:, None, :] + eye) / (t + 1)) * has[:, None]  # (B, G)
            obj = np.where(free, (1.0 - lam) * s - lam * js[ar[:, None], gc], -np.inf)
            best = obj == obj.max(axis=1, keepdims=True)
            pos = np.where(best, s, -np.inf).argmax(axis=1)  # equal objectives: the better score, then earlier
            out[rows, t] = it[ar, pos]
            free[ar, pos] = False
            counts[ar, gc[ar, pos]] += 1.0
    return out
