"""CPU encoding speed: recsuite.models.semantic.encode_texts against sentence-transformers on the same model and texts.

Both encode the 1,682 ML-100K item texts (template "title_year_genres") with the packaged all-MiniLM-L6-v2,
batch size 64, L2-normalised, on the CPU; recsuite's disk cache is off. Each is warmed up once, then the
runs alternate (ours, peer, ours, ...) so that load from other processes hits both alike, and the best of
REPEATS is kept. Prints both times, the speed ratio (peer time / our time; >= 1 means recsuite is at least
as fast) and the smallest cosine between the two outputs (must be >= 0.9999).

Then the int8 speed-fidelity frontier: the fp32 encoder exported to ONNX and quantised by onnxruntime's
quantize_dynamic (``compress.qint8_onnx_path``), with the keep sets of ``compress.QINT8_FRONTIER`` left in fp32,
each against the same sentence-transformers fp32 peer, on all cores (wall time) and on one thread (CPU time of
this process, which other processes' load disturbs far less): speed ratio, mean and min cosine to the peer's
vectors, size on disk. The target (the project's performance issue): the packaged "onnx-qint8" at >= 2x the peer
with mean cosine >= 0.99. Run: `make bench`.
"""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recsuite.data.movielens import load_movielens_100k  # noqa: E402
from recsuite.models import semantic as S  # noqa: E402
from recsuite.models.encoders import quiet_transformers  # noqa: E402

REPEATS = 3
BATCH_SIZE = 64


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    texts = S.item_text(load_movielens_100k().items, "title_year_genres")
    with quiet_transformers():  # its weight-loading progress bar is noise here
        peer_model = SentenceTransformer(S.DEFAULT_MODEL, device="cpu")

    def ours():
        return S.encode_texts(texts, S.DEFAULT_MODEL, batch_size=BATCH_SIZE, device="cpu", cache=False, progress=False)

    def peer():
        return peer_model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False)

    ours(), peer()  # warm-up: model load, weight hashing, allocator and kernel caches
    t_ours, t_peer = [], []
    for _ in range(REPEATS):
        t, v_ours = timed(ours)
        t_ours.append(t)
        t, v_peer = timed(peer)
        t_peer.append(t)
    best_ours, best_peer = min(t_ours), min(t_peer)
    cos = np.sum(v_ours * np.asarray(v_peer, dtype=np.float32), axis=1)

    print(f"{len(texts)} item texts, all-MiniLM-L6-v2 from {S.DEFAULT_MODEL}, "
          f"batch {BATCH_SIZE}, torch {torch.__version__} with {torch.get_num_threads()} threads")
    runs = ", ".join(f"{t:.2f}" for t in t_ours)
    print(f"recsuite encode_texts:                    {best_ours:6.2f} s  (runs: {runs})")
    print(f"sentence-transformers {sentence_transformers.__version__} encode:      {best_peer:6.2f} s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in t_peer)})")
    print(f"  speed ratio (sentence-transformers time / recsuite time): {best_peer / best_ours:.2f}x  (target >= 1)")
    print(f"  min cosine between the two outputs: {cos.min():.7f}  (target >= 0.9999)")
    assert v_ours.shape == np.shape(v_peer) == (len(texts), 384)
    assert cos.min() >= 0.9999, cos.min()
    int8_frontier(texts, peer_model, np.asarray(v_peer, dtype=np.float32))


def best_time(fn, clock):
    times, out = [], None
    for _ in range(REPEATS):
        start = clock()
        out = fn()
        times.append(clock() - start)
    return min(times), out


def int8_frontier(texts, peer_model, v_peer):
    from recsuite.serving import compress as C

    all_cores = torch.get_num_threads()
    rows = []
    for label, keep in C.QINT8_FRONTIER.items():
        path, digest = C.qint8_onnx_path(keep_fp32=keep)
        row = {"keep fp32": label, "MB": path.stat().st_size / 1e6}
        for threads, clock, name in ((all_cores, time.perf_counter, "all cores"), (1, time.process_time, "1 thread")):
            enc = C.OnnxEncoder(path, sha256=digest, threads=threads)
            torch.set_num_threads(threads)
            try:
                def peer():
                    return peer_model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                             show_progress_bar=False)

                def ours():
                    return enc.encode(texts, BATCH_SIZE, True, None, False)

                ours(), peer()  # warm-up
                t_ours, v = best_time(ours, clock)
                t_peer, _ = best_time(peer, clock)
            finally:
                torch.set_num_threads(all_cores)
            row[f"x peer, {name}"] = t_peer / t_ours
        cos = np.sum(v * v_peer, axis=1)
        row["mean cos"], row["min cos"] = float(cos.mean()), float(cos.min())
        row["default"] = tuple(sorted(keep)) == tuple(sorted(C.QINT8_KEEP_FP32))
        rows.append(row)
    print(f"\nint8 frontier (onnx-qint8: onnxruntime quantize_dynamic, per-channel int8 weights), against "
          f"sentence-transformers fp32; all cores = {all_cores} threads, wall time; 1 thread = CPU time")
    print(f"{'keep fp32':26s}{'MB':>6s}{'x peer, all cores':>19s}{'x peer, 1 thread':>18s}{'mean cos':>10s}{'min cos':>9s}")
    for r in rows:
        print(f"{r['keep fp32'] + (' *' if r['default'] else ''):26s}{r['MB']:6.1f}{r['x peer, all cores']:18.2f}x"
              f"{r['x peer, 1 thread']:17.2f}x{r['mean cos']:10.4f}{r['min cos']:9.4f}")
    default = next(r for r in rows if r["default"])
    met = default["x peer, 1 thread"] >= 2 and default["x peer, all cores"] >= 2 and default["mean cos"] >= 0.99
    print(f"  * the packaged onnx-qint8: {default['x peer, all cores']:.2f}x (all cores), "
          f"{default['x peer, 1 thread']:.2f}x (1 thread) at mean cosine {default['mean cos']:.4f} "
          f"(target >= 2x at >= 0.99: {'met' if met else 'not met'})")
    assert default["mean cos"] >= 0.99, default["mean cos"]


if __name__ == "__main__":
    main()
