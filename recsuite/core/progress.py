"""Progress bars that draw as widgets in Jupyter, as text elsewhere, and switch off with ``TQDM_DISABLE=1``.

``tqdm.auto`` picks the widget bar in a notebook, but that bar passes ``disable`` explicitly to tqdm and so
ignores the ``TQDM_DISABLE`` environment variable (tqdm 4.70; the text bar honours it). Executed lessons
are committed and checked with ``TQDM_DISABLE=1``, so every bar in recsuite and in the lessons comes from
here: with the variable set, every bar is off; without it, ``disable=`` works as usual.

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm as _tqdm

__all__ = ["tqdm"]


def disabled_by_env() -> bool:
    """Whether ``TQDM_DISABLE`` asks for no progress bars (any value but "", "0", "false", "no")."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm``, switched off whenever ``TQDM_DISABLE`` is set."""
    if disabled_by_env():
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)
