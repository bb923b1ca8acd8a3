"""recsuite: language-model-enhanced recommender systems, the library behind an executable course.

The names a newcomer reaches for first are here; the rest lives in the layers (``recsuite.core``,
``recsuite.evaluation``, ``recsuite.data``, ``recsuite.models``, ``recsuite.combine``, ``recsuite.serving``,
``recsuite.scale``, ``recsuite.course``), each module found from the lesson that introduced it (its docstring's
last line). Everything here needs only the core install (NumPy, SciPy, pandas); the model families come with
extras, e.g. ``pip install "recsuite[cf]"``.

Example::

    import recsuite
    proto = recsuite.make_protocol(log)                 # your own log: user_id, item_id, rating, timestamp
    model = recsuite.fit_ease(proto.history("test"))    # any Scorer: fit_popularity, cf.fit_implicit, ...
    proto.evaluate(model.scores(), "test")["ndcg@10"]
"""

from recsuite.core.device import get_device, set_seed
from recsuite.data.index import IndexMap
from recsuite.data.split import Protocol, load_protocol, make_protocol
from recsuite.evaluation.bootstrap import paired_bootstrap
from recsuite.evaluation.metrics import evaluate, ndcg_at_k, recall_at_k, topk_from_scores
from recsuite.models.base import CandidateScorer, Scorer
from recsuite.models.ease import fit_ease
from recsuite.models.popularity import fit_popularity, popularity_scores

__version__ = "0.1.0"
__all__ = [
    "CandidateScorer", "IndexMap", "Protocol", "Scorer", "__version__", "evaluate", "fit_ease", "fit_popularity",
    "get_device", "load_protocol", "make_protocol", "ndcg_at_k", "paired_bootstrap", "popularity_scores",
    "recall_at_k", "set_seed", "topk_from_scores",
]
