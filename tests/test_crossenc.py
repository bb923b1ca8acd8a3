"""The cross-encoder: pair scoring in input order, seeded heads, negatives that avoid seen items, BCE
training that lowers the loss and restores the best weights, and clear errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsuite.models import crossenc


@pytest.fixture(scope="module")
def model():
    return crossenc.CrossEncoder(max_length=32, seed=0)


QUERIES = ["Recently watched: Toy Story (1995); Babe (1995)", "Recently watched: Scream (1996)",
           "Recently watched: Heat (1995); Casino (1995); Fargo (1996)", "Recently watched: Alien (1979)"]
ITEMS = ["Aladdin (1992), animation, children's", "Halloween (1978), horror", "GoodFellas (1990), crime",
         "Aliens (1986), action, sci-fi"]


def test_score_equals_one_pair_at_a_time_in_input_order(model):
    batched = model.score(QUERIES, ITEMS, batch_size=3, progress=False)
    with torch.inference_mode():
        one = np.array([float(model([q], [i])[0]) for q, i in zip(QUERIES, ITEMS)])
    np.testing.assert_allclose(batched, one, atol=1e-5)
    reversed_ = model.score(QUERIES[::-1], ITEMS[::-1], batch_size=2, progress=False)
    np.testing.assert_allclose(reversed_, batched[::-1], atol=1e-5)
    assert np.ptp(batched) > 0  # different pairs get different logits


def test_the_head_is_drawn_from_the_seed(model):
    again = crossenc.CrossEncoder(max_length=32, seed=0)
    other = crossenc.CrossEncoder(max_length=32, seed=1)
    assert torch.equal(again.head.weight, model.head.weight)
    assert not torch.equal(other.head.weight, model.head.weight)
    assert float(model.head.bias.detach()) == 0.0


def test_rerank_scores_scores_every_candidate_of_every_user(model):
    cands = np.array([[0, 1, 2], [3, 2, 1]])
    got = crossenc.rerank_scores(model, QUERIES[:2], cands, ITEMS, progress=False)
    want = model.score([QUERIES[0]] * 3 + [QUERIES[1]] * 3, [ITEMS[i] for i in cands.ravel()], progress=False)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.ravel(), want, atol=1e-5)


def test_a_cross_encoder_and_a_catalogue_scorer_answer_one_candidate_interface(model):
    import scipy.sparse as sp

    from recsuite.models.base import CandidateScorer, ScorerOnCandidates
    from recsuite.models.ease import fit_ease

    cands = np.array([[0, 1, 2], [3, 2, 1]])
    ranker = crossenc.CrossEncoderRanker(model, QUERIES, ITEMS, batch_size=2)
    assert isinstance(ranker, CandidateScorer)
    got = ranker.score_candidates([2, 0], cands)
    np.testing.assert_allclose(got, crossenc.rerank_scores(model, [QUERIES[2], QUERIES[0]], cands, ITEMS,
                                                           progress=False), atol=1e-5)
    ease = fit_ease(sp.csr_matrix(np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]][:4] + np.eye(4, k=1, dtype=np.float32)),
                    reg_weight=1.0)
    on_cands = ScorerOnCandidates(ease).score_candidates([2, 0], cands)
    np.testing.assert_array_equal(on_cands, np.take_along_axis(ease.scores([2, 0]), cands, axis=1))
    with pytest.raises(ValueError, match="one row per user"):
        ranker.score_candidates([0], cands)
    with pytest.raises(ValueError, match="candidates"):
        ranker.score_candidates([0, 1], np.array([[0, 9, 1], [0, 1, 2]]))


def test_negatives_never_hit_a_seen_item_and_follow_the_seed():
    seen = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=np.float32))
    users = np.array([0, 1, 0, 1])
    neg = crossenc.sample_negatives(users, seen, 50, seed=3)
    assert neg.shape == (4, 50)
    assert not seen[np.repeat(users, 50), neg.ravel()].any()
    assert set(np.unique(neg[[0, 2]])) == {3, 4, 5} and set(np.unique(neg[[1, 3]])) == {0, 1, 2, 5}
    np.testing.assert_array_equal(neg, crossenc.sample_negatives(users, seen, 50, seed=3))
    assert not np.array_equal(neg, crossenc.sample_negatives(users, seen, 50, seed=4))
    weighted = crossenc.sample_negatives(users, seen, 50, weights=[1, 1, 1, 0, 0, 1], seed=3)
    assert set(np.unique(weighted[[0, 2]])) == {5}  # items 3, 4 have weight 0


def test_negatives_refuse_a_user_who_has_seen_everything():
    seen = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="user index 0 has seen every item"):
        crossenc.sample_negatives([1, 0], seen, 2, weights=[1, 1, 0])


def test_bce_training_lowers_the_loss_and_keeps_the_global_generator():
    model = crossenc.CrossEncoder(max_length=32, seed=0)
    negatives = np.array([[1, 2], [0, 3], [3, 1], [2, 0]])
    state = torch.random.get_rng_state()
    config = crossenc.CrossTrainConfig(max_steps=16, batch_size=4, lr=3e-4, head_lr=3e-2, warmup_ratio=0.0, seed=0)
    hist = crossenc.train(model, QUERIES, np.arange(4), negatives, ITEMS, config, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert hist["steps"] == 16 and hist["pairs"] == 16 * 4 * 3 and len(hist["loss"]) == 16
    assert np.mean(hist["loss"][-3:]) < 0.6 * np.mean(hist["loss"][:3])
    s = model.score(np.repeat(QUERIES, 3), [ITEMS[i] for i in np.c_[np.arange(4), negatives].ravel()], progress=False)
    s = s.reshape(4, 3)
    assert (s[:, 0] > s[:, 1:].max(axis=1)).all()  # every positive now beats its negatives


def test_early_stopping_restores_the_best_weights():
    model = crossenc.CrossEncoder(max_length=32, seed=0)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls = []

    def worse_every_time(m):  # the untrained model is the best evaluation
        calls.append(1)
        return -float(len(calls))

    config = crossenc.CrossTrainConfig(max_steps=6, batch_size=2, eval_every=2, patience=2, head_lr=1e-2, seed=0)
    hist = crossenc.train(model, QUERIES, np.arange(4), np.array([[1], [0], [3], [2]]), ITEMS, config,
                          valid_fn=worse_every_time, progress=False)
    assert hist["best_step"] == 0 and hist["stopped_early"] and hist["steps"] == 4 and hist["valid_step"] == [0, 2, 4]
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())


def test_bad_input_is_refused_with_the_argument_named(model):
    with pytest.raises(ValueError, match="queries and items must pair up"):
        model.score(QUERIES, ITEMS[:2])
    with pytest.raises(TypeError, match="model must be a recsuite.models.crossenc.CrossEncoder"):
        crossenc.rerank_scores("minilm", QUERIES[:1], np.array([[0]]), ITEMS)
    with pytest.raises(ValueError, match="candidates must have one row per query"):
        crossenc.rerank_scores(model, QUERIES[:1], np.array([[0], [1]]), ITEMS)
    with pytest.raises(ValueError, match="candidates holds"):
        crossenc.rerank_scores(model, QUERIES[:1], np.array([[7]]), ITEMS)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        crossenc.train(model, QUERIES, np.arange(4), np.roll(np.arange(4), 1)[:, None], ITEMS,
                       crossenc.CrossTrainConfig(batch_size=8), progress=False)
    with pytest.raises(ValueError, match="one row per pair"):
        crossenc.train(model, QUERIES, np.arange(3), np.zeros((4, 1), dtype=int), ITEMS, progress=False)
    with pytest.raises(ValueError, match="patience needs valid_fn"):
        crossenc.train(model, QUERIES, np.arange(4), np.roll(np.arange(4), 1)[:, None], ITEMS,
                       crossenc.CrossTrainConfig(batch_size=2, patience=1), progress=False)
    with pytest.raises(ValueError, match="steps"):
        crossenc.CrossTrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="max_length must be <="):
        crossenc.CrossEncoder(max_length=100_000)
    with pytest.raises(ValueError, match="not an existing directory"):
        crossenc.CrossEncoder("/no/such/model/folder")
    with pytest.raises(ValueError, match="n_negatives"):
        crossenc.sample_negatives([0], sp.csr_matrix((1, 3)), 0)


def test_training_refuses_contradictory_or_one_class_labels(model):
    queries, positives = QUERIES, np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"negatives must not hold the row's own positive \(row 2 has item 2"):
        crossenc.train(model, queries, positives, np.array([[1], [2], [2], [0]]), ITEMS, progress=False)
    with pytest.raises(ValueError, match="negatives must have at least one column"):
        crossenc.train(model, queries, positives, np.empty((4, 0), dtype=np.int64), ITEMS, progress=False)
