"""Zero-shot candidate scoring: recsuite.models.llmrank.LMScorer (the prompts' common start once, then per user one
forward pass over the rest of the prompt with all candidates packed after it, logits only where a candidate
token is predicted) against one forward pass per candidate.

Both score the same USERS valid users' top-M fused candidates (notebook 05's blend, M = 20) by the
log-likelihood of each title after the user's history prompt (notebook 10), with the packaged
SmolLM2-135M-Instruct on the CPU in fp32. The peer is the textbook loop: prompt + candidate through the
model once per candidate (``method="naive"``, the same code path a reader would write). Each is warmed up
once, then the runs alternate and the best of REPEATS is kept. Prints both times, the speed ratio (naive
time / KV time; target >= 10) and the largest log-likelihood difference (target <= 1e-4). Run: `make bench`.
"""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recsuite.course import artifacts  # noqa: E402
from recsuite.data.movielens import load_movielens_100k  # noqa: E402
from recsuite.data.split import load_protocol  # noqa: E402
from recsuite.models import llmrank, semantic

USERS = 4
M = 20
REPEATS = 2


def prompts():
    proto, ml = load_protocol(), load_movielens_100k()
    items = ml.items.set_index("item_id").loc[proto.index.item_ids].reset_index()
    label = np.array(semantic.item_text(items, "{title}[ ({year})]"), dtype=object)
    users = np.random.default_rng(0).choice(np.flatnonzero(np.diff(proto.csr("valid").indptr) > 0), USERS,
                                            replace=False)
    cands = proto.rank(artifacts.fused_scores("valid", protocol=proto), "valid", M)[users]
    history = proto.sequences("valid")  # per user, oldest first
    messages = [llmrank.history_message(list(label[history[u]])) for u in users]
    return messages, [list(label[row]) for row in cands]


def main():
    messages, cands = prompts()
    scorer = llmrank.LMScorer(device="cpu")

    def run(method):
        start = time.perf_counter()
        out = scorer.loglik(messages, cands, method=method, progress=False)
        return time.perf_counter() - start, out

    run("kv"), run("naive")  # warm-up: model load, allocator and kernel caches
    t_kv, t_naive = [], []
    for _ in range(REPEATS):
        t, kv = run("kv")
        t_kv.append(t)
        t, naive = run("naive")
        t_naive.append(t)
    gap = float(np.abs(kv.total - naive.total).max())
    best_kv, best_naive = min(t_kv), min(t_naive)
    print(f"{USERS} users x {M} candidates, {scorer.source.split('/')[-1]}, fp32, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads")
    print(f"recsuite LMScorer (prompt once, candidates packed): {best_kv:6.2f} s  (runs: "
          f"{', '.join(f'{t:.2f}' for t in t_kv)})")
    print(f"one forward pass per candidate (naive):           {best_naive:6.2f} s  (runs: "
          f"{', '.join(f'{t:.2f}' for t in t_naive)})")
    print(f"  speed ratio (naive time / KV time): {best_naive / best_kv:.2f}x  (target >= 10)")
    print(f"  largest log-likelihood difference: {gap:.2e}  (target <= 1e-4)")
    assert gap <= 1e-4, gap


if __name__ == "__main__":
    main()
