"""The lessons speak with one voice: verdicts in the prose are the printed ones, formulas render, one rule decides.

*Verdicts.* A markdown cell that states a verdict writes the verdict word in bold (**higher**, **lower**,
**indistinguishable**, **within the budget**, **over the budget**) and names, in its metadata, each comparison
it rests on, exactly as an output prints it::

    {"recsuite": {"verdicts": {"EASE − ALS (implicit), test": "indistinguishable"}}}

An output prints a comparison either as a line ``name: +0.0012 [-0.0031, +0.0055] -> indistinguishable``
(``PairedDifference.report``) or as a row of a table with a column named ``verdict`` (the row's labels, joined by
", ", are the name) or ``<label> verdict`` (the name is "<row labels>, <label>"). Every named comparison must be
printed with that verdict, and the cell's bold verdict words must be exactly the verdicts it names.

*Formulas and text.* Every ``$...$`` and ``$$...$$`` in the lessons and the README parses with KaTeX (strict), and
no markdown holds a control character (a "\\f" typed where "\\\\f" was meant).

*One rule.* No lesson sets its own noise floor: verdicts come from ``PairedDifference.verdict()`` with the package's
``NOISE_FLOOR``.

It reads the committed notebooks, so it checks what a reader sees, on any machine.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recsuite.course.runner import lessons

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = lessons(Path(__file__).resolve().parents[1])
KATEX = Path(__file__).resolve().parent / "katex"
BOLD_VERDICTS = ("higher", "lower", "indistinguishable", "within the budget", "over the budget")
_REPORT = re.compile(r"^(?P<name>.+?): [+-]?\d[^\n]*? -> (?P<verdict>higher|lower|indistinguishable)\s*$", re.M)
_BOLD = re.compile(r"\*\*(" + "|".join(BOLD_VERDICTS) + r")\*\*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


# -- reading the verdicts an output prints ------------------------------------------------------------
class _Tables(HTMLParser):
    """Rows of the HTML tables of an output: [(header labels, [(row labels, cells)])], rowspans filled in."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell, self._in_head, self._spans = [], None, None, False, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
            self._spans = {}
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td") and self._row is not None:
            self._cell = {"kind": tag, "text": "", "rowspan": int(attrs.get("rowspan", 1) or 1)}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            table = self.tables[-1]
            if self._in_head:
                table["head"].append([c["text"].strip() for c in self._row])
            else:
                row, col, cells = [], 0, list(self._row)
                while cells or col in self._spans:  # a th with rowspan covers the next rows of its column
                    if col in self._spans:
                        text, left = self._spans[col]
                        row.append({"kind": "th", "text": text})
                        self._spans[col] = (text, left - 1)
                        if left - 1 == 0:
                            del self._spans[col]
                    else:
                        c = cells.pop(0)
                        row.append(c)
                        if c.get("rowspan", 1) > 1:
                            self._spans[col] = (c["text"], c["rowspan"] - 1)
                    col += 1
                table["rows"].append(row)
            self._row = None
        elif tag == "thead":
            self._in_head = False


def printed_verdicts(cells) -> dict[str, str]:
    """name -> verdict of every comparison the outputs print (report lines and verdict columns of tables)."""
    found: dict[str, str] = {}
    for c in cells:
        if c["cell_type"] != "code":
            continue
        for o in c.get("outputs", []):
            data = o.get("data", {})
            for text in ("".join(o.get("text", "")), "".join(data.get("text/plain", ""))):
                for m in _REPORT.finditer(text):
                    found[m.group("name").strip()] = m.group("verdict")
            parser = _Tables()
            parser.feed("".join(data.get("text/html", "")))
            for table in parser.tables:
                if not table["head"]:
                    continue
                head = table["head"][0]
                for row in table["rows"]:
                    labels = [x["text"].strip() for x in row if x["kind"] == "th"]
                    values = [x["text"].strip() for x in row if x["kind"] == "td"]
                    offset = len(head) - len(values)  # the header row starts with the index's blank corner(s)
                    for j, column in enumerate(head[offset:]):
                        if j >= len(values) or not (column == "verdict" or column.endswith(" verdict")
                                                    or column.startswith("within budget")):
                            continue
                        label = ", ".join(x for x in labels if x)
                        extra = column[: -len(" verdict")] if column.endswith(" verdict") else ""
                        found[f"{label}, {extra}" if extra else label] = values[j]
    return found


def claimed_verdicts(cell: dict) -> dict[str, str]:
    claims = cell.get("metadata", {}).get("recsuite", {}).get("verdicts", {})
    if not isinstance(claims, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in claims.items()):
        raise ValueError("metadata.recsuite.verdicts must map a printed comparison's name (str) to its verdict (str)")
    return claims


def _prose(text: str) -> str:
    return re.sub(r"`[^`]*`", " ", text)


