"""recsuite: the helper package of an executable course on language-model-enhanced recommenders.

Each module holds what one lesson introduced: ``data`` and ``split`` (the shared protocol), ``metrics``,
``results``, ``features``, ``baselines`` (notebook 01); ``semantic`` and ``llm`` (02); ``compat`` and ``cf``
(03); ``fusion`` (04); ``rerank`` (05); ``finetune`` (06). Heavy modules are imported on demand.
"""

from recsuite.utils import get_device, set_seed

__version__ = "0.1.0"
__all__ = ["get_device", "set_seed", "__version__"]
