"""The built book as a reader gets it: every page opened in headless Chromium from a localhost server.

Per page: no SEVERE console entry (page errors, failed loads), every ``<img>`` loaded
(``naturalWidth > 0``), every math element typeset by the locally served MathJax with no TeX error and
no raw ``$$`` left in the text. Then: the sidebar lists every chapter of ``_toc.yml``, the search page
finds "state expansion", and screenshots of the landing, DSF and MQAR pages are saved to
``_build/screenshots/`` (CI artifacts). Run with ``make browser-test`` after ``make book``.
"""
from __future__ import annotations

import os
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


# What a reader at 1400 px sees of each page's layout: display equations, code/output blocks and tables
# wider than their column, stderr output (progress bars, warnings), figures without a numbered caption
# or alt text, and names of internal notes no reader can open.
LAYOUT = """
const done = arguments[arguments.length - 1];
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await new Promise(r => setTimeout(r, 200));
  const main = document.querySelector('main') || document.body;
  const label = e => e.textContent.replace(/\\s+/g, ' ').trim().slice(0, 70);
  const equations = Array.from(main.querySelectorAll('mjx-container[display="true"]')).filter(e => {
    const box = e.closest('div.math') || e.parentElement;
    const math = e.querySelector('mjx-math');
    return (math && math.getBoundingClientRect().width > box.clientWidth + 1) || e.scrollWidth > e.clientWidth + 1;
  }).map(e => (e.closest('div.math') || e).id || e.getAttribute('aria-label') || label(e));
  const blocks = Array.from(main.querySelectorAll('pre')).filter(e => e.scrollWidth > e.clientWidth + 1).map(label);
  // tables and any other box that scrolls sideways (a wide table sits in a scrollable container that
  // clips it: the table alone would look fine)
  const tables = Array.from(main.querySelectorAll(
    'table, .pst-scrollable-table-container, div.highlight, div.cell_output, div.output, div.math')).filter(
    t => t.getBoundingClientRect().width > main.clientWidth + 1 || t.scrollWidth > t.clientWidth + 1).map(label);
  const stderr = main.querySelectorAll('.output.stderr, .cell_output .stderr').length;
  const images = Array.from(main.querySelectorAll('img')).map(i => {
    const fig = i.closest('figure');
    const cap = fig ? fig.querySelector('figcaption') : null;
    return {src: i.getAttribute('src'), alt: i.getAttribute('alt') || '',
            numbered: !!(cap && cap.querySelector('.caption-number'))};
  });
  const notes = (main.innerText.match(/\\b(paper|kernel) notes\\b/gi) || []).length;
  done({equations, blocks, tables, stderr, images, notes});
})().catch(e => done({error: String(e)}));
"""
READER_WIDTH = 1400


def _layout(browser, server, pages, html):
    """``{page: report}`` of :data:`LAYOUT` for every page, at a :data:`READER_WIDTH` px wide window."""
    browser.set_window_size(READER_WIDTH, 1800)
    try:
        reports = {}
        for page in pages:
            rel = page.relative_to(html).as_posix()
            browser.get(f"{server}/{rel}")
            reports[rel] = browser.execute_async_script(LAYOUT)
        return reports
    finally:
        browser.set_window_size(1280, 1800)


@pytest.fixture(scope="module")
def layout(html_dir, server, browser):
    return _layout(browser, server, _pages(html_dir), html_dir)


def test_every_page_fits_its_column_at_1400px(layout):
    """No display equation, code/output block or table is wider than its column (nothing is clipped
    or needs a horizontal scroll bar)."""
    problems = []
    for rel, r in layout.items():
        if "error" in r:
            problems.append(f"{rel}: inspection script failed: {r['error']}")
            continue
        for kind in ("equations", "blocks", "tables"):
            if r[kind]:
                problems.append(f"{rel}: {len(r[kind])} {kind} wider than the column, e.g. {r[kind][:3]}")
    assert not problems, "\n".join(problems)


def test_pages_show_results_not_logs_or_internal_notes(layout):
    problems = [f"{rel}: {r['stderr']} stderr outputs (progress bars or warnings)" for rel, r in layout.items()
                if r.get("stderr")]
    problems += [f"{rel}: names internal notes {r['notes']} times" for rel, r in layout.items() if r.get("notes")]
    assert not problems, "\n".join(problems)


def test_every_figure_has_a_numbered_caption_and_alt_text(layout):
    problems = []
    for rel, r in layout.items():
        for image in r.get("images", []):
            if image["src"] and "_static/" in image["src"]:
                continue  # the theme's logo
            alt = image["alt"].strip()
            if not alt or re.search(r"\.(png|svg|jpe?g)$", alt):
                problems.append(f"{rel}: image {image['src']} has no alt text (alt={alt!r})")
            if not image["numbered"]:
                problems.append(f"{rel}: image {image['src']} is not in a figure with a numbered caption")
    assert not problems, f"{len(problems)} figure problems:\n" + "\n".join(problems)


def test_bibliography_page_lists_the_works_cited(html_dir, server, browser):
    page = html_dir / "book" / "bibliography.html"
    if not page.exists() and os.environ.get("DSF_BOOK_HTML"):
        pytest.skip("a partial build ($DSF_BOOK_HTML) without the bibliography page")
    assert page.exists(), "the book has no bibliography page (book/bibliography.md)"
    browser.get(f"{server}/book/bibliography.html")
    entries = browser.execute_script("return Array.from(document.querySelectorAll('main .citation, main dd, main li'))"
                                     ".map(e => e.innerText)")
    text = " ".join(entries).lower()  # the bibliography style lower-cases titles
    for needle in ("understanding the differences in foundation models", "mamba", "long range arena", "zoology"):
        assert needle in text, f"the bibliography lacks {needle!r}"


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


