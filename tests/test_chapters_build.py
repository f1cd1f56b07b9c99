"""Pieces of the book build a reader's page depends on: no progress bars in executed chapters, the
library's source staged for ``literalinclude``, partial builds for a quick look at a few pages."""
import textwrap
from pathlib import Path

import nbformat
import pytest

import dsflib.chapters
from dsflib.chapters import (_mmss, _partial_toc, _time_left, build_book, execute_chapter, execute_chapters,
                             list_chapters, stage_library)


def _book(root: Path, chapters: dict[str, str]) -> None:
    (root / "book").mkdir(parents=True, exist_ok=True)
    names = list(chapters)
    toc = [f"format: jb-book\nroot: book/{names[0]}\nparts:\n  - caption: Part\n    chapters:"]
    toc += [f"      - file: book/{n}" for n in names[1:]]
    (root / "_toc.yml").write_text("\n".join(toc) + "\n")
    for name, body in chapters.items():
        if body is None:
            (root / "book" / f"{name}.md").write_text(f"# {name}\n")
            continue
        (root / "book" / f"{name}.py").write_text(
            f'# %% [markdown]\n# # {name}\n\n# %% tags=["parameters"]\nprofile = "ci"\n\n'
            + textwrap.dedent(body))


def test_executed_chapter_shows_no_progress_bar(tmp_path):
    _book(tmp_path, {"loop": """\
        # %%
        from tqdm.std import tqdm
        total = sum(tqdm(range(50), desc="training"))
        print("total", total)
        """})
    (chapter,) = list_chapters(tmp_path)
    out, _ = execute_chapter(chapter, "ci", root=tmp_path)
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert any("total 1225" in o.get("text", "") for o in outputs)
    assert not any("training" in o.get("text", "") for o in outputs), outputs


def test_time_left_comes_from_the_last_execution_times():
    assert _time_left([0.0, 30.0, 90.0], []) == 120.0  # up to date (0 s), then the last times
    assert _time_left([None, 60.0], []) == 120.0  # a chapter never executed: the mean of the known times
    assert _time_left([None, 10.0], [(None, 40.0), (None, 20.0)]) == 40.0  # ... of those taken in this build
    assert _time_left([30.0, 0.0], [(10.0, 20.0), (20.0, 40.0)]) == 60.0  # this build runs twice as long
    assert _time_left([None, None], []) is None and _time_left([], []) == 0
    assert (_mmss(0), _mmss(754.4), _mmss(3600), _mmss(-2)) == ("00:00", "12:34", "60:00", "00:00")


def test_execute_chapters_prints_one_progress_line_per_chapter(tmp_path, monkeypatch, capsys):
    _book(tmp_path, {"one": "", "two": "", "three": ""})

    def fake_execute(chapter, profile, parameters, *, root, force):
        return chapter.executed_path(root, profile), 5.0  # executed in 5 s

    monkeypatch.setattr(dsflib.chapters, "execute_chapter", fake_execute)
    execute_chapters(root=tmp_path)
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "chapter 1 of 3: one, elapsed 00:00, time left not known yet",
        "chapter 2 of 3: two, elapsed 00:00, about 00:10 left",
        "chapter 3 of 3: three, elapsed 00:00, about 00:05 left",
    ]
    assert "chapter 1 of" not in captured.out  # the progress stays off stdout (and out of the pages)


def test_partial_toc_keeps_the_named_pages(tmp_path):
    _book(tmp_path, {"intro": "# %%\nx = 1\n", "a": "# %%\nx = 1\n", "b": "# %%\nx = 2\n", "refs": None})
    toc = _partial_toc(tmp_path, ["b", "refs"])
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert toc["root"] == "book/intro" and files == ["book/b", "book/refs"]


def test_partial_build_rejects_unknown_names(tmp_path):
    _book(tmp_path, {"intro": "# %%\nx = 1\n"})
    with pytest.raises(ValueError, match=r"only: unknown chapter\(s\) \['nope'\]"):
        build_book("ci", root=tmp_path, only=["nope"])


def test_stage_library_copies_python_sources_only(tmp_path):
    root = tmp_path / "repo"
    (root / "dsflib" / "models").mkdir(parents=True)
    (root / "dsflib" / "models" / "m.py").write_text("def to_dsf():\n    pass\n")
    (root / "dsflib" / "data.bin").write_bytes(b"\0" * 10)
    (root / "dsflib" / "__pycache__").mkdir()
    (root / "dsflib" / "__pycache__" / "m.cpython-312.pyc").write_bytes(b"\0")
    stage_library(tmp_path / "stage", root)
    staged = sorted(p.relative_to(tmp_path / "stage").as_posix() for p in (tmp_path / "stage").rglob("*")
                    if p.is_file())
    assert staged == ["dsflib/models/m.py"]


def test_library_progress_bars_honour_tqdm_disable(monkeypatch, capsys):
    from dsflib._progress import tqdm

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert sum(tqdm(range(5), desc="sweep", disable=False)) == 10
    assert "sweep" not in capsys.readouterr().err
    monkeypatch.delenv("TQDM_DISABLE")
    assert sum(tqdm(range(5), desc="sweep", disable=False)) == 10
    assert "sweep" in capsys.readouterr().err


def test_show_table_prints_markdown_rounded_and_rejects_bad_input(capsys):
    import pandas as pd

    from dsflib.tables import show_table

    df = pd.DataFrame({"model": ["s6", "ssd"], "acc": [0.123456, float("nan")], "runs": [3, 2]})
    assert show_table(df, digits=3, caption="Accuracy") is None
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "**Accuracy**" and out[2] == "| model | acc | runs |"
    assert out[4] == "| s6 | 0.123 | 3 |" and out[5] == "| ssd |  | 2 |"
    with pytest.raises(TypeError, match="df must be a pandas DataFrame, got list"):
        show_table([1, 2])
    with pytest.raises(ValueError, match="digits must be a positive int, got 0"):
        show_table(df, digits=0)


def test_seed_stats_is_the_spread_over_seeds():
    import math

    from dsflib.tables import seed_stats

    assert seed_stats([0.5, 0.7, float("nan")]) == pytest.approx(
        {"mean": 0.6, "std": math.sqrt(0.02), "min": 0.5, "max": 0.7})
    one = seed_stats([0.25])
    assert one["mean"] == one["min"] == one["max"] == 0.25 and math.isnan(one["std"])
    assert all(math.isnan(v) for v in seed_stats([]).values())


@pytest.mark.parametrize("summary", ["mqar", "lra", "wikitext"])
def test_seed_summaries_name_what_their_input_lacks(summary):
    import importlib

    import pandas as pd

    module = importlib.import_module(f"dsflib.experiments.{summary}")
    argument = "best" if summary == "wikitext" else "table"
    with pytest.raises(TypeError, match=f"{argument} must be a DataFrame \\(the output of best_"):
        module.seed_summary([{"model": "softmax"}])
    with pytest.raises(ValueError, match=f"{argument} misses the columns \\[.*'seed'.*\\] \\(pass the output"):
        module.seed_summary(pd.DataFrame({"model": ["softmax"]}))
