"""recsuite.models.semantic: item texts, pooling, encoding, the embedding cache and the vector helpers.

Cache and plumbing tests run a tiny randomly initialised BERT saved to tmp_path (fast, and a second model
to switch to); correctness against the real encoder uses the packaged all-MiniLM-L6-v2.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsuite.course import artifacts as ART
from recsuite.models import encoders as E
from recsuite.models import profiles as L
from recsuite.models import semantic as S

WORDS = "toy story golden eye four rooms action comedy drama thriller animation the a of film 1995 ( ) . ,".split()


def save_tiny_bert(path, seed):
    """A 1-layer BERT with hidden size 16 and a word-piece vocabulary of a few words, saved like a Hub model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture()
def tiny(tmp_path):
    return save_tiny_bert(tmp_path / "tiny-bert", seed=0)


TEXTS = ["toy story", "golden eye action thriller film", "four rooms", "drama", "the film of the action comedy 1995"]


def forward_counter(model_path):
    """Counts forward passes of the encoder that encode_texts would use (a real hook, not a mock)."""
    _, net = E.load_encoder(model_path, device="cpu")
    calls = []
    handle = net.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


# --------------------------------------------------------------------------------------------- item_text


def items_frame():
    return pd.DataFrame(
        {
            "item_id": [1, 2, 3],
            "title": ["Usual Suspects, The", "Toy Story", "Postino, Il"],
            "year": pd.array([1995, pd.NA, 1994], dtype="Int64"),
            "genres": [["Crime", "Thriller"], ["Animation", "Comedy"], []],
        }
    )


def test_item_text_templates_by_hand():
    items = items_frame()
    assert S.item_text(items, "title_year_genres") == [
        "The Usual Suspects (1995). Genres: Crime, Thriller",
        "Toy Story. Genres: Animation, Comedy",  # missing year: no "()"
        "Il Postino (1994)",  # no genres: no "Genres: ."
    ]
    assert S.item_text(items, "title_genres")[0] == "The Usual Suspects. Genres: Crime, Thriller"
    assert S.item_text(items, "title") == ["The Usual Suspects", "Toy Story", "Il Postino"]
    custom = S.item_text(items, "{raw_title}[ | {year}]")
    assert custom == ["Usual Suspects, The | 1995", "Toy Story", "Postino, Il | 1994"]
    assert S.DEFAULT_TEMPLATE in S.TEMPLATES and {"title_genres", "title_year_genres"} <= set(S.TEMPLATES)


def test_item_text_rejects_bad_input():
    with pytest.raises(ValueError, match="template"):
        S.item_text(items_frame(), "no_such_template")
    with pytest.raises(ValueError, match="template"):
        S.item_text(items_frame(), "{plot}")
    with pytest.raises(ValueError, match="items_df"):
        S.item_text(items_frame().drop(columns="genres"))
    with pytest.raises(TypeError, match="items_df"):
        S.item_text(items_frame().to_dict())


# --------------------------------------------------------------------------------------------- mean_pool


def test_mean_pool_hand_computed():
    hidden = np.array(
        [
            [[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
            [[2.0, 0.0], [0.0, 0.0], [4.0, 6.0]],
            [[5.0, 5.0], [7.0, 7.0], [9.0, 9.0]],
        ],
        dtype=np.float32,
    )
    mask = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0]])
    # row 0: (1+3)/2, (2+4)/2; row 1: (2+4)/2, (0+6)/2; row 2: no kept token -> 0, never NaN
    expected = np.array([[2.0, 3.0], [3.0, 3.0], [0.0, 0.0]], dtype=np.float32)
    got_np = E.mean_pool(hidden, mask)
    assert isinstance(got_np, np.ndarray) and got_np.dtype == np.float32
    np.testing.assert_allclose(got_np, expected)
    got_t = E.mean_pool(torch.from_numpy(hidden), torch.from_numpy(mask))
    assert isinstance(got_t, torch.Tensor)
    np.testing.assert_allclose(got_t.numpy(), expected)


