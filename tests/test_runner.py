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
