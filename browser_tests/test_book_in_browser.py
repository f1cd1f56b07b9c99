"""The built book as a reader gets it: every page opened in headless Chromium from a localhost server.

Per page: no SEVERE console entry (page errors, failed loads), every ``<img>`` loaded
(``naturalWidth > 0``), every math element typeset by the locally served MathJax with no TeX error and
no raw ``$$`` left in the text. Then: the sidebar lists every chapter of ``_toc.yml``, the search page
finds "state expansion", and screenshots of the landing, DSF and MQAR pages are saved to
``_build/screenshots/`` (CI artifacts). Run with ``make browser-test`` after ``make book``.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import ROOT, SCREENSHOTS

from dsflib.chapters import toc_files

SKIP_DIRS = {"_static", "_sources", "_downloads", "_images"}
CDN = re.compile(r"""<script[^>]+src=["']https?://""", re.I)

# Waits for lazy images and for MathJax's first typesetting, then reports what the reader sees.
INSPECT_PAGE = """
const done = arguments[arguments.length - 1];
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 15000); })));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = Array.from(document.querySelectorAll('.math'));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {acceptNode: n =>
    n.parentElement.closest('pre, code, script, style, textarea, mjx-container')
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  let text = '';
  while (walker.nextNode()) { text += walker.currentNode.textContent; }
  done({
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    images: imgs.length,
    math: math.length,
    unrendered: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
    texErrors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 60)),
    rawDollars: (text.match(/\\$\\$/g) || []).length,
    mathjax: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
  });
})().catch(e => done({error: String(e)}));
"""


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(html).parts))


def _toc_pages() -> tuple[str, list[str]]:
    root, *files = toc_files(ROOT)
    return root, files


def _severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_html_serves_mathjax_locally(html_dir):
    local = html_dir / "_static" / "mathjax" / "tex-mml-chtml.js"
    assert local.exists(), f"{local} is missing: the build must copy node_modules/mathjax into _static"
    assert (html_dir / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    for page in _pages(html_dir):
        source = page.read_text(encoding="utf-8")
        assert not CDN.search(source), f"{page.relative_to(html_dir)} loads a script from the network"
        assert "cdn.jsdelivr.net" not in source and "mathjax@" not in source, page


def test_every_page_loads_cleanly_with_images_and_math(html_dir, server, browser):
    pages = _pages(html_dir)
    assert len(pages) >= 10, f"only {len(pages)} pages in {html_dir}"
    problems, math_pages, started = [], 0, time.perf_counter()
    _severe(browser)  # drop anything logged before the first page
    for page in pages:
        rel = page.relative_to(html_dir).as_posix()
        browser.get(f"{server}/{rel}")
        report = browser.execute_async_script(INSPECT_PAGE)
        if "error" in report:
            problems.append(f"{rel}: inspection script failed: {report['error']}")
            continue
        errors = _severe(browser)
        if errors:
            problems.append(f"{rel}: console errors {errors}")
        if report["broken"]:
            problems.append(f"{rel}: images that did not load {report['broken']}")
        if report["math"]:
            math_pages += 1
            if not any("_static/mathjax/" in s for s in report["mathjax"]):
                problems.append(f"{rel}: math but no local MathJax script ({report['mathjax']})")
        if report["unrendered"]:
            problems.append(f"{rel}: {len(report['unrendered'])} math elements not typeset, "
                            f"e.g. {report['unrendered'][:3]}")
        if report["texErrors"]:
            problems.append(f"{rel}: TeX errors {report['texErrors'][:5]}")
        if report["rawDollars"]:
            problems.append(f"{rel}: {report['rawDollars']} raw '$$' left in the text")
    print(f"opened {len(pages)} pages ({math_pages} with math) in {time.perf_counter() - started:.1f} s")
    assert math_pages >= 5, "the book's chapters are full of math: MathJax found almost none"
    assert not problems, "\n".join(problems)


def test_sidebar_lists_every_chapter(server, browser):
    root, files = _toc_pages()
    browser.get(f"{server}/index.html")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('.bd-sidebar-primary nav a')).map(a => a.href)")
    listed = {re.sub(r"[#?].*$", "", href).removeprefix(server + "/") for href in links}
    missing = [f for f in files if f != root and f"{f}.html" not in listed]
    assert not missing, f"chapters of _toc.yml missing from the sidebar: {missing} (sidebar: {sorted(listed)})"


def test_search_finds_state_expansion(server, browser):
    browser.get(f"{server}/search.html?q=state+expansion")
    deadline, hits = time.time() + 30, []
    while time.time() < deadline and not hits:
        time.sleep(0.5)
        hits = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.href)")
    assert hits, "the search page found nothing for 'state expansion'"
    assert any("book/dsf.html" in h for h in hits), f"the DSF chapter defines the state expansion; hits: {hits}"


@pytest.mark.parametrize("page", ["index", "book/dsf", "book/mqar"])
def test_screenshots(server, browser, page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{server}/{page}.html")
    browser.execute_async_script(INSPECT_PAGE)
    name = Path(page).name
    assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    figure = browser.execute_script(
        "const img = document.querySelector('main img'); if (!img) return false;"
        "img.scrollIntoView({block: 'start'}); window.scrollBy(0, -80); return true;")
    if figure:
        assert browser.save_screenshot(str(SCREENSHOTS / f"{name}-figure.png"))
    assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