def test_mean_pool_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="attention_mask"):
        E.mean_pool(np.zeros((2, 3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="last_hidden_state"):
        E.mean_pool(np.zeros((2, 3)), np.ones((2, 3)))


# --------------------------------------------------------------------------------------------- encode_texts


def test_encode_shape_norm_and_order(tiny, tmp_path):
    vec = S.encode_texts(TEXTS, tiny, batch_size=2, device="cpu", cache=False, progress=False)
    assert vec.shape == (len(TEXTS), 16) and vec.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    # Length-sorted batches must not reorder rows: each text alone gives the same row.
    alone = np.vstack([S.encode_texts([t], tiny, device="cpu", cache=False, progress=False) for t in TEXTS])
    np.testing.assert_allclose(vec, alone, atol=1e-5)
    rev = S.encode_texts(TEXTS[::-1], tiny, batch_size=3, device="cpu", cache=False, progress=False)
    np.testing.assert_allclose(rev, vec[::-1], atol=1e-5)


def test_encode_unnormalised_is_the_mean_pool(tiny):
    raw = S.encode_texts(TEXTS[:2], tiny, device="cpu", cache=False, normalize=False, progress=False)
    tok, net = E.load_encoder(tiny, device="cpu")
    with torch.inference_mode():
        enc = tok([TEXTS[1]], return_tensors="pt")
        expected = E.mean_pool(net(**enc).last_hidden_state, enc["attention_mask"])[0].numpy()
    np.testing.assert_allclose(raw[1], expected, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_load_encoder_is_cached_in_process(tiny):
    assert E.load_encoder(tiny, device="cpu")[1] is E.load_encoder(tiny, device="cpu")[1]


def test_cache_hit_runs_no_model(tiny, tmp_path):
    cache = tmp_path / "emb"
    path = S.embedding_cache_path(TEXTS, tiny, device="cpu", cache_dir=cache)
    calls, handle = forward_counter(tiny)
    try:
        first = S.encode_texts(TEXTS, tiny, batch_size=2, device="cpu", cache_dir=cache, progress=False)
        assert len(calls) == 3 and path.is_file()  # miss: 3 batches of <= 2 texts, then written
        second = S.encode_texts(TEXTS, tiny, batch_size=2, device="cpu", cache_dir=cache, progress=False)
        assert len(calls) == 3  # hit: read from disk, no forward pass
        np.testing.assert_array_equal(first, second)
        assert second.dtype == np.float32
        assert not list(cache.glob("*.tmp"))  # the atomic write leaves no temporary file behind
    finally:
        handle.remove()


def test_cache_misses_when_texts_or_settings_change(tiny, tmp_path):
    cache = tmp_path / "emb"
    calls, handle = forward_counter(tiny)
    try:
        base = S.encode_texts(TEXTS, tiny, device="cpu", cache_dir=cache, progress=False)
        n = len(calls)
        changed = TEXTS[:-1] + ["four rooms drama"]  # e.g. another template
        new = S.encode_texts(changed, tiny, device="cpu", cache_dir=cache, progress=False)
        assert len(calls) > n
        np.testing.assert_allclose(new[:-1], base[:-1], atol=1e-5)
        assert not np.allclose(new[-1], base[-1])
    finally:
        handle.remove()
    paths = {
        S.embedding_cache_path(TEXTS, tiny, device="cpu", cache_dir=cache),
        S.embedding_cache_path(changed, tiny, device="cpu", cache_dir=cache),
        S.embedding_cache_path(TEXTS, tiny, max_length=8, device="cpu", cache_dir=cache),
        S.embedding_cache_path(TEXTS, tiny, normalize=False, device="cpu", cache_dir=cache),
        S.embedding_cache_path(TEXTS[::-1], tiny, device="cpu", cache_dir=cache),
    }
    assert len(paths) == 5
    assert len(list(cache.glob("*.npz"))) == 2


def test_cache_invalidated_when_model_files_change(tmp_path):
    model = save_tiny_bert(tmp_path / "m", seed=0)
    cache = tmp_path / "emb"
    before = S.encode_texts(TEXTS, model, device="cpu", cache_dir=cache, progress=False)
    old_path = S.embedding_cache_path(TEXTS, model, device="cpu", cache_dir=cache)
    save_tiny_bert(tmp_path / "m", seed=1)  # same folder, new weights
    assert S.embedding_cache_path(TEXTS, model, device="cpu", cache_dir=cache) != old_path
    after = S.encode_texts(TEXTS, model, device="cpu", cache_dir=cache, progress=False)
    assert not np.allclose(before, after, atol=1e-3)  # new weights, new vectors: nothing stale
    other = save_tiny_bert(tmp_path / "other", seed=0)
    assert S.embedding_cache_path(TEXTS, other, device="cpu", cache_dir=cache) != old_path


def test_cache_file_is_named_after_the_model_folder(tmp_path):
    # a packaged model often lives in a folder called "model"; the file name keeps its parent's name too
    model = save_tiny_bert(tmp_path / "some_encoder" / "model", seed=0)
    name = S.embedding_cache_path(TEXTS, model, device="cpu", cache_dir=tmp_path).name
    assert name.startswith("some-encoder-model-") and name.endswith(".npz")


def test_corrupt_cache_file_is_recomputed(tiny, tmp_path):
    cache = tmp_path / "emb"
    good = S.encode_texts(TEXTS, tiny, device="cpu", cache=False, progress=False)
    path = S.embedding_cache_path(TEXTS, tiny, device="cpu", cache_dir=cache)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz file")
    got = S.encode_texts(TEXTS, tiny, device="cpu", cache_dir=cache, progress=False)
    np.testing.assert_allclose(got, good, atol=1e-6)
    again = S.encode_texts(TEXTS, tiny, device="cpu", cache_dir=cache, progress=False)  # the rewritten file
    np.testing.assert_allclose(again, good, atol=1e-6)


def test_encode_error_paths(tiny, tmp_path):
    with pytest.raises(ValueError, match="texts.*empty"):
        S.encode_texts([], tiny, cache=False)
    with pytest.raises(TypeError, match="texts.*single str"):
        S.encode_texts("toy story", tiny, cache=False)
    with pytest.raises(TypeError, match=r"texts must contain only str, got int at position 1"):
        S.encode_texts(["toy story", 3], tiny, cache=False)
    with pytest.raises(TypeError, match="texts"):
        S.encode_texts({"a": 1}, tiny, cache=False)
    with pytest.raises(ValueError, match="model=.*not an existing directory"):
        S.encode_texts(["a"], str(tmp_path / "no" / "such" / "model"), cache=False)
    with pytest.raises(ValueError, match="model=.*not an existing directory"):
        S.encode_texts(["a"], "./no-such-model-dir", cache=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model=.*config.json"):
        S.encode_texts(["a"], str(tmp_path / "empty"), cache=False)
    with pytest.raises(TypeError, match="model"):
        S.encode_texts(["a"], 42, cache=False)
    with pytest.raises(ValueError, match="batch_size"):
        S.encode_texts(["a"], tiny, batch_size=0, cache=False)
    with pytest.raises(TypeError, match="max_length"):
        S.encode_texts(["a"], tiny, max_length="256", cache=False)
    with pytest.raises(TypeError, match="normalize"):
        S.encode_texts(["a"], tiny, normalize="yes", cache=False)
    with pytest.raises(ValueError, match="device"):
        S.encode_texts(["a"], tiny, device="tpu", cache=False)


def test_unknown_hub_id_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="model='no-such-org/no-such-model'.*Hugging Face model id"):
        S.encode_texts(["a"], "no-such-org/no-such-model", cache=False)


def test_minilm_matches_sentence_transformers():
    """The packaged all-MiniLM-L6-v2 through our pipeline equals sentence-transformers' output."""
    from sentence_transformers import SentenceTransformer

    texts = ["Toy Story (1995). Genres: Animation, Children's, Comedy", "A funny movie", "Quantum field theory"]
    ours = S.encode_texts(texts, device="cpu", cache=False, progress=False)
    peer = SentenceTransformer(S.DEFAULT_MODEL, device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384)
    assert (ours * peer).sum(axis=1).min() >= 0.9999


# --------------------------------------------------------------------------------------------- vectors


def test_center_by_hand():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    # mean = (0.5, 0.5): rows become (0.5, -0.5), (-0.5, 0.5), (0, 0) -> unit, unit, zero (not NaN)
    r = np.sqrt(0.5)
    np.testing.assert_allclose(S.center(v), [[r, -r], [-r, r], [0, 0]], atol=1e-6)
    np.testing.assert_allclose(S.center(v, mean=[1.0, 0.0]), [[0, 0], [-r, r], [-r, r]], atol=1e-6)
    with pytest.raises(ValueError, match="mean"):
        S.center(v, mean=[1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="vectors"):
        S.center(np.array([1.0, 2.0]))


def test_user_profiles_three_users_by_hand():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    # user 0: items 0, 1 (ratings as values are ignored); user 1: item 2; user 2: nothing
    hist = sp.csr_matrix(np.array([[5, 3, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32))
    r = np.sqrt(0.5)
    prof = S.user_profiles(hist, items)
    assert prof.shape == (3, 2) and prof.dtype == np.float32
    np.testing.assert_allclose(prof, [[r, r], [-1, 0], [0, 0]], atol=1e-6)
    # Centred: mean (0, 1/3); rows (1,-1/3)/c, (0,1), (-1,-1/3)/c; user {0,2} -> mean (0,-1/3)/c -> (0,-1)
    hist2 = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(S.user_profiles(hist2, items, center=True), [[0, -1], [0, 1], [0, 0]], atol=1e-6)
    np.testing.assert_allclose(S.user_profiles(hist2, items), [[0, 0], [0, 1], [0, 0]], atol=1e-6)
    # An explicitly stored zero is no interaction: user 2 keeps an empty history and a zero profile.
    stored_zero = sp.csr_matrix((np.array([1.0, 0.0]), np.array([1, 0]), np.array([0, 1, 1, 2])), shape=(3, 3))
    np.testing.assert_allclose(S.user_profiles(stored_zero, items), [[0, 1], [0, 0], [0, 0]], atol=1e-6)


def test_user_profiles_rejects_bad_input():
    items = np.eye(3, dtype=np.float32)
    with pytest.raises(TypeError, match="history"):
        S.user_profiles(np.ones((2, 3)), items)
    with pytest.raises(ValueError, match="history has 4 item columns"):
        S.user_profiles(sp.csr_matrix((2, 4)), items)
    with pytest.raises(ValueError, match="item_vectors"):
        S.user_profiles(sp.csr_matrix((2, 3)), np.full((3, 3), np.nan))


def test_explain_by_hand():
    items = np.array([[1, 0], [0, 1], [1, 1], [3, 1], [-1, 0]], dtype=np.float32)
    ids, sims = S.explain([0, 1, 2, 4], 3, items, top=3)
    # cos with (3,1)/sqrt(10): item 0 -> 3/sqrt10, item 2 -> 4/sqrt20, item 1 -> 1/sqrt10, item 4 -> -3/sqrt10
    assert ids.tolist() == [0, 2, 1]
    np.testing.assert_allclose(sims, [3 / np.sqrt(10), 4 / np.sqrt(20), 1 / np.sqrt(10)], atol=1e-6)
    with pytest.raises(ValueError, match="item must"):
        S.explain([0, 1], 9, items)
    with pytest.raises(ValueError, match="user_history_items"):
        S.explain([], 3, items)
    with pytest.raises(ValueError, match="user_history_items"):
        S.explain([0, 7], 3, items)
    with pytest.raises(ValueError, match="top"):
        S.explain([0, 1], 3, items, top=0)


# --------------------------------------------------------------------------------------------- lesson artefacts


def tiny_movielens():
    """Four users, seven items, six interactions each, timestamps increasing: enough for make_protocol."""
    from recsuite.data.movielens import MovieLens

    items = pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4, 5, 6, 7],
            "title": ["Toy Story", "Golden Eye", "Four Rooms", "Action Film", "Drama", "Comedy, The", "Thriller"],
            "year": pd.array([1995, 1995, pd.NA, 1994, 1993, 1995, 1996], dtype="Int64"),
            "genres": [["Animation"], ["Action", "Thriller"], [], ["Action"], ["Drama"], ["Comedy"], ["Thriller"]],
        }
    )
    rows = []
    picks = {1: [1, 2, 3, 4, 5, 6], 2: [2, 3, 4, 5, 6, 7], 3: [1, 3, 5, 7, 2, 4], 4: [7, 6, 5, 4, 3, 2]}
    for u, its in picks.items():
        rows += [(u, i, 4, 100 * u + t) for t, i in enumerate(its)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    users = pd.DataFrame(
        {"user_id": [4, 3, 2, 1], "age": [30, 18, 45, 24], "gender": ["F", "M", "F", "M"],
         "occupation": ["artist", "student", "engineer", "technician"], "zip_code": ["1", "2", "3", "4"]}
    )
    return MovieLens(inter, items, users, name="tiny")


def test_item_vectors_follow_the_index_and_use_the_cache(tiny, tmp_path):
    from recsuite.data.index import IndexMap

    items = items_frame()  # raw ids 1, 2, 3
    cache = tmp_path / "emb"
    calls, handle = forward_counter(tiny)
    try:
        got = S.item_vectors("title_genres", tiny, index=[3, 1, 2], items=items, device="cpu", cache_dir=cache, progress=False)
        n = len(calls)
        assert n >= 1 and len(list(cache.glob("*.npz"))) == 1
        again = S.item_vectors("title_genres", tiny, index=[3, 1, 2], items=items, device="cpu", cache_dir=cache, progress=False)
        assert len(calls) == n  # second call: read from disk
        np.testing.assert_array_equal(got, again)
    finally:
        handle.remove()
    texts = S.item_text(items.iloc[[2, 0, 1]], "title_genres")  # rows in index order: ids 3, 1, 2
    expected = S.encode_texts(texts, tiny, device="cpu", cache=False, progress=False)
    assert got.shape == (3, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    by_map = S.item_vectors("title_genres", tiny, index=IndexMap.from_ids([1], [2, 3, 1]), items=items,
                            device="cpu", cache_dir=cache, progress=False)
    np.testing.assert_allclose(by_map, got[[1, 2, 0]], atol=1e-6)  # IndexMap sorts: ids 1, 2, 3
    other = S.item_vectors("title", tiny, index=[3, 1, 2], items=items, device="cpu", cache_dir=cache, progress=False)
    assert not np.allclose(other, got, atol=1e-3)  # another template: another cache file, new vectors


def test_item_vectors_rejects_bad_input(tiny, tmp_path):
    items = items_frame()
    with pytest.raises(ValueError, match=r"index has raw item ids.*\[9\]"):
        S.item_vectors(model=tiny, index=[1, 9], items=items, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="index has raw item ids that items lacks"):  # str ids are ids too
        S.item_vectors(model=tiny, index=["a", "b"], items=items, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="index must be"):
        S.item_vectors(model=tiny, index=[], items=items, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="items has repeated item_id"):
        S.item_vectors(model=tiny, index=[1], items=pd.concat([items, items]), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="items must"):
        S.item_vectors(model=tiny, index=[1], items=items.drop(columns="item_id"), cache_dir=tmp_path)


def test_content_scores_by_hand():
    items = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    hist = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=np.float32))
    r, c = np.sqrt(0.5), 1 / np.sqrt(10)
    # raw: profiles (0,0)->zero, (0,1), zero
    raw = S.content_scores(hist, items, center=False)
    assert raw.shape == (3, 3) and raw.dtype == np.float32
    np.testing.assert_allclose(raw, [[0, 0, 0], [0, 1, 0], [0, 0, 0]], atol=1e-6)
    # centred items (3c, -c), (0, 1), (-3c, -c); profiles (0, -1), (0, 1), zero
    expected = [[c, -1, c], [-c, 1, -c], [0, 0, 0]]
    np.testing.assert_allclose(S.content_scores(hist, items, center=True), expected, atol=1e-6)
    np.testing.assert_allclose(S.content_scores(hist, items), expected, atol=1e-6)  # DEFAULT_CENTER
    # unnormalised items: the profile averages them as given, (2,0),(0,5) -> (2,5)/sqrt29, and the
    # scores are cosines with each item's direction
    hist1 = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    q = 1 / np.sqrt(29)
    np.testing.assert_allclose(
        S.content_scores(hist1, items * [[2], [5], [1]], center=False), [[2 * q, 5 * q, -2 * q]], atol=1e-6
    )
    np.testing.assert_allclose(S.content_scores(hist1, items, center=False), [[r, r, -r]], atol=1e-6)
    with pytest.raises(TypeError, match="center"):
        S.content_scores(hist, items, center="yes")
    with pytest.raises(ValueError, match="history has 2 item columns"):
        S.content_scores(sp.csr_matrix((3, 2)), items)


def test_cosine_scores_by_hand():
    u = np.array([[2.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    v = np.array([[1.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    r, s = np.sqrt(0.5), 2 / np.sqrt(13)
    np.testing.assert_allclose(S.cosine_scores(u, v, center=False), [[r, 0], [r, 1]], atol=1e-6)
    # users centred on (1, 1.5) -> +-(2, -3)/sqrt13; items on (0.5, 1) -> (1, 0), (-1, 0)
    np.testing.assert_allclose(S.cosine_scores(u, v, center=True), [[s, -s], [-s, s]], atol=1e-6)
    with pytest.raises(ValueError, match="user_vectors has dimension 3"):
        S.cosine_scores(np.ones((2, 3)), v)
    with pytest.raises(ValueError, match="user_vectors"):
        S.cosine_scores(np.array([np.nan, 1.0]), v)


def test_user_vectors_item_and_text_profiles(tiny, tmp_path):
    from recsuite.data.split import make_protocol
    from recsuite.models import profiles

    data = tiny_movielens()
    proto = make_protocol(data.interactions, cold_frac=0.15, seed=0, all_item_ids=data.items.item_id)
    kw = dict(model=tiny, protocol=proto, data=data, device="cpu", progress=False, cache_dir=tmp_path)
    v = S.item_vectors("title_year_genres", tiny, proto.index, data.items, device="cpu", cache_dir=tmp_path, progress=False)
    for centred in (True, False):
        got = L.user_vectors("valid", "item-profile", center=centred, **kw)
        np.testing.assert_allclose(got, S.user_profiles(proto.history("valid"), v, center=centred), atol=1e-6)
    assert not np.allclose(L.user_vectors("valid", **kw), L.user_vectors("test", **kw))  # test also sees valid

    text = L.user_vectors("valid", "text-profile", center=False, **kw)
    users = data.users.set_index("user_id").loc[proto.index.user_ids].reset_index()  # index order, not file order
    texts = profiles.profile_texts(users, proto.train, data.items, progress=False)
    expected = S.encode_texts(texts.tolist(), tiny, device="cpu", cache=False, progress=False)
    assert text.shape == (4, 16) and text.dtype == np.float32
    np.testing.assert_allclose(text, expected, atol=1e-6)
    np.testing.assert_allclose(L.user_vectors("valid", "text-profile", **kw), S.center(expected), atol=1e-6)
    # the test-time text sees train + valid: every user has watched more films, so the texts differ
    assert not np.allclose(L.user_vectors("test", "text-profile", center=False, **kw), text, atol=1e-4)

    with pytest.raises(ValueError, match="eval_set"):
        L.user_vectors("train", **kw)
    with pytest.raises(ValueError, match="kind"):
        L.user_vectors("valid", "llm", **kw)
    with pytest.raises(TypeError, match="center"):
        L.user_vectors("valid", center=1, **kw)


# --------------------------------------------------------------------------------------------- issue 12 defects


def test_item_text_genres_as_pipe_string_and_list_agree():
    items = items_frame()
    as_str = items.assign(genres=["Crime|Thriller", "Animation|Comedy", ""])
    assert S.item_text(as_str) == S.item_text(items)
    assert "Genres: Crime, Thriller" in S.item_text(as_str)[0]


def test_item_text_missing_title_is_refused_never_the_word_none():
    for missing in (None, np.nan, pd.NA, "  "):
        items = items_frame().astype({"title": object})
        items.loc[1, "title"] = missing
        with pytest.raises(ValueError, match="missing title at row 1"):
            S.item_text(items)


@pytest.mark.parametrize(
    "column, value, error",
    [("genres", 5, TypeError), ("genres", [1, 2], TypeError), ("title", 7, TypeError),
     ("year", "1995", TypeError), ("year", 1995.5, ValueError)],
)
def test_item_text_bad_cells(column, value, error):
    items = items_frame().astype({column: object})
    items.at[0, column] = value
    with pytest.raises(error, match=column):
        S.item_text(items)


def test_genre_list():
    assert S.genre_list("Action|Crime") == S.genre_list(["Action", "Crime"]) == ["Action", "Crime"]
    assert S.genre_list(None) == S.genre_list(np.nan) == S.genre_list("") == S.genre_list([]) == []


def test_natural_title():
    assert S.natural_title("Godfather, The") == "The Godfather"
    assert S.natural_title("Postino, Il ") == "Il Postino"
    with pytest.raises(TypeError, match="title"):
        S.natural_title(None)


def test_max_length_beyond_the_model_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(ValueError, match="max_length must be <= 64"):
        S.encode_texts(["a"], tiny, max_length=1024, device="cpu", cache=False, progress=False)
    with pytest.raises(ValueError, match="max_length must be <= 64"):
        S.embedding_cache_path(["a"], tiny, max_length=1024, device="cpu", cache_dir=tmp_path)


def test_read_only_cache_folder_warns_and_returns(tiny, tmp_path, monkeypatch):
    from recsuite.core import cache as C

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(C, "write_array", refuse)
    good = S.encode_texts(TEXTS, tiny, device="cpu", cache=False, progress=False)
    folder = tmp_path / "ro"
    with pytest.warns(RuntimeWarning, match=str(folder)):
        got = S.encode_texts(TEXTS, tiny, device="cpu", cache_dir=folder, progress=False)
    np.testing.assert_allclose(got, good, atol=1e-6)


def test_truncated_cache_file_is_rebuilt(tiny, tmp_path):
    cache = tmp_path / "emb"
    good = S.encode_texts(TEXTS, tiny, device="cpu", cache_dir=cache, progress=False)
    path = S.embedding_cache_path(TEXTS, tiny, device="cpu", cache_dir=cache)
    path.write_bytes(path.read_bytes()[:40])
    np.testing.assert_allclose(S.encode_texts(TEXTS, tiny, device="cpu", cache_dir=cache, progress=False), good, atol=1e-6)


V3 = np.eye(3, dtype=np.float32)
H3 = sp.csr_matrix(np.eye(3, dtype=np.float32))


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: S.item_text("not a frame"), TypeError),
        (lambda: S.item_text(items_frame(), 3), TypeError),
        (lambda: S.embedding_cache_path("one str"), TypeError),
        (lambda: S.embedding_cache_path(["a"], normalize=1), TypeError),
        (lambda: S.embedding_cache_path(["a"], cache_dir=5), TypeError),
        (lambda: S.encode_texts(["a"], cache="yes"), TypeError),
        (lambda: S.encode_texts(["a"], batch_size=1.5), TypeError),
        (lambda: S.center(np.array([[1.0, np.inf]])), ValueError),
        (lambda: S.center(V3, mean="x"), TypeError),
        (lambda: S.center(np.zeros((0, 3))), ValueError),
        (lambda: S.user_profiles(H3, V3, center="no"), TypeError),
        (lambda: S.user_profiles(H3, V3[:2]), ValueError),
        (lambda: S.content_scores(H3, np.array([["a"] * 3] * 3)), TypeError),
        (lambda: S.cosine_scores(V3, V3, center=None), TypeError),
        (lambda: S.explain([0.5, 1.0], 1, V3), TypeError),
        (lambda: S.explain([0, 1], True, V3), TypeError),
        (lambda: S.explain([0, 1], 1, V3, top=2.0), TypeError),
        (lambda: S.item_vectors(index=[1, 1], items=items_frame(), cache_dir="x"), ValueError),
        (lambda: S.item_vectors(index="abc", items=items_frame(), cache_dir="x"), TypeError),
        (lambda: S.tune_content(protocol=object(), seed=-1), ValueError),
        (lambda: S.tune_content(protocol=object(), templates="title"), TypeError),
        (lambda: S.tune_content(protocol=object(), templates=["{plot}"]), ValueError),
        (lambda: S.tune_content(protocol=object()), TypeError),
        (lambda: ART.content_setting(protocol="protocol"), TypeError),
        (lambda: ART.content_setting(seed=True), TypeError),
        (lambda: S.genre_list(5), TypeError),
        (lambda: S.genre_list(["Action", None]), TypeError),
        (lambda: S.natural_title(3), TypeError),
    ],
)
def test_bad_input_table(call, error):
    with pytest.raises(error):
        call()
