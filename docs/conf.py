"""Sphinx configuration of the course's website (``make site``).

The source directory is the project root, so the pages are the files people already read: README.md is the
landing page (and its Glossary the glossary the lessons link to as ../README.md#glossary), each committed lesson
notebook is a page, and docs/ adds the leaderboard and the API reference. The notebooks are rendered as
committed, never executed. Everything the pages load ships with the site (KaTeX included), so it works offline.
"""

import json
import sys
from pathlib import Path

import sphinxcontrib.katex

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))

import recsuite  # noqa: E402  (after the path, so the checkout's package is the one documented)
from recsuite.course.runner import LESSON_GLOB  # noqa: E402

project = "recsuite"
author = "the recsuite authors"
release = version = recsuite.__version__
copyright = "the recsuite authors, MIT licence"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib.katex",
    "sphinx_copybutton",
    "recsuite_site",
]

root_doc = "README"
# Only these files are pages; whole folders that hold no page are skipped (not walked) for speed.
include_patterns = ["README.md", LESSON_GLOB, "docs/**", "datasets/README.md",
                    "benchmarks/noise_floor.md"]
exclude_patterns = [".*", "**/.*", ".venv", "build", "tests", "recsuite", "recsuite.egg-info", "docs/_ext",
                    "docs/_static", "docs/_templates", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# -- MyST and notebooks ---------------------------------------------------------------------------------------------
nb_execution_mode = "off"  # the committed outputs are the lesson; the site never runs a notebook
nb_merge_streams = True
# The lessons' tqdm bars leave widget state in two notebooks; myst-nb would load require.js and the widget manager
# from a CDN to draw them. The site loads nothing from outside, and a finished progress bar teaches nothing.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # "#glossary", "#the-lessons": the anchors README and the lessons link to

# -- API reference ---------------------------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
add_module_names = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- math: KaTeX, shipped with the site ------------------------------------------------------------------------------
# The stylesheet and fonts come from the npm package that tests/katex locks (make katex); the two scripts
# (katex.min.js, auto-render.min.js) from sphinxcontrib-katex, which bundles the same KaTeX release.
recsuite_katex_dist = "../tests/katex/node_modules/katex/dist"
_npm = DOCS / "../tests/katex/node_modules/katex/package.json"
if _npm.is_file() and json.loads(_npm.read_text())["version"] != sphinxcontrib.katex.katex_version:
    raise RuntimeError(f"KaTeX from npm is {json.loads(_npm.read_text())['version']}, sphinxcontrib-katex bundles "
                       f"{sphinxcontrib.katex.katex_version}: pin the same release in tests/katex/package.json")
html_math_renderer = "katex"
katex_css_path = "katex/katex.min.css"  # relative: served from _static/katex/ (recsuite_site stages it there)
katex_prerender = False

# -- HTML --------------------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "recsuite"
html_static_path = ["_static"]
html_css_files = ["recsuite.css"]
html_favicon = "_static/favicon.svg"  # without one, every page's browser asks for /favicon.ico and logs a 404
# pydata-sphinx-theme logs a console error ("invalid theme mode") on a first visit unless a default mode is set
html_context = {"default_mode": "light"}
html_copy_source = False  # each lesson links its notebook for download; the other sources need no copy
html_show_sourcelink = False
html_additional_pages = {"index": "redirect.html"}  # index.html -> README.html, the landing page
# The theme's header already holds the search field; the sidebar gets the quick links instead of a second one.
html_sidebars = {"**": ["navbar-logo.html", "recsuite-quicklinks.html", "sbt-sidebar-nav.html"]}
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": True,
    "use_repository_button": False,
    "navigation_with_keys": False,
}

# -- recsuite_site -----------------------------------------------------------------------------------------------------
recsuite_layers = ["core", "evaluation", "data", "models", "combine", "serving", "scale", "course"]
recsuite_reference_pages = ["docs/leaderboard", "docs/api/index", "datasets/README", "benchmarks/noise_floor"]
recsuite_leaderboard_page = "docs/leaderboard"
# (title, page, anchor) in the left sidebar; the build fails when a page or an anchor is missing.
recsuite_quicklinks = [("The lessons", root_doc, "the-lessons"), ("Glossary", root_doc, "glossary"),
                       ("Leaderboard", "docs/leaderboard", ""), ("API reference", "docs/api/index", "")]
