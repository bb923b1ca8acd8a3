"""What the website is made of, as plain functions (no Sphinx): the lessons, the "Introduced in" lines, the
package's modules in reading order, the leaderboard page and the check that no page loads anything from outside.

``recsuite_site`` (the Sphinx extension next to this file) calls these; ``tests/test_site_build.py`` tests them.
"""

from __future__ import annotations

import html.parser
import pkgutil
import re
from pathlib import Path

from recsuite.course import results
from recsuite.course.runner import LESSON_GLOB, lessons  # noqa: F401 (the one definition of a lesson)

#: The folder of the lessons: a lesson added or renamed there needs no configuration.
LESSON_DIR = LESSON_GLOB.split("/")[0]

#: The last line of a docstring, ``Introduced in notebooks/NN_name.ipynb``; the lesson is group 2 (its docname).
INTRODUCED = re.compile(r"Introduced in (notebooks/([0-9][0-9]_[\w-]+)\.ipynb)")

#: Where the generated leaderboard goes in docs/leaderboard.md.
LEADERBOARD_MARKER = "<!-- recsuite:leaderboard -->"


def lesson_docname(path: Path, root: Path) -> str:
    """The Sphinx document name of a lesson: its path from the project root without the suffix."""
    return Path(path).relative_to(root).with_suffix("").as_posix()


def introduced_in(text: str) -> list[str]:
    """The lessons (document names, e.g. ``notebooks/01_data_preprocessing``) a docstring says it was introduced in."""
    return [m.group(1).removesuffix(".ipynb") for m in INTRODUCED.finditer(text or "")]


def link_introduced(lines: list[str]) -> list[str]:
    """The docstring lines with each ``Introduced in notebooks/NN_name.ipynb`` turned into a link to that lesson.

    The link is a ``:doc:`` role with an absolute document name, so a lesson that does not exist is an unresolved
    reference: a warning, and with ``-W`` a failed build.
    """
    return [INTRODUCED.sub(lambda m: f"Introduced in :doc:`/{m.group(1).removesuffix('.ipynb')}`", line)
            for line in lines]


def canonical_name(obj, what: str) -> str | None:
    """Where ``obj`` is defined: ``module.qualname`` (a module's own name), or None for a value without one."""
    if what == "module":
        return getattr(obj, "__name__", None)
    target = getattr(obj, "fget", None) or getattr(obj, "__func__", None) or obj  # properties, class/static methods
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def layer_modules(package_dir: Path, layer: str, readme: str = "") -> list[str]:
    """The modules of one layer (``recsuite.<layer>.*``), in the order README's package table lists them.

    Modules the table does not name (it should name every one: tests/test_package.py) come last, alphabetically.
    """
    prefix = f"recsuite.{layer}."
    found = sorted(prefix + m.name for m in pkgutil.iter_modules([str(Path(package_dir) / layer)]))
    if not found:
        raise ValueError(f"{package_dir}/{layer} holds no modules: is {layer!r} a layer of recsuite?")
    order = {name: i for i, name in enumerate(re.findall(r"^\|\s*`(recsuite\.[\w.]+)`", readme, re.M))}
    return sorted(found, key=lambda m: (order.get(m, len(order)), m))


def leaderboard_markdown(notebooks: list[Path], docs_dir: str = "docs") -> str:
    """The leaderboard as MyST Markdown, from the rows the notebooks carry in ``metadata["recsuite"]["results"]``.

    Nothing is executed: ``recsuite.course.results.from_notebooks`` reads what the runner stored when it ran them.
    Each notebook name links to its lesson (relative to ``docs_dir``, where the page lives), so a row whose lesson
    is not on the site is a broken link, which fails the build.
    """
    runs = results.from_notebooks(notebooks)["runs"]
    df = results.table(runs=runs)
    if not df.empty:
        up = "../" * len(Path(docs_dir).parts)
        df["notebook"] = [f"[{nb}]({up}notebooks/{nb}.ipynb)" for nb in df["notebook"]]
    intro = (f"Read from the {len(notebooks)} committed notebooks, without running them: the rows each lesson recorded "
             "(`recsuite.course.results.record`) when `make run` last executed it. Full ranking, k = 10.")
    text = results.markdown(df, intro, title="")
    if df.empty:  # results.markdown says "No results recorded yet."; say where they would come from
        text += "\n\nThe notebooks carry no recorded results: run `make run` to execute them and record their rows.\n"
    return text.lstrip("\n")


