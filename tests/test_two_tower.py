"""recsuite.models.two_tower: training pairs, the InfoNCE loss, LoRA/full/frozen training, adapters, scoring.

Plumbing tests: the encoder is a tiny randomly initialised BERT (hidden 32, 2 layers, 2 heads) with a
word-piece vocabulary of a few words, built offline and saved to a temporary folder, so the whole file
runs in seconds. They check that the right weights move and that state round-trips, not that the
model learns anything useful (the lesson measures that with the real MiniLM).
"""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsuite.models import contrastive, lora, queries, training
from recsuite.models import two_tower as F

WORDS = "toy story golden eye four rooms heat casino babe seven action comedy drama recently watched a the".split()
WORDS += [";", ":", "."]
HIDDEN, LAYERS, HEADS, INTER, MAX_POS = 32, 2, 2, 64, 64
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model is far too small to gain from threads, and on a busy machine two OpenMP threads
    that wait for each other make these tests ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Folder of a tiny BERT + word-piece tokenizer, saved as a Hugging Face model would be."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    (path / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTER,
        max_position_embeddings=MAX_POS,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    return str(path)


ITEMS = ["toy story", "golden eye", "four rooms", "heat", "casino", "babe", "seven", "drama comedy"]


def item_texts():
    return list(ITEMS)


