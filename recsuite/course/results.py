"""``build/results.json``: one row per (notebook, model, eval_set), the suite's leaderboard.

Every lesson records its models here with ``record``; ``make run`` renders ``build/results.md``.
"""

from __future__ import annotations

import json
import math
import os
import time
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
            "recorded_at": time.time(),  # the runner keeps a run's rows by it (settle)
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


def _rewrite(p: Path, keep) -> list[dict]:
    """Under the file's lock, keep the rows for which ``keep(row)`` holds; returns the rows removed."""
    if not p.is_file():
        return []
    with locked(p):
        data = load(p)
        removed = [r for r in data["runs"] if not keep(r)]
        if removed:
            data["runs"] = [r for r in data["runs"] if keep(r)]
            atomic_write(p, lambda fh: json.dump(data, fh, indent=1), text=True, prefix=".results-")
    return removed


def settle(notebook: str, since: float, path: str | Path | None = None) -> list[dict]:
    """After a run of ``notebook`` that started at ``since`` (``time.time()``) and finished: drop the rows it
    recorded in earlier runs and did not record again (a model the lesson no longer evaluates), and return the
    rows of this run, in the order recorded. The runner calls it once a notebook has run without error, so a
    failed run leaves the earlier rows, and a lesson running meanwhile never sees another's rows vanish.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    notebook = checks.text("notebook", notebook)
    since = checks.number("since", since, low=0.0)
    p = results_path(path)
    _rewrite(p, lambda r: r["notebook"] != notebook or r.get("recorded_at", 0.0) >= since)
    return [r for r in load(p)["runs"] if r["notebook"] == notebook]


def prune(notebooks, path: str | Path | None = None) -> list[dict]:
    """Drop the rows of every notebook not named in ``notebooks`` (a lesson renamed or removed since it recorded
    them); returns the rows removed. ``make run`` calls it with every lesson it ran.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if isinstance(notebooks, str) or not all(isinstance(n, str) for n in notebooks):
        raise TypeError(f"notebooks must be a list of notebook names, got {checks.describe(notebooks)}")
    names = set(notebooks)
    return _rewrite(results_path(path), lambda r: r["notebook"] in names)


def _check_row(row, where: str) -> dict:
    """A row as ``record`` writes it, or a ValueError naming ``where`` and what is missing."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a results row must be a dict, got {checks.describe(row)}")
    missing = [k for k in ("notebook", "model", "family", "eval_set", "k", "metrics") if k not in row]
    if missing or not isinstance(row["metrics"], dict) or row["eval_set"] not in EVAL_SETS:
        raise ValueError(f"{where}: not a results row (missing {missing}, eval_set {row.get('eval_set')!r}, "
                         f"metrics {type(row.get('metrics')).__name__}); expected the rows results.record writes")
    return row


def from_notebooks(paths) -> dict:
    """The leaderboard carried by executed notebooks: the rows each recorded, which the runner stores in the
    notebook's metadata (``metadata["recsuite"]["results"]``), as a results dict ``{"runs": [...]}``. The website
    builds its leaderboard from the committed notebooks this way, without running them.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError(f"paths must be a list of notebook paths, got one path {str(paths)!r}; wrap it in a list")
    runs = []
    for p in paths:
        p = Path(p)
        try:
            nb = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: cannot read the notebook ({e})") from e
        rows = nb.get("metadata", {}).get("recsuite", {}).get("results", [])
        if not isinstance(rows, list):
            raise ValueError(f"{p}: metadata['recsuite']['results'] must be a list of rows, got {type(rows).__name__}")
        for i, r in enumerate(rows):
            _check_row(r, f"{p} row {i}")
            if r["notebook"] != p.stem:
                raise ValueError(f"{p} row {i}: recorded by {r['notebook']!r}, expected rows recorded by {p.stem}")
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
    elif not isinstance(runs, list):
        raise TypeError(f"runs must be a list of rows (e.g. from_notebooks(paths)['runs']), got {checks.describe(runs)}")
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
    text = markdown(table(src), f"Written from `{src.name}` by `make run`. Full ranking, k = 10.")
    atomic_write(out, lambda fh: fh.write(text), text=True, prefix=".results-")
    return out


def markdown(df: pd.DataFrame, intro: str, title: str = "# recsuite results") -> str:
    """The leaderboard as Markdown: per eval set, every model sorted by NDCG@10, key metrics to 4 decimals.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a DataFrame from results.table, got {checks.describe(df)}")
    if not isinstance(intro, str) or not isinstance(title, str):
        raise TypeError(f"intro and title must be str (title may be empty), got {checks.describe(intro)} and "
                        f"{checks.describe(title)}")
    lines = ([title, ""] if title else []) + [intro, ""]
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
