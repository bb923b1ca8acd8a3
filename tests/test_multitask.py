"""recsuite.models.multitask: ESMM's factorisation, MMoE's gates, the loss by hand, the scaler by hand, training
on a synthetic problem with known structure, determinism and the argument checks. Tiny data, one thread."""

import math

import numpy as np
import pytest
import torch

from recsuite.models import multitask as M

D = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The networks are far too small to gain from threads; waiting OpenMP threads only slow the tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def auc(scores, y):
    """ROC AUC as the Mann-Whitney statistic: the chance that a positive outscores a negative."""
    ranks = np.argsort(np.argsort(scores)) + 1.0
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def synthetic(n, seed):
    """click = Bernoulli(sigmoid(linear)), like = click x Bernoulli(sigmoid(another linear)), rating around a
    third linear function on clicked rows (NaN elsewhere); the weights are the same for every ``seed``."""
    w = np.random.default_rng(123).normal(size=(3, D))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    click = (rng.random(n) < sigmoid(2 * x @ w[0] - 1)).astype(np.float64)
    like = click * (rng.random(n) < sigmoid(2 * x @ w[1]))
    rating = np.where(click == 1, 3.5 + 0.5 * x @ w[2] + 0.3 * rng.normal(size=n), np.nan)
    return x, {"click": click, "like": like, "rating": rating}


MODELS = {
    "SharedBottom": lambda seed=0: M.SharedBottom(D, hidden=(16,), tower=(8,), seed=seed),
    "MMoE": lambda seed=0: M.MMoE(D, n_experts=3, expert_hidden=(16,), tower=(8,), seed=seed),
    "ESMM": lambda seed=0: M.ESMM(D, hidden=(16,), tower=(8,), seed=seed),
}


def valid_loss(model, x, labels):
    model.eval()
    with torch.no_grad():
        return float(M.multitask_loss(model(torch.from_numpy(x)), labels))


# -- ESMM ------------------------------------------------------------------------------------------------------

def test_esmm_like_is_click_times_cvr_and_never_above_click():
    model = M.ESMM(D, seed=3).eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(200, D)).astype(np.float32))
    x[:20] *= 200  # saturated probabilities too
    with torch.no_grad():
        out = model(x)
    click, like, cvr = (out[k].double().numpy() for k in ("click", "like", "cvr"))
    np.testing.assert_allclose(like, click * cvr, rtol=0, atol=1e-6)
    assert (like <= click).all()
    assert np.isfinite(out["like_logit"].numpy()).all()
    unsaturated = (click > 1e-3) & (click < 1 - 1e-3) & (cvr > 1e-3) & (cvr < 1 - 1e-3)
    assert unsaturated.sum() > 100
    np.testing.assert_allclose(sigmoid(out["like_logit"].double().numpy()[unsaturated]), like[unsaturated],
                               rtol=1e-5)


def test_esmm_like_loss_is_the_bce_of_the_product():
    """The log-space loss on pCTCVR equals the naive BCE of pCTR x pCVR computed in float64."""
    model = M.ESMM(D, rating=False, seed=1).eval()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(50, D)).astype(np.float32))
    y = (np.arange(50) % 3 == 0).astype(np.float64)
    with torch.no_grad():
        out = model(x)
        loss = float(M.multitask_loss(out, {"like": y}))
    p = out["click"].double().numpy() * out["cvr"].double().numpy()
    assert loss == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-5)


def test_esmm_trains_cvr_only_through_the_product():
    model = M.ESMM(D, seed=0)
    x, labels = synthetic(64, 0)
    with pytest.raises(ValueError, match="'cvr'"):
        M.multitask_loss(model(torch.from_numpy(x)), {"cvr": labels["like"]})
    M.multitask_loss(model(torch.from_numpy(x)), {"like": labels["like"]}).backward()
    assert model.heads["cvr"][-1].weight.grad.abs().sum() > 0  # the CVR tower learns from the like labels
    model.zero_grad()
    M.multitask_loss(model(torch.from_numpy(x)), {"click": labels["click"]}).backward()
    assert model.heads["cvr"][-1].weight.grad is None or model.heads["cvr"][-1].weight.grad.abs().sum() == 0
    with pytest.raises(ValueError, match=r"labels\['like'\] is 1 where"):
        M.fit_multitask(model, x, {**labels, "like": np.ones(64)}, progress=False)


