"""recsuite.combine.feedback: acceptance probabilities, the recommend → accept → grow loop, and its table per round."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsuite.combine.feedback import FeedbackRun, acceptance_probabilities, round_table, simulate

N_USERS, N_ITEMS, K = 20, 30, 5


def popular_unseen(history, k=K):
    """Top-k items by popularity in the current history, ties by item index, the user's seen items excluded."""
    pop = np.asarray(history.sum(axis=0)).ravel().astype(np.float64)
    s = np.repeat(pop[None, :], history.shape[0], axis=0)
    s[history.toarray() > 0] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


@pytest.fixture
def problem():
    rng = np.random.default_rng(7)
    start = sp.csr_matrix((rng.random((N_USERS, N_ITEMS)) < 0.15).astype(np.float32))
    accept_p = acceptance_probabilities(rng.normal(size=(N_USERS, N_ITEMS)), max_p=0.6, scale=10.0)
    return start, accept_p


def lesson_loop(recommend, start_history, accept_p, rounds, seed):
    """Lesson 08's ``simulate``, written out as the lesson has it."""
    history, lists = start_history.copy(), []
    for r in range(rounds):
        top = recommend(history)
        draw = np.random.default_rng([seed, r]).random(top.shape)
        accepted = draw < np.take_along_axis(accept_p, top, axis=1)
        lists.append(top)
        u, c = np.nonzero(accepted)
        new = sp.csr_matrix((np.ones(len(u), np.float32), (u, top[u, c])), shape=history.shape)
        history = (history + new).astype(bool).astype(np.float32).tocsr()
    return np.stack(lists), history


# -- acceptance probabilities ---------------------------------------------------------------------------
def test_acceptance_probabilities_by_hand():
    scores = np.array([[0.1, 0.9, 0.5, 0.9],   # ranks 3, 0, 2, 1 (the tie goes to the lower index)
                       [4.0, 3.0, 2.0, 1.0]])  # ranks 0, 1, 2, 3
    p = acceptance_probabilities(scores, max_p=0.5, scale=2.0)
    want = 0.5 * np.exp(-np.array([[3, 0, 2, 1], [0, 1, 2, 3]]) / 2.0)
    np.testing.assert_allclose(p, want, rtol=1e-12)


def test_acceptance_probabilities_outside_the_catalogue_are_zero_and_the_rest_ranked_among_the_catalogue():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [4.0, 3.0, 2.0, 1.0]])
    cat = np.array([True, False, True, True])
    p = acceptance_probabilities(scores, max_p=0.5, scale=2.0, catalogue=cat)
    want = 0.5 * np.exp(-np.array([[2, 0, 1, 0], [0, 0, 1, 2]]) / 2.0)
    want[:, 1] = 0.0
    np.testing.assert_allclose(p, want, rtol=1e-12)


def test_acceptance_probabilities_match_lesson_08_on_the_catalogue():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 40)).astype(np.float32)
    scores[:, 5] = scores[:, 6]  # a tie
    warm = rng.random(40) < 0.7
    masked = scores.copy()
    masked[:, ~warm] = -np.inf
    rank = np.argsort(np.argsort(-masked, axis=1, kind="stable"), axis=1, kind="stable")
    lesson = 0.5 * np.exp(-rank / 100.0)
    p = acceptance_probabilities(scores, catalogue=warm)
    assert np.array_equal(p[:, warm], lesson[:, warm])  # bit for bit where a list can reach
    assert (p[:, ~warm] == 0).all() and (lesson[:, ~warm] > 0).all()


# -- the loop -------------------------------------------------------------------------------------------
def test_simulate_reproduces_lesson_08s_loop(problem):
    start, accept_p = problem
    run = simulate(popular_unseen, start, accept_p, rounds=4, seed=11, progress=False)
    lists, history = lesson_loop(popular_unseen, start, accept_p, rounds=4, seed=11)
    assert run.lists.shape == (4, N_USERS, K) and run.accepted.shape == (4, N_USERS, K)
    assert np.array_equal(run.lists, lists)
    assert (run.history != history).nnz == 0 and run.history.dtype == np.float32
    assert run.history.nnz > start.nnz  # the loop did accept something
    assert (run.start_history != start).nnz == 0


def test_accepted_items_are_what_the_history_gained(problem):
    start, accept_p = problem
    run = simulate(popular_unseen, start, accept_p, rounds=3, seed=2, progress=False)
    r, u, j = np.nonzero(run.accepted)
    gained = sp.csr_matrix((np.ones(len(u), np.float32), (u, run.lists[r, u, j])), shape=start.shape)
    assert ((start + gained).astype(bool) != run.history.astype(bool)).nnz == 0


