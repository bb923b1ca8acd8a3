"""The package's shape: no import cycles (lazy imports included), no module importing another's private
names, and a first docstring line saying what each module holds."""

import ast
import re
from pathlib import Path

import pytest

import recsuite

PACKAGE = Path(recsuite.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every recsuite import anywhere in ``module``'s source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "recsuite":
            if node.module == "recsuite":
                out += [(a.name, "") for a in node.names if a.name in MODULES]
            else:
                out += [(node.module.split(".")[1], a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1], "") for a in node.names if a.name.startswith("recsuite.")]
    return out


GRAPH = {m: {dep for dep, _ in _imports(m) if dep != m} for m in MODULES}


def test_no_import_cycles_lazy_imports_included():
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        if state.get(m) == "open":
            cycle = path[path.index(m):] + [m]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        state[m] = "open"
        for dep in sorted(GRAPH[m]):
            visit(dep, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


def test_no_module_imports_another_modules_private_names():
    leaks = [(m, dep, name) for m in MODULES for dep, name in _imports(m)
             if name.startswith("_") and not name.startswith("__") and name not in MODULES]
    assert leaks == []


@pytest.mark.parametrize("module", MODULES)
def test_every_module_says_what_it_holds(module):
    doc = ast.get_docstring(ast.parse((PACKAGE / f"{module}.py").read_text()))
    assert doc and doc.splitlines()[0].strip(), f"recsuite/{module}.py has no first docstring line"


def test_every_introduced_in_line_names_a_lesson_that_exists():
    """A reader finds a function from the lesson that introduced it: the named notebook must exist."""
    notebooks = PACKAGE.parent / "notebooks"
    named = {(m, n) for m in MODULES + ["__init__"]
             for n in re.findall(r"notebooks/([\w.-]+\.ipynb)", (PACKAGE / f"{m}.py").read_text())}
    assert named, "no module names the lesson that introduced it"
    missing = sorted(f"{m}.py -> {n}" for m, n in named if not (notebooks / n).is_file())
    assert not missing, f"docstrings name lessons that do not exist: {missing}"
