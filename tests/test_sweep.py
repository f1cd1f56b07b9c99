"""Sweeps: one atomic row per finished run, resumable after a kill, parallel workers, errors."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsflib.sweep import append_row, read_results, run_id, run_sweep
from sweep_helpers import square

TESTS = Path(__file__).resolve().parent


def test_rows_hold_config_metrics_and_provenance(tmp_path):
    path = tmp_path / "r.csv"
    rows = run_sweep([{"x": 2}, {"x": 3}], square, path, progress=False)
    assert [int(r["square"]) for r in rows] == [4, 9]
    for r in rows:
        assert r["run_id"] == run_id({"x": int(r["x"])})
        assert r["commit"] and r["date"].endswith("UTC") and r["device"] == "cpu (test)"
        assert float(r["wall_seconds"]) >= 0 and r["config_json"].startswith("{")


def test_rerun_skips_finished_runs(tmp_path):
    path = tmp_path / "r.csv"
    calls = []

    def counted(config):
        calls.append(config["x"])
        return square(config)

    run_sweep([{"x": 1}, {"x": 2}], counted, path, progress=False)
    rows = run_sweep([{"x": 1}, {"x": 2}, {"x": 3}], counted, path, progress=False)
    assert calls == [1, 2, 3] and len(read_results(path)) == 3 and len(rows) == 3


def test_killed_sweep_resumes_and_loses_nothing(tmp_path):
    path = tmp_path / "r.csv"
    configs = [{"x": i, "sleep": 0.4} for i in range(6)]
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); from sweep_helpers import square; "
              f"from dsflib.sweep import run_sweep; run_sweep({configs!r}, square, {str(path)!r}, progress=False)")
    child = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 60
    while len(read_results(path)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    before = read_results(path)
    assert 2 <= len(before) < 6, "the kill should land mid-sweep"
    rows = run_sweep(configs, square, path, progress=False)
    assert [int(r["x"]) for r in rows] == list(range(6))
    assert [int(r["square"]) for r in rows] == [i * i for i in range(6)]
    assert rows[: len(before)] == before  # finished rows were kept as they were, not recomputed
    assert len(read_results(path)) == 6  # and no run was stored twice


def test_parallel_workers_give_the_same_rows(tmp_path):
    configs = [{"x": i} for i in range(4)]
    rows = run_sweep(configs, square, tmp_path / "p.csv", workers=2, progress=False)
    assert sorted(int(r["square"]) for r in rows) == [0, 1, 4, 9]


def test_append_row_unions_columns(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, {"run_id": "a", "acc": 0.5})
    append_row(path, {"run_id": "b", "loss": 1.0})
    rows = read_results(path)
    assert rows == [{"run_id": "a", "acc": "0.5", "loss": ""}, {"run_id": "b", "acc": "", "loss": "1.0"}]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="configs must be distinct"):
        run_sweep([{"x": 1}, {"x": 1}], square, tmp_path / "r.csv", progress=False)
    with pytest.raises(TypeError, match="must return a dict of metrics"):
        run_sweep([{"x": 1}], lambda c: 3, tmp_path / "r.csv", progress=False)
    with pytest.raises(TypeError, match="config must be a mapping"):
        run_id([1, 2])


def _append_many(path: str, worker: int, count: int, start) -> None:
    start.wait(30)  # every process begins appending at the same moment
    for i in range(count):
        append_row(Path(path), {"run_id": f"w{worker}-{i}", "worker": worker})


def test_concurrent_appends_from_several_processes_lose_no_row(tmp_path):
    import multiprocessing as mp

    path = tmp_path / "shared.csv"
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 100, start)) for w in range(4)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let the children import
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = [r["run_id"] for r in read_results(path)]
    assert sorted(ids) == sorted(f"w{w}-{i}" for w in range(4) for i in range(100))


def test_unique_append_skips_a_run_id_already_in_the_table(tmp_path):
    path = tmp_path / "runs.csv"
    assert append_row(path, {"run_id": "a", "acc": 0.5}, unique=True)
    assert not append_row(path, {"run_id": "a", "acc": 0.9}, unique=True)
    assert append_row(path, {"run_id": "a", "step": 2})  # curves: several rows per run are fine
    rows = read_results(path)
    assert [r["acc"] for r in rows] == ["0.5", ""] and len(rows) == 2