def test_claims_page_shows_one_verdict_table(server, browser):
    browser.get(f"{server}/book/claims.html")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('main table tbody tr'))"
        ".map(r => Array.from(r.querySelectorAll('td')).map(td => td.innerText))")
    header = browser.execute_script(
        "const t = Array.from(document.querySelectorAll('main table')).find(t => t.innerText.includes('quote'));"
        "return t ? Array.from(t.querySelectorAll('thead th')).map(th => th.innerText.trim()) : [];")
    assert header[:3] == ["claim", "quote", "experiment"] and "ci" in header and "paper" in header, header
    rows = [r for r in rows if len(r) == len(header) and re.match(r"C\d+ \(", r[0])]
    assert rows, "the claims page shows no verdict table"
    claims = {r[0].split(" ")[0] for r in rows}
    assert {f"C{i}" for i in range(1, 14)} <= claims, f"claims missing from the table: {sorted(claims)}"
    outcomes = ("supported", "contradicted", "inconclusive", "not tested")
    for r in rows:
        for profile in ("ci", "paper"):
            cell = r[header.index(profile)]
            assert cell.startswith(outcomes), (r[0], profile, cell)
            # every decided or inconclusive verdict says why and over how many cells
            assert cell.startswith("not tested") or re.search(r"\(\w[\w ]*; \d+/\d+/\d+ of \d+", cell), cell
    # the page at a glance: the runs behind the verdicts and the rules' error rates
    text = browser.execute_script("return document.querySelector('main').innerText")
    assert "How often a verdict is wrong" in text and "Largest wrong-decision rate" in text
    assert re.search("13 of the paper[’']s claims", text)  # the theme typesets the apostrophe


# --------------------------------------------------------------------------- re-run box, notebook, launch buttons

def test_chapter_page_offers_its_notebook(server, browser):
    """The header's download button and the re-run box both link the chapter as an .ipynb that loads."""
    import json
    import urllib.request

    browser.get(f"{server}/book/dsf.html")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href$=\".ipynb\"]')).map(a => "
        "({href: a.href, box: !!a.closest('.rerun-box'), header: !!a.closest('.article-header-buttons')}))")
    assert any(link["header"] for link in links), f"no .ipynb in the header's download button: {links}"
    box = [link["href"] for link in links if link["box"]]
    assert box and box[0].endswith("/dsf.ipynb"), f"the re-run box links no notebook: {links}"
    with urllib.request.urlopen(box[0], timeout=30) as response:  # the local server of the fixture
        notebook = json.loads(response.read())
    assert notebook["nbformat"] == 4 and notebook["metadata"]["dsf_book"]["profile"] in ("ci", "paper")


def test_rerun_box_is_folded_under_the_title(server, browser):
    browser.get(f"{server}/book/mqar.html")
    state = None
    deadline = time.time() + 15
    while time.time() < deadline:
        state = browser.execute_script("""
            const box = document.querySelector('.rerun-box');
            if (!box) return null;
            const title = box.querySelector('.admonition-title');
            const code = box.querySelector('pre');
            const h1 = document.querySelector('main h1');
            // sphinx-togglebutton folds a "dropdown" admonition: class toggle-hidden, content invisible
            const hidden = box.classList.contains('toggle-hidden') && !!code
                && getComputedStyle(code).visibility === 'hidden';
            return {hidden: hidden, title: title ? title.innerText : '',
                    height: box.getBoundingClientRect().height,
                    afterTitle: !!h1 && !!(h1.compareDocumentPosition(box) & Node.DOCUMENT_POSITION_FOLLOWING)};
        """)
        if state and state["hidden"]:
            break
        time.sleep(0.3)
    assert state, "the MQAR page has no re-run box"
    assert state["hidden"], f"the re-run box is not folded: {state}"
    assert state["title"].startswith("Re-run this chapter") and "profile" in state["title"], state
    assert state["height"] < 120, f"the folded box should be one line, it is {state['height']} px high"
    assert state["afterTitle"]
    browser.execute_script("document.querySelector('.rerun-box .admonition-title').click()")
    time.sleep(0.5)
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('.rerun-box pre')).visibility === 'visible'"), \
        "clicking the summary line must unfold the box"


def test_launch_buttons_follow_the_repository_url_of_the_build(html_dir, server, browser):
    """Launch (Binder) and repository buttons exist exactly when the build knew the repository URL
    (dsflib.chapters.book_config wrote it into the staged _config.yml)."""
    import yaml

    staged = ROOT / "_build" / "stage" / "_config.yml"
    assert staged.exists(), f"{staged} is missing: build the book with `make book`"
    config = yaml.safe_load(staged.read_text())
    url = (config.get("repository") or {}).get("url") or ""
    browser.get(f"{server}/book/dsf.html")
    header = browser.execute_script(
        "return Array.from(document.querySelectorAll('.article-header-buttons a[href]')).map(a => a.href)")
    binder = [h for h in header if "mybinder.org" in h]
    if url:
        assert any(h.rstrip("/") == url for h in header), f"no repository button for {url}: {header}"
        assert binder and binder[0].endswith("urlpath=lab/tree/book/dsf.ipynb"), header
    else:
        assert not binder and not any("colab.research.google.com" in h for h in header), header
        assert not any(re.match(r"https://(github|gitlab)\.com/", h) for h in header), header
