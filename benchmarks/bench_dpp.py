"""Re-ranking speed: batched recsuite.combine.rerank.dpp against the same greedy DPP run user by user (dpp_single).

MovieLens-100K sized synthetic task (seeded): 943 users, 200 distinct random candidates each from 1682 items
with 384-d random unit vectors, normally distributed scores, k = 10, DPP lam = 0.3 (Chen et al.'s θ = 1 − lam =
0.7). The peer is ``recsuite.combine.rerank.dpp_single``, the plain per-user implementation of the same algorithm
(Chen, Zhang & Zhou 2018), called in a Python loop over users. Both run with one BLAS thread in this process and must return
identical lists. Prints the best-of-N wall time of each, the ratio measured in this run against the target
(>= 30x, the project's performance issue), and batched MMR for comparison.
Run: `.venv/bin/python benchmarks/bench_dpp.py`.
"""

import time

import numpy as np
from threadpoolctl import threadpool_limits

from recsuite.combine import rerank as R

N_USERS, N_ITEMS, M, DIM, K, DPP_LAM, MMR_LAM = 943, 1682, 200, 384, 10, 0.3, 0.5
REPEATS = 5
SEED = 0
TARGET_RATIO = 30.0  # per-user time / batched time


def best_of(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def make_task(seed=SEED):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # argsort of uniform noise: each row a distinct random subset of the catalogue, in random order
    cand_items = np.argsort(rng.random((N_USERS, N_ITEMS)), axis=1)[:, :M]
    cand_scores = rng.standard_normal((N_USERS, M))
    return cand_items, cand_scores, vectors


def main():
    cand_items, cand_scores, vectors = make_task()

    def batched():
        return R.dpp(cand_items, cand_scores, vectors, K, DPP_LAM)

    def per_user():
        return np.stack([R.dpp_single(i, s, vectors, K, DPP_LAM) for i, s in zip(cand_items, cand_scores)])

    def mmr():
        return R.mmr(cand_items, cand_scores, vectors, K, MMR_LAM)

    with threadpool_limits(1, "blas"):
        batched(), per_user(), mmr()  # warm-up
        t_batch, out_batch = best_of(batched)
        t_user, out_user = best_of(per_user)
        t_mmr, _ = best_of(mmr)
    assert np.array_equal(out_batch, out_user), "batched dpp and dpp_single disagree"

    print(f"task: {N_USERS} users x {M} candidates -> top {K}, {N_ITEMS} items, d={DIM}, DPP lam={DPP_LAM}, "
          "1 BLAS thread")
    rows = [("recsuite.combine.rerank.dpp (batched over users)", t_batch),
            ("recsuite.combine.rerank.dpp_single, loop over users", t_user),
            (f"recsuite.combine.rerank.mmr (batched, lam={MMR_LAM})", t_mmr)]
    for label, t in rows:
        print(f"{label:46s}{t * 1e3:8.1f} ms  ({t / N_USERS * 1e3:.3f} ms/user)")
    ratio = t_user / t_batch
    verdict = "met" if ratio >= TARGET_RATIO else "not met"
    print(f"  dpp speed ratio (per-user time / batched time): {ratio:.2f}x  (target >= {TARGET_RATIO:g}x: {verdict})")


if __name__ == "__main__":
    main()
