"""The website's pure parts (docs/_ext/site_content.py): lessons found by name, the "Introduced in" lines turned into
links, the API's layer pages, the leaderboard from notebook metadata, and the check that no page loads anything
from outside the site. The Sphinx build itself is ``make site``."""

import json
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import site_content  # noqa: E402

LESSON_PATHS = site_content.lessons(ROOT)


def _notebook(path: Path, rows=None) -> Path:
    meta = {"kernelspec": {"name": "python3"}}
    if rows is not None:
        meta["recsuite"] = {"results": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _row(notebook, model, eval_set, ndcg):
    metrics = {f"{m}@10": ndcg for m in ("ndcg", "recall", "precision", "hit", "mrr", "map")}
    return {"notebook": notebook, "model": model, "family": "cf", "eval_set": eval_set, "k": 10,
            "metrics": metrics | {"users": 3}, "fit_seconds": 1.0, "params": {}}


# -- lessons ---------------------------------------------------------------------------------------------------------

def test_lessons_are_the_numbered_notebooks_in_course_order(tmp_path):
    for name in ("10_last.ipynb", "02_second.ipynb", "01_first.ipynb", "1_unnumbered.ipynb", "ab_letters.ipynb",
                 "03_not_a_notebook.py"):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        (tmp_path / "notebooks" / name).write_text("{}")
    found = site_content.lessons(tmp_path)
    assert [p.name for p in found] == ["01_first.ipynb", "02_second.ipynb", "10_last.ipynb"]
    assert [site_content.lesson_docname(p, tmp_path) for p in found] == [
        "notebooks/01_first", "notebooks/02_second", "notebooks/10_last"]


def test_the_course_has_its_lessons_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in site_content.lessons(ROOT)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 16


# -- Introduced in ---------------------------------------------------------------------------------------------------

def test_introduced_in_reads_the_lessons_a_docstring_names():
    doc = "Recall@k.\n\nJärvelin & Kekäläinen 2002. Introduced in notebooks/01_data_preprocessing.ipynb\n"
    assert site_content.introduced_in(doc) == ["notebooks/01_data_preprocessing"]
    assert site_content.introduced_in("Introduced in notebooks/x.ipynb, see notebooks/02_b.ipynb") == []
    assert site_content.introduced_in(None) == []


def test_link_introduced_turns_the_line_into_a_doc_link_and_leaves_the_rest():
    lines = ["One line of what.", "", "Introduced in notebooks/06_two_stage_ranker.ipynb",
             "the others ``content_scores``. Introduced in notebooks/02_llm_semantic_features.ipynb",
             "notebooks/13_sequential.ipynb is mentioned, not introduced"]
    out = site_content.link_introduced(lines)
    assert out[:2] == lines[:2] and out[4] == lines[4]
    assert out[2] == "Introduced in :doc:`/notebooks/06_two_stage_ranker`"
    assert out[3] == "the others ``content_scores``. Introduced in :doc:`/notebooks/02_llm_semantic_features`"


def test_canonical_name_is_where_an_object_is_defined_not_where_it_is_imported():
    from recsuite.data.split import Protocol
    from recsuite.evaluation import metrics

    assert site_content.canonical_name(metrics.ndcg_at_k, "function") == "recsuite.evaluation.metrics.ndcg_at_k"
    assert site_content.canonical_name(Protocol.evaluate, "method") == "recsuite.data.split.Protocol.evaluate"
    assert site_content.canonical_name(metrics, "module") == "recsuite.evaluation.metrics"
    n_users = Protocol.__dict__["n_users"]  # a property: named after its getter
    assert site_content.canonical_name(n_users, "property") == "recsuite.data.split.Protocol.n_users"
    assert site_content.canonical_name(3, "data") is None  # a value has no home of its own
    mod = types.ModuleType("recsuite.fake")
    assert site_content.canonical_name(mod, "module") == "recsuite.fake"


# -- API layer pages -------------------------------------------------------------------------------------------------

def test_layer_modules_follow_the_readme_table_then_the_alphabet(tmp_path):
    layer = tmp_path / "recsuite" / "core"
    layer.mkdir(parents=True)
    for name in ("__init__", "alpha", "beta", "gamma", "_private"):
        (layer / f"{name}.py").write_text('"""x"""\n')
    readme = "| `recsuite.core.gamma` | g | 01 |\n| `recsuite.core.alpha` | a | 01 |\n"
    assert site_content.layer_modules(tmp_path / "recsuite", "core", readme) == [
        "recsuite.core.gamma", "recsuite.core.alpha", "recsuite.core._private", "recsuite.core.beta"]
    with pytest.raises(ValueError, match="no modules"):
        site_content.layer_modules(tmp_path / "recsuite", "nowhere", readme)


def test_every_layer_of_the_package_has_an_api_page():
    layers = sorted(p.parent.name for p in (ROOT / "recsuite").glob("*/__init__.py"))
    pages = {p.stem: p.read_text() for p in (ROOT / "docs" / "api").glob("*.rst")}
    assert [f"recsuite-layer:: recsuite.{layer}" in pages.get(layer, "") for layer in layers] == [True] * len(layers)
    index = pages["index"]
    assert all(f"\n   {layer}\n" in index for layer in layers), "docs/api/index.rst must list every layer page"


# -- leaderboard -----------------------------------------------------------------------------------------------------

def test_leaderboard_ranks_the_rows_the_notebooks_carry(tmp_path):
    nbs = [_notebook(tmp_path / "notebooks" / "01_a.ipynb", [_row("01_a", "Popularity", "test", 0.07)]),
           _notebook(tmp_path / "notebooks" / "03_c.ipynb", [_row("03_c", "ALS", "test", 0.12),
                                                             _row("03_c", "ALS", "valid", 0.13)]),
           _notebook(tmp_path / "notebooks" / "02_b.ipynb")]  # not run yet: no metadata
    text = site_content.leaderboard_markdown(nbs)
    assert "## valid" in text and "## test" in text and "## cold_test" not in text
    test_part = text.split("## test")[1]
    assert test_part.index("ALS") < test_part.index("Popularity"), "best NDCG@10 first"
    assert "[03_c](../notebooks/03_c.ipynb)" in test_part and "0.1200" in test_part
    assert "3 committed notebooks" in text and "No results recorded" not in text


def test_leaderboard_without_recorded_rows_says_so(tmp_path):
    nbs = [_notebook(tmp_path / "notebooks" / "01_a.ipynb"), _notebook(tmp_path / "notebooks" / "02_b.ipynb", [])]
    text = site_content.leaderboard_markdown(nbs)
    assert "No results recorded yet." in text and "make run" in text and "|" not in text


def test_leaderboard_refuses_rows_recorded_under_another_notebook(tmp_path):
    nb = _notebook(tmp_path / "notebooks" / "01_a.ipynb", [_row("05_other", "ALS", "test", 0.1)])
    with pytest.raises(ValueError, match="01_a"):
        site_content.leaderboard_markdown([nb])


def test_fill_leaderboard_replaces_the_marker_and_needs_it(tmp_path):
    nb = _notebook(tmp_path / "notebooks" / "01_a.ipynb", [_row("01_a", "EASE", "valid", 0.1)])
    page = f"# Leaderboard\n\nIntro.\n\n{site_content.LEADERBOARD_MARKER}\n"
    out = site_content.fill_leaderboard(page, [nb])
    assert out.startswith("# Leaderboard\n\nIntro.") and site_content.LEADERBOARD_MARKER not in out and "EASE" in out
    with pytest.raises(ValueError, match="recsuite:leaderboard"):
        site_content.fill_leaderboard("# Leaderboard\n", [nb])
    assert (ROOT / "docs" / "leaderboard.md").read_text().count(site_content.LEADERBOARD_MARKER) == 1


def test_toctree_is_hidden_and_lists_the_pages_in_order():
    text = site_content.toctree(["notebooks/01_a", "notebooks/02_b"], "Lessons")
    assert "```{toctree}\n:hidden:\n:caption: Lessons\n\nnotebooks/01_a\nnotebooks/02_b\n```" in text


# -- offline ---------------------------------------------------------------------------------------------------------

def test_external_loads_finds_what_a_page_fetches_and_not_its_links():
    page = """<html><head>
      <script src="https://cdn.jsdelivr.net/npm/katex/katex.min.js"></script>
      <script src="../_static/katex.min.js"></script>
      <link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato">
      <link rel="canonical" href="https://example.org/page.html">
      <link rel="next" href="02.html">
      <style>@import url("https://fonts.example.com/a.css"); .x { background: url(data:image/png;base64,AA) }</style>
      </head><body>
      <a href="https://arxiv.org/abs/1708.05031">paper</a>
      <img src="data:image/png;base64,AAAA"> <img srcset="a.png 1x, http://img.example.com/b.png 2x">
      <div style="background: url('http://img.example.com/bg.png')"></div>
      </body></html>"""
    assert site_content.external_loads(page) == [
        "//fonts.googleapis.com/css?family=Lato", "http://img.example.com/b.png", "http://img.example.com/bg.png",
        "https://cdn.jsdelivr.net/npm/katex/katex.min.js", "https://fonts.example.com/a.css"]


def test_css_urls_outside_finds_imports_and_remote_fonts_only():
    css = """/* Bootstrap https://getbootstrap.com */ @font-face{src:url(fonts/KaTeX_Main.woff2) format("woff2")}
             @import "https://fonts.googleapis.com/css2?family=Inter"; .a{background:url("data:image/svg+xml;utf8,<svg
             xmlns='http://www.w3.org/2000/svg'/>")} @font-face{src:url(https://cdn.example.com/f.woff2)}"""
    assert site_content.css_urls_outside(css) == ["https://cdn.example.com/f.woff2",
                                                  "https://fonts.googleapis.com/css2?family=Inter"]


def test_site_loads_outside_names_each_offending_file(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "ok.html").write_text('<a href="https://example.org">x</a><script src="_static/a.js"></script>')
    (tmp_path / "bad.html").write_text('<script src="https://cdn.example.com/x.js"></script>')
    (tmp_path / "_static" / "theme.css").write_text("@import url(https://fonts.example.com/x.css);")
    (tmp_path / "_static" / "a.js").write_text('fetch("https://example.org")')  # scripts are not parsed
    assert site_content.site_loads_outside(tmp_path) == {
        "_static/theme.css": ["https://fonts.example.com/x.css"], "bad.html": ["https://cdn.example.com/x.js"]}


def test_broken_quicklinks_checks_pages_and_anchors(tmp_path):
    (tmp_path / "README.html").write_text('<section id="glossary"><h2>Glossary</h2></section>')
    links = [("Glossary", "README", "glossary"), ("Lessons", "README", "the-lessons"), ("API", "docs/api/index", "")]
    assert site_content.broken_quicklinks(tmp_path, links) == [
        "Lessons: README.html has no #the-lessons", "API: no page index.html"]


@pytest.mark.parametrize("nb", LESSON_PATHS, ids=[p.stem for p in LESSON_PATHS])
def test_a_lesson_that_records_results_carries_them(nb):
    """The website's leaderboard reads the rows a lesson recorded from its metadata, which the runner writes: a
    lesson that calls results.record but was committed from another kind of run would be missing from it."""
    data = json.loads(nb.read_text(encoding="utf-8"))
    records = any("results.record(" in "".join(c["source"]) for c in data["cells"] if c["cell_type"] == "code")
    rows = data["metadata"].get("recsuite", {}).get("results", [])
    assert bool(rows) == records, (f"{nb.name}: {'calls' if records else 'does not call'} results.record but carries "
                                   f"{len(rows)} rows; execute it with python -m recsuite.course.runner --inplace")