def verdict_problems(cells) -> list[str]:
    printed = printed_verdicts(cells)
    problems = []
    for i, c in enumerate(cells):
        if c["cell_type"] != "markdown":
            continue
        claims = claimed_verdicts(c)
        bold = set(_BOLD.findall(_prose(_text(c))))
        for name, verdict in claims.items():
            if name not in printed:
                problems.append(f"cell {i}: {name!r} is not printed by any output (printed: {sorted(printed)})")
            elif printed[name] != verdict:
                problems.append(f"cell {i}: {name!r} is {verdict!r} in the prose but {printed[name]!r} in the outputs")
        words = {v for v in claims.values() if v in BOLD_VERDICTS}
        if bold != words:
            problems.append(f"cell {i}: bold verdict words {sorted(bold)} but the comparisons it names are "
                            f"{sorted(words)}: name each comparison a bold verdict rests on in metadata.recsuite.verdicts")
    return problems


def test_the_verdict_reader_on_hand_made_outputs():
    html = ("<table><thead><tr><th></th><th>difference</th><th>verdict</th></tr></thead><tbody>"
            "<tr><th>EASE − ALS</th><td>0.001</td><td>indistinguishable</td></tr>"
            "<tr><th>kNN − ALS</th><td>-0.01</td><td>lower</td></tr></tbody></table>"
            "<table><thead><tr><th></th><th></th><th>test verdict</th></tr></thead><tbody>"
            "<tr><th rowspan=\"2\">int8</th><th>a</th><td>higher</td></tr><tr><th>b</th><td>lower</td></tr>"
            "</tbody></table>")
    code = {"cell_type": "code", "outputs": [
        {"output_type": "stream", "text": "x: 0.1\nBlend − ALS, test: +0.0110 [+0.0050, +0.0170] -> higher\n"},
        {"output_type": "display_data", "data": {"text/html": html}}]}
    assert printed_verdicts([code]) == {"Blend − ALS, test": "higher", "EASE − ALS": "indistinguishable",
                                        "kNN − ALS": "lower", "int8, a, test": "higher", "int8, b, test": "lower"}
    good = {"cell_type": "markdown", "source": "The blend is **higher** than ALS; EASE is **indistinguishable**.",
            "metadata": {"recsuite": {"verdicts": {"Blend − ALS, test": "higher", "EASE − ALS": "indistinguishable"}}}}
    assert verdict_problems([code, good]) == []
    wrong = {**good, "metadata": {"recsuite": {"verdicts": {"Blend − ALS, test": "higher", "EASE − ALS": "lower"}}}}
    assert "in the outputs" in verdict_problems([code, wrong])[0]
    unnamed = {"cell_type": "markdown", "source": "kNN is **lower**.", "metadata": {}}
    assert "bold verdict words ['lower']" in verdict_problems([code, unnamed])[0]
    missing = {**good, "metadata": {"recsuite": {"verdicts": {"MF − ALS": "higher"}}}}
    assert any("not printed" in p for p in verdict_problems([code, missing]))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_verdicts_in_the_prose_are_the_printed_ones(nb):
    problems = verdict_problems(_cells(nb))
    assert not problems, f"{nb.name}: " + "\n".join(problems)


# -- formulas and text --------------------------------------------------------------------------------
_MATH = re.compile(r"\$\$(?P<display>.+?)\$\$|(?<![\\$])\$(?P<inline>[^$\n]+?)(?<!\\)\$", re.S)


def _markdown_sources() -> list[tuple[str, str]]:
    sources = [(f"{nb.name} cell {i}", _text(c)) for nb in NOTEBOOKS for i, c in enumerate(_cells(nb))
               if c["cell_type"] == "markdown"]
    return sources + [("README.md", (ROOT / "README.md").read_text())]


def katex_errors(formulas: list[tuple[str, bool]]) -> list[str | None]:
    """KaTeX's error for each (TeX, display) pair, None where it renders; needs Node.js and `make katex`."""
    node = shutil.which("node")
    if node is None or not (KATEX / "node_modules" / "katex").is_dir():
        pytest.fail("checking the formulas needs Node.js (apt-get install nodejs) and KaTeX: run `make katex`")
    out = subprocess.run([node, str(KATEX / "check.js")], input=json.dumps(formulas), capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout)


def test_katex_rejects_what_would_not_render():
    errors = katex_errors([("\\frac{a}{b}", False), ("\\frac{a}{b", False), ("\x0crac{\x07lpha}{r}", False),
                           ("\\lVert x \\rVert_2", True), ("\\fooo{x}", False)])
    assert errors[0] is None and errors[3] is None and all(e for e in (errors[1], errors[2], errors[4]))


def test_every_formula_renders():
    where, formulas = [], []
    for name, text in _markdown_sources():
        for m in _MATH.finditer(re.sub(r"`[^`]*`", " ", text)):
            display = m.group("display") is not None
            where.append(name)
            formulas.append((m.group("display") if display else m.group("inline"), display))
    assert len(formulas) > 100
    bad = [f"{w}: ${tex}$ -> {err}" for w, (tex, _), err in zip(where, formulas, katex_errors(formulas)) if err]
    assert not bad, "formulas that do not render:\n" + "\n".join(bad)


