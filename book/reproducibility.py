# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Reproducibility
#
# Every number in this book is computed by code in the repository when the book is built, and
# every figure and printout names the profile, seed, device, commit and date it came from
# (`dsflib.env.run_info`, `dsflib.env.run_label`). This page says what the book was built with —
# the versions below are read from the running environment, not typed in — and how to reproduce,
# resume and extend its results.

# %% tags=["parameters"]
# this page does the same in every profile: it reports the environment it runs in
profile = "ci"
seed = 0

# %%
import importlib.metadata as metadata
import json
import os
import platform
import tempfile
import textwrap
from pathlib import Path

import pandas as pd
import torch
from dsflib.env import (REPO_ROOT, device_name, run_info, run_label, seed_everything,
                        select_profile)
from dsflib.sweep import META, read_results, run_sweep
from dsflib.tables import save_table, show_table

settings = select_profile(profile, {"ci": dict(demo_runs=3),
                                    "paper": dict(demo_runs=3)})
info = run_info(profile, seed)
print(run_label(info))

# %% [markdown]
# ## Environment
#
# The Python packages the book depends on (`pyproject.toml` is the single source of the
# dependency list; `environment.yml` mirrors it for conda), the browser-side MathJax the HTML
# ships (installed with `npm ci` from `package-lock.json`, served from the book itself so it works
# offline), and the machine this page was executed on:

# %%
def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


mathjax_package = REPO_ROOT / "node_modules" / "mathjax" / "package.json"
mathjax = "not installed"
if mathjax_package.exists():
    mathjax = json.loads(mathjax_package.read_text())["version"]
packages = ["torch", "triton", "numpy", "pandas", "matplotlib", "seaborn", "papermill",
            "jupytext", "jupyter-book", "sphinx", "myst-nb"]
cpu = (f"{cpu_model()} ({os.cpu_count()} logical cores, "
       f"torch uses {torch.get_num_threads()} threads)")
gpu = (torch.cuda.get_device_name(0) + f", CUDA {torch.version.cuda}"
       if torch.cuda.is_available() else "none (CPU only)")
environment = pd.DataFrame(
    [{"component": "python", "version": platform.python_version()}]
    + [{"component": p, "version": version(p)} for p in packages]
    + [{"component": "MathJax (npm)", "version": mathjax},
       {"component": "operating system", "version": platform.platform()},
       {"component": "CPU", "version": cpu},
       {"component": "GPU", "version": gpu},
       {"component": "device of the results", "version": device_name()}])
save_table(environment, "environment")
_ = show_table(environment)  # `_ =`: the Markdown it returns is not printed again

# %% [markdown]
# ## Seeds
#
# Every chapter has a `seed` parameter (0 by default) next to `profile`. Chapters draw their random
# inputs from their own seeded generators (`dsflib.random_input(..., seed=seed)`) and seed Python,
# NumPy and torch together with `dsflib.env.seed_everything(seed)` before initialising models, so
# a chapter re-run with the same profile, seed and versions on the same device prints the same
# numbers. Different devices (CPU vs GPU) or library versions can change the last digits of floating
# point results and, through them, training curves; that is why every result carries its device and
# versions. The check below draws twice after seeding the same way:

# %%
def draw(s: int) -> torch.Tensor:
    seed_everything(s)
    return torch.randn(4)


first, again, other = draw(seed), draw(seed), draw(seed + 1)
show_table(pd.DataFrame({f"seed {seed}": first.tolist(),
                         f"seed {seed} again": again.tolist(),
                         f"seed {seed + 1}": other.tolist()}))
same = {True: "identical", False: "different"}
print(f"seed {seed} twice: {same[torch.equal(first, again)]}; "
      f"seed {seed + 1}: {same[torch.equal(first, other)]}")
assert torch.equal(first, again) and not torch.equal(first, other)

