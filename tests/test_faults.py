"""Fault injection for the long jobs: a sweep and the LM trainer are killed with SIGKILL at random
moments, many times; after each resume every finished run is in the results table exactly once, and
the LM checkpoint loads and the run completes.

The children widen the windows where a kill does the most harm (between writing a results table or
a checkpoint to its temporary file and renaming it over the old one) so that kills land there too;
each trial records where its kill landed. ``DSF_FAULT_TRIALS`` sets the number of trials (20 each by
default, also in CI).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from dsflib.env import REPO_ROOT
from dsflib.lm import LMConfig, load_checkpoint, train_lm
from dsflib.sweep import read_results, run_id, run_sweep

TESTS = Path(__file__).resolve().parent
TRIALS = int(os.environ.get("DSF_FAULT_TRIALS", "20"))

# the child marks the slow window (the temporary file written, not yet renamed) with a flag file
WINDOW = textwrap.dedent("""
    import os, time
    from pathlib import Path

    def widened(write):
        def slow(*args, **kwargs):
            flag = Path(os.environ["FAULT_FLAG"])
            real_replace = os.replace
            def replace(src, dst):
                flag.write_text("in write")
                time.sleep(0.03)
                real_replace(src, dst)
                flag.unlink()
            os.replace = replace
            try:
                return write(*args, **kwargs)
            finally:
                os.replace = real_replace
        return slow
""")

SWEEP_CHILD = WINDOW + textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import dsflib.sweep as sweep
    from sweep_helpers import square
    sweep._write_rows = widened(sweep._write_rows)
    sweep.run_sweep({configs!r}, square, {path!r}, progress=False)
""")

LM_CHILD = WINDOW + textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    import dsflib.lm as lm
    from test_lm_training import make_data, make_model
    lm._save_checkpoint = widened(lm._save_checkpoint)
    train, valid = make_data()
    lm.train_lm(make_model(), train, valid, lm.LMConfig(**{config!r}), checkpoint_dir={ckpt!r})
""")


def _run_and_kill(script: str, ready, extra: float, flag: Path) -> str:
    """Start ``script`` in a child; once ``ready()`` holds, wait ``extra`` seconds and SIGKILL it.
    Returns where the kill landed (inside a write, between writes, or after the child ended)."""
    env = {**os.environ, "FAULT_FLAG": str(flag), "PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while child.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(extra)
    if child.poll() is not None:
        err = child.stderr.read().decode()
        assert child.returncode == 0, err[-2000:]
        return "after the end"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    return "inside a write" if flag.exists() else "between writes"


def test_killed_sweeps_resume_with_every_run_exactly_once(tmp_path):
    configs = [{"x": i, "sleep": 0.05} for i in range(8)]
    ids = [run_id(c) for c in configs]
    rng = random.Random(0)
    outcomes = Counter()
    for trial in range(TRIALS):
        path = tmp_path / f"trial{trial}" / "r.csv"
        path.parent.mkdir()
        flag = tmp_path / f"trial{trial}.flag"
        script = SWEEP_CHILD.format(tests=str(TESTS), configs=configs, path=str(path))
        target = rng.randrange(len(configs))  # kill once this many runs are stored, a little later
        outcomes[_run_and_kill(script, lambda: path.exists() and len(read_results(path)) >= target,
                               rng.uniform(0.0, 0.09), flag)] += 1
        before = read_results(path)
        assert len({r["run_id"] for r in before}) == len(before)
        rows = run_sweep(configs, lambda c: {"square": c["x"] ** 2, "device": "cpu (test)"}, path,
                         progress=False)
        after = read_results(path)
        assert [r["run_id"] for r in rows] == ids and sorted(r["run_id"] for r in after) == sorted(ids)
        assert all(int(r["square"]) == int(r["x"]) ** 2 for r in after)
        assert after[:len(before)] == before  # what was finished before the kill is kept as it was
    print(f"sweep kill trials: {TRIALS}, {dict(outcomes)}")
    assert sum(outcomes.values()) == TRIALS and outcomes["after the end"] < TRIALS / 2
    assert outcomes["inside a write"] >= 1, "no kill landed inside a write: the injection did not work"


def _step(ckpt: Path) -> int:
    try:
        return load_checkpoint(ckpt)["step"]
    except Exception:  # noqa: BLE001 - replaced while we read it: ask again
        return -1


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_killed_lm_training_resumes_from_a_checkpoint_that_loads(tmp_path, one_thread):
    from test_lm_training import make_data, make_model

    config = dict(steps=24, batch_size=8, lr=5e-3, warmup_steps=3, eval_every=8, checkpoint_every=2,
                  progress=False)
    train, valid = make_data()
    rng = random.Random(1)
    outcomes, resumed_from = Counter(), []
    for trial in range(TRIALS):
        ckpt = tmp_path / f"ckpt{trial}"
        flag = tmp_path / f"trial{trial}.flag"
        script = LM_CHILD.format(tests=str(TESTS), config=config, ckpt=str(ckpt))
        target = rng.randrange(2, config["steps"], 2)  # kill once this step is checkpointed, a little later
        outcomes[_run_and_kill(script, lambda: (ckpt / "last.pt").exists() and _step(ckpt) >= target,
                               rng.uniform(0.0, 0.05), flag)] += 1
        state = load_checkpoint(ckpt)  # must load whenever it exists: never a half-written file
        assert state is None or 0 < state["step"] <= config["steps"]
        result = train_lm(make_model(), train, valid, LMConfig(**config), checkpoint_dir=ckpt)
        resumed_from.append(result["resumed_from"])
        assert result["steps"] == config["steps"] and load_checkpoint(ckpt)["step"] == config["steps"]
        assert result["resumed_from"] == (None if state is None else state["step"])
    print(f"LM kill trials: {TRIALS}, {dict(outcomes)}, resumed from steps {resumed_from}")
    assert sum(outcomes.values()) == TRIALS
    assert outcomes["inside a write"] >= 1, "no kill landed inside a checkpoint save: the injection did not work"
