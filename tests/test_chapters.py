"""The book pipeline: every chapter executes in the ci profile; failures name chapter and cell."""
import re
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


# --- the book as a reader gets it: tables beside the chapter, the re-run box, offline MathJax ---

def test_save_table_writes_csv_where_the_pipeline_says(tmp_path, monkeypatch):
    import pandas as pd

    from dsflib.tables import TABLES_ENV, save_table

    monkeypatch.setenv(TABLES_ENV, str(tmp_path / "tables"))
    frame = pd.DataFrame({"d": [32, 64], "accuracy": [0.5, 0.75]}).set_index("d")
    path = save_table(frame, "fig1")
    assert path == tmp_path / "tables" / "fig1.csv"
    back = pd.read_csv(path)
    assert list(back.columns) == ["d", "accuracy"] and back["accuracy"].tolist() == [0.5, 0.75]
    assert not list((tmp_path / "tables").glob(".*"))  # no temporary file left behind
    monkeypatch.delenv(TABLES_ENV)
    monkeypatch.chdir(tmp_path)
    assert save_table(frame.reset_index(), "plain") == Path("plain.csv").resolve()


def test_save_table_rejects_bad_input():
    import pandas as pd

    from dsflib.tables import save_table

    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        save_table([[1, 2]], "rows")
    for bad in ["", "../escape", "a/b", "table.csv", " spaced"]:
        with pytest.raises(ValueError, match="name must be a file stem"):
            save_table(pd.DataFrame({"x": [1]}), bad)


def test_markdown_table_renders_every_cell():
    import pandas as pd

    from dsflib.tables import markdown_table

    text = markdown_table(pd.DataFrame({"model": ["s6", "a|b"], "$N$": ["$n d$", "$n d$"]}))
    assert text.splitlines() == ["| model | $N$ |", "|---|---|", "| s6 | $n d$ |", "| a\\|b | $n d$ |"]
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        markdown_table({"a": [1]})


def _tiny_with_table(tmp_path, rows: int) -> None:
    _write_chapter(tmp_path, "tiny", f"""\
        # %%
        import pandas as pd
        from dsflib.tables import save_table
        if {rows}:
            save_table(pd.DataFrame({{"x": list(range({rows}))}}), "squares")
        """)


def test_chapter_tables_and_run_metadata_land_beside_the_notebook(tmp_path):
    _tiny_with_table(tmp_path, 3)
    (chapter,) = list_chapters(tmp_path)
    out, _ = execute_chapter(chapter, "ci", root=tmp_path)
    meta = nbformat.read(out, as_version=4).metadata["dsf_book"]
    assert meta["tables"] == ["squares.csv"]
    assert {"device", "commit", "date"} <= set(meta) and meta["date"].endswith("UTC")
    table = chapter.tables_path(tmp_path, "ci") / "squares.csv"
    assert table.read_text().split() == ["x", "0", "1", "2"]
    _tiny_with_table(tmp_path, 0)  # the chapter stops writing its table: the stale CSV must go
    out, _ = execute_chapter(chapter, "ci", root=tmp_path, force=True)
    assert nbformat.read(out, as_version=4).metadata["dsf_book"]["tables"] == []
    assert not table.exists()


