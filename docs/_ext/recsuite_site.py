"""The Sphinx extension behind ``make site``: the lessons in the navigation, lesson <-> API links, the API pages laid
out by layer, the leaderboard from the notebooks' metadata, KaTeX shipped with the site, and the offline check.

- The root document (README) gets hidden toctrees at read time: the lessons found by ``site_content.LESSON_GLOB``
  and the reference pages, so a new or renamed lesson needs no configuration.
- ``autodoc-process-docstring`` turns each ``Introduced in notebooks/NN_name.ipynb`` into a ``:doc:`` link to the
  lesson and records the object; each lesson page gets a download link at the top and, at the end, a section
  whose list of those objects is filled in once every page has been read (``doctree-resolved``), each entry a
  link to the object's API entry. An object that autodoc recorded but the Python domain cannot find is a warning.
- ``.. recsuite-layer:: recsuite.<layer>`` documents a layer's package and each of its modules.
- ``build-finished`` fails the build (a warning, an error under ``-W``) when a page or stylesheet loads anything
  from outside the site, or when a sidebar quick link (``recsuite_quicklinks``) points at a missing page or anchor.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode, nested_parse_with_titles

import site_content

logger = logging.getLogger(__name__)

API_PREFIX = "docs/api/"
API_SECTION = "API introduced in this lesson"


class introduced_here(nodes.General, nodes.Element):
    """Where a lesson's list of API entries goes; replaced at ``doctree-resolved``, once every page is read."""


def _root(app) -> Path:
    return Path(app.srcdir)


def _lesson_docnames(app) -> list[str]:
    return [site_content.lesson_docname(p, _root(app)) for p in site_content.lessons(_root(app))]


# -- navigation and the leaderboard (source-read) -------------------------------------------------------------------

def on_source_read(app, docname, source):
    if docname == app.config.root_doc:
        source[0] += site_content.toctree(_lesson_docnames(app), "Lessons")
        source[0] += site_content.toctree(app.config.recsuite_reference_pages, "Reference")
    elif docname == app.config.recsuite_leaderboard_page:
        notebooks = site_content.lessons(_root(app))
        for nb in notebooks:  # the page is read again whenever a notebook (and so its recorded rows) changes
            app.env.note_dependency(str(nb))
        source[0] = site_content.fill_leaderboard(source[0], notebooks, str(Path(docname).parent))


# -- API -> lesson: the docstring's last line becomes a link, and the object is recorded ------------------------------

def on_process_docstring(app, what, name, obj, options, lines):
    # Only the object's own docstring counts (a method that inherits its parent's text is not introduced twice),
    # under its own name: autodoc also reads the docstrings of names a module merely imports, and documents none.
    own = getattr(obj, "__doc__", None)
    lessons = site_content.introduced_in(own if isinstance(own, str) else "")
    if lessons and site_content.canonical_name(obj, what) == name:
        store = app.env.recsuite_introduced.setdefault(app.env.docname, [])
        store += [(lesson, what, name) for lesson in lessons if (lesson, what, name) not in store]
    lines[:] = site_content.link_introduced(lines)


def on_env_before_read_docs(app, env, docnames):
    if not hasattr(env, "recsuite_introduced"):
        env.recsuite_introduced = {}  # API docname -> [(lesson docname, objtype, full name)], kept in the pickled env


def on_env_purge_doc(app, env, docname):
    getattr(env, "recsuite_introduced", {}).pop(docname, None)


def on_env_merge_info(app, env, docnames, other):
    env.recsuite_introduced.update({d: v for d, v in other.recsuite_introduced.items() if d in docnames})


def on_env_get_outdated(app, env, added, changed, removed):
    again = []
    # A lesson lists what the API pages recorded: when any API page is read again, so are the lessons.
    if any(d.startswith(API_PREFIX) for d in (*added, *changed, *removed)):
        again += _lesson_docnames(app)
    # The landing page's navigation and the leaderboard list the lessons: a lesson added or removed changes both.
    if any(d.startswith(site_content.LESSON_DIR + "/") for d in (*added, *removed)):
        again += [app.config.root_doc, app.config.recsuite_leaderboard_page]
    return again


# -- lesson pages: the download link at the top and the API section at the end (doctree-read) -----------------------

