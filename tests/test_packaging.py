"""The repository's shape: layout, one dependency source of truth, README commands, CI script."""
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_top_level_layout():
    for name in ["book", "dsflib", "kernels", "tests"]:
        assert (ROOT / name).is_dir(), name
    for name in ["_config.yml", "_toc.yml", "environment.yml", "README.md", "pyproject.toml", "Makefile", ".ci/run"]:
        assert (ROOT / name).is_file(), name


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    expected = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        expected += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert "-e ." in pip
    assert sorted(p for p in pip if p != "-e .") == sorted(expected)
    assert "pip" in env["dependencies"]


def test_kernels_install_as_dsflib_kernels():
    import dsflib.kernels

    assert Path(dsflib.kernels.__file__).resolve().parent == ROOT / "kernels"
    assert _pyproject()["tool"]["setuptools"]["package-dir"]["dsflib.kernels"] == "kernels"


def test_readme_has_two_setup_commands_and_ci_runs_them():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("make ")]
    assert commands[:2] == ["make book", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    assert re.search(r"^make test$", ci, flags=re.M) and re.search(r"^make book$", ci, flags=re.M)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_ci_reruns_the_numerics_on_two_other_mkl_paths_and_thread_counts():
    from dsflib.models import MIXERS

    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci.index("make test") < ci.index("make test-numerics") < ci.index("make book")
    dry = subprocess.run(["make", "-n", "--no-print-directory", "test-numerics"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    passes = [line.split() for line in dry.splitlines() if " -m pytest " in line]
    envs = [dict(w.split("=", 1) for w in p[: p.index("-m") - 1] if "=" in w) for p in passes]
    assert sorted((e["MKL_CBWR"], e["OMP_NUM_THREADS"], e["TRITON_INTERPRET"]) for e in envs) == [
        ("AVX2", "2", "1"), ("COMPATIBLE", "1", "1")]
    files = [[w for w in p if w.endswith(".py")] for p in passes]
    assert files[0] == files[1] and all((ROOT / f).is_file() for f in files[0])
    expected = {"test_dsf", "test_scan", "test_equivalences", "test_properties", *(f"test_{m}" for m in MIXERS)}
    assert expected <= {Path(f).stem for f in files[0]}
    # explicit files and no -k/-m: every pass collects tests (pytest's exit status 5 cannot happen)
    assert not {"-k", "-m"} & set(passes[0][passes[0].index("pytest") + 1:])
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *files[0]], cwd=ROOT,
                               capture_output=True, text=True)
    assert collected.returncode == 0 and re.search(r"^[1-9]\d* tests collected", collected.stdout, flags=re.M), \
        collected.stdout[-2000:]


def test_config_turns_execution_off():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book" and toc["root"] == "book/intro"


def test_readme_python_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README must show the library in a python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_every_subpackage_is_installed():
    packages = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "dsflib").rglob("__init__.py")}
    on_disk |= {"dsflib.kernels"} if (ROOT / "kernels" / "__init__.py").exists() else set()
    assert on_disk == packages, f"pyproject packages {sorted(packages)} vs on disk {sorted(on_disk)}"