def test_same_seed_same_run_other_seed_other_draws(problem):
    start, accept_p = problem
    a = simulate(popular_unseen, start, accept_p, rounds=3, seed=5, progress=False)
    b = simulate(popular_unseen, start, accept_p, rounds=3, seed=5, progress=False)
    c = simulate(popular_unseen, start, accept_p, rounds=3, seed=6, progress=False)
    assert np.array_equal(a.lists, b.lists) and np.array_equal(a.accepted, b.accepted)
    assert (a.history != b.history).nnz == 0
    assert not np.array_equal(a.accepted, c.accepted)


def test_two_arms_see_the_same_draws(problem):
    start, accept_p = problem
    fixed = popular_unseen(start)

    def arm_a(history):
        return fixed

    def arm_b(history):  # another arm, showing the same lists but as a different dtype
        return fixed.astype(np.int32)

    a = simulate(arm_a, start, accept_p, rounds=3, seed=9, progress=False)
    b = simulate(arm_b, start, accept_p, rounds=3, seed=9, progress=False)
    assert np.array_equal(a.accepted, b.accepted)
    # the draws of each round are np.random.default_rng([seed, round])'s, the same in every arm
    for r in range(3):
        draw = np.random.default_rng([9, r]).random(fixed.shape)
        assert np.array_equal(a.accepted[r], draw < np.take_along_axis(accept_p, fixed, axis=1))


def test_probability_zero_leaves_the_history_and_one_adds_every_listed_item(problem):
    start, _ = problem
    none = simulate(popular_unseen, start, np.zeros(start.shape), rounds=2, progress=False)
    assert not none.accepted.any() and (none.history != start).nnz == 0
    every = simulate(popular_unseen, start, np.ones(start.shape), rounds=2, progress=False)
    assert every.accepted.all()
    r, u, j = np.nonzero(np.ones(every.lists.shape, bool))
    want = (start + sp.csr_matrix((np.ones(len(u), np.float32), (u, every.lists[r, u, j])), shape=start.shape))
    assert (want.astype(bool) != every.history.astype(bool)).nnz == 0
    assert every.history.nnz == start.nnz + 2 * N_USERS * K  # popular_unseen never repeats a seen item


def test_padded_slots_are_never_accepted(problem):
    start, _ = problem

    def short_lists(history):
        top = popular_unseen(history)
        top[:, 2:] = -1
        return top

    run = simulate(short_lists, start, np.ones(start.shape), rounds=2, progress=False)
    assert run.accepted[:, :, :2].all() and not run.accepted[:, :, 2:].any()
    assert run.history.nnz == start.nnz + 2 * N_USERS * 2
    # a -1 read as an index would be the last item, which every user accepts here
    last_only = np.zeros(start.shape)
    last_only[:, -1] = 1.0
    pad = simulate(lambda h: np.full((N_USERS, 3), -1), start, last_only, rounds=1, progress=False)
    assert not pad.accepted.any() and (pad.history != start).nnz == 0


def test_recommend_gets_a_copy_of_the_history(problem):
    start, accept_p = problem

    def vandal(history):
        top = popular_unseen(history)
        history.data[:] = 0.0
        return top

    run = simulate(vandal, start, np.zeros(start.shape), rounds=2, progress=False)
    assert (run.history != start).nnz == 0


# -- the table per round --------------------------------------------------------------------------------
def test_round_table_by_hand():
    # 6 items, catalogue = items 0..4 (item 5 never listed), tail = items 3, 4, 5; two users, k = 2
    lists = np.array([[[0, 1], [0, 2]],     # round 1: items 0, 1, 2 listed; 0 twice
                      [[3, -1], [0, 1]]])   # round 2: items 3, 0, 1 and a padded slot
    accepted = np.array([[[True, False], [True, True]],
                         [[False, False], [True, False]]])
    history = sp.csr_matrix((2, 6), dtype=np.float32)
    run = FeedbackRun(lists=lists, accepted=accepted, history=history, start_history=history)
    cat = np.array([True, True, True, True, True, False])
    tail = np.array([False, False, False, True, True, True])
    t = round_table(run, 6, catalogue=cat, tail=tail)
    assert list(t.columns) == ["round", "accepted per user", "coverage@2", "share ever shown", "gini@2",
                               "long-tail share@2"]
    assert t["round"].tolist() == [1, 2]
    np.testing.assert_allclose(t["accepted per user"], [1.5, 0.5])
    np.testing.assert_allclose(t["coverage@2"], [3 / 5, 3 / 5])
    np.testing.assert_allclose(t["share ever shown"], [3 / 5, 4 / 5])
    np.testing.assert_allclose(t["long-tail share@2"], [0.0, 1 / 3])

    # Gini G = Σ (2i − n − 1) x_(i) / (n Σ x) over the 5 catalogue items, counts sorted ascending:
    # round 1 (0, 0, 1, 1, 2): (2·1 + 4·2) / (5·4) = 0.5; round 2 (0, 0, 1, 1, 1): (2 + 4) / (5·3) = 0.4
    np.testing.assert_allclose(t["gini@2"], [0.5, 0.4])


