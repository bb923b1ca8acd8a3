"""The course website in a real browser: headless Chromium opens every page of ``build/site`` (``make site``).

Each page is loaded over HTTP from a local server, as a reader opens it, and checked for: no console errors (a
failed script, style, font or image request is one), every image decoded (natural width > 0), every formula
rendered by the math renderer shipped with the site (no raw ``$…$`` or ``\\(…\\)`` left in the text, no error
node), every internal link resolving to a page and, for ``#anchors``, to an element of that page, and no
horizontal scroll on a 1280-px window. Lesson pages also link their notebook for download, show their
prerequisites, show no CI check (the ``check`` cells are removed), and get a screenshot in
``build/site-shots/`` for review. The site's search must find the lesson that defines NDCG. A summary of what
was checked goes to ``build/site-shots/checks.json``.

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver``; ``make test`` installs them when it
can (root with apt). This test never skips: without a browser it fails with the command that installs one.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from recsuite.course.runner import lessons

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / os.environ.get("RECSUITE_SITE", "build/site")  # make passes its SITE_DIR
SHOTS = ROOT / "build" / "site-shots"
LESSONS = lessons(Path(__file__).resolve().parents[1])
WIDTH, HEIGHT = 1280, 900
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
# math left as source: TeX delimiters in the text a reader sees (code, outputs and the renderer's own
# annotations excluded in the page script below)
RAW_MATH = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\)|\\\[|\\\]")

# Collects, in the page, what the checks need: images decoded, math state, width, links. Async: img.decode()
# resolves once an image has really decoded (lazy or not), and rejects for a broken one.
PAGE_SCRIPT = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().then(() => null, () => i.currentSrc || i.src); }))
.then(broken => {
  const skip = 'pre, code, script, style, .katex-mathml, .katex-html, annotation, .highlight, .output, .cell_output';
  const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const n = walker.currentNode;
    if (n.parentElement && !n.parentElement.closest(skip)) texts.push(n.textContent);
  }
  done({
    broken: broken.filter(b => b !== null).concat(imgs.filter(i => i.naturalWidth === 0).map(i => i.src)),
    images: imgs.length,
    formulas: document.querySelectorAll('.katex, mjx-container').length,
    math_nodes: document.querySelectorAll('.math').length,
    math_errors: document.querySelectorAll('.katex-error, mjx-merror, [data-mjx-error]').length,
    text: texts.join(' '),
    scroll_width: document.documentElement.scrollWidth,
    inner_width: window.innerWidth,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    outside: performance.getEntriesByType('resource').map(e => e.name)
      .filter(u => !u.startsWith(location.origin) && !u.startsWith('data:')),
    copy_buttons: document.querySelectorAll('button.copybtn').length,
    code_cells: document.querySelectorAll('.cell_input').length,
    code: Array.from(document.querySelectorAll('.cell_input')).map(c => c.innerText).join('\\n'),
    title: document.title,
  });
});
"""


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def _pages() -> list[Path]:
    return sorted(p for p in SITE.rglob("*.html") if not p.relative_to(SITE).parts[0].startswith("_"))