# -- MMoE ------------------------------------------------------------------------------------------------------

def test_mmoe_gates_are_a_softmax_per_task_and_row():
    model = M.MMoE(D, n_experts=5, seed=2)
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(30, D)).astype(np.float32))
    with torch.no_grad():
        g = model.gates(x).numpy()
    assert g.shape == (30, 3, 5)
    assert (g >= 0).all()
    np.testing.assert_allclose(g.sum(axis=-1), 1.0, atol=1e-6)
    assert g.std(axis=0).max() > 1e-3  # the weights depend on the input


def test_mmoe_with_one_expert_gives_each_task_all_of_it():
    model = M.MMoE(D, n_experts=1, seed=0)
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(10, D)).astype(np.float32))
    with torch.no_grad():
        g = model.gates(x)
    assert g.shape == (10, 3, 1)
    assert torch.equal(g, torch.ones_like(g))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_return_their_named_outputs(name):
    model = MODELS[name]()
    x, _ = synthetic(7, 0)
    out = model(torch.from_numpy(x))
    binary = ["click", "like", "cvr"] if name == "ESMM" else ["click", "like"]
    assert set(out) == {*binary, "rating", "click_logit", "like_logit"}
    assert all(v.shape == (7,) for v in out.values())
    for k in binary:
        assert ((out[k] > 0) & (out[k] < 1)).all()
    assert model.tasks == ("click", "like", "rating")
    pred = M.predict(model, x)
    assert set(pred) == set(model.outputs) == {*binary, "rating"}
    assert all(v.dtype == np.float64 and v.shape == (7,) for v in pred.values())
    np.testing.assert_allclose(pred["click"], out["click"].detach().numpy(), rtol=1e-6)


def test_tasks_choose_the_towers():
    model = M.SharedBottom(D, tasks=("click", "watch"), seed=0)
    out = model(torch.zeros(2, D))
    assert set(out) == {"click", "click_logit", "watch", "watch_logit"}
    assert set(M.ESMM(D, rating=False)(torch.zeros(2, D))) == {"click", "click_logit", "like", "like_logit", "cvr"}


# -- the loss --------------------------------------------------------------------------------------------------

def test_multitask_loss_by_hand():
    zc, zl = np.array([2.0, -1.0, 0.5, -3.0]), np.array([1.0, -2.0, 0.0, -1.5])
    r_hat = np.array([4.0, 3.0, 2.5, 1.0])
    y_c, y_l = np.array([1.0, 0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0])
    r = np.array([5.0, np.nan, 2.0, np.nan])
    outputs = {"click_logit": torch.tensor(zc), "like_logit": torch.tensor(zl), "rating": torch.tensor(r_hat)}
    labels = {"click": y_c, "like": y_l, "rating": r}

    def bce(z, y):
        p = sigmoid(z)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    mse = ((4.0 - 5.0) ** 2 + (2.5 - 2.0) ** 2) / 2  # the two rated rows only
    by_hand = bce(zc, y_c) + bce(zl, y_l) + mse
    assert float(M.multitask_loss(outputs, labels)) == pytest.approx(by_hand, rel=1e-9)
    weighted = 2 * bce(zc, y_c) + 0 * bce(zl, y_l) + 0.5 * mse
    loss = M.multitask_loss(outputs, labels, weights={"click": 2.0, "like": 0.0, "rating": 0.5})
    assert float(loss) == pytest.approx(weighted, rel=1e-9)
    only_rating = M.multitask_loss(outputs, {"rating": r})
    assert float(only_rating) == pytest.approx(mse, rel=1e-12)


def test_rating_loss_ignores_unrated_rows():
    r = torch.tensor([4.0, float("nan"), 2.0, float("nan")])
    pred = torch.tensor([3.0, 1.0, 2.5, 4.0], requires_grad=True)
    base = M.multitask_loss({"rating": pred}, {"rating": r})
    loss = float(base.detach())
    moved_nan_row = torch.tensor([3.0, 100.0, 2.5, -7.0])
    assert float(M.multitask_loss({"rating": moved_nan_row}, {"rating": r})) == loss
    moved_rated_row = torch.tensor([3.5, 1.0, 2.5, 4.0])
    assert float(M.multitask_loss({"rating": moved_rated_row}, {"rating": r})) != loss
    base.backward()
    assert pred.grad[1] == 0 and pred.grad[3] == 0 and pred.grad[0] != 0
    no_ratings = M.multitask_loss({"rating": pred}, {"rating": torch.full((4,), float("nan"))})
    assert float(no_ratings.detach()) == 0.0


