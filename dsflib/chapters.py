"""Execute the book's chapters and build the book from the executed notebooks.

Chapters are jupytext percent-format ``book/<name>.py`` files listed in ``_toc.yml``. Each run
converts a chapter to a notebook, executes it with papermill (the cell tagged ``parameters``
selects the profile, ``ci`` by default) and writes ``_build/executed/<profile>/book/<name>.ipynb``
atomically. ``build`` stages the executed notebooks with the book's static pages and runs
Jupyter Book 1.x with execution off, so every figure and table is freshly computed.

An executed notebook is reused only while its fingerprint matches: the chapter's source, its
parameters, every ``.py`` file of ``dsflib/`` and ``kernels/``, and the torch version. A chapter that
raises fails the run with the chapter's name, the failing cell and the error.

Each run records the device, commit and date in the notebook's metadata (``dsf_book``), and the
CSV tables the chapter writes with :func:`dsflib.tables.save_table` land beside the notebook in
``_build/executed/<profile>/book/<name>/``. At build time every chapter page gets a "Re-run this
chapter" box right under its title, folded to one summary line (profile, device, commit, date) so the
page opens with its question (:func:`rerun_box`: the commands for both profiles, a download link to
the chapter as an executed ``.ipynb`` and links to its tables), and the locally installed MathJax
(``npm ci``, ``node_modules/mathjax``) is copied into the HTML so the book works offline.

The header's repository and launch (Binder, optionally Colab) buttons are switched on in the staged
``_config.yml`` only when the repository's URL is known (:func:`repository_url`: ``$DSF_REPO_URL``,
else ``git remote get-url origin``); otherwise the book has none, and no URL is made up.

Command line::

    python -m dsflib.chapters list
    python -m dsflib.chapters execute [NAME ...] [--profile ci|paper] [-p KEY VALUE ...] [--force]
    python -m dsflib.chapters build [--profile ci|paper] [--force]
"""
from __future__ import annotations

import argparse
import ast
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .env import PROFILES, REPO_ROOT, device_name, git_commit
from .tables import TABLES_ENV, list_tables

__all__ = ["Chapter", "ChapterError", "list_chapters", "execute_chapter", "execute_chapters", "build_book",
           "rerun_box", "stage_notebook", "MATHJAX_DIR", "repository_url", "book_config", "REPO_URL_ENV",
           "REPO_BRANCH_ENV", "COLAB_ENV"]

PARAMETERS_TAG = "parameters"
STATIC_SUFFIXES = (".md",)
RERUN_TAG = "rerun-box"
MATHJAX_DIR = Path("node_modules") / "mathjax" / "es5"
# MathJax files the book needs offline: the combined component _config.yml points at, its fonts and
# the components it may load lazily (TeX extensions, menu, accessibility, speech).
MATHJAX_FILES = ("tex-mml-chtml.js", "input", "output", "ui", "a11y", "sre", "adaptors")
# The repository the book's header links to (and Binder/Colab launch from), read at build time.
REPO_URL_ENV = "DSF_REPO_URL"  # e.g. https://github.com/<owner>/<repo>; "off" disables the buttons
REPO_BRANCH_ENV = "DSF_REPO_BRANCH"  # default: the checked-out branch, else "main"
# Colab opens book/<name>.ipynb from GitHub, which exists only where paired notebooks are committed
# (the repository tracks the jupytext .py files): its button is opt-in, DSF_COLAB=1.
COLAB_ENV = "DSF_COLAB"


class ChapterError(RuntimeError):
    """A chapter failed to execute; the message names the chapter, the cell and the error."""


@dataclass(frozen=True)
class Chapter:
    name: str  # file stem, e.g. "dsf"
    toc_path: str  # path as written in _toc.yml, e.g. "book/dsf"
    source: Path  # the jupytext .py file

    def executed_path(self, root: Path, profile: str) -> Path:
        return root / "_build" / "executed" / profile / f"{self.toc_path}.ipynb"

    def tables_path(self, root: Path, profile: str) -> Path:
        """Folder of the CSV tables the chapter wrote (:func:`dsflib.tables.save_table`)."""
        return root / "_build" / "executed" / profile / self.toc_path