def fill_leaderboard(source: str, notebooks: list[Path], docs_dir: str = "docs") -> str:
    """docs/leaderboard.md with its marker replaced by the generated tables."""
    if LEADERBOARD_MARKER not in source:
        raise ValueError(f"the leaderboard page lacks the line {LEADERBOARD_MARKER}")
    return source.replace(LEADERBOARD_MARKER, leaderboard_markdown(notebooks, docs_dir))


def toctree(docnames: list[str], caption: str) -> str:
    """A hidden MyST toctree (the site's navigation) listing ``docnames`` under ``caption``."""
    entries = "\n".join(docnames)
    return f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{entries}\n```\n"


def broken_quicklinks(site: Path, links: list[tuple[str, str, str]], suffix: str = ".html") -> list[str]:
    """The sidebar's quick links ``(title, docname, anchor)`` whose page or anchor is not in the built ``site``.

    A template's links are not references Sphinx resolves, so they are checked here, on the built pages.
    """
    broken = []
    for title, docname, anchor in links:
        page = Path(site) / f"{docname}{suffix}"
        if not page.is_file():
            broken.append(f"{title}: no page {page.name}")
        elif anchor and not re.search(rf"""\bid=["']{re.escape(anchor)}["']""", page.read_text(encoding="utf-8")):
            broken.append(f"{title}: {page.name} has no #{anchor}")
    return broken


class _Loads(html.parser.HTMLParser):
    """Collects every URL a page *loads* (scripts, styles, fonts, images, frames); plain <a> links are not loads."""

    LOADING = {"src", "href", "srcset", "data", "poster", "background"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if not value or name not in self.LOADING:
                continue
            if tag == "a" and name == "href":
                continue  # a hyperlink to another site is fine: it loads nothing until the reader follows it
            if tag == "link" and name == "href" and not _loads_link(attrs):
                continue  # <link rel="canonical"/"next"/...> points somewhere without fetching it
            self.urls += [u.strip().split(" ")[0] for u in value.split(",")] if name == "srcset" else [value]
        style = dict(attrs).get("style") or ""
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", style)


def _loads_link(attrs) -> bool:
    rel = (dict(attrs).get("rel") or "").lower().split()
    return bool(set(rel) & {"stylesheet", "preload", "prefetch", "icon", "shortcut", "modulepreload", "manifest"})


def _outside(url: str) -> bool:
    return bool(re.match(r"^\s*(https?:)?//", url, re.I))


def external_loads(page: str) -> list[str]:
    """URLs outside the site that an HTML page would load (inline ``<style>`` blocks included)."""
    parser = _Loads()
    parser.feed(page)
    urls = parser.urls + css_urls_outside("".join(re.findall(r"<style[^>]*>(.*?)</style>", page, re.S | re.I)))
    return sorted({u for u in urls if _outside(u)})


def css_urls_outside(css: str) -> list[str]:
    """URLs outside the site that a stylesheet imports or loads (``@import``, ``url(...)``: fonts, images)."""
    urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)
    return sorted({u for u in urls if _outside(u)})


def site_loads_outside(site: Path) -> dict[str, list[str]]:
    """Every built page and stylesheet under ``site`` that loads something from outside it, with what it loads."""
    found = {}
    for path in sorted(Path(site).rglob("*")):
        if path.suffix == ".html":
            urls = external_loads(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix == ".css":
            urls = css_urls_outside(path.read_text(encoding="utf-8", errors="replace"))
        else:
            continue
        if urls:
            found[path.relative_to(site).as_posix()] = urls
    return found