# -- training --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_learns_the_synthetic_problem(name):
    x, labels = synthetic(3000, 0)
    xv, lv = synthetic(1500, 1)
    model = MODELS[name]()
    before = valid_loss(model, xv, lv)
    model, history = M.fit_multitask(model, x, labels, (xv, lv), epochs=8, batch_size=128, lr=3e-3,
                                     patience=3, progress=False)
    after = valid_loss(model, xv, lv)
    assert after < 0.8 * before
    assert after < 0.5 * history["valid_loss"][0]  # better than the base rates alone (init_bias), too
    assert after == pytest.approx(-history["best_valid"], rel=1e-5)  # the best epoch's weights came back
    assert min(history["valid_loss"]) == pytest.approx(after, rel=1e-5)
    pred = M.predict(model, xv)
    assert auc(pred["click"], lv["click"]) > 0.7
    rated = lv["click"] == 1
    assert np.mean((pred["rating"][rated] - lv["rating"][rated]) ** 2) < np.var(lv["rating"][rated])
    assert history["rows"] == 3000 and history["steps_per_epoch"] == math.ceil(3000 / 128)
    assert set(history["valid_tasks"][0]) == {"click", "like", "rating"}


def test_init_bias_starts_each_head_at_the_base_rate():
    x, labels = synthetic(2000, 0)
    model, _ = M.fit_multitask(M.ESMM(D), x, labels, epochs=1, batch_size=2000, lr=1e-12, progress=False)
    click, like = labels["click"].mean(), labels["like"].mean()
    bias = {k: model.heads[k][-1].bias.item() for k in ("click", "cvr", "rating")}
    assert bias["click"] == pytest.approx(math.log(click / (1 - click)), abs=1e-5)
    cvr = like / click
    assert bias["cvr"] == pytest.approx(math.log(cvr / (1 - cvr)), abs=1e-5)
    assert bias["rating"] == pytest.approx(np.nanmean(labels["rating"]), abs=1e-5)


def test_the_same_seed_gives_the_same_model():
    x, labels = synthetic(600, 0)
    xv, lv = synthetic(200, 1)

    def run(seed):
        model, _ = M.fit_multitask(M.MMoE(D, n_experts=2, dropout=0.1, seed=seed), x, labels, (xv, lv), epochs=3,
                                   batch_size=64, seed=seed, progress=False)
        return M.predict(model, xv)

    first, second, other = run(0), run(0), run(1)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
    assert not np.array_equal(first["click"], other["click"])


# -- the scaler ------------------------------------------------------------------------------------------------

def test_feature_scaler_by_hand():
    X = np.array([[1.0, 5.0, 0.0],
                  [2.0, 5.0, 2.0],
                  [3.0, 5.0, 4.0],
                  [np.nan, 5.0, 6.0]])
    scaler = M.FeatureScaler.fit(X)
    np.testing.assert_allclose(scaler.mean, [2.0, 5.0, 3.0])
    np.testing.assert_allclose(scaler.std, [math.sqrt(2 / 3), 1.0, math.sqrt(5.0)])
    assert scaler.missing.tolist() == [0] and scaler.n_out == 4
    z = scaler.transform(X)
    assert z.dtype == np.float32 and z.shape == (4, 4)
    s0, s2 = math.sqrt(2 / 3), math.sqrt(5.0)
    expected = [[-1 / s0, 0, -3 / s2, 0], [0, 0, -1 / s2, 0], [1 / s0, 0, 1 / s2, 0], [0, 0, 3 / s2, 1]]
    np.testing.assert_allclose(z, expected, rtol=1e-6, atol=1e-7)
    new = scaler.transform(np.array([[np.nan, 7.0, np.nan]]))  # column 2 had no NaN in training: no indicator
    np.testing.assert_allclose(new, [[0.0, 2.0, 0.0, 1.0]])
    assert scaler.feature_names(["a", "b", "c"]) == ["a", "b", "c", "a_missing"]


