"""CPU encoding speed: recsuite.models.semantic.encode_texts against sentence-transformers on the same model and texts.

Both encode the 1,682 ML-100K item texts (template "title_year_genres") with the packaged all-MiniLM-L6-v2,
batch size 64, L2-normalised, on the CPU; recsuite's disk cache is off. Each is warmed up once, then the
runs alternate (ours, peer, ours, ...) so that load from other processes hits both alike, and the best of
REPEATS is kept. Prints both times, the speed ratio (peer time / our time; >= 1 means recsuite is at least
as fast) and the smallest cosine between the two outputs (must be >= 0.9999). Run: `make bench`.
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


if __name__ == "__main__":
    main()
