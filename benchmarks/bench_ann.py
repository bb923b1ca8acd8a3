"""Approximate nearest-neighbour search: recsuite.serving.ann's HNSW and IVF-PQ indexes against exact search.

A synthetic catalogue of N unit vectors (default 200,000 x 384, the size of a MiniLM item catalogue; set N
as the first argument or BENCH_ANN_ITEMS) and 1,000 queries from the same mixture (recsuite.serving.ann.
synthetic_catalogue, seed 0). recsuite.serving.ann.sweep builds each index once (default build parameters) and
runs one batched search of all queries per runtime setting (HNSW ef_search 16..256, IVF-PQ nprobe 1..64),
best of REPEATS; recall@10 is against exact faiss search, ties at the 10th place counted as found.

Two named peers for exact top-10 by inner product, run in the same process: faiss IndexFlatIP (the sweep's
"exact" row) and NumPy (queries @ items.T in blocks of 250 queries, argpartition, then a sort of the 10).
Prints the table, then for each approximate index its fastest setting with recall@10 >= 0.9 and the
speed-up over each peer (peer ms per query / index ms per query; > 1 means the index is faster), or says
that no setting reached 0.9. Asserts that no index reports recall above exact search. Run: `make bench`.
"""

import os
import sys
import time

import faiss
import numpy as np
import pandas as pd

from recsuite.serving import ann

DIM = 384
N_QUERIES = 1000
K = 10
REPEATS = 2
TARGET_RECALL = 0.9
NUMPY_BLOCK = 250  # queries per matmul: a 250 x 200,000 float32 score block is 200 MB


def numpy_topk(items, queries, k):
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), NUMPY_BLOCK):
        scores = queries[start:start + NUMPY_BLOCK] @ items.T
        top = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]  # the k largest, unordered
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        ids[start:start + NUMPY_BLOCK] = np.take_along_axis(top, order, axis=1)
    return ids


def main(n_items):
    start = time.perf_counter()
    items, queries = ann.synthetic_catalogue(n_items, DIM, N_QUERIES, seed=0)
    gen_s = time.perf_counter() - start
    print(f"{n_items:,} items x {DIM}, {N_QUERIES:,} queries (synthetic_catalogue, {gen_s:.1f} s), k={K}, "
          f"faiss {faiss.__version__} on {faiss.omp_get_max_threads()} threads, best of {REPEATS}")

    start = time.perf_counter()
    table = ann.sweep(items, queries, ann.DEFAULT_SWEEP, k=K, repeats=REPEATS)
    sweep_s = time.perf_counter() - start

    numpy_ms = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        numpy_ids = numpy_topk(items, queries, K)
        numpy_ms.append(1000.0 * (time.perf_counter() - start) / N_QUERIES)
    # The NumPy peer is exact too: it must agree with faiss's exact search (up to ties).
    exact_ids, exact_scores = ann.search(ann.build_index(items, "exact"), queries, K)
    exact_true = ann.scores_of(items, queries, exact_ids)
    numpy_recall = ann.recall_at_k(numpy_ids, exact_ids, K, found_scores=ann.scores_of(items, queries, numpy_ids),
                                   exact_scores=exact_true)
    numpy_row = {"index": "numpy", "kind": "exact", "setting": "matmul+argpartition", "build_s": 0.0,
                 "bytes": items.nbytes, "bytes_per_vector": items.nbytes / n_items, f"recall@{K}": numpy_recall,
                 "ms_per_query": min(numpy_ms), "queries_per_s": 1000.0 / min(numpy_ms)}
    shown = pd.concat([table, pd.DataFrame([numpy_row])], ignore_index=True)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(shown.to_string(index=False))
    print(f"sweep: {sweep_s:.1f} s in all")

    recall = f"recall@{K}"
    exact = table[table["kind"] == "exact"].iloc[0]
    print(f"peers: faiss IndexFlatIP {exact['ms_per_query']:.3f} ms/query, NumPy {min(numpy_ms):.3f} ms/query "
          f"(NumPy / faiss time: {min(numpy_ms) / exact['ms_per_query']:.2f}x)")
    for label, rows in table[table["kind"] != "exact"].groupby("index", sort=False):
        good = rows[rows[recall] >= TARGET_RECALL]
        if good.empty:
            print(f"  {label}: no setting reaches recall@{K} >= {TARGET_RECALL} (best {rows[recall].max():.3f})")
            continue
        best = good.loc[good["ms_per_query"].idxmin()]
        print(f"  {label} at {best['setting']}: recall@{K} {best[recall]:.3f}, {best['ms_per_query']:.3f} ms/query, "
              f"speed-up {exact['ms_per_query'] / best['ms_per_query']:.1f}x over faiss exact, "
              f"{min(numpy_ms) / best['ms_per_query']:.1f}x over NumPy; "
              f"build {best['build_s']:.1f} s, {best['bytes'] / 2**20:.0f} MiB")
    assert exact[recall] == 1.0
    assert (table[recall] <= exact[recall]).all(), table
    assert numpy_recall == 1.0, numpy_recall


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("BENCH_ANN_ITEMS", 200_000)))
