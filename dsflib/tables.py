"""Results tables as CSV files beside the executed chapter, so that a fork can compare against them.

A chapter calls :func:`save_table` for every results table it prints. ``python -m dsflib.chapters``
tells the chapter where to write through the environment variable :data:`TABLES_ENV`
(``_build/executed/<profile>/book/<chapter>/``); the book links each file from the chapter's
"Re-run this chapter" box. Run outside the pipeline (plain papermill or Jupyter), the tables go to
``$DSF_TABLES_DIR`` when set, else to the working directory.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["seed_stats", "require_columns", "show_table", "show_controls", "TABLES_ENV", "tables_dir", "save_table", "list_tables", "markdown_table"]

TABLES_ENV = "DSF_TABLES_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def tables_dir() -> Path:
    """Where :func:`save_table` writes: ``$DSF_TABLES_DIR`` when set, else the working directory."""
    configured = os.environ.get(TABLES_ENV)
    return Path(configured) if configured else Path.cwd()


def save_table(df, name: str, *, index: bool | None = None) -> Path:
    """Write the pandas DataFrame ``df`` atomically as ``<tables_dir()>/<name>.csv``; return its path.

    ``name`` is a file stem (letters, digits, ``_ . -``; no ``.csv``). The index is written when it
    carries information (a named or multi-level index) unless ``index`` says otherwise.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".csv"):
        raise ValueError(f"name must be a file stem of letters, digits, '_', '.', '-' without '.csv', got {name!r}")
    if index is None:
        index = any(n is not None for n in df.index.names)
    folder = tables_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=index)
    os.replace(tmp, path)
    return path


def list_tables(folder: Path) -> list[Path]:
    """The CSV tables in ``folder`` (sorted by name; empty when the folder does not exist)."""
    folder = Path(folder)
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []


def markdown_table(df) -> str:
    """The pandas DataFrame ``df`` (index dropped) as a Markdown pipe table; cells are written with ``str``
    and a ``|`` inside a cell is escaped."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")

    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(df.columns), "|" + "---|" * len(df.columns)]
    lines += [row(values) for values in df.itertuples(index=False)]
    return "\n".join(lines)


def show_table(df, *, digits: int | None = None, caption: str | None = None) -> None:
    """Display ``df`` in a notebook as a Markdown table (a real table in the book, not a printed
    DataFrame); outside IPython print the Markdown. ``digits`` rounds float cells to that many
    significant digits; ``caption`` is a bold line above the table. Returns None, so a call that ends
    a cell adds no second output (:func:`markdown_table` gives the text)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if digits is not None and (isinstance(digits, bool) or not isinstance(digits, int) or digits < 1):
        raise ValueError(f"digits must be a positive int, got {digits!r}")
    shown = df
    if digits is not None:
        shown = df.copy()
        for col in shown.columns:
            if pd.api.types.is_float_dtype(shown[col]):
                shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
    text = markdown_table(shown)
    if caption:
        text = f"**{caption}**\n\n{text}"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(text))
    else:  # a plain Python session: the Markdown as text
        print(text)


def require_columns(df, columns, *, argument: str, source: str) -> None:
    """Check that the argument ``argument`` is a pandas DataFrame holding ``columns``: a TypeError
    otherwise, or a ValueError naming the missing columns; ``source`` says what to pass instead
    (e.g. ``"the output of best_over_lr"``)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{argument} must be a DataFrame ({source}), got {type(df).__name__}")
    missing = [k for k in columns if k not in df.columns]
    if missing:
        raise ValueError(f"{argument} misses the columns {missing} (pass {source})")


def seed_stats(values) -> dict:
    """``mean``, ``std`` (sample standard deviation), ``min`` and ``max`` of one cell's per-seed
    results (a sequence or pandas Series; NaN entries dropped); NaN where undefined (``std`` with one
    seed, everything with none). The one summary the experiment tables report over seeds."""
    import pandas as pd

    x = pd.to_numeric(pd.Series(list(values), dtype=float), errors="coerce").dropna()
    nan = float("nan")
    return {"mean": x.mean() if len(x) else nan, "std": x.std(ddof=1) if len(x) > 1 else nan,
            "min": x.min() if len(x) else nan, "max": x.max() if len(x) else nan}


def show_controls(table, caption: str) -> None:
    """Show a ``control_table`` (a ``passes`` column of True / False / None) with ``passes`` as yes / NO /
    n/a, and print how many controls pass; a line instead when there is none."""
    if len(table) == 0:
        print("no runs: no control can be checked")
        return
    passes = [True if p is True or p == True else False if p is False or p == False else None  # noqa: E712
              for p in table["passes"]]
    show_table(table.assign(passes=[{True: "yes", False: "NO"}.get(p, "n/a") for p in passes]), caption=caption)
    print(f"{sum(p is True for p in passes)} of {len(passes)} controls pass")
