"""The cost curve: the same split + ALS + evaluation on Spark and on implicit, as the log grows.

``synthetic_interactions`` grows MovieLens-100K in users; ``run_pipeline`` times each step on one engine;
``cost_run`` runs it in a fresh process and measures wall time and the peak memory of the whole process tree.

Introduced in notebooks/12_spark_scaling.ipynb
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.core.optional import require
from recsuite.data.movielens import load_movielens_100k
from recsuite.data.split import make_protocol
from recsuite.models import cf
from recsuite.scale.spark import (
    COLUMNS,
    als_fit,
    als_topk,
    ranking_metrics,
    session,
    split,
    to_spark,
)

psutil = require("psutil", "spark")

# POSIX: the run leads a new process group, so a timeout ends the JVM and Spark's workers with it.
_NEW_GROUP = {"start_new_session": True} if os.name == "posix" else {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}


def synthetic_interactions(interactions: pd.DataFrame, scale: int, seed: int = 0, swap: float = 0.1) -> pd.DataFrame:
    """``interactions`` grown ``scale`` times in users: copy c > 0 of each user gets a new id and ``swap`` of its
    rows get another item, drawn by popularity (a random row's item) and never one the copy already has.

    Users' history lengths, timestamps, ratings, the catalogue and the item popularity curve stay as they are
    (the sparsity pattern of the original); the swaps keep the copies from being exact duplicates, which
    would make ALS's job artificially easy. ``scale=1`` returns the original rows.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    checks.columns("interactions", interactions, list(COLUMNS))
    if interactions.empty:
        raise ValueError("interactions is empty (0 rows); expected interactions to grow")
    scale = checks.positive_int("scale", scale)
    seed = checks.seed("seed", seed)
    swap = checks.number("swap", swap, low=0.0, high=1.0, high_open=True)
    base = interactions[list(COLUMNS)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    stride = int(base.user_id.max()) + 1
    pool = base.item_id.to_numpy()
    n_items = int(pool.max()) + 1
    copies = [base]
    for c in range(1, scale):
        copy = base.copy()
        copy["user_id"] = copy.user_id + c * stride
        items = copy.item_id.to_numpy().copy()
        todo = np.flatnonzero(rng.random(len(copy)) < swap)
        users = copy.user_id.to_numpy()
        for _ in range(100):
            if not len(todo):
                break
            items[todo] = pool[rng.integers(0, len(pool), len(todo))]
            key = users.astype(np.int64) * n_items + items
            order = np.argsort(key, kind="stable")
            dup = np.zeros(len(key), bool)
            dup[order[1:]] = key[order[1:]] == key[order[:-1]]
            todo = np.flatnonzero(dup)
        if len(todo):
            raise RuntimeError(f"could not give {len(todo)} swapped rows of copy {c} an item the user lacks")
        copy["item_id"] = items
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


STEPS = ("start", "split", "fit", "recommend", "evaluate")


def run_pipeline(engine: str, scale: int = 1, seed: int = 0, k: int = 10, rank: int = 64, iterations: int = 15,
                 implicit_reg: float = 10.0, spark_reg: float = 0.1, master: str = "local[2]",
                 driver_memory: str = "4g", partitions: int | None = None) -> dict:
    """Split + ALS + test evaluation of MovieLens-100K grown ``scale`` times, on ``engine`` "spark" or "implicit".

    Returns seconds per step (``STEPS``: "start" is Spark's JVM start, 0 for implicit) and the test NDCG@k.
    Run it through ``cost_run`` to measure it in a fresh process with its peak memory.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    checks.one_of("engine", engine, ("spark", "implicit"))
    log = synthetic_interactions(load_movielens_100k().interactions, scale, seed=seed)
    t = {s: 0.0 for s in STEPS}
    clock = time.perf_counter()

    def lap(step):
        nonlocal clock
        now = time.perf_counter()
        t[step], clock = now - clock, now

    if engine == "implicit":
        proto = make_protocol(log, seed=seed)
        lap("split")
        model = cf.fit_implicit("ALS", proto.history("test"), {"factors": rank, "regularization": implicit_reg,
                                                                "alpha": 1.0, "iterations": iterations}, seed=seed)
        lap("fit")
        top = proto.rank(model.scores(), "test", k=k)
        lap("recommend")
        ndcg = proto.evaluate_topk(top, "test", k=k)[f"ndcg@{k}"]
        lap("evaluate")
    else:
        spark = session(master, driver_memory, partitions)
        frame = to_spark(spark, log)
        lap("start")
        parts = {name: df.cache() for name, df in split(frame, seed=seed).items()}
        history = parts["train"].unionByName(parts["valid"]).cache()
        sizes = {name: df.count() for name, df in parts.items()}
        if sizes["test"] == 0:
            raise ValueError(f"the split of the log at scale {scale} has no test rows; nothing to evaluate")
        history.count()
        lap("split")
        model = als_fit(history, rank=rank, max_iter=iterations, reg_param=spark_reg, seed=seed)
        lap("fit")
        top = als_topk(model, history, k=k, users=parts["test"].select("user_id")).cache()
        top.count()
        lap("recommend")
        ndcg = ranking_metrics(top, parts["test"], k=k, metrics=("ndcg",))[f"ndcg@{k}"]
        lap("evaluate")
    return {"engine": engine, "scale": scale, "interactions": int(len(log)), "users": int(log.user_id.nunique()),
            "seconds": t, "total_s": float(sum(t.values())), f"ndcg@{k}": float(ndcg)}


def _peak_rss(proc: subprocess.Popen, deadline: float, every: float = 0.05) -> int:
    """Poll the summed resident memory of ``proc`` and its children (the JVM) until it exits; the peak, bytes."""
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the run did not finish within its timeout (pid {proc.pid})")
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass  # a process of the tree exited between listing it and reading its memory
        time.sleep(every)
    return peak


def _end_tree(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Kill ``proc`` and every process it started (the JVM, Spark's Python workers), then wait for all of them."""
    try:
        root = psutil.Process(proc.pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        tree = []
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own process group (start_new_session)
        except ProcessLookupError:
            pass
    for p in tree:  # processes that left the group, and every process on Windows
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=grace)
    proc.wait(timeout=grace)


def cost_run(engine: str, scale: int = 1, timeout: float = 900, **params) -> dict:
    """``run_pipeline(engine, scale, **params)`` in a fresh Python process: its result, wall time and peak memory.

    A fresh process makes every run pay its imports and (for Spark) its JVM start, and lets the peak resident
    memory of the whole process tree (Python, the JVM and Spark's Python workers) be measured without the
    notebook's own. Adds ``wall_s`` (process start to exit) and ``peak_mb``. On a timeout, an interrupt or any
    other error the whole process tree is killed and waited for before the exception propagates, so the next
    run never starts beside a dying JVM.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    checks.one_of("engine", engine, ("spark", "implicit"))
    scale = checks.positive_int("scale", scale)
    timeout = checks.positive_number("timeout", timeout)
    known = set(inspect.signature(run_pipeline).parameters) - {"engine", "scale"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"cost_run passes only run_pipeline's parameters {sorted(known)}, got unknown {unknown}")
    params = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
    try:
        args = json.dumps({"engine": engine, "scale": scale, **params})
    except TypeError as err:  # the child gets its parameters as JSON
        raise TypeError(f"params must be numbers, strings or None (they go to a fresh process as JSON): {err}") from None
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "recsuite.scale.cost", args], stdout=out, stderr=err,
                                env={**os.environ, "TQDM_DISABLE": "1"}, **_NEW_GROUP)
        try:
            peak = _peak_rss(proc, start + timeout)
            proc.wait(timeout=60)
        except BaseException:
            _end_tree(proc)
            raise
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        lines = out.read().strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the {engine} run at scale {scale} failed (exit {proc.returncode}): {err.read()[-2000:]}")
    result = json.loads(lines[-1])
    result.update(wall_s=wall, peak_mb=peak / 2**20)
    return result


def _main(argv=None) -> None:
    params = json.loads((argv or sys.argv[1:])[0])
    print(json.dumps(run_pipeline(**params)))


if __name__ == "__main__":
    _main()