def on_doctree_read(app, doctree):
    docname = app.env.docname
    if docname not in _lesson_docnames(app):
        return
    top = next(iter(doctree.findall(nodes.section)), None)
    if top is None or not isinstance(top[0], nodes.title):
        logger.warning("lesson %s has no '# NN · Title' heading to put its download link under", docname,
                       location=docname)
        return
    name = Path(docname).name + ".ipynb"
    link = addnodes.download_reference("", "", nodes.literal(name, name, classes=["xref", "download"]),
                                       refdoc=docname, refdomain="", reftype="download", refexplicit=True,
                                       reftarget=f"/{docname}.ipynb")
    para = nodes.paragraph("", "", nodes.Text("Download this lesson as a notebook: "), link,
                           nodes.Text(" (run it with "), nodes.literal("make lab", "make lab"), nodes.Text(")."),
                           classes=["recsuite-download"])
    top.insert(1, para)
    section = nodes.section("", nodes.title(API_SECTION, API_SECTION), ids=["api-introduced-in-this-lesson"],
                            names=[nodes.fully_normalize_name(API_SECTION)])
    section += nodes.paragraph("", "The package's functions and classes whose docstrings say they were introduced "
                                   "here, each linked to its entry in the API reference:")
    section += introduced_here()
    top += section


def on_doctree_resolved(app, doctree, docname):
    for placeholder in list(doctree.findall(introduced_here)):
        placeholder.replace_self(_api_list(app, docname))


def _api_list(app, lesson: str) -> nodes.Node:
    """One bullet per module: the module and the objects of it introduced in ``lesson``, each a link."""
    objects = app.env.get_domain("py").objects
    layers = app.config.recsuite_layers
    pages = sorted(app.env.recsuite_introduced, key=lambda d: (layers.index(d.removeprefix(API_PREFIX))
                                                               if d.removeprefix(API_PREFIX) in layers else 99, d))
    modules: dict[str, dict] = {}  # module -> {"ref": link to the module or None, "members": [links]}
    for page in pages:
        for doc_lesson, what, name in app.env.recsuite_introduced[page]:
            if doc_lesson != lesson:
                continue
            entry = objects.get(name)
            if entry is None:
                logger.warning("%s %s says it was introduced in %s but has no API entry to link to", what, name,
                               lesson, location=lesson)
                continue
            module = name if what == "module" else _module_of(name, objects)
            label = name if what == "module" else name.removeprefix(module + ".")
            ref = make_refnode(app.builder, lesson, entry.docname, entry.node_id,
                               nodes.literal(label, label, classes=["xref", "py"]), name)
            slot = modules.setdefault(module, {"ref": None, "members": []})
            if what == "module":
                slot["ref"] = ref
            else:
                slot["members"].append(ref)
    if not modules:
        return nodes.paragraph("", "This lesson introduces no function or class of the package.")
    items = nodes.bullet_list()
    for module, slot in modules.items():
        para = nodes.paragraph()
        para += slot["ref"] if slot["ref"] is not None else _module_ref(app, lesson, module, objects)
        for i, ref in enumerate(slot["members"]):
            para += nodes.Text(": " if i == 0 else ", ")
            para += ref
        items += nodes.list_item("", para)
    return items


def _module_ref(app, lesson: str, module: str, objects) -> nodes.Node:
    """A link to a module's API entry (its own docstring need not name the lesson), or its name when it has none."""
    label = nodes.literal(module, module, classes=["xref", "py"])
    entry = objects.get(module)
    return make_refnode(app.builder, lesson, entry.docname, entry.node_id, label, module) if entry else label


