"""recsuite.course.runner: knobs overridden the way papermill does it, and clear errors for bad overrides."""

import nbformat
import pytest

from recsuite.course import runner


def notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("SEED = 0\nCPU_EPOCHS, GPU_EPOCHS = 30, 150  # two knobs", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(SEED)")]
    return nb


def test_parse_param():
    assert runner.parse_param("SEED=1") == ("SEED", 1)
    assert runner.parse_param("DEVICE='cpu'") == ("DEVICE", "cpu")
    assert runner.parse_param("LR = None") == ("LR", None)
    with pytest.raises(ValueError, match="UPPER_CASE"):
        runner.parse_param("seed=1")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        runner.parse_param("SEED")
    with pytest.raises(ValueError, match="Python literal"):
        runner.parse_param("SEED=os.system('x')")


def test_knobs_and_injection():
    nb = notebook()
    assert runner.knob_names(nb.cells[1].source) == {"SEED", "CPU_EPOCHS", "GPU_EPOCHS"}
    applied = runner.inject_parameters(nb, {"SEED": 2, "GPU_EPOCHS": 10, "THREADS": 2})
    assert applied == {"SEED": 2, "GPU_EPOCHS": 10}  # a knob this notebook lacks is left out
    assert nb.cells[2].source == "# injected parameters\nSEED = 2\nGPU_EPOCHS = 10"
    assert nb.cells[2].metadata.tags == ["injected-parameters"] and nb.cells[3].source == "print(SEED)"
    assert runner.inject_parameters(notebook(), {}) == {}


def test_unknown_knobs_are_refused(tmp_path):
    path = tmp_path / "01_t.ipynb"
    nbformat.write(notebook(), path)
    runner.check_parameters([path], {"SEED": 1})
    with pytest.raises(ValueError, match=r"parameters \['SEDE'\] are knobs of none of \['01_t.ipynb'\]"):
        runner.check_parameters([path], {"SEDE": 1})


def test_execute_stops_every_kernel_it_started_and_keeps_a_failed_notebook_untouched(tmp_path, monkeypatch):
    import json

    import psutil

    from recsuite.course import runner as R

    def notebook(path, code):
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "source": code,
                                               "outputs": [], "execution_count": None}],
                                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return path

    monkeypatch.setenv("RECSUITE_HOME", str(tmp_path))
    ok = notebook(tmp_path / "ok.ipynb", "x = 1 + 1\nprint(x)")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    R.execute([ok], tmp_path / "out")
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], "the notebook's kernel must be stopped once the notebook has run"
    assert "".join(json.loads((tmp_path / "out" / "ok.ipynb").read_text())["cells"][0]["outputs"][0]["text"]) == "2\n"
    # the rows a notebook records travel in its metadata, and only this run's rows
    from recsuite.course import results

    results.record("rec", "stale", "popularity", "test", {f"{m}@10": 0.0 for m in results.RANKING})
    code = ("from recsuite.course import results\n"
            "results.record('rec', 'pop', 'popularity', 'test', {f'{m}@10': 0.5 for m in results.RANKING})")
    R.execute([notebook(tmp_path / "rec.ipynb", code)], tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "rec.ipynb").read_text())["metadata"]["recsuite"]["results"]
    assert [(r["model"], r["metrics"]["ndcg@10"]) for r in rows] == [("pop", 0.5)]
    bad = notebook(tmp_path / "bad.ipynb", "raise RuntimeError('boom')")
    source = bad.read_text()
    with pytest.raises(Exception, match="boom"):
        R.execute([bad], None)
    assert bad.read_text() == source, "a failed in-place run must leave the notebook as it was"
    assert (tmp_path / "build" / "notebooks" / "bad.failed.ipynb").is_file()


def _code_notebook(path, code):
    import json

    path.write_text(json.dumps({"cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "source": code,
                                           "outputs": [], "execution_count": None}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_execute_runs_notebooks_at_the_same_time_with_jobs(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("RECSUITE_HOME", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    flag = tmp_path / "b-started"
    # a waits for b to have started: run one after the other, a would give up after 120 s and fail
    a = _code_notebook(tmp_path / "a.ipynb", f"import os, pathlib, time\nt = time.time()\n"
                       f"while not pathlib.Path({str(flag)!r}).exists():\n    assert time.time() - t < 120, 'alone'\n"
                       "    time.sleep(0.05)\nprint(os.environ['OMP_NUM_THREADS'])")
    b = _code_notebook(tmp_path / "b.ipynb", f"import pathlib\npathlib.Path({str(flag)!r}).touch()\nprint('b')")
    timings = runner.execute([a, b], tmp_path / "out", jobs=2)
    assert [name for name, _ in timings] == ["a.ipynb", "b.ipynb"]  # in the order asked, whatever ran first
    out = json.loads((tmp_path / "out" / "a.ipynb").read_text())["cells"][0]["outputs"][0]["text"]
    import os

    from recsuite.core.device import usable_cores
    assert "".join(out).strip() == str(max(1, usable_cores() // 2))
    assert "OMP_NUM_THREADS" not in os.environ  # the runner's own environment is left as it was
    one = _code_notebook(tmp_path / "one.ipynb", "import os\nprint(os.environ.get('OMP_NUM_THREADS'))")
    runner.execute([one], tmp_path / "out", jobs=2)  # a single notebook keeps every core's threads
    assert json.loads((tmp_path / "out" / "one.ipynb").read_text())["cells"][0]["outputs"][0]["text"] == ["None\n"]
    table = runner.time_table(timings, 3.0)
    assert "a.ipynb" in table and "b.ipynb" in table and "wall time" in table


def test_execute_with_jobs_stops_starting_after_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSUITE_HOME", str(tmp_path))
    bad = _code_notebook(tmp_path / "bad.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(Exception, match="boom"):
        runner.execute([bad], tmp_path / "out", jobs=2)
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        runner.execute([bad], tmp_path / "out", jobs=0)
    with pytest.raises(TypeError, match="jobs must be an int >= 1"):
        runner.execute([bad], tmp_path / "out", jobs=2.0)
