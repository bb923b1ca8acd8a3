"""Rules that choose a setting on validation so that another machine makes the same choice.

Validation metrics of trained models move in their last digits from one machine to the next (BLAS and
torch kernels, thread counts), so a plain argmax over a grid whose best settings are within noise of
each other picks a different winner on another CPU — and every number downstream moves with it. Both
rules here compare values rounded to ``decimals`` (three: 0.001 of NDCG is far above that noise and far
below what a reader can tell apart) and break ties by an explicit order of simplicity, never by chance.
Rounding makes a flip rare, not impossible: a value within noise of a rounding boundary (…0005) can
still round either way, which is why the lessons also assert the choice they describe.

- ``one_se_rule``: among the settings within one standard error of the best, the simplest (Breiman et
  al. 1984; Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, §7.10).
- ``best_within``: the setting that maximises one objective subject to a budget on another (e.g. the
  most diverse re-ranking that loses at most 3 % NDCG).

Introduced in notebooks/03_cf_baselines.ipynb
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsuite.core import checks

__all__ = ["best_within", "one_se_rule"]


def _check_table(table, columns) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a non-empty DataFrame of settings and their metrics, got {checks.describe(table)}")
    if table.empty:
        raise ValueError(f"table must be a non-empty DataFrame of settings and their metrics, got an empty one "
                         f"of shape {table.shape}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; it has {list(table.columns)}")
    if not table.index.is_unique:  # the answer is an index label: a repeated one would be ambiguous
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"table must have a unique index (the rule returns a label), got repeated labels {dup}; "
                         "call .reset_index(drop=True) first")
    return table


def _column_name(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a column name (str), got {checks.describe(value)}")
    return value


def _check_decimals(decimals) -> int:
    if isinstance(decimals, (bool, np.bool_)) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"decimals must be an int in [0, 12], got {checks.describe(decimals)}")
    if not 0 <= decimals <= 12:
        raise ValueError(f"decimals must be an int in [0, 12], got {decimals!r}")
    return int(decimals)


def _finite(table: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    if values.isna().any() or not np.isfinite(values.to_numpy(float)).all():
        raise ValueError(f"table[{column!r}] must hold finite numbers, got {table[column].tolist()}")
    return values.astype(float)


def _check_simplest(table: pd.DataFrame, simplest) -> None:
    """``simplest`` is None or a list of (column, ascending) pairs naming columns of ``table``."""
    if simplest is None:
        return
    if isinstance(simplest, (str, tuple)):
        raise ValueError(f"simplest must be a list of (column, ascending) pairs, got {simplest!r}")
    if not isinstance(simplest, list):
        raise TypeError(f"simplest must be a list of (column, ascending) pairs, got {checks.describe(simplest)}")
    if not all(isinstance(k, tuple) and len(k) == 2 for k in simplest):
        raise ValueError(f"simplest must be a list of (column, ascending) pairs, got {simplest!r}")
    flags = [a for _, a in simplest if not isinstance(a, (bool, np.bool_))]
    if flags:
        raise TypeError(f"simplest: each ascending flag must be True or False, got {flags[0]!r}")
    missing = [c for c, _ in simplest if not isinstance(c, str) or c not in table.columns]
    if missing:
        raise ValueError(f"simplest names column(s) {missing} that table does not have; it has {list(table.columns)}")


def _simplest_first(candidates: pd.DataFrame, simplest) -> pd.DataFrame:
    """Candidates ordered by the simplicity keys ((column, ascending) pairs), then by their order in the table."""
    if simplest is None:
        return candidates
    _check_simplest(candidates, simplest)
    position = pd.Series(np.arange(len(candidates)), index=candidates.index, name="__position")
    ordered = candidates.assign(__position=position)
    return ordered.sort_values([c for c, _ in simplest] + ["__position"],
                               ascending=[bool(a) for _, a in simplest] + [True], kind="stable")


def one_se_rule(table, metric: str, se, simplest=None, decimals: int = 3):
    """The index label of the simplest row whose ``metric`` is within one standard error of the best.

    ``se`` is a number (the standard error of the best setting's mean) or the name of a column holding
    each row's standard error (the best row's is used). Values and the standard error are rounded to
    ``decimals`` first; ``simplest`` lists (column, ascending) pairs — e.g. ``[("factors", True),
    ("regularization", False)]``: fewest factors, then the strongest regularisation — and remaining ties
    go to the earlier row. ``se=0`` is an argmax of the rounded values with ties to the simplest.

    Introduced in notebooks/03_cf_baselines.ipynb
    """
    decimals = _check_decimals(decimals)
    metric = _column_name("metric", metric)
    if isinstance(se, (bool, np.bool_)) or not isinstance(se, (str, int, float, np.integer, np.floating)):
        raise TypeError(f"se must be a non-negative number or a column name, got {checks.describe(se)}")
    _check_table(table, [metric] + ([se] if isinstance(se, str) else []))
    _check_simplest(table, simplest)
    values = _finite(table, metric).round(decimals)
    best = values.max()
    if isinstance(se, str):
        column = _finite(table, se)
        if (column < 0).any():
            raise ValueError(f"table[{se!r}] must hold non-negative standard errors, got {float(column.min())}")
        se_value = float(column[values.idxmax()])
    elif isinstance(se, bool) or not isinstance(se, (int, float, np.integer, np.floating)) or not np.isfinite(se) or se < 0:
        raise ValueError(f"se must be a non-negative number or a column name, got {se!r}")
    else:
        se_value = float(se)
    threshold = round(best - round(se_value, decimals), decimals)
    candidates = table[values >= threshold - 1e-12]  # both sides rounded alike; the epsilon absorbs float spelling
    return _simplest_first(candidates, simplest).index[0]


def best_within(table, maximise: str, budget_column: str, budget: float, simplest=None, decimals: int = 3):
    """The index label of the row with the largest ``maximise`` among rows whose ``budget_column`` <= ``budget``.

    Both columns are rounded to ``decimals`` first; ties go to the simplest row (``simplest`` as in
    ``one_se_rule``), then to the earlier one. Returns None when no row is within the budget.

    Introduced in notebooks/08_tradeoffs_feedback.ipynb
    """
    decimals = _check_decimals(decimals)
    maximise = _column_name("maximise", maximise)
    budget_column = _column_name("budget_column", budget_column)
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise TypeError(f"budget must be a finite number, got {checks.describe(budget)}")
    _check_table(table, [maximise, budget_column])
    _check_simplest(table, simplest)
    if not np.isfinite(budget):
        raise ValueError(f"budget must be a finite number, got {budget!r}")
    cost = _finite(table, budget_column).round(decimals)
    gain = _finite(table, maximise).round(decimals)
    inside = cost <= round(float(budget), decimals)
    if not inside.any():
        return None
    top = gain[inside].max()
    return _simplest_first(table[inside & (gain == top)], simplest).index[0]