def test_staged_chapter_opens_with_its_rerun_box(tmp_path):
    from dsflib.chapters import RERUN_TAG, stage_notebook

    _tiny_with_table(tmp_path, 2)
    (chapter,) = list_chapters(tmp_path)
    out, _ = execute_chapter(chapter, "ci", root=tmp_path)
    meta = nbformat.read(out, as_version=4).metadata["dsf_book"]
    staged = stage_notebook(chapter, "ci", tmp_path / "stage", root=tmp_path)
    nb = nbformat.read(staged, as_version=4)
    assert nb.cells[0].source == "# tiny"  # the title stays first, the box comes right after it
    box = nb.cells[1]
    assert RERUN_TAG in box.metadata["tags"] and box.source.startswith("````{admonition} Re-run this chapter")
    for text in ["make chapter NAME=tiny PROFILE=ci", "make chapter NAME=tiny PROFILE=paper",
                 "-p profile ci", "-p profile paper", "jupytext --to ipynb", ".venv/bin/papermill",
                 meta["device"], meta["commit"], meta["date"], "{download}`squares.csv <tiny/squares.csv>`"]:
        assert text in box.source, text
    assert (tmp_path / "stage" / "book" / "tiny" / "squares.csv").exists()
    # staging twice never stacks two boxes
    again = nbformat.read(stage_notebook(chapter, "ci", tmp_path / "stage2", root=tmp_path), as_version=4)
    assert sum(RERUN_TAG in c.metadata.get("tags", []) for c in again.cells) == 1


def test_landing_page_has_no_rerun_box_but_lists_every_architecture(tmp_path):
    from dsflib.chapters import RERUN_TAG, stage_notebook
    from dsflib.models import mixer_names

    (intro,) = [c for c in CHAPTERS if c.toc_path == "book/intro"]
    out, _ = execute_chapter(intro, "ci")
    nb = nbformat.read(out, as_version=4)
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.get("outputs", []))
    for name in mixer_names():
        assert f"{{doc}}`{name} <{name}>`" in markdown, name
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    staged = nbformat.read(stage_notebook(intro, "ci", tmp_path, landing=True), as_version=4)
    assert not any(RERUN_TAG in c.metadata.get("tags", []) for c in staged.cells)
    code = [c for c in staged.cells if c.cell_type == "code"]
    assert code and all({"remove-input", "remove-cell"} & set(c.metadata["tags"]) for c in code)


def test_every_model_states_its_dsf_form_and_state_size():
    from dsflib.models import mixer_class, mixer_names

    for name in mixer_names():
        cls = mixer_class(name)
        for attr in ("dsf_transition", "dsf_state_size"):
            value = getattr(cls, attr, None)
            assert isinstance(value, str) and value.strip(), f"{cls.__name__}.{attr} is missing"
            assert value.count("{") == value.count("}"), f"{cls.__name__}.{attr}: unbalanced braces"


def test_mathjax_is_served_from_the_book():
    import json

    import yaml

    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert not config["mathjax_path"].startswith(("http:", "https:", "//")), config["mathjax_path"]
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/mathjax"]["version"].startswith("3.")
    from dsflib.chapters import MATHJAX_FILES

    assert config["mathjax_path"].removeprefix("mathjax/") in MATHJAX_FILES


def test_stage_mathjax_names_the_fix_when_mathjax_is_missing(tmp_path):
    from dsflib.chapters import stage_mathjax

    with pytest.raises(ChapterError, match="npm ci"):
        stage_mathjax(tmp_path / "stage", root=tmp_path)