def synthetic_pairs(n_users=6, per_user=6, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(len(ITEMS), size=per_user, replace=False)
        for t, i in enumerate(items):
            rows.append((u, int(i), 1000 + 10 * t))
    df = pd.DataFrame(rows, columns=["user_idx", "item_idx", "timestamp"])
    return queries.make_training_pairs(df, item_texts(), history_len=3)


def fit(model, pairs=None, items=None, valid_fn=None, hard_negatives=None, **settings):
    """``F.train`` on the CPU without a progress bar, on the synthetic pairs unless told otherwise."""
    pairs = synthetic_pairs() if pairs is None else pairs
    return F.train(model, pairs, item_texts() if items is None else items, F.TrainConfig(**settings),
                   valid_fn=valid_fn, hard_negatives=hard_negatives, device="cpu", progress=False)


# ----------------------------------------------------------------------------------------- pairs


def hand_frame():
    # user 0: 10@100, then 11 and 12 tied @200, 13@300, 14@400. user 1: 1 and 3 tied @50, then 2@60.
    rows = [
        (0, 13, 300), (1, 3, 50), (0, 10, 100), (0, 12, 200), (1, 2, 60), (0, 14, 400), (0, 11, 200), (1, 1, 50),
    ]
    return pd.DataFrame(rows, columns=["user_idx", "item_idx", "timestamp"])


TITLES = [f"T{i}" for i in range(15)]


def test_pairs_by_hand():
    pairs = queries.make_training_pairs(hand_frame(), TITLES, history_len=2)
    got = list(zip(pairs.user_idx, pairs.query_text, pairs.item_idx, pairs.timestamp, pairs.history))
    assert got == [
        (0, "Recently watched: T10", 11, 200, (10,)),
        (0, "Recently watched: T10", 12, 200, (10,)),  # 11 shares 12's timestamp: not history
        (0, "Recently watched: T12; T11", 13, 300, (12, 11)),  # newest first, ties newest = larger item id
        (0, "Recently watched: T13; T12", 14, 400, (13, 12)),
        (1, "Recently watched: T3; T1", 2, 60, (3, 1)),  # item 3 at position 1 has no earlier item: dropped
    ]
    assert pairs.n_history.tolist() == [1, 1, 2, 2, 2]


def test_pairs_with_profiles_and_min_history():
    profiles = ["A woman.", "A man."]
    pairs = queries.make_training_pairs(hand_frame(), TITLES, user_text=profiles, history_len=1, min_history=0)
    # min_history=0 keeps user 1's position-1 pair (query = profile only), never position 0.
    assert pairs.query_text.tolist() == [
        "A woman. Recently watched: T10",
        "A woman. Recently watched: T10",
        "A woman. Recently watched: T12",
        "A woman. Recently watched: T13",
        "A man.",
        "A man. Recently watched: T3",
    ]
    assert pairs.item_idx.tolist() == [11, 12, 13, 14, 3, 2]


def test_pairs_never_use_the_target_time_or_later():
    rng = np.random.default_rng(3)
    n = 400
    # Few distinct timestamps per user, so ties are everywhere.
    df = pd.DataFrame(
        {"user_idx": rng.integers(0, 7, n), "item_idx": rng.permutation(n) % 50, "timestamp": rng.integers(0, 12, n)}
    ).drop_duplicates(["user_idx", "item_idx"])
    pairs = queries.make_training_pairs(df, [f"m{i}" for i in range(50)], history_len=4)
    ts = df.set_index(["user_idx", "item_idx"])["timestamp"]
    assert len(pairs) > 100
    for u, target_ts, hist in zip(pairs.user_idx, pairs.timestamp, pairs.history):
        hist_ts = ts.loc[[(u, i) for i in hist]].to_numpy()
        assert len(hist) >= 1 and np.all(hist_ts < target_ts)
        assert np.all(np.diff(hist_ts) <= 0)  # newest first
    # Each pair's history is exactly the 4 latest strictly earlier items, not any 4.
    for u, target_ts, hist in list(zip(pairs.user_idx, pairs.timestamp, pairs.history))[:50]:
        sub = df[(df.user_idx == u) & (df.timestamp < target_ts)].sort_values(["timestamp", "item_idx"])
        assert hist == tuple(sub.item_idx.to_numpy()[::-1][:4])


def test_user_query_texts_by_hand():
    q = queries.user_query_texts(hand_frame(), TITLES, history_len=2, n_users=3)
    assert q == ["Recently watched: T14; T13", "Recently watched: T2; T3", ""]
    q = queries.user_query_texts(hand_frame(), TITLES, user_text=["A.", "B.", "C."], history_len=1)
    assert q == ["A. Recently watched: T14", "B. Recently watched: T2", "C."]


def test_pairs_and_queries_reject_bad_input():
    with pytest.raises(ValueError, match="train_df"):
        queries.make_training_pairs(hand_frame().drop(columns="timestamp"), TITLES)
    with pytest.raises(ValueError, match="item_text"):
        queries.make_training_pairs(hand_frame(), TITLES[:5])
    with pytest.raises(ValueError, match="history_len"):
        queries.make_training_pairs(hand_frame(), TITLES, history_len=0)
    with pytest.raises(ValueError, match="min_history=0 needs user_text"):
        queries.make_training_pairs(hand_frame(), TITLES, min_history=0)
    with pytest.raises(ValueError, match="n_users"):
        queries.user_query_texts(hand_frame(), TITLES, n_users=1)


# ----------------------------------------------------------------------------------------- loss


def test_info_nce_two_by_two_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # logits = q p^T / 0.5 = [[2, 1.2], [0, 1.6]]
    expected = ((math.log(math.exp(2) + math.exp(1.2)) - 2) + (math.log(1 + math.exp(1.6)) - 1.6)) / 2
    assert contrastive.info_nce(q, p, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    # One hard negative h = (0, 1) appended as a third column: [[2, 1.2, 0], [0, 1.6, 2]].
    h = torch.tensor([[0.0, 1.0]])
    expected_h = (
        (math.log(math.exp(2) + math.exp(1.2) + 1) - 2) + (math.log(1 + math.exp(1.6) + math.exp(2)) - 1.6)
    ) / 2
    assert contrastive.info_nce(q, p, 0.5, hard_negatives=h).item() == pytest.approx(expected_h, rel=1e-6)


def test_info_nce_masks_duplicate_positives():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    p = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    distinct = contrastive.info_nce(q, p, 0.5, pos_ids=torch.tensor([7, 8]))
    assert distinct.item() == pytest.approx(contrastive.info_nce(q, p, 0.5).item())
    # The same item twice: the other column is that row's own target, so each row keeps only its diagonal.
    dup = contrastive.info_nce(q, p, 0.5, pos_ids=torch.tensor([7, 7]))
    assert dup.item() == pytest.approx(0.0, abs=1e-7)
    dup.backward()
    assert torch.isfinite(q.grad).all()
    # A hard negative that is row 0's positive is masked for row 0 only: row 0 = [2, 1.2, -inf], row 1 = [0, 1.6, 2].
    h = torch.tensor([[0.0, 1.0]])
    got = contrastive.info_nce(q, p, 0.5, hard_negatives=h, pos_ids=torch.tensor([7, 8]), neg_ids=torch.tensor([7]))
    expected = ((math.log(math.exp(2) + math.exp(1.2)) - 2) + (math.log(1 + math.exp(1.6) + math.exp(2)) - 1.6)) / 2
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_logq_correction_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    log_q = torch.log(torch.tensor([0.5, 0.25]))
    # Column j loses log q_j: [[2 - ln .5, 1.2 - ln .25], [0 - ln .5, 1.6 - ln .25]]; a hard negative is not corrected.
    r0 = [2 - math.log(0.5), 1.2 - math.log(0.25), 0.0]
    r1 = [0 - math.log(0.5), 1.6 - math.log(0.25), 2.0]
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    expected = ((lse(r0) - r0[0]) + (lse(r1) - r1[1])) / 2
    h = torch.tensor([[0.0, 1.0]])
    assert contrastive.info_nce(q, p, 0.5, hard_negatives=h, log_q=log_q).item() == pytest.approx(expected, rel=1e-6)
    # Equal sampling probabilities shift every logit of a row equally: no change.
    flat = torch.log(torch.tensor([0.5, 0.5]))
    assert contrastive.info_nce(q, p, 0.5, log_q=flat).item() == pytest.approx(contrastive.info_nce(q, p, 0.5).item(), rel=1e-6)
    with pytest.raises(ValueError, match="log_q"):
        contrastive.info_nce(q, p, log_q=torch.tensor([0.0]))


def test_info_nce_rejects_bad_input():
    q = torch.eye(2)
    with pytest.raises(ValueError, match="temperature"):
        contrastive.info_nce(q, q, temperature=0)
    with pytest.raises(ValueError, match="same shape"):
        contrastive.info_nce(q, torch.eye(3))
    with pytest.raises(ValueError, match="pos_ids"):
        contrastive.info_nce(q, q, pos_ids=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="hard_negatives"):
        contrastive.info_nce(q, q, hard_negatives=torch.ones(1, 3))


# ----------------------------------------------------------------------------------------- modes and training


def bert_parameters(vocab, hidden, layers, inter, max_pos, type_vocab=2):
    """BERT's parameter count by hand: embeddings + layers x (attention + feed-forward) + pooler."""
    ln = 2 * hidden
    embeddings = (vocab + max_pos + type_vocab) * hidden + ln
    attention = 4 * (hidden * hidden + hidden) + ln  # q, k, v, output projection; LayerNorm
    feed_forward = (hidden * inter + inter) + (inter * hidden + hidden) + ln
    pooler = hidden * hidden + hidden
    return embeddings + layers * (attention + feed_forward) + pooler


def test_count_parameters_by_hand(tiny):
    model = F.TwoTower(tiny)
    base = bert_parameters(len(SPECIAL) + len(WORDS), HIDDEN, LAYERS, INTER, MAX_POS)
    assert training.count_parameters(model) == (base, base)  # fresh model: "full", shared towers counted once
    lora.set_mode(model, "lora", r=4, target_modules=("query", "value"))
    n_lora = LAYERS * 2 * 4 * (HIDDEN + HIDDEN)  # per layer: A (r x 32) + B (32 x r), for query and value
    assert training.count_parameters(model) == (n_lora, base + n_lora)
    two = lora.set_mode(F.TwoTower(tiny, shared=False), "lora", r=2, target_modules="query")
    assert training.count_parameters(two) == (2 * LAYERS * 2 * (HIDDEN + HIDDEN), 2 * base + 2 * LAYERS * 2 * 64)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_one_lora_step_changes_only_lora_weights(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=4)
    before = state(model)
    hist = fit(model, max_steps=1, batch_size=8, lr=1e-2)
    after = state(model)
    assert hist["steps"] == 1 and len(hist["loss"]) == 1 and np.isfinite(hist["loss"][0])
    assert before.keys() == after.keys()
    base_keys = [k for k in before if "lora_" not in k]
    lora_keys = [k for k in before if "lora_" in k]
    assert len(lora_keys) == LAYERS * 2 * 2 and base_keys
    assert all(torch.equal(before[k], after[k]) for k in base_keys)
    changed = [k for k in lora_keys if not torch.equal(before[k], after[k])]
    assert any("lora_B" in k for k in changed)  # B starts at zero: it moved, so the adapter now acts
    assert hist["trainable_params"] == LAYERS * 2 * 4 * 64 and hist["mode"] == "lora"
    assert hist["tokens"] > 0 and hist["tokens_per_s"] > 0 and hist["peak_memory_mb"] is None


def test_full_mode_changes_base_weights(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "full")
    before = state(model)
    fit(model, max_steps=1, batch_size=8, lr=1e-3)
    after = state(model)
    key = "encoder.encoder.layer.0.attention.self.query.weight"  # TwoTower.encoder.<BertModel>
    assert not torch.equal(before[key], after[key])
    assert not any("lora_" in k for k in after)


def test_frozen_mode_trains_nothing(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "frozen")
    assert training.count_parameters(model)[0] == 0
    before = state(model)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, max_steps=1, batch_size=8)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_training_is_seeded_and_counts_steps(tiny):
    pairs = synthetic_pairs()  # 6 users x 5 pairs = 30 pairs
    runs = []
    for _ in range(2):
        model = lora.set_mode(F.TwoTower(tiny), "lora", r=2, seed=1)
        runs.append(fit(model, pairs, epochs=2, batch_size=4, grad_accum=2, seed=5))
    assert runs[0]["loss"] == runs[1]["loss"]
    # The items of the synthetic pairs are not equally frequent, so the logQ correction changes the loss.
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2, seed=1)
    plain = fit(model, pairs, epochs=2, batch_size=4, grad_accum=2, seed=5, logq_correction=False)
    assert plain["loss"][0] != pytest.approx(runs[0]["loss"][0]) and not plain["logq_correction"]
    # 30 pairs // 4 = 7 micro-batches -> 3 optimiser steps per epoch, 2 epochs.
    assert runs[0]["steps"] == 6 and runs[0]["epochs"] == 2
    lr = np.array(runs[0]["lr"])
    assert len(lr) == 6 and lr.argmax() == 1 and np.all(np.diff(lr[1:]) < 0)  # warm-up, then linear decay