def test_feature_scaler_all_nan_column():
    X = np.array([[np.nan, 1.0], [np.nan, 3.0]])
    scaler = M.FeatureScaler.fit(X)
    np.testing.assert_allclose(scaler.transform(X), [[0.0, -1.0, 1.0], [0.0, 1.0, 1.0]])


# -- bad input -------------------------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    x, labels = synthetic(50, 0)
    model = M.SharedBottom(D)
    bad_x = x.copy()
    bad_x[3, 1] = np.inf
    with pytest.raises(ValueError, match="^X holds NaN or inf"):
        M.fit_multitask(model, bad_x, labels, progress=False)
    with pytest.raises(ValueError, match=r"X must have shape \(\*, 6\)"):
        M.predict(model, x[:, :4])
    with pytest.raises(ValueError, match=r"labels\['click'\] must have shape \(50,?\), got \(40,\)"):
        M.fit_multitask(model, x, {**labels, "click": labels["click"][:40]}, progress=False)
    with pytest.raises(ValueError, match=r"labels must have exactly .* unknown \['clik'\]"):
        M.fit_multitask(model, x, {**labels, "clik": labels["click"]}, progress=False)
    with pytest.raises(ValueError, match=r"labels must have exactly .* missing \['rating'\]"):
        M.fit_multitask(model, x, {"click": labels["click"], "like": labels["like"]}, progress=False)
    with pytest.raises(ValueError, match=r"labels\['like'\] must hold only 0 and 1, got 2.0"):
        M.fit_multitask(model, x, {**labels, "like": np.where(labels["like"] == 1, 2.0, 0.0)}, progress=False)
    with pytest.raises(ValueError, match=r"labels\['click'\] must hold only 0 and 1, got nan"):
        M.fit_multitask(model, x, {**labels, "click": np.full(50, np.nan)}, progress=False)
    with pytest.raises(ValueError, match=r"valid\[1\]\['rating'\] holds inf"):
        M.fit_multitask(model, x, labels, (x, {**labels, "rating": np.full(50, np.inf)}), progress=False)
    with pytest.raises(TypeError, match="^model must be"):
        M.fit_multitask(torch.nn.Linear(D, 1), x, labels)
    with pytest.raises(ValueError, match=r"weights names tasks \['ctr'\]"):
        M.fit_multitask(model, x, labels, weights={"ctr": 1.0}, progress=False)
    with pytest.raises(ValueError, match=r"batch_labels\['like'\] must hold only 0 and 1"):
        M.multitask_loss(model(torch.from_numpy(x)), {"like": np.full(50, 0.5)})
    with pytest.raises(ValueError, match="^X holds inf"):
        M.FeatureScaler.fit(bad_x)
    with pytest.raises(ValueError, match="^X must have 6 columns"):
        M.FeatureScaler.fit(x).transform(x[:, :5])
    with pytest.raises(ValueError, match="^n_experts must be an int >= 1"):
        M.MMoE(D, n_experts=0)
    with pytest.raises(ValueError, match="^tasks must be distinct"):
        M.SharedBottom(D, tasks=("click", "click"))
    with pytest.raises(ValueError, match=r"^x must have shape \(batch, 6\)"):
        model(torch.zeros(3, 5))


def test_bool_labels_are_accepted():
    x, labels = synthetic(40, 0)
    flags = {**labels, "click": labels["click"] == 1, "like": labels["like"] == 1}
    _, history = M.fit_multitask(M.ESMM(D), x, flags, epochs=1, progress=False)
    assert history["steps"] == 1


def test_without_valid_best_epoch_is_none_and_all_zero_weights_are_refused():
    X = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    lab = {"click": (X[:, 0] > 0).astype(np.float32)}
    _, history = M.fit_multitask(M.SharedBottom(2, tasks=("click",)), X, lab, epochs=1, progress=False)
    assert history["best_epoch"] is None
    with pytest.raises(ValueError, match="at least one task a positive weight"):
        M.fit_multitask(M.SharedBottom(2, tasks=("click",)), X, lab, weights={"click": 0}, epochs=1, progress=False)