def test_rerun_box_papermill_commands_run_as_written(tmp_path):
    import subprocess
    import sys

    from dsflib.chapters import rerun_box

    _tiny_with_table(tmp_path, 2)
    (chapter,) = list_chapters(tmp_path)
    out, _ = execute_chapter(chapter, "ci", root=tmp_path)
    box = rerun_box(chapter, nbformat.read(out, as_version=4).metadata["dsf_book"])
    script = box.split("```bash\n", 1)[1].split("# profile paper", 1)[0]
    assert script.startswith("# profile ci\nmake chapter NAME=tiny PROFILE=ci\n")
    script = script.replace("make chapter NAME=tiny PROFILE=ci\n", "")  # no Makefile in tmp_path
    script = script.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    executed = nbformat.read(tmp_path / "_build" / "papermill" / "ci" / "tiny.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert (tmp_path / "_build" / "papermill" / "ci" / "tiny" / "squares.csv").read_text().split() == ["x", "0", "1"]


def test_rerun_box_repeats_extra_parameters():
    from dsflib.chapters import rerun_box

    (chapter,) = [c for c in CHAPTERS if c.name == "dsf"]
    box = rerun_box(chapter, {"profile": "ci", "parameters": {"profile": "ci", "seed": 3}})
    assert "python -m dsflib.chapters execute dsf --profile paper -p seed 3 --force" in box
    assert "-p seed 3 -p profile paper" in box
    with pytest.raises(ValueError, match="missing"):
        rerun_box(chapter, {"profile": "ci"})


def test_claims_page_has_a_verdict_for_every_claim_in_every_profile():
    from dsflib.verdicts import CLAIMS, OUTCOMES

    (chapter,) = [c for c in CHAPTERS if c.name == "claims"]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    tables = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    header = next(line for line in tables.splitlines() if line.startswith("| claim |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:3] == ["claim", "quote", "experiment"] and {"ci", "gpu", "paper"} <= set(columns)
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in tables.splitlines()
            if line.startswith("| C")]
    for claim in CLAIMS:
        mine = [r for r in rows if r[0].startswith(f"{claim} (")]
        assert mine, f"no row for {claim}"
        for r in mine:
            for profile in ("ci", "paper"):
                cell = r[columns.index(profile)]
                assert any(cell.startswith(f"**{o}**") for o in OUTCOMES), (claim, profile, cell)
                if not cell.startswith("**not tested**"):  # reason category and s/c/i of m cells
                    assert re.search(r"\((decided|inside the noise|too few seeds|did not learn|controls failed); "
                                     r"\d+/\d+/\d+ of \d+", cell), (claim, profile, cell)
    # the error rates of the rules, and the paper's statements not tested, quoted
    assert "Largest wrong-decision rate over the seed spreads" in tables
    from dsflib.claims import UNTESTED

    assert all(f"“{quote}”" in tables for quote, _, _ in UNTESTED)
    text = "".join(o.get("text", "") for o in outputs)
    assert "largest calibrated wrong-decision rate" in text and "(promised: at most 5%)" in text


def test_wikitext_chapter_trains_on_the_shipped_data():
    """A fresh clone's build trains WikiText from data/ (no path outside the repository)."""
    (chapter,) = [c for c in CHAPTERS if c.name == "wikitext"]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert str(REPO_ROOT / "data" / "wikitext-2") in text
    from dsflib.experiments import wikitext

    runs = len(wikitext.grid("ci", seed=0)) * len(wikitext.seeds_of("ci"))  # 4 models x 2 seeds
    assert f"{runs} of {runs} runs stored" in text or f"({runs} runs)" in text
    assert "Data missing" not in "".join(str(o.get("data", {})) for c in nb.cells for o in c.get("outputs", []))


def test_wikitext_chapter_without_data_says_so_in_an_admonition(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/wikitext\n")
    (tmp_path / "book" / "wikitext.py").write_text((REPO_ROOT / "book" / "wikitext.py").read_text())
    monkeypatch.setenv("DSF_DATA_DIR", str(tmp_path / "empty"))
    (chapter,) = list_chapters(tmp_path)
    out, _ = execute_chapter(chapter, "ci", root=tmp_path, force=True)
    nb = nbformat.read(out, as_version=4)
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    assert 'class="admonition warning"' in html and "Data missing" in html
    assert "python -m dsflib.data download wikitext-2" in html


def test_claims_page_keeps_both_parts_of_a_two_experiment_claim():
    (chapter,) = [c for c in CHAPTERS if c.name == "claims"]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    tables = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
    c13 = [line for line in tables.splitlines() if line.startswith("| C13 (")]
    assert len(c13) == 2 and "| mqar |" in c13[0] + c13[1] and "| lra |" in c13[0] + c13[1]


@pytest.mark.parametrize("name", ["mqar", "lra", "wikitext", "claims"])
def test_experiment_pages_show_verdicts_and_results_as_markdown_not_long_printouts(name):
    """The experiment chapters and the claims page print no stdout line wider than the page's
    column (88 characters), show their verdicts as Markdown (a table and a bullet list per claim,
    not printed ``Verdict`` text), and give every figure a numbered caption and alt text."""
    (chapter,) = [c for c in CHAPTERS if c.name == name]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    streams = [o for c in code for o in c.get("outputs", [])
               if o.get("output_type") == "stream" and o.get("name") == "stdout"]
    wide = [line for o in streams for line in o["text"].splitlines() if len(line) > 88]
    assert not wide, f"{name}: {len(wide)} printed lines wider than 88 characters: {wide[:3]}"
    assert not any("  verdict: " in o["text"] for o in streams), "verdicts printed as text"
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for c in code
                       for o in c.get("outputs", []))
    assert "* **C" in markdown and "  * cells: " in markdown, "no verdict bullet list"
    for cell in code:
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            mystnb = cell.metadata.get("mystnb", {})
            figure = mystnb.get("figure", {})
            assert figure.get("caption") and figure.get("name", "").startswith(f"fig-{name}-")
            assert mystnb.get("image", {}).get("alt")


FRAMEWORK_CHAPTERS = ["dsf", "softmax_attention", "linear_attention", "normalized_attention",
                      "lti_ssm", "s6", "ssd", "equivalences"]
READER_CHAPTERS = ["qlstm", "rglru", "retnet", "gla", "mlstm", "kernels", "build_your_own",
                   "fork_a_chapter", "reproducibility", "intro"]


@pytest.mark.parametrize("name", FRAMEWORK_CHAPTERS + READER_CHAPTERS)
def test_chapter_fits_the_column_and_captions_every_figure(name):
    """Every chapter outside the experiments (Parts I-V, "Your turn", the landing page): code lines
    and printed lines fit the page's column (88 characters; 86 in folded ``hide-input`` cells, whose
    box is narrower), no printed DataFrames or strings, every figure has a numbered caption and alt
    text named ``fig-<chapter>-``, and no page names internal notes a reader cannot open."""
    import re

    (chapter,) = [c for c in CHAPTERS if c.name == name]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        limit = 86 if "hide-input" in cell.metadata.get("tags", []) else 88
        wide = [line for line in cell.source.splitlines() if len(line) > limit]
        assert not wide, f"{name}: code lines wider than {limit} characters: {wide[:3]}"
    streams = [o for c in code for o in c.get("outputs", [])
               if o.get("output_type") == "stream" and o.get("name") == "stdout"]
    wide = [line for o in streams for line in o["text"].splitlines() if len(line) > 88]
    assert not wide, f"{name}: {len(wide)} printed lines wider than 88 characters: {wide[:3]}"
    plain = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "execute_result"
             and "text/plain" in o.get("data", {}) and "text/markdown" not in o.get("data", {})]
    assert not plain, f"{name}: a cell displays a plain-text result (a DataFrame or a string?)"
    prefix = f"fig-{name.replace('_', '-')}-"
    for cell in code:
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            mystnb = cell.metadata.get("mystnb", {})
            figure = mystnb.get("figure", {})
            assert figure.get("caption") and figure.get("name", "").startswith(prefix), cell.source[:80]
            assert mystnb.get("image", {}).get("alt"), cell.source[:80]
    text = "".join(c.source for c in nb.cells) + "".join(o.get("text", "") for o in streams)
    assert not re.search(r"\b(kernel|paper) notes\b|kernel-notes", text, flags=re.I), name


def test_kernels_chapter_states_its_floors_as_arithmetic_from_assumed_rates():
    (chapter,) = [c for c in CHAPTERS if c.name == "kernels"]
    out, _ = execute_chapter(chapter, "ci")
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    printed = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for c in code
                       for o in c.get("outputs", []))
    assert "assumed H100 rates (arithmetic, not measured)" in printed
    assert "within the bound 1e-5 of the check" in printed
    assert "HBM floors = bytes / 3.0e12 B/s (arithmetic; not measured)" in markdown
    source = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert ":pyobject: _fwd" in source and "kernels/diag_scan.py" in source
