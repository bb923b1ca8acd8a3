"""Every number the lessons' prose states comes from that lesson's committed outputs.

A markdown cell's decimals (0.126), percentages (+9.7 %), times (17.9 s, 0.03 ms) and factors (3.7×) must
each appear, at the precision the prose prints them, among the numbers of the same notebook's outputs
(or of its parameters cell: the knobs the prose describes): "0.13" is matched by an output 0.126, "+9.7 %"
only by an output percentage (9.7 % or 9.74 %), "17.9 s" only by an output time, "3.7×" by a factor. Plain integers (counts, years, section numbers) are not checked,
nor is anything inside LaTeX ($...$), code spans or links. The few numbers that legitimately come from
elsewhere are listed, each with its reason, in the notebook's metadata (``allowed_in``). It reads the committed notebooks, so it checks
the numbers a reader sees, on any machine.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from recsuite.course.runner import lessons

NOTEBOOKS = lessons(Path(__file__).resolve().parents[1])

# number -> why it may appear in prose without appearing in the outputs (keep this short)
EVERYWHERE = {
    "95": "the level of every bootstrap interval (metrics.paired_bootstrap's default), a constant of the method",
    "2.5": "the lower percentile of a 95 % interval, a constant of the method",
    "97.5": "the upper percentile of a 95 % interval, a constant of the method",
}
# Numbers that come from elsewhere are listed in the notebook itself, next to the prose that states them:
# notebook metadata {"recsuite": {"prose_numbers_allowed": {"0.01": "why it may appear without an output"}}}
# (a paper's constant, a library default, an exercise's range measured with the knob changed).
def allowed_in(nb_json: dict) -> dict:
    allowed = nb_json.get("metadata", {}).get("recsuite", {}).get("prose_numbers_allowed", {})
    if not isinstance(allowed, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                for k, v in allowed.items()):
        raise ValueError("metadata.recsuite.prose_numbers_allowed must map each number (str) to its reason (str)")
    return allowed

_STRIP = [
    re.compile(r"\$\$.*?\$\$", re.S),          # display LaTeX
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),  # inline LaTeX
    re.compile(r"`[^`]*`"),                     # code spans
    re.compile(r"\]\([^)]*\)"),                 # link targets
    re.compile(r"https?://\S+"),
    re.compile(r"\b\d+\.\d+\.\d+(\.\d+)*\b"),   # versions (1.2.1) and section numbers (7.10.2)
    re.compile(r"§\s?\d+(\.\d+)*"),              # book sections
    re.compile(r"\b[A-Za-z]+[-_]?\d+(\.\d+)?[A-Za-z]*\b"),  # names with digits: ML-100K, L6, Q4, r8, bf16
]
_NUMBER = re.compile(
    r"(?<![\w.])(?P<num>\d+(?:,\d{3})*(?:\.\d+)?(?:e-?\d+)?)\s?(?P<unit>%|×|x\b|ms\b|s\b|min\b|minutes?\b|seconds?\b)?"
)
_OUT_NUMBER = re.compile(
    r"(?<![\w.])-?(?P<num>\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?)\s?(?P<unit>%|×|x\b|ms\b|s\b|sec\b|seconds?\b|min\b|minutes?\b)?"
)
UNITS = {"": "", "%": "%", "×": "×", "x": "×", "ms": "ms", "s": "s", "sec": "s", "second": "s", "seconds": "s",
         "min": "min", "minute": "min", "minutes": "min"}


def _cells(nb: Path):
    return json.loads(nb.read_text())["cells"]


def prose_numbers(text: str) -> list[tuple[str, str]]:
    """(number as written, unit) for every checked number of a markdown text."""
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    found = []
    for m in _NUMBER.finditer(text):
        num, unit = m.group("num"), UNITS[(m.group("unit") or "").strip()]
        if "." not in num and "e" not in num and not unit:
            continue  # plain integers: counts, years, section numbers
        found.append((num, unit))
    return found


def output_numbers(cells) -> dict[str, list[tuple[float, int]]]:
    """unit -> [(|value|, decimals printed)] of every number in the outputs ("" holds every number)."""
    texts, knobs = [], []
    for c in cells:
        if c["cell_type"] != "code":
            continue
        if "parameters" in c.get("metadata", {}).get("tags", []):
            knobs.append("".join(c["source"]))
        for o in c.get("outputs", []):
            texts.append("".join(o.get("text", "")))
            data = o.get("data", {})
            texts.append("".join(data.get("text/plain", "")))
            texts.append(html.unescape(re.sub(r"<[^>]+>", " ", "".join(data.get("text/html", "")))))
    values: dict[str, list[tuple[float, int]]] = {u: [] for u in set(UNITS.values())}
    for t in texts:
        for m in _OUT_NUMBER.finditer(t):
            num = m.group("num")
            try:
                v = abs(float(num.replace(",", "")))
            except ValueError:
                continue
            d = _decimals(num)
            entry = (v, 99 if d is None else d)
            values[""].append(entry)
            unit = UNITS[(m.group("unit") or "").strip()]
            if unit:
                values[unit].append(entry)
    for t in knobs:  # a knob's value is stated as it is, or a fraction as a percentage (0.03 -> 3 %)
        for m in _OUT_NUMBER.finditer(t):
            v, d = abs(float(m.group("num").replace(",", ""))), _decimals(m.group("num"))
            values[""].append((v, 99 if d is None else d))
            if v < 1 and d is not None:
                values["%"].append((100 * v, max(0, d - 2)))
    return values


def _decimals(num: str) -> int | None:
    if "e" in num:
        return None
    return len(num.split(".")[1]) if "." in num else 0


def matches(num: str, unit: str, outputs: dict) -> bool:
    """Whether an output number with the same unit, printed with at least as many decimals, rounds to ``num``.

    A percentage, a time or a factor must be printed as one (with %, s/ms/min or ×) somewhere in the outputs.
    """
    value = float(num.replace(",", ""))
    d = _decimals(num)
    pool = outputs.get(unit, [])
    if d is None:
        return any(abs(x - value) <= 1e-12 + 1e-9 * abs(value) for x, _ in pool)
    tol = 0.5 * 10.0 ** -d + 1e-9
    return any(dx >= d and abs(x - value) <= tol for x, dx in pool)


def test_the_rules_themselves():
    """The extractor and the matcher on hand-made text."""
    text = ("NDCG@10 rises from 0.126 to 0.138 (+9.7 %) in 17.9 s, 3.7× faster; $\\alpha = 0.5$ and `x = 0.25` "
            "and RecBole 1.2.1 and ML-100K are ignored, as are 943 users.")
    assert prose_numbers(text) == [("0.126", ""), ("0.138", ""), ("9.7", "%"), ("17.9", "s"), ("3.7", "×")]
    outs = output_numbers([{"cell_type": "code", "source": [], "outputs": [
        {"text": "ndcg 0.1261 then 0.1379; gain +9.74% in 17.93 s; 3.668× the baseline; 12 items"}]}])
    assert all(matches(n, u, outs) for n, u in prose_numbers(text))
    assert not matches("0.127", "", outs) and not matches("9.8", "%", outs) and not matches("18.0", "s", outs)
    assert matches("0.13", "", outs) and not matches("12", "s", outs) and not matches("12", "%", outs)
    assert not matches("0.1261", "", {"": [(0.126, 3)]})  # an output printed more coarsely cannot back it


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_prose_numbers_come_from_outputs(nb):
    nb_json = json.loads(nb.read_text())
    cells = nb_json["cells"]
    outputs = output_numbers(cells)
    allowed = {**EVERYWHERE, **allowed_in(nb_json)}
    missing = []
    for i, c in enumerate(cells):
        if c["cell_type"] != "markdown":
            continue
        for num, unit in prose_numbers("".join(c["source"])):
            if num in allowed or matches(num, unit, outputs):
                continue
            missing.append(f"cell {i}: {num}{(' ' + unit) if unit else ''}")
    assert not missing, (f"{nb.name}: numbers in the prose that no output of the notebook shows at that precision "
                         f"(print them, fix the prose, or list them in the notebook's metadata.recsuite.prose_numbers_allowed with a reason): {missing}")


def test_allowed_numbers_need_a_reason():
    assert allowed_in({"metadata": {"recsuite": {"prose_numbers_allowed": {"0.01": "a formula constant"}}}}) == {
        "0.01": "a formula constant"}
    assert allowed_in({"metadata": {}}) == {}
    with pytest.raises(ValueError, match="to its reason"):
        allowed_in({"metadata": {"recsuite": {"prose_numbers_allowed": {"0.01": " "}}}})