def test_round_table_k_cuts_the_lists_but_not_the_acceptances():
    lists = np.array([[[0, 1, 2], [3, 4, 5]]])
    accepted = np.array([[[False, False, True], [True, True, True]]])
    history = sp.csr_matrix((2, 6), dtype=np.float32)
    t = round_table(FeedbackRun(lists, accepted, history, history), 6, k=1)
    assert t.loc[0, "accepted per user"] == 2.0
    assert t.loc[0, "coverage@1"] == pytest.approx(2 / 6) and t.loc[0, "share ever shown"] == pytest.approx(2 / 6)
    assert "long-tail share@1" not in t.columns


def test_round_table_on_a_simulated_run_is_a_frame_per_round(problem):
    start, accept_p = problem
    run = simulate(popular_unseen, start, accept_p, rounds=3, progress=False)
    t = round_table(run, N_ITEMS)
    assert isinstance(t, pd.DataFrame) and len(t) == 3
    assert t["share ever shown"].is_monotonic_increasing
    assert (t[f"coverage@{K}"] <= t["share ever shown"] + 1e-12).all()
    np.testing.assert_allclose(t["accepted per user"], run.accepted.sum(axis=2).mean(axis=1))


# -- bad input ------------------------------------------------------------------------------------------
def test_bad_input_names_the_argument(problem):
    start, accept_p = problem
    with pytest.raises(TypeError, match="recommend"):
        simulate("popularity", start, accept_p, rounds=2, progress=False)
    with pytest.raises(ValueError, match=r"accept_p must hold probabilities in \[0, 1\].*1\.5"):
        simulate(popular_unseen, start, np.full(start.shape, 1.5), rounds=2, progress=False)
    with pytest.raises(ValueError, match="accept_p"):
        simulate(popular_unseen, start, accept_p[:, :-1], rounds=2, progress=False)
    with pytest.raises(ValueError, match="rounds.*got 0"):
        simulate(popular_unseen, start, accept_p, rounds=0, progress=False)
    with pytest.raises(TypeError, match="start_history"):
        simulate(popular_unseen, start.toarray(), accept_p, rounds=2, progress=False)
    with pytest.raises(ValueError, match="seed"):
        simulate(popular_unseen, start, accept_p, rounds=2, seed=-1, progress=False)
    with pytest.raises(ValueError, match="max_p"):
        acceptance_probabilities(np.zeros((2, 3)), max_p=2.0)
    with pytest.raises(ValueError, match="catalogue"):
        acceptance_probabilities(np.zeros((2, 3)), catalogue=np.ones(4, bool))


def test_a_bad_list_names_the_round(problem):
    start, accept_p = problem
    calls = []

    def narrowing(history):  # right in round 1, one user short in round 2
        calls.append(1)
        top = popular_unseen(history)
        return top if len(calls) == 1 else top[:-1]

    with pytest.raises(ValueError, match=r"round 2.*shape \(20, 5\).*got shape \(19, 5\)"):
        simulate(narrowing, start, accept_p, rounds=3, progress=False)
    with pytest.raises(ValueError, match=r"round 1.*\[0, 30\)"):
        simulate(lambda h: popular_unseen(h) + N_ITEMS, start, accept_p, rounds=1, progress=False)
    with pytest.raises(TypeError, match="round 1.*int array"):
        simulate(lambda h: popular_unseen(h).astype(float), start, accept_p, rounds=1, progress=False)
    with pytest.raises(ValueError, match="round 1.*repeat"):
        simulate(lambda h: np.zeros((N_USERS, 2), np.int64), start, accept_p, rounds=1, progress=False)


def test_round_table_refuses_items_outside_the_catalogue_and_a_wrong_n_items():
    lists = np.array([[[0, 5], [1, 2]]])
    history = sp.csr_matrix((2, 6), dtype=np.float32)
    run = FeedbackRun(lists, np.zeros(lists.shape, bool), history, history)
    cat = np.array([True, True, True, True, True, False])
    with pytest.raises(ValueError, match="outside catalogue.*item 5 in round 1"):
        round_table(run, 6, catalogue=cat)
    with pytest.raises(ValueError, match="n_items.*got 7"):
        round_table(run, 7)
    with pytest.raises(ValueError, match="k"):
        round_table(run, 6, k=3)
    with pytest.raises(TypeError, match="run"):
        round_table(lists, 6)