def test_early_stopping_restores_best_weights(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=4)
    # A scripted validation curve (a real callback computes NDCG@10); it also records the weights it saw.
    curve = iter([0.1, 0.5, 0.2, 0.3, 0.9, 0.9])
    seen = []

    def valid_fn(m):
        seen.append(state(m))
        return next(curve)

    hist = fit(model, valid_fn=valid_fn, max_steps=5, batch_size=4, lr=1e-2, eval_every=1, patience=2)
    assert hist["valid_step"] == [0, 1, 2, 3] and hist["valid"] == [0.1, 0.5, 0.2, 0.3]
    assert hist["stopped_early"] and hist["steps"] == 3
    assert hist["best_step"] == 1 and hist["best_valid"] == 0.5
    final = state(model)
    lora_keys = [k for k in final if "lora_" in k]
    assert all(torch.equal(final[k], seen[1][k]) for k in lora_keys)
    assert not all(torch.equal(final[k], seen[3][k]) for k in lora_keys)


def test_no_improvement_restores_the_untrained_model(tiny):
    texts = ["toy story heat", "seven"]
    base = F.TwoTower(tiny).encode(texts, progress=False)
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=4)
    curve = iter([1.0, 0.5, 0.4])
    hist = fit(model, valid_fn=lambda m: next(curve), max_steps=2, batch_size=4, lr=1e-2, eval_every=1)
    assert hist["best_step"] == 0 and not hist["stopped_early"]
    np.testing.assert_allclose(model.encode(texts, progress=False), base, atol=1e-6)


