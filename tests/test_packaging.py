"""The repository's shape: layout, one dependency source of truth, README commands, CI script."""
import re
import tomllib
from pathlib import Path

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