def test_no_control_characters_in_markdown():
    bad = [f"{name}: {ch!r} at {m.start()}" for name, text in _markdown_sources()
           for m in _CONTROL.finditer(text) for ch in [m.group()]]
    assert not bad, "control characters in markdown (a \\f or \\a typed in a Python string?): " + "; ".join(bad)


# -- one rule -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_verdict_uses_the_one_rule(nb):
    code = "\n".join(_text(c) for c in _cells(nb) if c["cell_type"] == "code")
    own_floor = re.findall(r"\.verdict\(\s*[^)\s]|min_effect|\bNOISE\s*=", code)
    assert not own_floor, (f"{nb.name} sets its own noise floor ({own_floor}): call .verdict() with no argument, "
                           "the package's NOISE_FLOOR decides")


# -- the lesson in front ------------------------------------------------------------------------------
MAX_CODE_CELLS, MAX_CELL_LINES = 35, 25
CHECK_TAG = "check"  # a cell of CI checks: run by nbval, its code hidden on the website (remove-input)
SECTIONS = ("## Summary", "## Exercises", "## Self-check")
# phrases that speak to the maintainers or tell the project's history, not to a learner
MAINTAINER_TALK = ("renumbered", "first drafts", "the text below", "the text draws", "so the text", "named peer",
                   "numbered 05b", "numbered 09b", "the goal of twice", "AT_DEFAULTS")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_lesson_shape(nb):
    cells = _cells(nb)
    code = [c for c in cells if c["cell_type"] == "code" and CHECK_TAG not in c.get("metadata", {}).get("tags", [])]
    assert len(code) <= MAX_CODE_CELLS, f"{nb.name} has {len(code)} code cells, at most {MAX_CODE_CELLS}"
    long = [f"cell {i}: {len(_text(c).splitlines())} lines" for i, c in enumerate(cells)
            if c["cell_type"] == "code" and len(_text(c).splitlines()) > MAX_CELL_LINES]
    assert not long, f"{nb.name}: code cells over {MAX_CELL_LINES} lines: {long}"
    headings = [line.strip() for c in cells if c["cell_type"] == "markdown" for line in _text(c).splitlines()]
    missing = [s for s in SECTIONS if s not in headings]
    assert not missing, f"{nb.name} lacks the sections {missing}"


def test_lessons_are_numbered_01_to_n_in_files_and_titles():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    expected = [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]
    assert numbers == expected, f"lesson files are not numbered 01..N: {numbers}"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in NOTEBOOKS), [p.name for p in NOTEBOOKS]
    titles = {p.name: (_text(_cells(p)[0]).splitlines() or [""])[0] for p in NOTEBOOKS}
    wrong = {name: t for name, t in titles.items() if not t.startswith(f"# {name[:2]} · ")}
    assert not wrong, f"the H1 of a lesson starts with its file's number: {wrong}"


def _only_checks(statements) -> bool:
    """Whether every statement is an ``expect(...)`` / ``expect.choice(...)`` call, or a ``for`` / ``if`` of them."""
    def check(st):
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            f = st.value.func
            return (isinstance(f, ast.Name) and f.id == "expect") or (
                isinstance(f, ast.Attribute) and f.attr == "choice" and getattr(f.value, "id", None) == "expect")
        if isinstance(st, (ast.For, ast.If)):
            return bool(st.body) and all(check(b) for b in st.body + st.orelse)
        return False
    return bool(statements) and all(check(st) for st in statements)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_ci_checks_sit_in_tagged_cells(nb):
    """The tolerance checks CI runs (``expect``) live in cells tagged ``check`` and ``remove-input``, right after the
    cell they check: the website hides their code and shows what they print, and such a cell holds checks and
    nothing else (no code the lesson needs could hide there). nbval's markers are cell tags, not comments in the
    code. Lesson 01 introduces ``expect`` and keeps its first checks in view."""
    found = []
    for i, c in enumerate(_cells(nb)):
        tags, text = c.get("metadata", {}).get("tags", []), _text(c)
        if c["cell_type"] != "code":
            continue
        if CHECK_TAG in tags:
            if "remove-input" not in tags:
                found.append(f"cell {i}: a check cell's code must be hidden on the site (remove-input)")
            if not _only_checks(ast.parse(text).body):
                found.append(f"cell {i}: a check cell holds something other than expect(...) checks")
            continue
        if "NBVAL_" in text:
            found.append(f"cell {i}: an nbval comment marker (use the nbval-check-output / nbval-ignore-output tag)")
        if re.search(r"^\s*expect(\.choice)?\(", text, re.M) and not nb.name.startswith("01_"):
            found.append(f"cell {i}: expect(...) outside a check cell")
    assert not found, f"{nb.name}: {found}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_words_for_the_maintainers(nb):
    found = [f"cell {i}: {phrase!r}" for i, c in enumerate(_cells(nb)) for phrase in MAINTAINER_TALK
             if phrase.lower() in _text(c).lower()]
    assert not found, f"{nb.name} speaks to the maintainers, not the learner: {found}"