def test_train_rejects_bad_input(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2)
    pairs = synthetic_pairs()
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        fit(model, pairs, batch_size=1)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        fit(model, pairs.head(3), batch_size=4)
    with pytest.raises(ValueError, match="item_idx"):
        fit(model, pairs, items=item_texts()[:3], batch_size=4)
    with pytest.raises(ValueError, match="patience needs valid_fn"):
        fit(model, pairs, patience=2)
    with pytest.raises(ValueError, match="mode"):
        lora.set_mode(F.TwoTower(tiny), "half")


def test_hard_negatives_by_hand_and_in_training(tiny):
    pairs = pd.DataFrame({"user_idx": [0, 1, 1], "item_idx": [2, 0, 1]})
    scores = np.array([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.1, 0.6]], dtype=np.float32)
    seen = sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
    # Best unseen item: user 0 -> item 0 (its seen item 2 is excluded), user 1 -> item 3.
    neg = F.hard_negatives_from_scores(pairs, scores, seen=seen, k=1, pool=1)
    np.testing.assert_array_equal(neg, [[0], [3], [3]])
    train_pairs = synthetic_pairs()
    neg = (train_pairs.item_idx.to_numpy() + 1) % len(ITEMS)
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2)
    hist = fit(model, train_pairs, max_steps=1, batch_size=4, hard_negatives=neg)
    plain = fit(lora.set_mode(F.TwoTower(tiny), "lora", r=2), train_pairs, max_steps=1, batch_size=4)
    assert hist["tokens"] > plain["tokens"]  # the hard negatives went through the item tower
    with pytest.raises(ValueError, match="hard_negatives"):
        fit(model, train_pairs, hard_negatives=neg[:3])


# ----------------------------------------------------------------------------------------- persistence and scoring