def toc_files(root: Path) -> list[str]:
    """Every ``root``/``file`` entry of ``root/_toc.yml`` in order, the root page first."""
    import yaml

    toc_file = root / "_toc.yml"
    if not toc_file.exists():
        raise FileNotFoundError(f"no _toc.yml in {root}")
    toc = yaml.safe_load(toc_file.read_text())
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    found.append(str(node[key]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return list(dict.fromkeys(found))


def _toc_root(root: Path) -> str:
    import yaml

    return str(yaml.safe_load((root / "_toc.yml").read_text()).get("root", ""))


def list_chapters(root: Path = REPO_ROOT) -> list[Chapter]:
    """The executable chapters (``.py`` files) named in ``_toc.yml``, in book order."""
    chapters = []
    for entry in toc_files(root):
        stem = entry[:-3] if entry.endswith(".py") else entry
        py = root / f"{stem}.py"
        if py.exists():
            chapters.append(Chapter(Path(stem).name, stem, py))
        elif not any((root / f"{stem}{suffix}").exists() for suffix in STATIC_SUFFIXES):
            raise FileNotFoundError(f"_toc.yml names {entry!r}, but neither {stem}.py nor {stem}.md exists")
    return chapters


def _read_chapter(source: Path):
    import jupytext

    nb = jupytext.read(source)
    tagged = [i for i, cell in enumerate(nb.cells) if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ChapterError(
            f"chapter {source.stem!r} ({source}) must have exactly one cell tagged {PARAMETERS_TAG!r} "
            f"(`# %% tags=[\"parameters\"]`), found {len(tagged)}"
        )
    defaults = _literal_assignments(nb.cells[tagged[0]].source)
    if defaults.get("profile") != "ci":
        raise ChapterError(f"chapter {source.stem!r}: its parameters cell must set profile = \"ci\" by default")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _literal_assignments(code: str) -> dict[str, Any]:
    out = {}
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def fingerprint(chapter: Chapter, parameters: Mapping[str, Any], root: Path = REPO_ROOT) -> str:
    """Hash of what an executed chapter depends on (see the module docstring)."""
    import torch

    h = hashlib.sha256()
    h.update(chapter.source.read_bytes())
    h.update(json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    h.update(torch.__version__.encode())
    for folder in ("dsflib", "kernels"):
        for path in sorted((root / folder).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _book_meta(out: Path) -> dict:
    """The ``dsf_book`` metadata of an executed notebook (empty when there is none to read)."""
    try:
        return json.loads(out.read_text())["metadata"].get("dsf_book", {})
    except (OSError, json.JSONDecodeError, KeyError, AttributeError):
        return {}


def _cached(out: Path, fp: str) -> bool:
    return _book_meta(out).get("fingerprint") == fp


def _run_parameters(profile: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The papermill parameters of a chapter run (what its fingerprint hashes)."""
    return {"profile": profile, **dict(parameters or {})}


def _expected_seconds(chapter: Chapter, profile: str, parameters: Mapping[str, Any] | None,
                      root: Path, force: bool = False) -> float | None:
    """What executing ``chapter`` should take: 0 when its executed notebook is up to date (and not
    ``force``), else the seconds its last execution took (recorded in the notebook), None when it
    never executed."""
    meta = _book_meta(chapter.executed_path(root, profile))
    if not force and meta.get("fingerprint") == fingerprint(chapter, _run_parameters(profile, parameters), root):
        return 0.0
    seconds = meta.get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _time_left(expected: Sequence[float | None], done: Sequence[tuple[float | None, float]]) -> float | None:
    """Seconds the chapters still to run should take, from their ``expected`` seconds scaled by how the
    chapters ``done`` in this build ((expected, taken) pairs) compared with theirs (a busier or faster
    machine); a chapter never executed counts as the mean taken (else the mean expected). None while
    nothing is known to estimate it from."""
    timed = [(e, t) for e, t in done if e]
    scale = sum(t for _, t in timed) / sum(e for e, _ in timed) if timed else 1.0
    pool = [t for _, t in done] or [s for s in expected if s]
    guess = sum(pool) / len(pool) if pool else None
    if guess is None and None in expected:
        return None
    return sum(guess if s is None else s * scale for s in expected)


def _mmss(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def execute_chapter(
    chapter: Chapter,
    profile: str = "ci",
    parameters: Mapping[str, Any] | None = None,
    *,
    root: Path = REPO_ROOT,
    force: bool = False,
    output: Path | None = None,
) -> tuple[Path, float | None]:
    """Execute one chapter with papermill; return ``(executed notebook, seconds)``.

    ``seconds`` is ``None`` when an up-to-date executed notebook was reused. Raises
    :class:`ChapterError` naming the chapter and the failing cell.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    params = _run_parameters(profile, parameters)
    out = output or chapter.executed_path(root, profile)
    fp = fingerprint(chapter, params, root)
    if not force and _cached(out, fp):
        return out, None
    nb = _read_chapter(chapter.source)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"dsf-{chapter.name}-") as tmp:
        src, dst = Path(tmp) / "input.ipynb", Path(tmp) / "output.ipynb"
        tables = Path(tmp) / "tables"
        nbformat.write(nb, src)
        previous = {key: os.environ.get(key) for key in (TABLES_ENV, "TQDM_DISABLE")}
        os.environ[TABLES_ENV] = str(tables)  # the kernel inherits it: save_table writes there
        os.environ["TQDM_DISABLE"] = "1"  # progress bars stay on the command line, out of the pages
        try:
            papermill.execute_notebook(
                str(src), str(dst), parameters=params, kernel_name="python3",
                cwd=str(chapter.source.parent), progress_bar=False,
            )
        except PapermillExecutionError as err:
            failed = out.with_suffix(".failed.ipynb")
            if dst.exists():
                shutil.copyfile(dst, failed)
            cell = err.source.strip()
            raise ChapterError(
                f"chapter {chapter.name!r} ({chapter.source.relative_to(root) if chapter.source.is_relative_to(root) else chapter.source}) "
                f"failed in cell {err.cell_index} (execution count {err.exec_count}) with profile {profile!r}:\n"
                f"--- cell source ---\n{cell}\n--- error ---\n{err.ename}: {err.evalue}\n"
                f"(the partially executed notebook is at {failed})"
            ) from None
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        seconds = time.perf_counter() - start
        executed = nbformat.read(dst, as_version=4)
        _mark_parameters(executed)
        executed.metadata["dsf_book"] = {
            "fingerprint": fp, "profile": profile, "parameters": params, "seconds": round(seconds, 2),
            "device": device_name(), "commit": git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "tables": [p.name for p in list_tables(tables)],
        }
        nbformat.write(executed, dst)
        _replace_tables(tables, chapter.tables_path(root, profile))
        _copy_atomic(dst, out)
    return out, seconds


def _replace_tables(src: Path, dst: Path) -> None:
    """Make ``dst`` hold exactly the CSV tables of this run (stale tables of earlier runs go)."""
    if dst.exists():
        shutil.rmtree(dst)
    found = list_tables(src)
    if found:
        dst.mkdir(parents=True)
        for path in found:
            _copy_atomic(path, dst / path.name)


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy next to ``dst`` then rename, so a killed run never leaves a half-written notebook."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _mark_parameters(nb) -> None:
    """Hide the default parameters cell in the book; papermill's injected cell shows what ran."""
    cells = nb.cells
    for i, cell in enumerate(cells[:-1]):
        tags = cell.get("metadata", {}).get("tags", [])
        if PARAMETERS_TAG in tags and "injected-parameters" in cells[i + 1].get("metadata", {}).get("tags", []):
            cell.metadata["tags"] = [*tags, "remove-cell"]


def execute_chapters(
    names: Sequence[str] = (),
    profile: str = "ci",
    parameters: Mapping[str, Any] | None = None,
    *,
    root: Path = REPO_ROOT,
    force: bool = False,
) -> list[Path]:
    """Execute the named chapters (all when ``names`` is empty) in book order, printing timings, and
    before each chapter one progress line on stderr: "chapter k of N: <name>, elapsed mm:ss, about mm:ss
    left" (estimated from the chapters' last execution times, see :func:`_time_left`)."""
    chapters = list_chapters(root)
    known = {c.name: c for c in chapters}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters in _toc.yml: {sorted(known)}")
    selected = [known[n] for n in names] if names else chapters
    outputs, done = [], []
    start = time.perf_counter()
    expected = [_expected_seconds(c, profile, parameters, root, force) for c in selected]
    for k, chapter in enumerate(selected):
        left = _time_left(expected[k:], done)
        print(f"chapter {k + 1} of {len(selected)}: {chapter.name}, "
              f"elapsed {_mmss(time.perf_counter() - start)}, "
              + ("time left not known yet" if left is None else f"about {_mmss(left)} left"),
              file=sys.stderr, flush=True)
        out, seconds = execute_chapter(chapter, profile, parameters, root=root, force=force)
        if seconds is not None:
            done.append((expected[k], seconds))
        state = "up to date (reused)" if seconds is None else f"executed in {seconds:.1f} s"
        print(f"[chapters] {chapter.name} ({profile}): {state} -> {out.relative_to(root)}", flush=True)
        outputs.append(out)
    return outputs


def _papermill_lines(chapter: Chapter, profile: str, parameters: Mapping[str, Any]) -> list[str]:
    params = {**dict(parameters), "profile": profile}
    flags = " ".join(f"-p {key} {_shell_value(value)}" for key, value in params.items())
    nb = f"_build/papermill/{chapter.name}.ipynb"
    out = f"_build/papermill/{profile}/{chapter.name}.ipynb"
    extra = " ".join(f"-p {key} {_shell_value(value)}" for key, value in parameters.items() if key != "profile")
    pipeline = (f"make chapter NAME={chapter.name} PROFILE={profile}" if not extra else
                f".venv/bin/python -m dsflib.chapters execute {chapter.name} --profile {profile} {extra} --force")
    return [
        pipeline,
        f"mkdir -p _build/papermill/{profile}",
        f".venv/bin/jupytext --to ipynb --set-kernel python3 \\\n  --output {nb} \\\n  {chapter.toc_path}.py",
        f"{TABLES_ENV}=\"$PWD/_build/papermill/{profile}/{chapter.name}\" \\\n"
        f"  .venv/bin/papermill {nb} \\\n"
        f"  {out} --cwd {Path(chapter.toc_path).parent} {flags}",
    ]


def _shell_value(value: Any) -> str:
    import shlex

    return shlex.quote(value if isinstance(value, str) else repr(value))


def rerun_box(chapter: Chapter, meta: Mapping[str, Any]) -> str:
    """The MyST "Re-run this chapter" admonition of an executed chapter, from its ``dsf_book`` metadata."""
    missing = [k for k in ("profile", "parameters") if k not in meta]
    if missing:
        raise ValueError(f"meta must be an executed notebook's dsf_book metadata; missing {missing}")
    extra = {k: v for k, v in meta["parameters"].items() if k != "profile"}
    built = ", ".join(f"`{k}={v!r}`" for k, v in meta["parameters"].items())
    # Folded (sphinx-togglebutton's "dropdown" admonition): the title is the one line a reader sees. No
    # backticks in it: a backtick fence's info string cannot hold any.
    summary = " · ".join([f"profile {meta['profile']}", str(meta.get("device", "unknown device")).split(" (")[0],
                          f"commit {meta.get('commit', 'unknown')}", str(meta.get("date", "date unknown"))])
    summary = summary.replace("`", "'")
    lines = [
        f"````{{admonition}} Re-run this chapter — {summary}",
        ":class: tip dropdown rerun-box",
        "",
        f"**Fork it:** download this chapter as a notebook, {{download}}`{chapter.name}.ipynb "
        f"<{chapter.name}/{chapter.name}.ipynb>` (as executed for this page), or open its source "
        f"`{chapter.toc_path}.py` in a clone; `make notebook NAME={chapter.name}` writes a `{chapter.toc_path}.ipynb` "
        "paired with it (jupytext).",
        "",
        f"**This page** was built with profile `{meta['profile']}` (parameters {built}) on "
        f"`{meta.get('device', 'unknown device')}`, commit `{meta.get('commit', 'unknown')}`, "
        f"{meta.get('date', 'date unknown')}"
        + (f"; this execution took {meta['seconds']:.0f} s." if meta.get("seconds") is not None else "."),
        "",
        "**Re-run it** from the repository root (`make env` creates `.venv`). The first line of each "
        "profile runs the book's pipeline; the three commands after it are the same run with jupytext "
        "and papermill directly. Profile `ci` runs on a CPU in minutes, `paper` uses the paper's sizes (GPU).",
        "",
        "```bash",
    ]
    for profile in PROFILES:
        lines += [f"# profile {profile}", *_papermill_lines(chapter, profile, extra)]
    lines.append("```")
    tables = meta.get("tables") or []
    if tables:
        links = " · ".join(f"{{download}}`{t} <{chapter.name}/{t}>`" for t in tables)
        lines += ["", f"**Result tables** of this run (CSV, to compare a fork against): {links}"]
    lines.append("````")
    return "\n".join(lines)


def stage_notebook(chapter: Chapter, profile: str, stage: Path, *, root: Path = REPO_ROOT,
                   landing: bool = False) -> Path:
    """Copy the executed chapter into ``stage`` with its re-run box under the title, and its tables beside it.

    The ``landing`` page (the root of ``_toc.yml``) gets no box and shows its code cells' outputs only.
    """
    import nbformat

    executed = chapter.executed_path(root, profile)
    if not executed.exists():
        raise ChapterError(f"chapter {chapter.name!r} has not been executed with profile {profile!r} ({executed})")
    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("dsf_book", {})
    if landing:
        for cell in nb.cells:
            if cell.cell_type == "code":
                tags = cell.metadata.setdefault("tags", [])
                tags.append("remove-cell" if "injected-parameters" in tags else "remove-input")
    else:
        cells = [c for c in nb.cells if RERUN_TAG not in c.get("metadata", {}).get("tags", [])]
        box_cell = nbformat.v4.new_markdown_cell(rerun_box(chapter, meta), metadata={"tags": [RERUN_TAG]})
        first = cells[0] if cells else None
        if first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# "):
            title, _, rest = first.source.lstrip().partition("\n")
            head = [nbformat.v4.new_markdown_cell(title)]
            tail = [nbformat.v4.new_markdown_cell(rest.strip("\n"))] if rest.strip() else []
            cells = [*head, box_cell, *tail, *cells[1:]]
        else:
            cells = [box_cell, *cells]
        nb.cells = cells
    target = stage / f"{chapter.toc_path}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    folder = stage / chapter.toc_path
    tables = list_tables(chapter.tables_path(root, profile))
    if tables:
        folder.mkdir(parents=True, exist_ok=True)
        for path in tables:
            shutil.copyfile(path, folder / path.name)
    if not landing:
        # the re-run box's download: the executed notebook, without the box (Sphinx does not read it as
        # a page: only the files of _toc.yml are built, only_build_toc_files in _config.yml)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, folder / f"{chapter.name}.ipynb")
    return target


def stage_mathjax(stage: Path, root: Path = REPO_ROOT) -> Path:
    """Copy the npm-installed MathJax into ``stage/_assets/mathjax``; Sphinx copies it into the HTML's
    ``_static/mathjax`` (``html_static_path`` and ``mathjax_path`` in _config.yml)."""
    source = root / MATHJAX_DIR
    if not (source / MATHJAX_FILES[0]).exists():
        raise ChapterError(f"MathJax is not installed ({source / MATHJAX_FILES[0]} is missing): run `npm ci` "
                           "in the repository root (`make book` does it), so the book renders math offline")
    target = stage / "_assets" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    for name in MATHJAX_FILES:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, target / name)
        else:
            shutil.copyfile(item, target / name)
    return target


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _normalize_repo_url(raw: str) -> str | None:
    """An ``https://host/owner/repo`` URL from a git remote (https or ssh form), or None if it is not one.
    Credentials, a trailing ``.git`` and query strings are dropped."""
    raw = raw.strip()
    ssh = re.match(r"^(?:ssh://)?git@([^:/]+)(?::\d+)?[:/](.+)$", raw)
    if ssh:
        raw = f"https://{ssh[1]}/{ssh[2]}"
    parts = urllib.parse.urlsplit(raw)
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.hostname or path.count("/") < 2:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}{path}"


def repository_url(root: Path = REPO_ROOT, env: Mapping[str, str] | None = None) -> str | None:
    """The repository's web URL: ``$DSF_REPO_URL``, else ``git remote get-url origin``; None when neither
    gives an http(s) URL of a repository, or when ``$DSF_REPO_URL`` is ``off``."""
    env = os.environ if env is None else env
    raw = env.get(REPO_URL_ENV, "").strip()
    if raw.lower() in ("off", "none", "0", "false"):
        return None
    return _normalize_repo_url(raw or _git(root, "remote", "get-url", "origin"))


def book_config(root: Path = REPO_ROOT, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``_config.yml`` as the build uses it: repository and launch buttons on only with a known URL.

    With a URL (:func:`repository_url`): ``repository.url``/``branch`` set, the repository button and the
    launch buttons of ``_config.yml`` on (Binder; Colab only for a GitHub URL and ``DSF_COLAB=1``).
    Without one: no repository URL (not even Jupyter Book's default), no repository or launch button.
    """
    import yaml

    env = os.environ if env is None else env
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    url = repository_url(root, env)
    html = config.setdefault("html", {})
    repository = config.setdefault("repository", {})
    launch = dict(config.get("launch_buttons") or {})
    services = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "jupyterlite_url")
    if url is None:
        repository["url"] = ""
        html["use_repository_button"] = False
        html["use_issues_button"] = False
        html["use_edit_page_button"] = False
        launch.update({key: "" for key in services if key in launch})
        launch["thebe"] = False
    else:
        branch = env.get(REPO_BRANCH_ENV, "").strip() or _git(root, "symbolic-ref", "--short", "HEAD") or "main"
        repository.update({"url": url, "branch": branch})
        repository.setdefault("path_to_book", "")
        html["use_repository_button"] = True
        github = urllib.parse.urlsplit(url).hostname == "github.com"
        if not (github and env.get(COLAB_ENV, "").strip().lower() in ("1", "true", "yes")):
            launch.pop("colab_url", None)
    if launch:
        config["launch_buttons"] = launch
    return config


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    import yaml

    path.write_text("# generated by python -m dsflib.chapters build from the repository's _config.yml\n"
                    + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))


# Library sources copied into the stage, so a chapter can show the code that ran beside its equation
# (``{literalinclude} ../dsflib/models/s6.py`` with ``:pyobject: S6.to_dsf``).
LIBRARY_DIRS = ("dsflib", "kernels")
STYLE_SHEET = "book.css"  # book/book.css: the house style (code font size, wrapping table cells)


def stage_library(stage: Path, root: Path = REPO_ROOT) -> None:
    """Copy the ``.py`` files of :data:`LIBRARY_DIRS` into ``stage`` for ``literalinclude``."""
    for name in LIBRARY_DIRS:
        if (root / name).is_dir():
            shutil.copytree(root / name, stage / name, ignore=lambda d, files: [
                f for f in files if not f.endswith(".py") and not (Path(d) / f).is_dir() or f == "__pycache__"])


def _partial_toc(root: Path, only: Sequence[str]) -> dict[str, Any]:
    """``_toc.yml`` reduced to the landing page and the named chapters (``build --only``)."""
    import yaml

    keep = {f for f in toc_files(root) if Path(f).name in only}
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    for part in toc.get("parts", []):
        part["chapters"] = [c for c in part.get("chapters", []) if c.get("file") in keep]
    toc["parts"] = [p for p in toc.get("parts", []) if p["chapters"]]
    return toc


def build_book(profile: str = "ci", *, root: Path = REPO_ROOT, force: bool = False, strict: bool = True,
               only: Sequence[str] = (), out: Path | None = None) -> Path:
    """Execute every chapter, stage them with the static pages, and build HTML into ``_build/html``.

    ``only`` (chapter names) builds the landing page and those chapters alone, into ``out``
    (default ``_build/partial``; the HTML lands in ``<out>/_build/html``): a quick look at a few pages while writing them. Static pages are
    kept only when named too; Sphinx warnings are not errors there (links to pages left out).
    """
    toc = (root / "_toc.yml").read_text()
    landing = _toc_root(root)
    chapters = list_chapters(root)
    if only:
        known = {c.name for c in chapters} | {Path(f).name for f in toc_files(root)}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ValueError(f"only: unknown chapter(s) {unknown}; chapters in _toc.yml: {sorted(known)}")
        chapters = [c for c in chapters if c.name in only or c.toc_path == landing]
    execute_chapters([c.name for c in chapters] if only else (), profile, root=root, force=force)
    if (root / "_toc.yml").read_text() != toc:
        raise ChapterError("_toc.yml changed while the chapters executed; run the build again")
    # jupyter-book writes <path-output>/_build/html: the repository's _build/html for the book
    output = (out if out is not None else root / "_build" / "partial") if only else root
    stage = output / "_build" / "stage"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    if only:
        _write_yaml(stage / "_toc.yml", _partial_toc(root, only))
    else:
        shutil.copyfile(root / "_toc.yml", stage / "_toc.yml")
    _write_yaml(stage / "_config.yml", book_config(root))
    shutil.copytree(root / "book", stage / "book",
                    ignore=shutil.ignore_patterns("*.py", "*.ipynb", "__pycache__", ".ipynb_checkpoints"))
    stage_library(stage, root)
    stage_mathjax(stage, root)
    if (root / "book" / STYLE_SHEET).exists():  # served as _static/book.css (html_css_files)
        shutil.copyfile(root / "book" / STYLE_SHEET, stage / "_assets" / STYLE_SHEET)
    for chapter in chapters:
        stage_notebook(chapter, profile, stage, root=root, landing=chapter.toc_path == landing)
    shutil.rmtree(output / "_build" / "html", ignore_errors=True)  # no stale page of an earlier build
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(stage), "--path-output", str(output), "--all"]
    if strict and not only:  # a partial book has links to pages it lacks: warnings, not errors
        cmd += ["-W", "--keep-going"]
    print("[chapters] jupyter-book " + " ".join(cmd[3:]), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise ChapterError("jupyter-book build failed (see its output above); Sphinx warnings count as errors")
    index = output / "_build" / "html" / "index.html"
    if not index.exists():
        raise ChapterError(f"jupyter-book finished but {index} does not exist")
    return index


def _parse_params(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    params = {}
    for key, raw in pairs:
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key] = raw
    return params


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsflib.chapters", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the executable chapters in book order")
    ex = sub.add_parser("execute", help="execute chapters with papermill")
    ex.add_argument("names", nargs="*", help="chapter names (default: all)")
    ex.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                    help="extra papermill parameter (VALUE parsed as a Python literal when possible)")
    bd = sub.add_parser("build", help="execute every chapter and build the HTML book into _build/html")
    bd.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    bd.add_argument("--only", nargs="+", default=(), metavar="NAME",
                    help="build the landing page and these chapters only, into _build/partial (a quick look)")
    bd.add_argument("--out", type=Path, default=None, help="build folder of --only (default: _build/partial)")
    for p in (ex, bd):
        p.add_argument("--profile", default="ci", choices=PROFILES)
        p.add_argument("--force", action="store_true", help="re-execute even if an up-to-date result exists")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for chapter in list_chapters():
                print(f"{chapter.name}\t{chapter.source.relative_to(REPO_ROOT)}")
        elif args.command == "execute":
            execute_chapters(args.names, args.profile, _parse_params(args.parameter), force=args.force)
        else:
            index = build_book(args.profile, force=args.force, strict=not args.no_strict, only=args.only,
                               out=args.out)
            print(f"[chapters] book built: {index}")
    except ValueError as err:  # a bad argument (an unknown chapter): one line and status 2, like argparse
        parser.error(str(err))
    except ChapterError as err:
        print(f"[chapters] ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