def _lesson_page(nb: Path) -> Path:
    hits = [p for p in _pages() if p.stem == nb.stem]
    assert len(hits) == 1, f"the site has {len(hits)} pages for {nb.name}: {hits}"
    return hits[0]


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").is_file():
        pytest.fail(f"{SITE} has no index.html: build the site first with `make site`")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail(f"the browser test needs Debian's chromium and chromium-driver; install them with: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _visit(driver, url: str) -> dict:
    driver.get(url)
    # the renderer typesets after load: wait until no math node is left as source (or give up after 10 s)
    for _ in range(100):
        state = driver.execute_async_script(PAGE_SCRIPT)
        if state["formulas"] >= state["math_nodes"] and not RAW_MATH.search(state["text"]):
            break
        driver.execute_script("return new Promise(r => setTimeout(r, 100))")
    state["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return state


def _check_lines(nb: Path) -> list[str]:
    """The ``expect(...)`` lines of the cells tagged ``check`` (CI's checks, hidden on the site)."""
    cells = json.loads(nb.read_text())["cells"]
    return [line.strip() for c in cells if "check" in c.get("metadata", {}).get("tags", [])
            for line in "".join(c["source"]).splitlines() if "expect" in line]


def _internal_target(page: Path, href: str):
    """(file, fragment) for a link inside the site, None for an external or non-page link."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
        return None
    if not parts.path:
        return page, unquote(parts.fragment)
    target = (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def test_every_page_in_a_real_browser(server, browser):
    assert LESSONS, "no lesson notebooks found"
    redirect = SITE / "index.html"  # index.html only sends the browser on to the landing page
    target = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', redirect.read_text())
    assert target and (SITE / target.group(1)).is_file(), f"{redirect} does not lead to a page of the site"
    pages = [p for p in _pages() if p != redirect]
    lesson_pages = {_lesson_page(nb): nb for nb in LESSONS}
    assert len(pages) >= len(LESSONS) + 3, f"only {len(pages)} pages in {SITE}"
    stale = [p.name for p in LESSONS if p.stat().st_mtime > (SITE / "README.html").stat().st_mtime]
    assert not stale, f"{SITE} is older than {stale}: rebuild it with `make site`"
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems, counts = [], dict(pages=0, console_errors=0, images=0, formulas=0, links=0, anchors=0, shots=0,
                                lesson_pages=0, copy_buttons=0)
    for page in pages:
        rel = page.relative_to(SITE).as_posix()
        state = _visit(browser, urljoin(server, rel))
        counts["pages"] += 1
        counts["images"] += state["images"]
        counts["formulas"] += state["formulas"]
        counts["copy_buttons"] += state["copy_buttons"]
        if state["console"]:
            counts["console_errors"] += len(state["console"])
            problems.append(f"{rel}: console errors {state['console'][:3]}")
        if state["outside"]:
            problems.append(f"{rel}: loads from outside the site {state['outside'][:3]}")
        if state["broken"]:
            problems.append(f"{rel}: images that do not decode {state['broken'][:3]}")
        if state["math_errors"] or state["formulas"] < state["math_nodes"]:
            problems.append(f"{rel}: {state['math_errors']} math errors, {state['formulas']} of {state['math_nodes']} "
                            "formulas rendered")
        raw = RAW_MATH.findall(state["text"])
        if raw:
            problems.append(f"{rel}: math left as source {raw[:3]}")
        if state["scroll_width"] > state["inner_width"] + 1:
            problems.append(f"{rel}: scrolls sideways ({state['scroll_width']} px wide in a {state['inner_width']} px "
                            "window)")
        for href in state["links"]:
            target = _internal_target(page, href)
            if target is None:
                continue
            file, fragment = target
            counts["links"] += 1
            if not file.is_file() or SITE.resolve() not in file.parents:
                problems.append(f"{rel}: link {href!r} leads to no file of the site")
            elif fragment and file.suffix == ".html":
                counts["anchors"] += 1
                if fragment not in _ids(file):
                    problems.append(f"{rel}: link {href!r} names an anchor its page lacks")
        if page in lesson_pages:
            nb = lesson_pages[page]
            counts["lesson_pages"] += 1
            if not any(h.endswith(nb.name) for h in state["links"]):
                problems.append(f"{rel}: no link to download {nb.name}")
            if "Prerequisites" not in state["text"]:
                problems.append(f"{rel}: does not say which prerequisites it reads")
            if state["code_cells"] and state["copy_buttons"] < state["code_cells"]:
                problems.append(f"{rel}: {state['code_cells']} code cells but {state['copy_buttons']} copy buttons")
            shown = [line for line in _check_lines(nb) if line in state["code"]]
            if shown:
                problems.append(f"{rel}: shows CI checks the site should hide: {shown[:2]}")
            browser.save_screenshot(str(SHOTS / f"{nb.stem}.png"))
            counts["shots"] += 1
    assert counts["lesson_pages"] == len(LESSONS)
    (SHOTS / "checks.json").write_text(json.dumps(counts, indent=1))
    assert not problems, f"{len(problems)} problems on {counts['pages']} pages:\n" + "\n".join(problems[:60])


def test_the_search_finds_the_lesson_that_defines_ndcg(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(urljoin(server, "search.html?q=NDCG"))
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
        or "did not match" in d.find_element(By.ID, "search-results").text)
    hits = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")]
    defining = LESSONS[0].stem  # lesson 01 defines NDCG and the other metrics
    assert any(defining in (h or "") for h in hits), f"searching NDCG did not find {defining}: {hits[:10]}"
    console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not console, console