def test_adapter_round_trip_gives_identical_embeddings(tiny, tmp_path):
    model = lora.set_mode(F.TwoTower(tiny, max_length=32), "lora", r=4)
    fit(model, max_steps=2, batch_size=8, lr=1e-2)
    texts = ["recently watched: toy story; heat", "casino", "golden eye four rooms"]
    trained = model.encode(texts, progress=False)
    lora.save_adapter(model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    loaded = lora.load_adapter(tmp_path / "adapter", base=tiny)
    assert loaded.max_length == 32 and loaded.mode == "frozen" and loaded.lora["r"] == 4
    np.testing.assert_array_equal(loaded.encode(texts, progress=False), trained)
    # The adapter is what makes the difference: the bare base encodes differently.
    assert not np.allclose(F.TwoTower(tiny).encode(texts, progress=False), trained, atol=1e-4)


def test_full_weights_round_trip(tiny, tmp_path):
    model = lora.set_mode(F.TwoTower(tiny), "full")
    fit(model, max_steps=1, batch_size=8, lr=1e-3)
    lora.save_adapter(model, tmp_path / "full")
    loaded = lora.load_adapter(tmp_path / "full", base=tiny)
    np.testing.assert_array_equal(loaded.encode(ITEMS, progress=False), model.encode(ITEMS, progress=False))
    with pytest.raises(ValueError, match="nothing was trained"):
        lora.save_adapter(lora.set_mode(F.TwoTower(tiny), "frozen"), tmp_path / "none")


def test_encode_and_scores(tiny):
    model = F.TwoTower(tiny)
    users = ["toy story", "heat casino seven", "babe"]
    u = model.encode(users, batch_size=2, progress=False)
    # Length-sorted batches give the rows back in input order: the same as one text at a time.
    one_by_one = np.vstack([model.encode([t], progress=False) for t in users])
    np.testing.assert_allclose(u, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-5)
    s = F.score_users_items(model, users, ITEMS, batch_size=3, progress=False)
    assert s.shape == (3, len(ITEMS)) and s.dtype == np.float32
    np.testing.assert_allclose(s, u @ model.encode(ITEMS, progress=False).T, atol=1e-5)
    with pytest.raises(TypeError, match="texts"):
        model.encode("toy story")


# ----------------------------------------------------------------------------------------- config and step


def test_train_config_defaults_and_per_mode_rate():
    config = F.TrainConfig()
    assert config.learning_rate("lora") == 1e-3 and config.learning_rate("full") == 2e-5
    assert F.TrainConfig(lr=0.5).learning_rate("full") == 0.5
    assert not hasattr(F, "DEFAULT_LR")
    with pytest.raises(Exception):  # frozen: FrozenInstanceError
        config.lr = 1.0
    with pytest.raises(ValueError, match="mode"):
        config.learning_rate("frozen")


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("epochs", 0, ValueError), ("epochs", 1.0, TypeError), ("epochs", True, TypeError),
        ("max_steps", 0, ValueError), ("batch_size", 1, ValueError), ("batch_size", "32", TypeError),
        ("grad_accum", 0, ValueError), ("lr", 0.0, ValueError), ("lr", float("nan"), ValueError),
        ("lr", "1e-3", TypeError), ("lora_lr", -1.0, ValueError), ("full_lr", float("inf"), ValueError),
        ("weight_decay", -0.1, ValueError), ("warmup_ratio", 1.0, ValueError), ("warmup_ratio", -0.1, ValueError),
        ("temperature", 0, ValueError), ("max_grad_norm", 0.0, ValueError), ("logq_correction", 1, TypeError),
        ("seed", -1, ValueError), ("seed", 0.5, TypeError), ("eval_every", 0, ValueError),
        ("patience", 0, ValueError), ("eval_at_start", "yes", TypeError),
    ],
)
def test_train_config_rejects_bad_fields(field, value, error):
    with pytest.raises(error, match=field):
        F.TrainConfig(**{field: value})


