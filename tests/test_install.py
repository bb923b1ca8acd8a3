"""recsuite installs without the course: the wheel, alone in a fresh virtual environment, runs the core (split,
metrics, popularity, EASE) on a practitioner's own log; every other module either imports or names the extra
that brings what it misses; adding one extra makes its modules import.

Slow (a wheel build and two installs into a new environment, from the pip cache or PyPI): about a minute.
"""

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE_SCRIPT = r'''
import importlib, json, pkgutil, sys
import numpy as np, pandas as pd
import recsuite

assert "site-packages" in recsuite.__file__, recsuite.__file__
rng = np.random.default_rng(0)
n = 20_000
users = np.array([f"user-{u:04d}" for u in range(400)])
skus = np.array([f"SKU-{i:05d}" for i in range(300)])
log = pd.DataFrame({"user_id": users[rng.integers(0, 400, n)], "item_id": skus[rng.zipf(1.3, n) % 300],
                    "rating": 1.0, "timestamp": rng.integers(0, 10**9, n)})
log = log.drop_duplicates(["user_id", "item_id"])
proto = recsuite.make_protocol(log, seed=0)  # the names a newcomer reaches for first, from the top
pop = recsuite.fit_popularity(proto.history("test")).scores()
ease = recsuite.fit_ease(proto.history("test"), reg_weight=100.0).scores()
out = {"pop": proto.evaluate(pop, "test")["ndcg@10"], "ease": proto.evaluate(ease, "test")["ndcg@10"],
       "verdict": proto.compare(ease, pop, "test", n_boot=200).verdict(),
       "raw_user": str(proto.index.user_ids[0])}
modules = {}
for m in pkgutil.walk_packages(recsuite.__path__, "recsuite."):
    try:
        importlib.import_module(m.name)
        modules[m.name] = "ok"
    except ImportError as err:
        modules[m.name] = str(err)
out["modules"] = modules
try:
    from recsuite.models import cf
    cf.fit_implicit("ALS", proto.history("test"))
    out["implicit"] = "ran"
except ImportError as err:
    out["implicit"] = str(err)
print(json.dumps(out))
'''


def _run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A wheel of this checkout and a fresh virtual environment with pip, nothing else installed."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "recsuite", src / "recsuite", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("recsuite-*.whl")
    env = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    py = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([str(py), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(wheel)])
    return py, wheel, tmp


def test_the_wheel_alone_runs_the_core_and_every_other_module_names_its_extra(fresh):
    py, _, tmp = fresh
    out = json.loads(_run([str(py), "-c", CORE_SCRIPT], cwd=tmp).strip().splitlines()[-1])
    assert 0 < out["pop"] < 1 and 0 < out["ease"] < 1
    assert out["verdict"] in ("higher", "lower", "indistinguishable")
    assert out["raw_user"].startswith("user-"), "the protocol keeps the log's own ids"
    assert 'pip install "recsuite[cf]"' in out["implicit"]
    wrong = {m: e for m, e in out["modules"].items() if e != "ok" and 'pip install "recsuite[' not in e}
    assert wrong == {}, "a module whose extra is missing must say which extra to install"
    for m in ("recsuite.data.split", "recsuite.evaluation.metrics", "recsuite.models.popularity", "recsuite.models.ease"):
        assert out["modules"][m] == "ok"
    assert out["modules"]["recsuite.models.two_tower"] != "ok"


def test_one_extra_makes_its_modules_import(fresh):
    py, wheel, tmp = fresh
    _run([str(py), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), f"{wheel}[rank]"])
    _run([str(py), "-c", "import lightgbm; from recsuite.combine import candidates, ranker; print(ranker.__name__)"],
         cwd=tmp)
    freeze = _run([str(py), "-m", "pip", "freeze"])
    assert "torch" not in freeze and "implicit" not in freeze, "the rank extra must not pull the other families"
