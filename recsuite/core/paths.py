"""Where recsuite keeps caches and results.

The project root is the folder that holds ``pyproject.toml`` (an editable install, as ``make`` sets up);
``RECSUITE_HOME`` overrides it, and outside a checkout the current directory is used.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The recsuite checkout (or ``$RECSUITE_HOME``).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    env = os.environ.get("RECSUITE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]  # recsuite/core/paths.py -> the checkout
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def data_home() -> Path:
    """``datasets/``: the git-ignored cache root for processed artefacts (split, embeddings, scores).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    path = project_root() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_dir() -> Path:
    """``build/``: results of executed lessons (``results.json``, ``results.md``, executed notebooks).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    path = project_root() / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path
