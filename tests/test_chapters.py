"""The book pipeline: every chapter executes in the ci profile; failures name chapter and cell."""
import textwrap
from pathlib import Path

import nbformat
import pytest

from dsflib.chapters import ChapterError, execute_chapter, list_chapters
from dsflib.env import REPO_ROOT

CHAPTERS = list_chapters(REPO_ROOT)


def test_toc_lists_every_chapter_file():
    in_toc = {c.source.resolve() for c in CHAPTERS}
    on_disk = {p.resolve() for p in (REPO_ROOT / "book").glob("*.py")}
    assert on_disk == in_toc, f"chapters missing from _toc.yml: {sorted(map(str, on_disk - in_toc))}"
    assert "dsf" in {c.name for c in CHAPTERS}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter_executes_in_ci_profile(chapter):
    # Writes to the same place as `make book`, which then reuses the executed notebook.
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["dsf_book"]["profile"] == "ci"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in code)
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert all(c.get("execution_count") for c in code), "every code cell must have run"


def test_dsf_chapter_shows_agreement_and_heatmap():
    (chapter,) = [c for c in CHAPTERS if c.name == "dsf"]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "max |y_recurrence - Phi u| in float64:" in text
    assert "profile=ci · seed=0" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)


def _write_chapter(root: Path, name: str, body: str, parameters: bool = True) -> None:
    (root / "book").mkdir(exist_ok=True)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/{name}\n")
    params = '# %% tags=["parameters"]\nprofile = "ci"\n\n' if parameters else ""
    (root / "book" / f"{name}.py").write_text(f"# %% [markdown]\n# # {name}\n\n{params}{textwrap.dedent(body)}")


def test_failing_chapter_names_chapter_cell_and_error(tmp_path):
    _write_chapter(tmp_path, "broken", """\
        # %%
        x = 1

        # %%
        ratio = x / (x - 1)  # the failing cell
        """)
    (chapter,) = list_chapters(tmp_path)
    with pytest.raises(ChapterError) as info:
        execute_chapter(chapter, "ci", root=tmp_path)
    message = str(info.value)
    assert "chapter 'broken'" in message
    assert "ratio = x / (x - 1)  # the failing cell" in message
    assert "ZeroDivisionError" in message
    assert not chapter.executed_path(tmp_path, "ci").exists()
    assert chapter.executed_path(tmp_path, "ci").with_suffix(".failed.ipynb").exists()


def test_chapter_needs_a_parameters_cell(tmp_path):
    _write_chapter(tmp_path, "noparams", "# %%\nx = 1\n", parameters=False)
    (chapter,) = list_chapters(tmp_path)
    with pytest.raises(ChapterError, match=r"exactly one cell tagged 'parameters'"):
        execute_chapter(chapter, "ci", root=tmp_path)


def test_executed_chapter_is_reused_until_its_inputs_change(tmp_path):
    _write_chapter(tmp_path, "tiny", "# %%\nprint('profile is', profile, scale)\n")
    (tmp_path / "book" / "tiny.py").write_text(
        (tmp_path / "book" / "tiny.py").read_text().replace('profile = "ci"\n', 'profile = "ci"\nscale = 1\n'))
    (chapter,) = list_chapters(tmp_path)
    out, first = execute_chapter(chapter, "ci", root=tmp_path)
    assert first is not None
    assert execute_chapter(chapter, "ci", root=tmp_path)[1] is None  # reused
    _, third = execute_chapter(chapter, "ci", {"scale": 2}, root=tmp_path)  # new parameters: re-run
    assert third is not None
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["dsf_book"]["parameters"] == {"profile": "ci", "scale": 2}
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "profile is ci 2" in printed


def test_toc_entry_without_file_is_an_error(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/missing\n")
    with pytest.raises(FileNotFoundError, match="book/missing"):
        list_chapters(tmp_path)


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match=r"profile must be one of \('ci', 'paper'\)"):
        execute_chapter(CHAPTERS[0], "gpu")


def test_every_model_has_its_chapter_and_tests():
    from dsflib.models import MIXERS

    names = {c.name for c in CHAPTERS}
    for name in MIXERS:
        assert name in names, f"book/{name}.py is missing from the book"
        assert (REPO_ROOT / "tests" / f"test_{name}.py").exists(), f"tests/test_{name}.py is missing"
        assert (REPO_ROOT / "dsflib" / "models" / f"{name}.py").exists()
