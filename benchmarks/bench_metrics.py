"""Full-ranking evaluation speed: recsuite.evaluation.metrics against implicit.evaluation.ranking_metrics_at_k.

Same ALS model, same split (the suite's test set, train+valid masked), same task: score all 943 x 1682
user-item pairs, take the top 10 per user with seen items masked, compute the metrics. Prints the
best-of-N wall time of each, with its default threads (recsuite: ``topk_from_scores`` ranks blocks of
users in a pool of threads, one per usable core; implicit: all cores) and with one thread, and the ratios
(> 1 means recsuite is faster). Target: >= 3x against implicit on all cores, its default. Asserts that
both report the same NDCG@10. Run: `make bench`.
"""

import contextlib
import os
import time

from threadpoolctl import threadpool_limits

from recsuite.data.split import load_protocol
from recsuite.evaluation import metrics as M

REPEATS = 7
TARGET = 3.0


def best_of(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


@contextlib.contextmanager
def one_thread():
    """One BLAS thread and one ranking thread in recsuite (``OMP_NUM_THREADS=1``, read on each call)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with threadpool_limits(1):
            yield
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before


def main():
    import implicit
    from implicit.evaluation import ranking_metrics_at_k

    proto = load_protocol()
    history, truth = proto.history("test").tocsr(), proto.csr("test")
    with threadpool_limits(1, "blas"):
        model = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=10, random_state=0)
        model.fit(history, show_progress=False)

    def ours():
        scores = model.user_factors @ model.item_factors.T
        topk = M.topk_from_scores(scores, 10, seen=history)
        return M.evaluate(topk, truth, k=10)

    def peer(threads):
        return ranking_metrics_at_k(model, history, truth, K=10, show_progress=False, num_threads=threads)

    threads = M._row_blocks(*history.shape)[1]
    ours(), peer(0)  # warm-up
    t_ours, r_ours = best_of(ours)
    with one_thread():
        assert M._row_blocks(*history.shape)[1] == 1
        t_ours1, r_ours1 = best_of(ours)
    assert r_ours1 == r_ours, (r_ours1, r_ours)  # the thread count never changes a result
    print(f"recsuite topk_from_scores + evaluate ({threads} thread{'s' * (threads > 1)}, its default): "
          f"{t_ours * 1e3:8.1f} ms  ndcg@10={r_ours['ndcg@10']:.4f}")
    print(f"recsuite topk_from_scores + evaluate (1 thread): {t_ours1 * 1e3:8.1f} ms  ndcg@10={r_ours1['ndcg@10']:.4f}")
    for n, label, mine in ((0, "all cores, its default", t_ours), (1, "1 thread", t_ours1)):
        t_peer, r_peer = best_of(lambda n=n: peer(n))
        print(f"implicit {implicit.__version__} ranking_metrics_at_k ({label}): {t_peer * 1e3:8.1f} ms  "
              f"ndcg@10={r_peer['ndcg']:.4f}")
        target = f">= {TARGET:g}x" if n == 0 else "> 1"
        print(f"  speed ratio (implicit {label} / recsuite {'default' if n == 0 else '1 thread'}): "
              f"{t_peer / mine:.2f}x  (target {target})")
        # Same lists, same NDCG definition; implicit's precision divides by min(k, |rel|), RecBole's (ours) by k.
        assert abs(r_peer["ndcg"] - r_ours["ndcg@10"]) < 1e-6, (r_peer["ndcg"], r_ours["ndcg@10"])


if __name__ == "__main__":
    main()