def test_train_step_is_one_optimisation_step(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2)
    before = state(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    batch = {"queries": ["toy story", "heat", "seven"], "items": ITEMS[:3], "pos_ids": np.arange(3)}
    out = F.train_step(model, batch, opt, sched, F.TrainConfig())
    assert np.isfinite(out["loss"]) and out["lr"] == 1e-2 and out["tokens"] > 0
    assert sched.last_epoch == 1 and all(p.grad is None for p in params)
    assert any(not torch.equal(before[k], v) for k, v in state(model).items() if "lora_B" in k)
    with pytest.raises(TypeError, match="batch"):
        F.train_step(model, {"queries": ["a"]}, opt, sched, F.TrainConfig())
    with pytest.raises(TypeError, match="config"):
        F.train_step(model, batch, opt, sched, {"lr": 1e-3})
    with pytest.raises(TypeError, match="model"):
        F.train_step(object(), batch, opt, sched, F.TrainConfig())


def test_train_rejects_bad_arguments(tiny):
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2)
    pairs = synthetic_pairs()
    with pytest.raises(TypeError, match="config"):
        F.train(model, pairs, item_texts(), {"epochs": 1}, device="cpu", progress=False)
    with pytest.raises(TypeError, match="model"):
        F.train("model", pairs, item_texts(), device="cpu")
    with pytest.raises(TypeError, match="valid_fn"):
        fit(model, pairs, valid_fn=0.5, batch_size=4)
    with pytest.raises(TypeError, match="pairs"):
        fit(model, pairs.to_numpy(), batch_size=4)
    with pytest.raises(TypeError, match="item_idx"):
        fit(model, pairs.assign(item_idx=pairs.item_idx.astype(float)), batch_size=4)
    with pytest.raises(TypeError, match="item_texts"):
        fit(model, pairs, items="toy story", batch_size=4)
    with pytest.raises(TypeError, match="progress"):
        F.train(model, pairs, item_texts(), F.TrainConfig(batch_size=4), device="cpu", progress="no")
    with pytest.raises(TypeError, match="device"):
        F.train(model, pairs, item_texts(), F.TrainConfig(batch_size=4), device=3, progress=False)


# ----------------------------------------------------------------------------------------- hard negatives


def test_hard_negatives_never_draw_positives_or_excluded_items():
    # 5 items. User 0 saw 0, 1 (excluded) and has positive 2: eligible 3, 4 only, although 0..2 score highest.
    pairs = pd.DataFrame({"user_idx": [0, 0, 1], "item_idx": [2, 2, 4]})
    scores = np.array([[9.0, 8, 7, 1, 2], [5, 4, 3, 2, 1]])
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    neg = F.hard_negatives_from_scores(pairs, scores, seen=seen, k=2, pool=3)
    assert neg.shape == (3, 2) and neg.dtype == np.int64
    assert set(neg[0]) == set(neg[1]) == {3, 4}  # the pool shrinks to the two eligible items
    assert set(neg[2]) <= {0, 1, 2} and len(set(neg[2])) == 2  # user 1's top 3 without its positive 4
    # Without exclude, the user's own positive (any of its pairs) is still never a negative.
    neg = F.hard_negatives_from_scores(pairs, scores, k=1, pool=1)
    np.testing.assert_array_equal(neg, [[0], [0], [0]])
    with pytest.raises(ValueError, match="user 0 has 2 eligible items"):
        F.hard_negatives_from_scores(pairs, scores, seen=seen, k=3, pool=3)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**16), st.floats(0.0, 0.5))
def test_hard_negatives_property(k, pool, seed, density):
    pool = max(pool, k)
    rng = np.random.default_rng(seed)
    n_users, n_items = 4, 12
    scores = rng.integers(0, 4, (n_users, n_items)).astype(float)  # ties everywhere
    seen = sp.csr_matrix(rng.random((n_users, n_items)) < density)
    pairs = pd.DataFrame({"user_idx": rng.integers(0, n_users, 10), "item_idx": rng.integers(0, n_items, 10)})
    banned = seen.toarray()
    banned[pairs.user_idx, pairs.item_idx] = True
    if ((~banned)[pairs.user_idx.unique()].sum(1) < k).any():
        with pytest.raises(ValueError, match="eligible"):
            F.hard_negatives_from_scores(pairs, scores, seen=seen, k=k, pool=pool, seed=seed)
        return
    neg = F.hard_negatives_from_scores(pairs, scores, seen=seen, k=k, pool=pool, seed=seed)
    assert neg.shape == (len(pairs), k)
    for u, row in zip(pairs.user_idx, neg):
        assert len(set(row)) == k and not banned[u, row].any()
        ok = np.flatnonzero(~banned[u])
        top = ok[np.argsort(-scores[u, ok], kind="stable")][:pool]
        assert set(row) <= set(top)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"pairs": pd.DataFrame({"user_idx": [0]})}, ValueError, "item_idx"),
        ({"pairs": [(0, 1)]}, TypeError, "pairs"),
        ({"scores": np.ones(4)}, ValueError, "scores"),
        ({"scores": np.array([[np.nan, 1, 2, 3]] * 2)}, ValueError, "NaN"),
        ({"scores": [["a"] * 4] * 2}, TypeError, "scores"),
        ({"pairs": pd.DataFrame({"user_idx": [5], "item_idx": [0]})}, ValueError, "user_idx"),
        ({"pairs": pd.DataFrame({"user_idx": [0], "item_idx": [9]})}, ValueError, "item_idx"),
        ({"pairs": pd.DataFrame({"user_idx": [0.0], "item_idx": [1]})}, TypeError, "user_idx"),
        ({"seen": np.zeros((2, 4))}, TypeError, "seen"),
        ({"seen": sp.csr_matrix((3, 4))}, ValueError, "seen"),
        ({"k": 0}, ValueError, "k"), ({"k": 2, "pool": 1}, ValueError, "pool"),
        ({"pool": 1.5}, TypeError, "pool"), ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_hard_negatives_reject_bad_input(kwargs, error, match):
    args = {"pairs": pd.DataFrame({"user_idx": [0, 1], "item_idx": [0, 1]}), "scores": np.arange(8.0).reshape(2, 4)}
    args.update(kwargs)
    pairs, scores = args.pop("pairs"), args.pop("scores")
    with pytest.raises(error, match=match):
        F.hard_negatives_from_scores(pairs, scores, **args)


