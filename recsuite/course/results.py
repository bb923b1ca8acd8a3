"""``build/results.json``: one row per (notebook, model, eval_set), the suite's leaderboard.

Every lesson records its models here with ``record``; ``make run`` renders ``build/results.md``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from recsuite.core import checks
from recsuite.core.cache import atomic_write, locked
from recsuite.core.paths import build_dir
from recsuite.data.split import EVAL_SETS
from recsuite.evaluation.metrics import RANKING

FAMILIES = ("popularity", "cf", "semantic", "fusion", "rerank", "finetuned", "llm", "spark", "sequential", "new_users", "fairness", "multitask")


def results_path(path: str | Path | None = None) -> Path:
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or Path or None, got {checks.describe(path)}")
        return Path(path)
    env = os.environ.get("RECSUITE_RESULTS")
    if env:
        return Path(env)
    return build_dir() / "results.json"


def load(path: str | Path | None = None) -> dict:
    """The results file as a dict ``{"runs": [...]}`` (empty when there is none yet)."""
    p = results_path(path)
    if not p.is_file():
        return {"runs": []}
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ValueError(f"{p} is not a recsuite results file (expected {{'runs': [...]}})")
    return data


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"results must be finite numbers, got {value!r}")
    return value


def record(
    notebook: str,
    model: str,
    family: str,
    eval_set: str,
    metrics: dict,
    k: int = 10,
    fit_seconds: float | None = None,
    params: dict | None = None,
    path: str | Path | None = None,
    **extra,
) -> dict:
    """Append a row to the results file, replacing an earlier row with the same notebook/model/eval_set.

    ``metrics`` must contain the ranking metrics at ``k`` (``ndcg@10`` ...). ``extra`` keys (e.g.
    ``recbole_eval``) are stored beside them. The file is rewritten atomically (temp file + rename), so
    an interrupted lesson never leaves it half-written, under a lock on ``<file>.lock`` so concurrent
    writers lose no rows.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    notebook = checks.text("notebook", notebook)
    model = checks.text("model", model)
    checks.one_of("family", family, FAMILIES)
    checks.one_of("eval_set", eval_set, EVAL_SETS)
    k = checks.positive_int("k", k)
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict name -> number, got {checks.describe(metrics)}")
    missing = [f"{m}@{k}" for m in RANKING if f"{m}@{k}" not in metrics]
    if missing:
        raise ValueError(f"metrics lacks {missing}; compute them with recsuite.evaluation.metrics.evaluate(..., k={k})")
    for name, value in metrics.items():
        checks.number(f"metrics[{name!r}]", value)  # a finite real number; the row keeps its own type (int users)
    if fit_seconds is not None:
        fit_seconds = checks.number("fit_seconds", fit_seconds, low=0.0)
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"params must be a dict or None, got {checks.describe(params)}")
    row = _jsonable(
        {
            "notebook": str(notebook),
            "model": str(model),
            "family": family,
            "eval_set": eval_set,
            "k": int(k),
            "metrics": dict(metrics),
            "fit_seconds": None if fit_seconds is None else round(float(fit_seconds), 3),
            "params": dict(params or {}),
            **extra,
        }
    )
    p = results_path(path)
    # Read-modify-write under the lock, so concurrent writers (two lessons, two processes) each see the
    # other's rows; the rename keeps readers from ever seeing half a file.
    with locked(p):
        data = load(p)
        key = (row["notebook"], row["model"], row["eval_set"])
        data["runs"] = [r for r in data["runs"] if (r["notebook"], r["model"], r["eval_set"]) != key] + [row]
        atomic_write(p, lambda fh: json.dump(data, fh, indent=1), text=True, prefix=".results-")
    return row


def clear(notebook: str, path: str | Path | None = None) -> int:
    """Remove every row a notebook recorded (the runner does this before it runs the notebook again, so the rows
    under its name afterwards are exactly that run's); returns how many were removed."""
    notebook = checks.text("notebook", notebook)
    p = results_path(path)
    if not p.is_file():
        return 0
    with locked(p):
        data = load(p)
        kept = [r for r in data["runs"] if r["notebook"] != notebook]
        removed = len(data["runs"]) - len(kept)
        if removed:
            data["runs"] = kept
            atomic_write(p, lambda fh: json.dump(data, fh, indent=1), text=True, prefix=".results-")
    return removed


def rows_of(notebook: str, path: str | Path | None = None) -> list[dict]:
    """The rows a notebook recorded, in the order it recorded them."""
    notebook = checks.text("notebook", notebook)
    return [r for r in load(path)["runs"] if r["notebook"] == notebook]


def from_notebooks(paths) -> dict:
    """The leaderboard carried by executed notebooks: the rows each recorded, which the runner stores in the
    notebook's metadata (``metadata["recsuite"]["results"]``), as a results dict ``{"runs": [...]}``. The website
    builds its leaderboard from the committed notebooks this way, without running them."""
    runs = []
    for p in paths:
        p = Path(p)
        meta = json.loads(p.read_text()).get("metadata", {}).get("recsuite", {})
        rows = meta.get("results", [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) and r.get("notebook") == p.stem for r in rows):
            raise ValueError(f"{p}: metadata['recsuite']['results'] must be a list of rows recorded by {p.stem}")
        runs += rows
    return {"runs": runs}


def table(path: str | Path | None = None, eval_set: str | None = None, runs: list | None = None) -> pd.DataFrame:
    """The results as a flat DataFrame (one column per metric), optionally one eval_set.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if eval_set is not None:
        checks.one_of("eval_set", eval_set, EVAL_SETS)
    if runs is None:
        runs = load(path)["runs"]
    elif path is not None:
        raise ValueError("give path or runs, not both")
    rows = [
        {k: r.get(k) for k in ("notebook", "model", "family", "eval_set", "fit_seconds")} | r["metrics"]
        for r in runs
        if eval_set is None or r["eval_set"] == eval_set
    ]
    return pd.DataFrame(rows)


def write_markdown(path: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Render ``results.md``: per eval set, every model sorted by NDCG@10, key metrics to 4 decimals."""
    src = results_path(path)
    out = Path(out) if out is not None else src.with_suffix(".md")
    out.write_text(markdown(table(src), f"Written from `{src.name}` by `make run`. Full ranking, k = 10."))
    return out


def markdown(df: pd.DataFrame, intro: str, title: str = "# recsuite results") -> str:
    """The leaderboard as Markdown: per eval set, every model sorted by NDCG@10, key metrics to 4 decimals."""
    lines = [title, "", intro, ""]
    if df.empty:
        lines.append("No results recorded yet.")
    for eval_set in EVAL_SETS:
        part = df[df.eval_set == eval_set] if not df.empty else df
        if part.empty:
            continue
        cols = ["notebook", "model", "family", "ndcg@10", "recall@10", "precision@10", "hit@10", "mrr@10", "map@10"]
        cols += [c for c in part.columns if c.endswith("@10") and c not in cols and part[c].notna().any()]
        cols += ["users", "fit_seconds"]  # users: how many were evaluated (a sampled lesson, e.g. 10, has fewer)
        view = part[[c for c in cols if c in part.columns]]
        if "ndcg@10" in view.columns:  # a lesson run with another TOP_K records ndcg@20, not ndcg@10
            view = view.sort_values("ndcg@10", ascending=False)
        lines += [f"## {eval_set}", "", view.to_markdown(index=False, floatfmt=".4f"), ""]
    return "\n".join(lines)
