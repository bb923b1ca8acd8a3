"""SASRec, its training windows and the item-to-item transition baseline (recsuite.models.sequential), on tiny
synthetic histories: hand-computed windows and transition matrices, a forward pass recomputed in NumPy, the
causal and padding invariants, the losses by hand, and a small model that learns a cycle."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsuite.models import sequential as Q
from recsuite.models.base import Scorer


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are tiny: with several threads the hand-off costs more than the arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model(n_items=6, dim=8, n_blocks=2, n_heads=2, max_len=5, dropout=0.0, seed=0, **kw):
    m = Q.SASRec(n_items, dim=dim, n_blocks=n_blocks, n_heads=n_heads, max_len=max_len, dropout=dropout,
                 seed=seed, **kw)
    return m.eval()


def randomise(m, seed=0):
    """Every weight random (LayerNorms and biases too), so no term of the forward pass is trivially 0 or 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        if m.item_emb is not None:
            m.item_emb.weight[Q.PAD].zero_()
    return m


def cyclic(n_items, n_users, seed, lengths=(4, 9)):
    """Histories in which item i is always followed by item (i + 1) mod n_items."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(n_items) + np.arange(rng.integers(*lengths))) % n_items for _ in range(n_users)]


# -- histories as arrays -----------------------------------------------------------------------------------------

def test_pad_last_keeps_each_histories_last_items_left_padded():
    tokens = Q.pad_last([np.array([0, 1, 2, 3, 4]), [5], []], max_len=3, n_items=6)
    assert tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens, [[3, 4, 5],   # the last three items, as tokens item + 1
                                           [0, 0, 6],   # one item: padded on the left
                                           [0, 0, 0]])  # no history: padding only
    np.testing.assert_array_equal(Q.pad_last([[2, 0]], max_len=1, n_items=3), [[1]])


def test_pad_last_refuses_bad_histories():
    with pytest.raises(ValueError, match="max_len"):
        Q.pad_last([[0]], max_len=0, n_items=3)
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        Q.pad_last([[0], [3]], max_len=2, n_items=3)  # item 3 of 3 items
    with pytest.raises(TypeError, match="list of 1-D"):
        Q.pad_last(np.zeros((2, 3), np.int64), max_len=2, n_items=3)
    with pytest.raises(TypeError, match="int array"):
        Q.pad_last([[0.0, 1.0]], max_len=2, n_items=3)
    with pytest.raises(TypeError, match="list of 1-D"):
        Q.pad_last("abc", max_len=2, n_items=3)


def test_training_windows_by_hand():
    # user 0: 0 1 2 3 4 (tokens 1..5); user 1: 5 6 7 8 (tokens 6..9); windows of max_len + 1 = 3 items from the end
    inputs, targets = Q.training_windows([np.arange(5), np.arange(5, 9)], max_len=2, n_items=9)
    np.testing.assert_array_equal(inputs, [[3, 4], [1, 2], [7, 8], [0, 6]])
    np.testing.assert_array_equal(targets, [[4, 5], [2, 3], [8, 9], [0, 7]])
    # every item but a user's first is a target exactly once; consecutive windows share one item (3, then 7)
    assert sorted(targets[targets > 0]) == [2, 3, 4, 5, 7, 8, 9]
    assert inputs.dtype == targets.dtype == np.int64


def test_training_windows_skips_short_histories_and_refuses_when_none_is_left():
    inputs, targets = Q.training_windows([[4], [], [1, 2]], max_len=3, n_items=5)
    np.testing.assert_array_equal(inputs, [[0, 0, 2]])
    np.testing.assert_array_equal(targets, [[0, 0, 3]])
    with pytest.raises(ValueError, match="two or more items"):
        Q.training_windows([[4], []], max_len=3, n_items=5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=2, max_size=25), st.integers(1, 6))
def test_training_windows_cover_each_step_once_left_padded(seq, max_len):
    s = np.array(seq)
    inputs, targets = Q.training_windows([s], max_len=max_len, n_items=8)
    assert inputs.shape == targets.shape == (math.ceil((len(s) - 1) / max_len), max_len)
    real = targets > 0
    np.testing.assert_array_equal(real, inputs > 0)  # an input exactly where there is a target
    # left padding: once a row holds an item, every later position does too
    assert np.all(np.diff(real.astype(int), axis=1) >= 0)
    assert real[:, -1].all()
    # the (input, target) pairs are exactly the history's consecutive steps, each once
    pairs = sorted(zip(inputs[real].tolist(), targets[real].tolist()))
    assert pairs == sorted(zip((s[:-1] + 1).tolist(), (s[1:] + 1).tolist()))
    # within a row, the target at t is the input at t + 1 (the window is one run of the history)
    assert np.array_equal(targets[:, :-1][real[:, :-1] & real[:, 1:]], inputs[:, 1:][real[:, :-1] & real[:, 1:]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), max_size=12), max_size=6), st.integers(0, 2**31))
def test_shuffle_within_keeps_each_histories_items(seqs, seed):
    out = Q.shuffle_within([np.array(s, np.int64) for s in seqs], seed=seed)
    assert len(out) == len(seqs)
    for s, o in zip(seqs, out):
        assert sorted(o.tolist()) == sorted(s)
    again = Q.shuffle_within([np.array(s, np.int64) for s in seqs], seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))


def test_shuffle_within_changes_the_order():
    seqs = [np.arange(20), np.arange(20, 40)]
    a, b = Q.shuffle_within(seqs, seed=0), Q.shuffle_within(seqs, seed=1)
    assert not np.array_equal(a[0], seqs[0]) and not np.array_equal(a[1], seqs[1])
    assert not np.array_equal(a[0], b[0])
    np.testing.assert_array_equal(seqs[0], np.arange(20))  # the input is left as it was


# -- the model -----------------------------------------------------------------------------------------------------

def test_attention_mask_by_hand():
    mask = Q.attention_mask(torch.tensor([[0, 3, 5], [2, 4, 1]]), n_heads=2)
    assert mask.shape == (4, 3, 3) and mask.dtype == torch.bool
    T, F = True, False
    padded = [[F, T, T],   # the padding position reads itself only (no empty softmax row)
              [T, F, T],   # never the padding key, never a later position
              [T, F, F]]
    full = [[F, T, T], [F, F, T], [F, F, F]]  # plain causal: the upper triangle
    assert mask[0].tolist() == padded and mask[1].tolist() == padded  # one mask per head, batch-major
    assert mask[2].tolist() == full and mask[3].tolist() == full


def test_forward_is_causal():
    m = randomise(model(n_items=9, max_len=6, dropout=0.3))  # eval mode: dropout is off
    rng = np.random.default_rng(0)
    tokens = torch.as_tensor(rng.integers(1, 10, size=(4, 6)))
    with torch.no_grad():
        h = m(tokens)
        assert h.shape == (4, 6, 8)
        for t in range(5):
            changed = tokens.clone()
            changed[:, t + 1:] = torch.as_tensor(rng.integers(1, 10, size=(4, 5 - t)))
            changed[:, t + 1] = tokens[:, t + 1] % 9 + 1  # surely a different item
            h2 = m(changed)
            torch.testing.assert_close(h2[:, :t + 1], h[:, :t + 1], rtol=0, atol=1e-5)
            assert not torch.allclose(h2[:, t + 1], h[:, t + 1], atol=1e-3)  # the changed position does move


def test_left_padding_never_changes_the_real_positions():
    m = randomise(model(n_items=9, max_len=6))
    short = torch.tensor([[2, 5, 1], [7, 7, 3]])
    with torch.no_grad():
        h = m(short)
        for pad in (1, 3):  # positions count from the right: the real items keep their position embeddings
            longer = torch.cat([torch.zeros(2, pad, dtype=torch.long), short], dim=1)
            torch.testing.assert_close(m(longer)[:, pad:], h, rtol=0, atol=1e-5)
        # padding inside the same length: a row with fewer real items gives the same states for those items
        a = m(torch.tensor([[0, 0, 4, 2, 5, 1]]))
        b = m(torch.tensor([[0, 0, 0, 2, 5, 1]]))
        assert not torch.allclose(a[:, 3:], b[:, 3:], atol=1e-3)  # the earlier item 4 is read ...
        torch.testing.assert_close(b[:, 3:], m(torch.tensor([[2, 5, 1]])), rtol=0, atol=1e-5)  # ... padding is not


def test_all_padding_rows_are_finite_and_leave_other_rows_alone():
    m = randomise(model(n_items=5, max_len=4))
    with torch.no_grad():
        h = m(torch.tensor([[0, 0, 0, 0], [1, 2, 3, 4]]))
        assert torch.isfinite(h).all()
        torch.testing.assert_close(h[1:], m(torch.tensor([[1, 2, 3, 4]])), rtol=0, atol=1e-5)
    m.train()  # dropout on: the padding rows stay finite too
    assert torch.isfinite(m(torch.zeros(3, 4, dtype=torch.long))).all()


def P(t):
    """A weight as a float64 NumPy array."""
    return t.detach().double().numpy()


def layer_norm(x, ln):
    w, b = P(ln.weight), P(ln.bias)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * w + b


def reference_forward(m, tokens):
    """SASRec's forward pass for one unpadded sequence, written out in NumPy from the paper's equations."""
    L, d, H = len(tokens), m.dim, m.n_heads
    dh = d // H
    x = P(m.item_table())[tokens] * math.sqrt(d) + P(m.pos_emb.weight)[m.max_len - L:]
    causal = np.triu(np.ones((L, L), bool), 1)
    for blk in m.blocks:
        h = layer_norm(x, blk.norm1)
        W, b = P(blk.attn.in_proj_weight), P(blk.attn.in_proj_bias)
        q, k, v = (h @ W[i * d:(i + 1) * d].T + b[i * d:(i + 1) * d] for i in range(3))
        heads = []
        for j in range(H):
            sl = slice(j * dh, (j + 1) * dh)
            logits = q[:, sl] @ k[:, sl].T / math.sqrt(dh)
            logits[causal] = -np.inf
            a = np.exp(logits - logits.max(1, keepdims=True))
            heads.append((a / a.sum(1, keepdims=True)) @ v[:, sl])
        x = x + np.concatenate(heads, 1) @ P(blk.attn.out_proj.weight).T + P(blk.attn.out_proj.bias)
        lin1, lin2 = blk.ffn[0], blk.ffn[3]
        f = np.maximum(layer_norm(x, blk.norm2) @ P(lin1.weight).T + P(lin1.bias), 0.0)
        x = x + f @ P(lin2.weight).T + P(lin2.bias)
    return layer_norm(x, m.final_norm)


@pytest.mark.parametrize("n_heads,n_blocks,tokens", [(1, 1, [3]), (2, 1, [3]), (2, 2, [4, 1, 6]), (4, 1, [2, 5])])
def test_forward_equals_the_equations_by_hand(n_heads, n_blocks, tokens):
    m = randomise(model(n_items=6, dim=8, n_heads=n_heads, n_blocks=n_blocks, max_len=4, dropout=0.5), seed=3)
    with torch.no_grad():
        got = m(torch.tensor([tokens]))[0].double().numpy()
    np.testing.assert_allclose(got, reference_forward(m, np.array(tokens)), rtol=1e-4, atol=1e-4)


def test_one_item_by_hand_attention_is_the_value():
    # L = 1: the softmax has one key, so attention returns that position's value, whatever q and k are
    m = randomise(model(n_items=3, dim=4, n_heads=1, n_blocks=1, max_len=2), seed=5)
    blk = m.blocks[0]
    x = P(m.item_emb.weight)[2] * 2.0 + P(m.pos_emb.weight)[1]  # item 1 = token 2, sqrt(dim) = 2, last position
    v = layer_norm(x, blk.norm1) @ P(blk.attn.in_proj_weight)[8:].T + P(blk.attn.in_proj_bias)[8:]
    x = x + v @ P(blk.attn.out_proj.weight).T + P(blk.attn.out_proj.bias)
    f = np.maximum(layer_norm(x, blk.norm2) @ P(blk.ffn[0].weight).T + P(blk.ffn[0].bias), 0)
    h = layer_norm(x + f @ P(blk.ffn[3].weight).T + P(blk.ffn[3].bias), m.final_norm)
    scores = Q.score_sequences(m, [[1]])
    np.testing.assert_allclose(scores[0], h @ P(m.item_emb.weight)[1:].T, rtol=1e-4, atol=1e-4)


def test_score_sequences_is_the_last_state_against_the_item_table():
    m = randomise(model(n_items=7, max_len=4, dropout=0.2))
    seqs = [np.array([0, 1, 2, 3, 4, 5]), np.array([6]), np.array([], np.int64), np.array([], np.int64)]
    m.train()
    scores = Q.score_sequences(m, seqs, batch_size=3)
    assert m.training  # the caller's mode is restored
    assert scores.shape == (4, 7) and scores.dtype == np.float32
    m.eval()
    with torch.no_grad():
        tokens = torch.as_tensor(Q.pad_last(seqs, 4, 7))
        by_hand = (m(tokens)[:, -1] @ m.item_table()[1:].T).numpy()
        np.testing.assert_allclose(scores, by_hand, rtol=1e-5, atol=1e-5)  # dropout was off while scoring
        np.testing.assert_allclose(m.score_last(tokens).numpy(), by_hand, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scores[2], scores[3], rtol=1e-5, atol=1e-6)  # every empty history: the same prior
    np.testing.assert_allclose(Q.score_sequences(m, seqs, batch_size=1), scores, rtol=1e-5, atol=1e-6)
    # only the last max_len items are read
    np.testing.assert_allclose(Q.score_sequences(m, [seqs[0][-4:]])[0], scores[0], rtol=1e-5, atol=1e-6)


def test_seed_fixes_the_initial_weights():
    a, b, c = model(seed=1), model(seed=1), model(seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.item_emb.weight, c.item_emb.weight)
    assert torch.equal(a.item_emb.weight[Q.PAD], torch.zeros(8))


def test_item_table_from_features_and_ids():
    x = np.random.default_rng(0).normal(size=(5, 3))
    both = model(n_items=5, dim=4, item_features=x, id_embeddings=True)
    assert torch.equal(both.item_emb.weight, torch.zeros(6, 4))  # the ID part starts at zero
    with torch.no_grad():
        table = both.item_table()
        assert table.shape == (6, 4)
        torch.testing.assert_close(table[0], torch.zeros(4))  # padding
        torch.testing.assert_close(table[1:], torch.as_tensor(x, dtype=torch.float32) @ both.proj.weight.T)
    text = model(n_items=5, dim=4, item_features=x, id_embeddings=False)
    assert text.item_emb is None and text.item_table().shape == (6, 4)
    ids = model(n_items=5, dim=4)
    assert ids.proj is None and torch.equal(ids.item_table(), ids.item_emb.weight)
    assert ids.item_emb.weight[1:].abs().sum() > 0  # alone, the ID table is not zero


def test_a_cold_item_keeps_its_projected_features():
    n, cold = 6, 5  # item 5 is in no history: never an input, never a target
    x = np.random.default_rng(1).normal(size=(n, 4))
    seqs = [np.array(s) for s in ([0, 1, 2, 3, 4], [2, 3, 4, 0], [1, 2, 3], [4, 0, 1, 2])]
    catalogue = np.arange(n) != cold
    m = model(n_items=n, dim=8, n_blocks=1, n_heads=1, max_len=3, item_features=x)
    proj0 = m.proj.weight.detach().clone()
    Q.train_sasrec(m, seqs, epochs=3, batch_size=2, lr=1e-2, catalogue=catalogue, progress=False, device="cpu")
    assert not torch.allclose(m.proj.weight, proj0)  # the projection trained ...
    with torch.no_grad():
        assert torch.equal(m.item_emb.weight[cold + 1], torch.zeros(8))  # ... the cold item's ID part did not
        assert m.item_emb.weight[1].abs().sum() > 0  # a warm item's did
        torch.testing.assert_close(m.item_table()[cold + 1], m.proj(m.features[cold + 1]))
    # without the catalogue the softmax pushes the cold item down: its ID part moves
    full = model(n_items=n, dim=8, n_blocks=1, n_heads=1, max_len=3, item_features=x)
    Q.train_sasrec(full, seqs, epochs=3, batch_size=2, lr=1e-2, progress=False, device="cpu")
    assert full.item_emb.weight[cold + 1].abs().sum() > 0


def test_sasrec_refuses_bad_settings():
    with pytest.raises(ValueError, match="item vectors"):
        Q.SASRec(5, id_embeddings=False)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        Q.SASRec(5, dim=6, n_heads=4)
    with pytest.raises(ValueError, match="item_features"):
        Q.SASRec(5, dim=4, item_features=np.ones((4, 3)))  # fewer rows than items
    with pytest.raises(ValueError, match="item_features"):
        Q.SASRec(5, dim=4, item_features=np.ones((7, 3)), id_embeddings=False)  # more rows than items
    with pytest.raises(ValueError, match="item_features"):
        Q.SASRec(5, dim=4, item_features=np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="dropout"):
        Q.SASRec(5, dropout=1.5)
    with pytest.raises(ValueError, match="max_len"):
        Q.SASRec(5, max_len=0)
    m = model(n_items=5, max_len=3)
    with pytest.raises(ValueError, match="max_len=3"):
        m(torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="SASRec"):
        Q.score_sequences(object(), [[1]])
    with pytest.raises(ValueError, match="outside"):
        Q.score_sequences(m, [[5]])
    with pytest.raises(ValueError, match="batch_size"):
        Q.score_sequences(m, [[1]], batch_size=0)


# -- losses and training ------------------------------------------------------------------------------------------

def batch():
    inputs = torch.tensor([[0, 1, 2, 3], [0, 0, 5, 6], [2, 4, 6, 1]])
    targets = torch.tensor([[0, 2, 3, 4], [0, 0, 6, 2], [4, 6, 1, 3]])
    return inputs, targets


def test_softmax_loss_is_the_cross_entropy_over_the_catalogue_by_hand():
    m = randomise(model(n_items=7, max_len=4), seed=2)
    inputs, targets = batch()
    catalogue = torch.tensor([True, True, True, True, False, True, False])  # targets are items 0, 1, 2, 3, 5
    with torch.no_grad():
        h = m(inputs)[targets > 0].double().numpy()
        items = m.item_table()[1:].double().numpy()
        pos = (targets[targets > 0] - 1).numpy()
        keep = np.flatnonzero(catalogue.numpy())

        def ce(cols):
            logits = h @ items[cols].T
            lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
            return float(np.mean(lse - (h * items[pos]).sum(1)))

        got = Q.next_item_loss(m, inputs, targets, "softmax", catalogue=catalogue).item()
        assert got == pytest.approx(ce(keep), rel=1e-5)
        full = Q.next_item_loss(m, inputs, targets, "softmax").item()
        assert full == pytest.approx(ce(np.arange(7)), rel=1e-5)
        assert got < full  # fewer competitors
        every = torch.ones(7, dtype=torch.bool)
        assert Q.next_item_loss(m, inputs, targets, "softmax", catalogue=every).item() == pytest.approx(full, rel=1e-6)


def test_bce_loss_by_hand_with_a_one_item_catalogue():
    m = randomise(model(n_items=7, max_len=4), seed=4)
    inputs, targets = batch()
    only = torch.zeros(7, dtype=torch.bool)
    only[4] = True  # every negative is item 4
    with torch.no_grad():
        h = m(inputs)[targets > 0].double()
        items = m.item_table()[1:].double()
        s_pos = (h * items[targets[targets > 0] - 1]).sum(1)
        s_neg = h @ items[4]
        by_hand = -(torch.nn.functional.logsigmoid(s_pos) + torch.nn.functional.logsigmoid(-s_neg)).mean().item()
        assert Q.next_item_loss(m, inputs, targets, "bce", catalogue=only).item() == pytest.approx(by_hand, rel=1e-5)
        # over the whole catalogue the negatives are random: a finite positive number that depends on the draw
        torch.manual_seed(0)
        a = Q.next_item_loss(m, inputs, targets, "bce").item()
        torch.manual_seed(1)
        b = Q.next_item_loss(m, inputs, targets, "bce").item()
        assert math.isfinite(a) and a > 0 and a != b
    with pytest.raises(ValueError, match="loss"):
        Q.next_item_loss(m, inputs, targets, "hinge")


def test_train_sasrec_refuses_bad_input():
    m = model(n_items=5, max_len=3)
    seqs = [np.array([0, 1, 2]), np.array([3, 4])]
    no_4 = np.array([True, True, True, True, False])
    with pytest.raises(ValueError, match="catalogue leaves out 1 items .* item 4"):
        Q.train_sasrec(m, seqs, catalogue=no_4, epochs=1, progress=False, device="cpu")
    with pytest.raises(TypeError, match="catalogue"):
        Q.train_sasrec(m, seqs, catalogue=np.ones(5), epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="catalogue"):
        Q.train_sasrec(m, seqs, catalogue=np.ones(4, bool), epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="loss"):
        Q.train_sasrec(m, seqs, loss="hinge", epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="two or more items"):
        Q.train_sasrec(m, [np.array([1])], epochs=1, progress=False, device="cpu")
    with pytest.raises(TypeError, match="SASRec"):
        Q.train_sasrec(torch.nn.Linear(2, 2), seqs, epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="epochs"):
        Q.train_sasrec(m, seqs, epochs=0, progress=False, device="cpu")
    # the catalogue given as a plain list of booleans is checked and used like the array
    Q.train_sasrec(m, seqs, catalogue=[True] * 5, epochs=1, progress=False, device="cpu")


def test_train_sasrec_learns_a_cycle():
    n = 10
    seqs = cyclic(n, n_users=40, seed=0)
    m = Q.SASRec(n, dim=16, n_blocks=1, n_heads=2, max_len=4, dropout=0.0, seed=0)
    windows = len(Q.training_windows(seqs, 4, n)[0])
    history = Q.train_sasrec(m, seqs, epochs=20, batch_size=32, lr=1e-2, seed=0, progress=False, device="cpu")
    assert history["windows"] == windows and history["steps_per_epoch"] == math.ceil(windows / 32)
    assert history["steps"] == 20 * history["steps_per_epoch"] and history["epochs_run"] == 20
    assert np.mean(history["loss"][-5:]) < 0.3 * np.mean(history["loss"][:5])
    assert not m.training
    hist = [(start + np.arange(length)) % n for start in range(n) for length in (1, 2, 4, 7)]
    truth = np.array([(h[-1] + 1) % n for h in hist])
    accuracy = np.mean(Q.score_sequences(m, hist).argmax(1) == truth)
    assert accuracy >= 0.9  # chance: 0.1


def test_train_sasrec_bce_learns_and_is_seeded():
    n = 10
    seqs = cyclic(n, n_users=40, seed=3)
    runs = []
    for _ in range(2):
        m = Q.SASRec(n, dim=16, n_blocks=1, n_heads=2, max_len=4, dropout=0.1, seed=3)
        Q.train_sasrec(m, seqs, epochs=20, batch_size=32, lr=1e-2, loss="bce", seed=3, progress=False, device="cpu")
        runs.append(m)
    assert all(torch.equal(p, q) for p, q in zip(runs[0].parameters(), runs[1].parameters()))
    hist = [(start + np.arange(length)) % n for start in range(n) for length in (1, 2, 4, 7)]
    truth = np.array([(h[-1] + 1) % n for h in hist])
    assert np.mean(Q.score_sequences(runs[0], hist).argmax(1) == truth) >= 0.5  # chance: 0.1


def test_train_sasrec_early_stopping_reports_the_best_epoch():
    n = 6
    seqs = cyclic(n, n_users=12, seed=1)
    m = Q.SASRec(n, dim=8, n_blocks=1, n_heads=1, max_len=3, dropout=0.0, seed=0)
    calls = []

    def valid_fn(model):  # best after the second epoch, then worse: stops after patience = 2 more
        calls.append(len(calls))
        return [0.1, 0.5, 0.3, 0.2, 0.1, 0.0][len(calls) - 1]

    history = Q.train_sasrec(m, seqs, epochs=6, batch_size=4, lr=1e-2, valid_fn=valid_fn, patience=2,
                             progress=False, device="cpu")
    assert history["valid"] == [0.1, 0.5, 0.3, 0.2]
    assert history["best_epoch"] == 2 and history["epochs_run"] == 4 and history["stopped_early"]


# -- item-to-item transitions -------------------------------------------------------------------------------------

SEQS = [np.array([0, 1, 2, 0]), np.array([1, 0]), np.array([], np.int64)]


def test_item_transitions_matrix_by_hand():
    # gap 1: 0->1, 1->2, 2->0 (user 0), 1->0 (user 1)
    t1 = Q.ItemTransitions(3, gap=1).fit(SEQS).matrix
    assert sp.issparse(t1)
    np.testing.assert_allclose(t1.toarray(), [[0, 1, 0], [0.5, 0, 0.5], [1, 0, 0]])
    # gap 2 adds the two-step pairs 0->2 and 1->0 of user 0
    t2 = Q.ItemTransitions(3, gap=2).fit(SEQS).matrix
    np.testing.assert_allclose(t2.toarray(), [[0, 0.5, 0.5], [2 / 3, 0, 1 / 3], [1, 0, 0]], rtol=1e-6)
    # gap 3 adds user 0's 0->0 (three steps apart); gaps past every history add nothing; item 3 is never read
    t = Q.ItemTransitions(4, gap=5).fit(SEQS).matrix.toarray()
    np.testing.assert_allclose(t[:3], [[1 / 3, 1 / 3, 1 / 3, 0], [2 / 3, 0, 1 / 3, 0], [1, 0, 0, 0]], rtol=1e-6)
    np.testing.assert_array_equal(t[3], np.zeros(4))


def test_item_transitions_scores_by_hand():
    it = Q.ItemTransitions(3, gap=1, last=2, decay=0.5).fit(SEQS)
    rows = it.matrix.toarray()
    scores = it.scores([np.array([2, 1, 0]), np.array([0]), np.array([], np.int64), np.array([0, 1, 0])])
    assert scores.shape == (4, 3) and scores.dtype == np.float32
    np.testing.assert_allclose(scores[0], rows[0] + 0.5 * rows[1], rtol=1e-6)  # last item 0, then 1; 2 is too old
    np.testing.assert_allclose(scores[0], [0.25, 1.0, 0.25], rtol=1e-6)
    np.testing.assert_allclose(scores[1], [0, 1, 0])
    np.testing.assert_array_equal(scores[2], np.zeros(3))  # empty history
    np.testing.assert_allclose(scores[3], [0.25, 1.0, 0.25], rtol=1e-6)
    # an item read twice in the window counts twice: 0 (weight 1) and 0 again (weight 0.5 ** 2)
    three = Q.ItemTransitions(3, gap=1, last=3, decay=0.5).fit(SEQS)
    np.testing.assert_allclose(three.scores([np.array([0, 1, 0])])[0],
                               (1 + 0.25) * rows[0] + 0.5 * rows[1], rtol=1e-6)
    # decay 0 keeps only the last item
    last_only = Q.ItemTransitions(3, gap=1, last=3, decay=0.0).fit(SEQS)
    np.testing.assert_allclose(last_only.scores([np.array([0, 2, 1])])[0], rows[1], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=10), max_size=8), st.integers(1, 4))
def test_item_transitions_rows_are_distributions(seqs, gap):
    t = Q.ItemTransitions(6, gap=gap).fit([np.array(s, np.int64) for s in seqs]).matrix.toarray()
    sums = t.sum(axis=1)
    has_next = np.zeros(6, bool)
    for s in seqs:
        has_next[s[:-1]] = True
    np.testing.assert_allclose(sums[has_next], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(sums[~has_next], 0.0)


def test_item_transitions_refuses_bad_use():
    with pytest.raises(ValueError, match="fit"):
        Q.ItemTransitions(3).scores([np.array([0])])
    with pytest.raises(ValueError, match="gap"):
        Q.ItemTransitions(3, gap=0)
    with pytest.raises(ValueError, match="decay"):
        Q.ItemTransitions(3, decay=1.5)
    with pytest.raises(ValueError, match="last"):
        Q.ItemTransitions(3, last=0)
    with pytest.raises(ValueError, match="outside"):
        Q.ItemTransitions(3).fit([np.array([0, 3])])
    with pytest.raises(ValueError, match="outside"):
        Q.ItemTransitions(3).fit(SEQS).scores([np.array([5])])


# -- as a Scorer ---------------------------------------------------------------------------------------------------

def test_sequence_scorer_scores_the_fixed_histories():
    it = Q.ItemTransitions(3, gap=1, last=2, decay=0.5).fit(SEQS)
    histories = [np.array([2, 1, 0]), np.array([], np.int64), np.array([1])]
    scorer = Q.SequenceScorer(it.scores, histories, n_items=3)
    assert isinstance(scorer, Scorer)
    assert scorer.shape == (3, 3) and scorer.n_users == 3 and scorer.n_items == 3
    everyone = scorer.scores()
    np.testing.assert_allclose(everyone, it.scores(histories))
    np.testing.assert_allclose(scorer.scores(np.array([2, 0])), everyone[[2, 0]])
    np.testing.assert_allclose(scorer.scores([1]), np.zeros((1, 3)))


def test_sequence_scorer_over_sasrec():
    m = randomise(model(n_items=5, max_len=3))
    histories = [np.array([0, 1, 2, 3]), np.array([4])]
    scorer = Q.SequenceScorer(lambda s: Q.score_sequences(m, s), histories, n_items=5)
    np.testing.assert_allclose(scorer.scores([1, 0]), Q.score_sequences(m, histories)[[1, 0]], rtol=1e-6)


def test_sequence_scorer_refuses_bad_scores_and_arguments():
    histories = [np.array([0, 1]), np.array([2])]
    with pytest.raises(ValueError, match=r"shape \(2, 3\), got shape \(2, 2\)"):
        Q.SequenceScorer(lambda s: np.zeros((len(s), 2)), histories, 3).scores()
    with pytest.raises(ValueError, match=r"shape \(1, 3\), got shape \(2, 3\)"):
        Q.SequenceScorer(lambda s: np.zeros((2, 3)), histories, 3).scores([0])
    with pytest.raises(ValueError, match="finite"):
        Q.SequenceScorer(lambda s: np.full((len(s), 3), np.nan), histories, 3).scores()
    with pytest.raises(TypeError, match="callable"):
        Q.SequenceScorer(np.zeros((2, 3)), histories, 3)
    with pytest.raises(ValueError, match="outside"):
        Q.SequenceScorer(lambda s: np.zeros((len(s), 3)), [np.array([3])], 3)
    scorer = Q.SequenceScorer(lambda s: np.zeros((len(s), 3)), histories, 3)
    with pytest.raises(ValueError, match="user_idx"):
        scorer.scores([2])
    with pytest.raises(TypeError, match="user_idx"):
        scorer.scores([0.0])