# ----------------------------------------------------------------------------------------- adapters and bases


def test_adapter_refuses_another_base(tiny, tmp_path):
    from transformers import BertModel

    other = tmp_path / "other-bert"
    other.mkdir()
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = __import__("pathlib").Path(tiny) / f
        if src.is_file():
            (other / f).write_bytes(src.read_bytes())
    torch.manual_seed(1)  # same architecture, other weights: peft alone would load the adapter silently
    BertModel(BertModel.from_pretrained(tiny).config).save_pretrained(other)
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2)
    fit(model, max_steps=1, batch_size=8, lr=1e-2)
    lora.save_adapter(model, tmp_path / "adapter")
    with pytest.raises(ValueError, match="base"):
        lora.load_adapter(tmp_path / "adapter", base=str(other))
    assert lora.load_adapter(tmp_path / "adapter", base=tiny).mode == "frozen"


# ----------------------------------------------------------------------------------------- bad input everywhere


def test_text_functions_reject_bad_input():
    with pytest.raises(TypeError, match="titles"):
        queries.compose_query("", "toy story")  # a str would be joined letter by letter
    with pytest.raises(TypeError, match="profile"):
        queries.compose_query(None, ["T1"])
    with pytest.raises(TypeError, match="sep"):
        queries.compose_query("", ["T1", "T2"], sep=None)
    with pytest.raises(TypeError, match="titles"):
        queries.compose_query("", ["T1", 2])
    with pytest.raises(TypeError, match="train_df"):
        queries.make_training_pairs(hand_frame().to_numpy(), TITLES)
    with pytest.raises(TypeError, match="timestamp"):
        queries.make_training_pairs(hand_frame().astype({"timestamp": float}), TITLES)
    with pytest.raises(TypeError, match="item_text"):
        queries.make_training_pairs(hand_frame(), "T0 T1")
    with pytest.raises(TypeError, match="history_len"):
        queries.make_training_pairs(hand_frame(), TITLES, history_len=2.0)
    with pytest.raises(ValueError, match="min_history"):
        queries.make_training_pairs(hand_frame(), TITLES, min_history=-1)
    with pytest.raises(TypeError, match="prefix"):
        queries.make_training_pairs(hand_frame(), TITLES, prefix=1)
    with pytest.raises(ValueError, match="user_text"):
        queries.make_training_pairs(hand_frame(), TITLES, user_text=["only one"])
    with pytest.raises(ValueError, match="negative"):
        queries.make_training_pairs(hand_frame().assign(user_idx=-1), TITLES)
    with pytest.raises(TypeError, match="history_df"):
        queries.user_query_texts({"user_idx": [0]}, TITLES)
    with pytest.raises(TypeError, match="n_users"):
        queries.user_query_texts(hand_frame(), TITLES, n_users=2.5)
    with pytest.raises(ValueError, match="user_text"):
        queries.user_query_texts(hand_frame(), TITLES, user_text=["A."], n_users=2)
    with pytest.raises(ValueError, match="history_df is empty"):
        queries.user_query_texts(hand_frame().head(0), TITLES)


