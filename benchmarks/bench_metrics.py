"""Full-ranking evaluation speed: recsuite.evaluation.metrics against implicit.evaluation.ranking_metrics_at_k.

Same ALS model, same split (the suite's test set, train+valid masked), same task: score all 943 x 1682
user-item pairs, take the top 10 per user with seen items masked, compute the metrics. Prints the
best-of-N wall time of each and the ratio (> 1 means recsuite is faster). Run: `make bench`.
"""

import time

from threadpoolctl import threadpool_limits

from recsuite.data.split import load_protocol
from recsuite.evaluation import metrics as M

REPEATS = 7


def best_of(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


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

    ours(), peer(0)  # warm-up
    t_ours, r_ours = best_of(ours)
    print(f"recsuite topk_from_scores + evaluate (1 thread): {t_ours * 1e3:8.1f} ms  ndcg@10={r_ours['ndcg@10']:.4f}")
    for threads, label in ((0, "all cores, its default"), (1, "1 thread")):
        t_peer, r_peer = best_of(lambda: peer(threads))
        print(f"implicit {implicit.__version__} ranking_metrics_at_k ({label}): {t_peer * 1e3:8.1f} ms  ndcg@10={r_peer['ndcg']:.4f}")
        print(f"  speed ratio (implicit time / recsuite time): {t_peer / t_ours:.2f}x  (target > 1)")
    # Same lists, same NDCG definition; implicit's precision divides by min(k, |rel|), RecBole's (ours) by k.
    assert abs(r_peer["ndcg"] - r_ours["ndcg@10"]) < 1e-6, (r_peer["ndcg"], r_ours["ndcg@10"])


if __name__ == "__main__":
    main()