# %% [markdown]
# ## Where results are stored
#
# - **Executed chapters**: `python -m dsflib.chapters` (what `make book`, `make test` and
#   `make chapter` call) executes a chapter with papermill and writes
#   `_build/executed/<profile>/book/<name>.ipynb` atomically, with the profile, parameters, device,
#   commit, date and a fingerprint in its metadata. The notebook is reused only while the fingerprint
#   (the chapter, its parameters, every `.py` file of `dsflib/` and `kernels/`, and the torch version)
#   matches.
# - **Results tables**: every results table a chapter prints is also written as CSV with
#   `dsflib.tables.save_table` to `_build/executed/<profile>/book/<name>/<table>.csv`, and linked
#   from the chapter's "Re-run this chapter" box, so a fork can diff its numbers against the book's.
# - **Sweeps** (training runs): `dsflib.sweep.run_sweep` appends one row per finished run to
#   `_build/results/<experiment>-<profile>.csv`: the run id (a hash of the run's config), the config,
#   the metrics and the columns below. Each append writes a temporary file and renames it over the
#   table, so a killed sweep loses at most the runs in progress.

# %%
print(textwrap.fill("bookkeeping columns of every sweep row: " + ", ".join(META),
                    width=88))
stored = sorted((REPO_ROOT / "_build" / "results").glob("*.csv"))
if stored:
    summary = pd.DataFrame([
        {"file": p.name, "runs": len(read_results(p)),
         "devices": ", ".join(sorted({r.get("device", "") for r in read_results(p)}))}
        for p in stored])
    show_table(summary)
else:
    print("no sweep results in _build/results/ yet on this machine")
    print("(the MQAR chapter writes them)")

# %% [markdown]
# ## Resuming a sweep
#
# To resume a sweep that was interrupted, run the same command again (`make chapter NAME=mqar` or
# `make book`): runs whose id is already in the table are skipped, the others run. The demonstration
# below runs a three-config toy sweep, "loses" its last row, and runs it again: only the missing
# run is computed.

# %%
calls = []


def toy_run(config: dict) -> dict:
    calls.append(config["x"])
    return {"square": config["x"] ** 2}


configs = [{"x": x} for x in range(settings["demo_runs"])]
with tempfile.TemporaryDirectory() as tmp:
    table = Path(tmp) / "toy.csv"
    run_sweep(configs, toy_run, table, progress=False)
    first_calls = list(calls)
    # as if the sweep had been killed before its last run finished
    kept = read_results(table)[:-1]
    pd.DataFrame(kept).to_csv(table, index=False)
    calls.clear()
    rows = run_sweep(configs, toy_run, table, progress=False)
print(f"first run computed x = {first_calls}")
print(f"after losing the last row, the rerun computed only x = {calls}")
assert first_calls == list(range(len(configs))) and calls == [len(configs) - 1]
assert len(rows) == len(configs)

# %% [markdown]
# ## Stored GPU results
#
# Results that need a GPU (kernel speed, the `paper` profile's training sweeps) cannot be recomputed
# when the book is built on a CPU. They are produced by a command run on a GPU machine, which writes
# CSV rows labelled with the device, versions, commit and date into `book/results/`; these files are
# committed, and the chapters read and show them with their labels. For the Triton kernels:
#
# ```bash
# python -m dsflib.kernels.bench --dtype bf16 --out book/results/kernels_bench.csv
# ```
#
# The cell below lists what is stored in this checkout; a chapter with no stored file says plainly
# that its GPU numbers are unmeasured.

# %%
gpu_files = sorted((REPO_ROOT / "book" / "results").glob("*.csv"))
if gpu_files:
    for path in gpu_files:
        rows = read_results(path)
        labels = sorted({(r.get("device", "?"), r.get("date", "?")) for r in rows})
        print(textwrap.fill(f"book/results/{path.name}: {len(rows)} rows, "
                            f"measured on {labels}", width=88))
else:
    print("book/results/ holds no stored GPU results in this checkout:")
    print("GPU-only numbers are unmeasured.")