def test_model_functions_reject_bad_input(tiny, tmp_path):
    with pytest.raises(TypeError, match="model_name_or_path"):
        F.TwoTower(3)
    with pytest.raises(ValueError, match="model_name_or_path"):
        F.TwoTower(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="pooling"):
        F.TwoTower(tiny, pooling="max")
    with pytest.raises(TypeError, match="shared"):
        F.TwoTower(tiny, shared="yes")
    with pytest.raises(ValueError, match="max_length must be <= 64"):
        F.TwoTower(tiny, max_length=1024)  # beyond the position embeddings: a torch index error otherwise
    model = F.TwoTower(tiny)
    with pytest.raises(ValueError, match="tower"):
        model.encode(["toy"], tower="user")
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["toy"], batch_size=0)
    with pytest.raises(TypeError, match="progress"):
        model.encode(["toy"], progress=None)
    assert model.encode([], progress=False).shape == (0, HIDDEN)
    with pytest.raises(TypeError, match="model"):
        training.count_parameters("model")
    with pytest.raises(ValueError, match="mode"):
        lora.set_mode(model, "half")
    with pytest.raises(ValueError, match="only apply to mode='lora'"):
        lora.set_mode(model, "full", r=2)
    with pytest.raises(TypeError, match="model"):
        lora.set_mode(torch.nn.Linear(2, 2), "frozen")
    with pytest.raises(ValueError, match="dropout"):
        lora.apply_lora(F.TwoTower(tiny), dropout=1.0)
    with pytest.raises(ValueError, match="r must"):
        lora.apply_lora(F.TwoTower(tiny), r=0)
    with pytest.raises(ValueError, match="target_modules"):
        lora.apply_lora(F.TwoTower(tiny), target_modules=("nope",))
    with pytest.raises(TypeError, match="model"):
        lora.apply_lora([1, 2])
    with pytest.raises(TypeError, match="q must"):
        contrastive.info_nce(np.eye(2), torch.eye(2))
    with pytest.raises(ValueError, match="q must"):
        contrastive.info_nce(torch.eye(2, dtype=torch.long), torch.eye(2))
    with pytest.raises(ValueError, match="neg_ids"):
        contrastive.info_nce(torch.eye(2), torch.eye(2), neg_ids=torch.tensor([1]))
    with pytest.raises(TypeError, match="model"):
        F.score_users_items("model", ["a"], ["b"])
    with pytest.raises(TypeError, match="batch_size"):
        F.score_users_items(model, ["toy"], ITEMS, batch_size=2.0)
    with pytest.raises(TypeError, match="protocol"):
        F.validation_callback(None, ["a"], ["b"])
    with pytest.raises(TypeError, match="user_texts"):
        F.validation_callback(type("P", (), {"evaluate": None})(), "a", ["b"])
    with pytest.raises(ValueError, match="k"):
        F.validation_callback(type("P", (), {"evaluate": None})(), ["a"], ["b"], k=0)
    with pytest.raises(TypeError, match="model"):
        lora.save_adapter("model", tmp_path / "x")
    with pytest.raises(ValueError, match="holds no saved adapter"):
        lora.load_adapter(tmp_path)
    with pytest.raises(TypeError, match="path"):
        lora.load_adapter(None)
    with pytest.raises(TypeError, match="trainable"):
        lora.load_adapter(tmp_path, trainable="no")


def test_damaged_adapter_config_is_a_clear_error(tiny, tmp_path):
    model = lora.set_mode(F.TwoTower(tiny), "lora", r=2)
    lora.save_adapter(model, tmp_path / "a")
    cfg = tmp_path / "a" / "twotower.json"
    cfg.write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read"):
        lora.load_adapter(tmp_path / "a", base=tiny)
    cfg.write_text('{"mode": "lora"}')
    with pytest.raises(ValueError, match="damaged"):
        lora.load_adapter(tmp_path / "a", base=tiny)
    with pytest.raises(TypeError, match="texts"):
        model.tokenize("toy story")
    with pytest.raises(TypeError, match="path"):
        lora.save_adapter(model, 3)


def test_a_trained_model_answers_the_scorer_interface(tiny):
    from recsuite.models.base import Scorer

    model = F.TwoTower(tiny)
    users = ["toy story; heat", "casino", "babe; seven; heat"]
    scorer = F.TwoTowerScorer(model, users, ITEMS, batch_size=2)
    assert isinstance(scorer, Scorer) and (scorer.n_users, scorer.n_items) == (3, len(ITEMS))
    full = scorer.scores()
    np.testing.assert_allclose(full, F.score_users_items(model, users, ITEMS, progress=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scorer.scores([2, 0]), full[[2, 0]], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="user_idx"):
        scorer.scores([3])
