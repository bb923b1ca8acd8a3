"""Every model that scores a catalogue answers one interface (``recsuite.models.base.Scorer``), as implicit's
``RecommenderBase`` does for its models: a lesson or a user swaps one for another in one line."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsuite.combine.fusion import BlendModel, blend
from recsuite.models.base import Scorer
from recsuite.models.cf import fit_implicit
from recsuite.models.ease import fit_ease
from recsuite.models.popularity import fit_popularity, popularity_scores
from recsuite.models.semantic import ContentModel, content_scores

RNG = np.random.default_rng(0)
HISTORY = sp.csr_matrix((RNG.random((12, 9)) < 0.35).astype(np.float32))
VECTORS = RNG.normal(size=(9, 5)).astype(np.float32)


def models():
    return {
        "popularity": fit_popularity(HISTORY, tie_seed=1),
        "EASE": fit_ease(HISTORY, reg_weight=10.0),
        "ALS": fit_implicit("ALS", HISTORY, {"factors": 4, "iterations": 3}, seed=0),
        "content": ContentModel(HISTORY, VECTORS, center=True),
        "blend": BlendModel({"cf": fit_ease(HISTORY, reg_weight=10.0), "sem": ContentModel(HISTORY, VECTORS)},
                            {"cf": 1.0, "sem": 0.5}, "minmax", seen=HISTORY),
    }


@pytest.mark.parametrize("name", list(models()))
def test_every_scorer_answers_the_same_interface(name):
    model = models()[name]
    assert isinstance(model, Scorer)
    assert (model.n_users, model.n_items) == HISTORY.shape
    full = model.scores()
    assert full.shape == HISTORY.shape and np.isfinite(full).all()
    np.testing.assert_allclose(model.scores(np.array([7, 0, 7])), full[[7, 0, 7]], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="user_idx"):
        model.scores([12])
    with pytest.raises(TypeError, match="user_idx"):
        model.scores([0.5])


def test_the_scorers_give_what_their_functions_give():
    np.testing.assert_array_equal(fit_popularity(HISTORY, tie_seed=3).scores(), popularity_scores(HISTORY, tie_seed=3))
    np.testing.assert_array_equal(ContentModel(HISTORY, VECTORS, center=False).scores(),
                                  content_scores(HISTORY, VECTORS, center=False))
    ease, content = fit_ease(HISTORY, reg_weight=10.0), ContentModel(HISTORY, VECTORS)
    by_hand = blend({"cf": ease.scores(), "sem": content.scores()}, {"cf": 1.0, "sem": 0.5}, "minmax", seen=HISTORY)
    np.testing.assert_array_equal(BlendModel({"cf": ease, "sem": content}, {"cf": 1.0, "sem": 0.5}, "minmax",
                                             seen=HISTORY).scores(), by_hand)


def test_a_blend_refuses_what_is_not_a_scorer_or_does_not_fit():
    ease = fit_ease(HISTORY, reg_weight=10.0)
    with pytest.raises(TypeError, match="sources"):
        BlendModel({"cf": ease.scores()}, {"cf": 1.0})
    with pytest.raises(ValueError, match="same users and items"):
        BlendModel({"cf": ease, "small": fit_ease(HISTORY[:5], reg_weight=10.0)}, {"cf": 1.0, "small": 1.0})
    with pytest.raises(ValueError, match="catalogue"):
        BlendModel({"cf": ease}, {"cf": 1.0}, catalogue=np.ones(3, bool))
    with pytest.raises(ValueError, match="item columns"):
        ContentModel(HISTORY, VECTORS[:4])
