"""The chapters' sources as a reader meets them: code that fits a page's column, citations that resolve,
included library code that exists, no reference to notes a reader cannot open."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dsflib.chapters import LIBRARY_DIRS, list_chapters
from dsflib.env import REPO_ROOT

CHAPTERS = list_chapters()
BOOK_PAGES = sorted((REPO_ROOT / "book").glob("*.md")) + [c.source for c in CHAPTERS]
CODE_WIDTH = 88  # characters: what a code block of the book's column shows at 1400 px without scrolling
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
INCLUDE = re.compile(r"```\{literalinclude\}\s+(\S+)((?:\n#?\s*:[a-z-]+:[^\n]*)*)")
INTERNAL_NOTES = re.compile(r"\b(kernel|paper)[ -]notes\b|paper-facts", re.I)


def code_lines(source: str) -> list[tuple[int, str]]:
    """(line number, text) of every line inside a code cell of a jupytext percent file."""
    out, in_code = [], False
    for number, line in enumerate(source.splitlines(), 1):
        if line.startswith("# %%"):
            in_code = "[markdown]" not in line
            continue
        if in_code:
            out.append((number, line))
    return out


def test_code_lines_of_jupytext_cells_are_found():
    source = "# %% [markdown]\n# " + "x" * 100 + "\n\n# %% tags=['a']\nshort = 1\n# %%\nlong = 2\n"
    assert code_lines(source) == [(5, "short = 1"), (7, "long = 2")]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter_code_fits_the_column(chapter):
    wide = [f"{chapter.source.name}:{n}: {len(line)} columns" for n, line in code_lines(chapter.source.read_text())
            if len(line) > CODE_WIDTH]
    assert not wide, f"code lines wider than {CODE_WIDTH} columns:\n" + "\n".join(wide)


def bib_keys() -> set[str]:
    return set(re.findall(r"@\w+\{([^,\s]+),", (REPO_ROOT / "book" / "references.bib").read_text()))


def test_bibliography_has_the_works_the_book_builds_on():
    assert {"sieber2024dsf", "gu2023mamba", "dao2024mamba2", "yang2024gla", "sun2023retnet", "beck2024xlstm",
            "de2024griffin", "arora2024zoology", "tay2021lra", "katharopoulos2020linear"} <= bib_keys()
    assert (REPO_ROOT / "book" / "bibliography.md").exists()
    assert "book/bibliography" in (REPO_ROOT / "_toc.yml").read_text()


@pytest.mark.parametrize("page", BOOK_PAGES, ids=[p.name for p in BOOK_PAGES])
def test_page_cites_only_known_works_and_no_internal_notes(page):
    text = page.read_text()
    keys = bib_keys()
    cited = {k.strip() for group in CITE.findall(text) for k in group.split(",")}
    assert cited <= keys, f"{page.name} cites keys missing from book/references.bib: {sorted(cited - keys)}"
    notes = [m.group(0) for m in INTERNAL_NOTES.finditer(text)]
    assert not notes, f"{page.name} names notes no reader can open: {notes}"


def _pyobject_exists(path: Path, dotted: str) -> bool:
    tree = ast.parse(path.read_text())
    nodes = tree.body
    for name in dotted.split("."):
        found = [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and n.name == name]
        if not found:
            return False
        nodes = getattr(found[0], "body", [])
    return True


@pytest.mark.parametrize("page", BOOK_PAGES, ids=[p.name for p in BOOK_PAGES])
def test_included_library_code_exists(page):
    """``literalinclude`` shows the library's own source: the file (under dsflib/ or kernels/, copied
    into the stage by the build) and its ``:pyobject:`` must exist."""
    for path, options in INCLUDE.findall(page.read_text()):
        target = (page.parent / path).resolve()
        assert target.is_relative_to(REPO_ROOT) and target.relative_to(REPO_ROOT).parts[0] in LIBRARY_DIRS, \
            f"{page.name} includes {path}, outside {LIBRARY_DIRS}"
        assert target.exists(), f"{page.name} includes {path}, which does not exist"
        obj = re.search(r":pyobject:\s*(\S+)", options)
        if obj:
            assert _pyobject_exists(target, obj.group(1)), f"{page.name}: no {obj.group(1)} in {path}"
