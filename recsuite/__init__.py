"""recsuite: the helper package of an executable course on language-model-enhanced recommenders.

One idea per module, found from the lesson that introduced it: ``data``, ``split``, ``metrics``, ``noise``,
``results``, ``features``, ``baselines``, ``lists`` (notebook 01); ``choices``, ``cache``, ``encoders``,
``semantic``, ``llm`` (02); ``tuning``, ``progress``, ``cf`` (03); ``compat`` (04); ``fusion`` (05); ``ranker``
(06); ``rerank`` (07, 08); ``finetune`` (09); ``crossenc``, ``compress``, ``ann``, ``serve`` (09b); ``spark`` (10); ``artifacts`` holds what one lesson leaves for the next. Heavy
modules are imported on demand.
"""

from recsuite.core.device import get_device, set_seed

__version__ = "0.1.0"
__all__ = ["get_device", "set_seed", "__version__"]
