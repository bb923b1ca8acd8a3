"""CPU encoding with a compressed encoder: fp32, PyTorch dynamic int8 and two int8 ONNX exports, against
sentence-transformers.

Goal (the performance issue's): an int8 backend with >= 2x sentence-transformers' fp32 throughput at >= 0.99
mean cosine to the fp32 vectors. Every backend encodes the 1,682 ML-100K item texts (template
"title_year_genres") with the packaged all-MiniLM-L6-v2, batch size 64, L2-normalised, on the CPU:
sentence-transformers fp32 (the named peer), and recsuite ``compress.encode`` with each of
``compress.BACKENDS`` ("fp32", "torch-int8", "onnx-int8": the packaged export, "onnx-qint8": MiniLM exported
here and quantised by onnxruntime with per-channel int8 weights and integer MatMuls). Each is warmed up once
(model load, quantisation, ONNX session, kernel caches), then the runs alternate (peer, fp32, torch-int8, ...,
peer, ...) so that load from other processes hits all alike, and the best of REPEATS is kept. Prints one table
(size on disk, size ratio to fp32, seconds, texts/s, speed ratio to sentence-transformers, mean and min cosine
to recsuite fp32) and, for each int8 backend, whether it meets the goal. `benchmarks/bench_encode.py` prints the
onnx-qint8 speed-fidelity frontier (MatMuls kept in fp32). Run: `make bench`.
"""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recsuite.data.movielens import load_movielens_100k  # noqa: E402
from recsuite.models import semantic as S  # noqa: E402
from recsuite.models.encoders import quiet_transformers  # noqa: E402
from recsuite.serving import compress as C  # noqa: E402

REPEATS = 3
BATCH_SIZE = 64
GOAL_SPEED = 2.0  # x sentence-transformers' throughput
GOAL_COSINE = 0.99  # mean cosine to fp32
PEER = "sentence-transformers"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    import onnxruntime
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    texts = S.item_text(load_movielens_100k().items, "title_year_genres")
    with quiet_transformers():  # its weight-loading progress bar is noise here
        peer_model = SentenceTransformer(S.DEFAULT_MODEL, device="cpu")

    runs = {PEER: lambda: peer_model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                            show_progress_bar=False)}
    for backend in C.BACKENDS:
        runs[backend] = lambda b=backend: C.encode(texts, b, batch_size=BATCH_SIZE, progress=False)

    for fn in runs.values():  # warm-up
        fn()
    times = {name: [] for name in runs}
    out = {}
    for _ in range(REPEATS):
        for name, fn in runs.items():
            t, v = timed(fn)
            times[name].append(t)
            out[name] = np.asarray(v, dtype=np.float32)

    ref = out["fp32"]
    sizes = {PEER: C.size_on_disk("fp32"), **{b: C.size_on_disk(b) for b in C.BACKENDS}}
    best = {name: min(ts) for name, ts in times.items()}
    print(f"{len(texts)} item texts, all-MiniLM-L6-v2 from {S.DEFAULT_MODEL}, batch {BATCH_SIZE}, CPU; "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads (quantized engine "
          f"{torch.backends.quantized.engine}), onnxruntime {onnxruntime.__version__} with "
          f"{C.onnx_encoder().threads} intra-op threads, sentence-transformers {sentence_transformers.__version__}")
    head = (f"{'backend':<22} {'size MB':>8} {'size/fp32':>9} {'seconds':>8} {'texts/s':>8} {'speed/ST':>8} "
            f"{'mean cos':>9} {'min cos':>9}  runs (s)")
    print(head)
    print("-" * len(head))
    for name in runs:
        cos = C.cosine_to_reference(out[name], ref)
        print(f"{name:<22} {sizes[name] / 1e6:8.1f} {sizes[name] / sizes['fp32']:9.2f} {best[name]:8.2f} "
              f"{len(texts) / best[name]:8.0f} {best[PEER] / best[name]:7.2f}x {cos.mean():9.5f} {cos.min():9.5f}  "
              + ", ".join(f"{t:.2f}" for t in times[name]))
    print(f"goal: >= {GOAL_SPEED:.0f}x {PEER}' throughput at >= {GOAL_COSINE} mean cosine to fp32")
    for name in (b for b in C.BACKENDS if b != "fp32"):
        speed = best[PEER] / best[name]
        mean_cos = float(C.cosine_to_reference(out[name], ref).mean())
        verdict = "meets" if speed >= GOAL_SPEED and mean_cos >= GOAL_COSINE else "does NOT meet"
        print(f"  {name}: {speed:.2f}x, mean cosine {mean_cos:.5f} -> {verdict} the goal")
    assert all(v.shape == (len(texts), 384) for v in out.values())
    assert C.cosine_to_reference(out[PEER], ref).min() >= 0.9999  # fp32 is the peer's model, run our way


if __name__ == "__main__":
    main()
