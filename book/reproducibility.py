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
from dsflib.sweep import (META, VOLATILE, SweepError, read_failures, read_results,
                          row_contents, run_sweep)
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
stored = sorted(p for p in (REPO_ROOT / "_build" / "results").glob("*.csv")
                if not p.name.endswith(".failures.csv"))  # failure logs are not results
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
# (sec-cluster)=
# ## Sweeps on a cluster
#
# App. J.1's MQAR grid (four d times four n for five models on four tasks, "resulting in a total of 320
# experiments", and 24 for the qLSTM pair), each
# at its four learning rates (`np.logspace(-4, -2, 4)`), is more than a thousand training runs
# (the `paper` profile, counted below), which no single GPU finishes in a day. The runs are independent, so the same sweep can run on many
# machines at once. Three engines serve three cases:
#
# | case | engine | how |
# |---|---|---|
# | many runs, one machine | local processes | `--workers K` (the default launcher) |
# | many runs, many machines | [Ray](https://docs.ray.io) | `--launcher ray --address HEAD:6379` |
# | one large run, several GPUs | `torchrun` (DistributedDataParallel) | `torchrun --nproc_per_node=8 -m ...` |
#
# With `--launcher ray` (or `run_sweep(..., launcher="ray")`), every pending run becomes one Ray
# task that reserves `--cpus-per-run` CPUs (default: the run's `threads`) and `--gpus-per-run`
# GPUs (a fraction lets runs share a GPU; the default is the profile's: the MQAR `gpu` profile
# runs 4 per GPU, WikiText one). The process that launched the sweep stays the only writer: each
# run's result comes back to it as the run finishes and is appended to the same results table as
# a local sweep, locked and atomic. So a re-launch skips finished runs, and a driver or cluster
# that dies loses no finished row. A run that raises does not stop the sweep: its error and
# traceback go to `<table>.failures.csv`, the other runs go on, and the command exits with
# status 1 naming the failed runs (the next launch runs them again). The whole paper grid:
#
# ```bash
# pip install -e ".[cluster]"                 # on every node, in the same environment
# ray start --head --port=6379                # on the head node
# ray start --address=HEAD:6379               # on every other node
# python -m dsflib.experiments.mqar --profile paper --estimate-only        # the plan
# python -m dsflib.experiments.mqar --profile paper --launcher ray --address HEAD:6379
# python -m dsflib.experiments.lra --profile paper --launcher ray --address HEAD:6379
# python -m dsflib.experiments.wikitext --profile paper --lr-sweep \
#     --launcher ray --address HEAD:6379
# ```
#
# Every node needs this repository installed and, for LRA and WikiText, the data under the same
# data root (`DSF_DATA_DIR`). A task first checks that its node imports the same library code as
# the launching process (`dsflib.env.code_fingerprint`); on a node with other code (a stale
# install, a fork's edits not copied) the run fails as `CodeMismatch` rather than writing a row
# that the launcher's commit would mislabel. The cell below runs a toy sweep with a failing run, first on this
# machine and then through a local Ray instance of two CPUs, and compares the two tables; the
# run function is defined in this notebook, and Ray ships it to its workers.

# %%
def toy_metrics(config: dict) -> dict:
    if config["x"] < 0:
        raise ValueError(f"x must be >= 0, got {config['x']}")
    return {"square": config["x"] ** 2, "cube": config["x"] ** 3}


toy = [{"x": x} for x in (1, 2, 3, -1)]

try:
    import ray
except ImportError:
    ray = None
    print("Ray is not installed here (pip install -e '.[cluster]'):")
    print("the Ray sweep is not run")
if ray is not None:
    tables, logs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
                 log_to_driver=False)
        try:
            for launcher in ("local", "ray"):
                path = Path(tmp) / f"{launcher}.csv"
                try:
                    run_sweep(toy, toy_metrics, path, launcher=launcher, progress=False)
                except SweepError as exc:
                    print(textwrap.fill(f"{launcher}: {exc}", width=88))
                tables[launcher] = read_results(path)
                logs[launcher] = [(f["error"], f["message"])
                                  for f in read_failures(path)]
        finally:
            ray.shutdown()
    same = row_contents(tables["local"]) == row_contents(tables["ray"])
    print(f"finished rows: local {len(tables['local'])}, Ray {len(tables['ray'])}")
    print(f"identical apart from {', '.join(sorted(VOLATILE))}: {same}")
    print(f"failures logged locally: {logs['local']}")
    print(f"failures logged on Ray:  {logs['ray']}")
    assert same and len(tables["ray"]) == 3 and logs["local"] == logs["ray"]

# %% [markdown]
# What the paper grid costs: the MQAR `paper` profile's runs per model, their optimizer steps,
# and GPU-hours when run one at a time on one GPU. A model's time per step comes from a stored
# GPU benchmark (`make gpu-results PART=train` writes `book/results/train_bench-gpu.csv`, the
# MQAR step at L=512, d=128, n=64, batch 64) when there is one; otherwise the table uses the
# trainer's target of 3 ms per step at that shape and says so in its `source` column. Either way
# it is an estimate (steps scale with L x batch, plus 5 s per run), not a measured sweep.

# %%
from dsflib.experiments import mqar
from dsflib.train_bench import read_step_times

bench_csv = REPO_ROOT / "book" / "results" / "train_bench-gpu.csv"
measured = read_step_times(bench_csv)
paper_grid = mqar.grid("paper")
cost = pd.DataFrame(mqar.sweep_cost(paper_grid, measured))
save_table(cost, "mqar_paper_cost", index=False)
shown = cost.assign(steps=cost["steps"].map("{:,}".format),
                    gpu_hours=cost["gpu_hours"].map("{:.1f}".format))
show_table(shown, digits=3,
           caption=f"MQAR paper grid: {len(paper_grid)} runs, GPU-hours per model")
total = cost["gpu_hours"].sum()
print(f"total: {total:.0f} GPU-hours; on a cluster of 8 GPUs about")
print(f"{total / 8:.0f} h of wall time if the runs pack perfectly")
if measured:
    print(f"per-step times measured for {sorted(measured)}")
else:
    print(f"per-step times: none stored (no book/results/{bench_csv.name}):")
    print("every row uses the assumed 3 ms per step")

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
gpu_files = sorted(p for p in (REPO_ROOT / "book" / "results").glob("*.csv")
                   if not p.name.endswith(".failures.csv"))
if gpu_files:
    for path in gpu_files:
        rows = read_results(path)
        labels = sorted({(r.get("device", "?"), r.get("date", "?")) for r in rows})
        print(textwrap.fill(f"book/results/{path.name}: {len(rows)} rows, "
                            f"measured on {labels}", width=88))
else:
    print("book/results/ holds no stored GPU results in this checkout:")
    print("GPU-only numbers are unmeasured.")