def _module_of(name: str, objects) -> str:
    """The longest prefix of ``name`` that the Python domain knows as a module."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in objects and objects[prefix].objtype == "module":
            return prefix
    return ".".join(parts[:-1])


# -- API pages: one directive per layer ------------------------------------------------------------------------------

class LayerDirective(SphinxDirective):
    """``.. recsuite-layer:: recsuite.core``: the layer's package docstring, then each module with its members."""

    required_arguments = 1

    def run(self):
        package = self.arguments[0]
        layer = package.removeprefix("recsuite.")
        root = Path(self.env.srcdir)
        readme = (root / "README.md").read_text(encoding="utf-8")
        # the page is read again when README's package table (the order) or the layer's folder (a module) changes
        self.env.note_dependency(str(root / "README.md"))
        self.env.note_dependency(str(root / "recsuite" / layer / "__init__.py"))
        lines = [f".. automodule:: {package}", ""]
        for module in site_content.layer_modules(root / "recsuite", layer, readme):
            title = module  # plain text: the theme draws a literal title as a large code box
            lines += [title, "-" * len(title), "", f".. automodule:: {module}", "   :members:",
                      "   :show-inheritance:", ""]
        node = nodes.section()  # a container only: nested_parse_with_titles needs a parent that may hold sections
        nested_parse_with_titles(self.state, StringList(lines, source=f"<recsuite-layer {package}>"), node)
        return node.children


# -- static files and the offline check -----------------------------------------------------------------------------

def on_config_inited(app, config):
    """KaTeX's stylesheet and fonts, copied from the npm package (tests/katex) into a folder the site ships."""
    dist = Path(app.confdir, config.recsuite_katex_dist)
    css = dist / "katex.min.css"
    if not css.is_file():
        raise FileNotFoundError(f"{css} is missing: run `make katex` (KaTeX from npm, locked in tests/katex)")
    staged = Path(app.doctreedir) / "site-static"  # beside the build's own state, never beside a chosen outdir
    target = staged / "katex"
    if target.exists():
        shutil.rmtree(target)  # a few hundred kB: copying it again is cheaper than checking it
    (target / "fonts").mkdir(parents=True)
    shutil.copy2(css, target / css.name)
    for font in (dist / "fonts").iterdir():
        shutil.copy2(font, target / "fonts" / font.name)
    config.html_static_path.append(str(staged))


def on_html_page_context(app, pagename, templatename, context, doctree):
    def href(doc, anchor):
        url = context["pathto"](doc)
        if url.startswith("#"):  # Sphinx links a page to itself as "#": the anchor alone, not "##anchor"
            return f"#{anchor}" if anchor else "#"
        return url + (f"#{anchor}" if anchor else "")

    context["recsuite_quicklinks"] = [(title, href(doc, anchor))
                                      for title, doc, anchor in app.config.recsuite_quicklinks]


def on_build_finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    # Sphinx never deletes the page of a document that is gone (a lesson renamed or removed): the site would keep it.
    out, suffix = Path(app.outdir), app.builder.out_suffix
    generated = {"genindex", "search", "py-modindex", "index"}
    for page in out.rglob(f"*{suffix}"):
        rel = page.relative_to(out)
        name = rel.with_suffix("").as_posix()
        if rel.parts[0].startswith("_") or name in generated or name in app.env.all_docs:
            continue
        page.unlink()
    for problem in site_content.broken_quicklinks(Path(app.outdir), app.config.recsuite_quicklinks,
                                                  app.builder.out_suffix):
        logger.warning("sidebar quick link %s (conf.py: recsuite_quicklinks)", problem)
    for page, urls in site_content.site_loads_outside(Path(app.outdir)).items():
        logger.warning("%s loads %s from outside the site: the site must work offline", page, ", ".join(urls))


def setup(app):
    app.add_config_value("recsuite_reference_pages", [], "env")
    app.add_config_value("recsuite_leaderboard_page", "docs/leaderboard", "env")
    app.add_config_value("recsuite_katex_dist", "", "env")
    app.add_config_value("recsuite_layers", [], "env")
    app.add_config_value("recsuite_quicklinks", [], "html")
    app.add_node(introduced_here)
    app.add_directive("recsuite-layer", LayerDirective)
    app.connect("config-inited", on_config_inited)
    app.connect("source-read", on_source_read)
    app.connect("env-before-read-docs", on_env_before_read_docs)
    app.connect("env-purge-doc", on_env_purge_doc)
    app.connect("env-merge-info", on_env_merge_info)
    app.connect("env-get-outdated", on_env_get_outdated)
    app.connect("autodoc-process-docstring", on_process_docstring)
    # Before the environment's collectors (priority 500), which record the download and the section in the page's
    # table of contents.
    app.connect("doctree-read", on_doctree_read, priority=400)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("html-page-context", on_html_page_context)
    app.connect("build-finished", on_build_finished)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
