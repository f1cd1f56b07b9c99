"""Sweeps on Ray (dsflib.cluster): a local Ray instance of 2 CPUs runs a tiny MQAR sweep, a run
that raises, a driver killed mid-sweep and resumed; the experiments' ``--launcher ray`` flags."""
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="the cluster extra (pip install -e '.[cluster]') is not installed")

from dsflib.experiments import mqar, wikitext  # noqa: E402
from dsflib.sweep import (WORKERS_ENV, SweepError, read_failures, read_results, row_contents, run_id,  # noqa: E402
                          run_sweep)
from sweep_helpers import logged_mqar, square, tiny_mqar  # noqa: E402

TESTS = Path(__file__).resolve().parent


def test_without_a_cluster_the_sweep_starts_and_stops_its_own(tmp_path, monkeypatch):
    """Runs before the module's cluster fixture starts one (tests run in file order)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    assert not ray.is_initialized()
    rows = run_sweep([{"x": 2}, {"x": 3}], square, tmp_path / "r.csv", launcher="ray", progress=False)
    assert [r["square"] for r in rows] == ["4", "9"]
    assert not ray.is_initialized()  # the instance it started is shut down again


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance (2 CPUs, no dashboard); yields its address. Its workers can import
    tests/sweep_helpers.py (as a cluster's nodes must import whatever a sweep runs)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), saved]))
    try:
        ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def test_an_mqar_sweep_gives_the_same_table_locally_and_on_ray(tmp_path, cluster):
    configs = [tiny_mqar(0), tiny_mqar(1), tiny_mqar(0, "softmax"), tiny_mqar(0, "no_such_model")]
    bad = run_id(configs[-1])
    tables = {}
    threads = torch.get_num_threads()
    try:
        for launcher in ("local", "ray"):
            path = tmp_path / f"{launcher}.csv"
            with pytest.raises(SweepError, match=f"1 run\\(s\\) of the sweep failed: {bad} \\(ValueError: model"):
                run_sweep(configs, mqar.run_mqar, path, launcher=launcher, progress=False)
            tables[launcher] = read_results(path)
            failed = read_failures(path)
            assert [(f["run_id"], f["error"], f["launcher"]) for f in failed] == [(bad, "ValueError", launcher)]
            assert "run_mqar" in failed[0]["traceback"]
    finally:
        torch.set_num_threads(threads)  # run_mqar sets threads=1 in this process for the local sweep
    assert len(tables["ray"]) == 3 and set(row_contents(tables["ray"])) == {run_id(c) for c in configs[:3]}
    assert row_contents(tables["local"]) == row_contents(tables["ray"])  # rows identical, order aside
    assert all(float(r["accuracy"]) >= 0 for r in tables["ray"])


def test_a_killed_driver_loses_no_finished_row_and_resumes(tmp_path, cluster):
    path, log = tmp_path / "r.csv", tmp_path / "calls.log"
    # eight tiny MQAR runs (seeds 0-7); logged_mqar logs "<ray job> <seed>" as each run finishes
    configs = [{**tiny_mqar(seed), "epochs": 6, "log": str(log)} for seed in range(8)]
    script = ("from sweep_helpers import logged_mqar; from dsflib.sweep import run_sweep; "
              f"run_sweep({configs!r}, logged_mqar, {str(path)!r}, launcher='ray', address={cluster!r}, "
              "progress=False)")
    driver = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 180
    while len(read_results(path)) < 2 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, f"the driver ended before the kill (exit {driver.returncode})"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = read_results(path)  # reading it raises no TornRowWarning: every row is whole
    assert 2 <= len(before) < 8, "the kill should land mid-sweep"
    rows = run_sweep(configs, logged_mqar, path, launcher="ray", progress=False)
    assert sorted(int(r["seed"]) for r in rows) == list(range(8)) and len(read_results(path)) == 8
    assert read_results(path)[: len(before)] == before  # finished rows kept as they were
    this_job = ray.get_runtime_context().get_job_id()
    resumed = [int(s) for job, s in (line.split() for line in log.read_text().splitlines()) if job == this_job]
    assert sorted(resumed) == sorted(set(range(8)) - {int(r["seed"]) for r in before})  # only the missing runs


def test_on_ray_a_crashed_worker_is_logged_and_raise_stops_the_sweep(tmp_path, cluster):
    path = tmp_path / "r.csv"
    with pytest.raises(SweepError, match="WorkerCrashedError"):  # the run's process died (tried twice)
        run_sweep([{"x": 1}, {"x": 2, "crash": True}], square, path, launcher="ray", progress=False)
    assert [r["x"] for r in read_results(path)] == ["1"]
    assert [f["error"] for f in read_failures(path)] == ["WorkerCrashedError"]
    # on_error="raise": the first failure stops the sweep and the runs not yet finished are cancelled
    slow = [{"x": 10 + i, "sleep": 2.0} for i in range(6)]
    start = time.perf_counter()
    with pytest.raises(SweepError, match="KeyError") as info:
        run_sweep([{"y": 1}, *slow], square, tmp_path / "s.csv", launcher="ray", on_error="raise", progress=False)
    assert time.perf_counter() - start < 6.0 and len(info.value.rows) < len(slow)  # not 3 rounds of 2 s


def test_a_sweep_keeps_to_the_connected_cluster(tmp_path, cluster):
    with pytest.raises(ValueError, match="connected to the Ray cluster at"):
        run_sweep([{"x": 1}], square, tmp_path / "r.csv", launcher="ray", address="127.0.0.1:1", progress=False)
    assert run_sweep([{"x": 1}], square, tmp_path / "r.csv", launcher="ray", address=cluster,
                     progress=False)[0]["square"] == "1"


def test_ray_refuses_runs_that_no_node_can_hold(tmp_path, cluster):
    with pytest.raises(ValueError, match="needs 1 CPUs and 1 GPUs .* largest node of the Ray cluster has 2 CPUs "
                                         "and 0 GPUs"):
        run_sweep([{"x": 1}], square, tmp_path / "r.csv", launcher="ray", gpus_per_run=1, progress=False)
    with pytest.raises(ValueError, match="needs 3 CPUs"):
        run_sweep([{"x": 1}], square, tmp_path / "r.csv", launcher="ray", cpus_per_run=3, progress=False)
    assert not (tmp_path / "r.csv").exists()


def test_a_node_with_other_library_code_refuses_the_run(cluster):
    from dsflib.cluster import ray_outcomes
    from dsflib.env import code_fingerprint

    pending = [(run_id({"x": 2}), {"x": 2}), (run_id({"x": 3}), {"x": 3})]
    stale = list(ray_outcomes(square, pending, driver_code="000000000000"))
    assert sorted(c["x"] for _, c, _ in stale) == [2, 3]
    for _, _, outcome in stale:
        assert not outcome["ok"] and outcome["error"] == "CodeMismatch"
        assert f"this node imports dsflib code {code_fingerprint()}, the driver 000000000000" in outcome["message"]
    same = list(ray_outcomes(square, pending))  # the driver's own fingerprint: the runs go ahead
    assert sorted(o["metrics"]["square"] for _, _, o in same) == [4, 9]


def _capture(monkeypatch, target):
    calls = []

    def fake_run_sweep(configs, fn, path, **kwargs):
        pickle.dumps(fn)  # what Ray ships to its workers
        calls.append(dict(configs=configs, fn=fn, path=path, **kwargs))
        return []

    monkeypatch.setattr(target, "run_sweep", fake_run_sweep)
    return calls


def test_the_experiment_clis_pass_the_launcher_on(tmp_path, monkeypatch):
    import dsflib.sweep

    calls = _capture(monkeypatch, dsflib.sweep)
    out = tmp_path / "mqar.csv"
    assert mqar.main(["--profile", "ci", "--out", str(out), "--launcher", "ray", "--address", "10.0.0.1:6379"]) == 0
    call = calls.pop()
    assert (call["launcher"], call["address"], call["gpus_per_run"], call["cpus_per_run"]) == \
        ("ray", "10.0.0.1:6379", 0, None)
    assert call["fn"] is mqar.run_mqar and len(call["configs"]) == len(mqar.grid("ci"))
    # the gpu profile's 4 runs share a GPU locally, so each Ray task reserves a quarter of one
    assert mqar.main(["--profile", "gpu", "--out", str(out), "--launcher", "ray"]) == 0
    assert calls.pop()["gpus_per_run"] == 0.25
    assert mqar.main(["--profile", "gpu", "--out", str(out), "--launcher", "ray", "--gpus-per-run", "1",
                      "--cpus-per-run", "4"]) == 0
    assert (calls[-1]["gpus_per_run"], calls[-1]["cpus_per_run"]) == (1.0, 4.0)
    assert mqar.main(["--profile", "ci", "--out", str(out), "--workers", "2"]) == 0
    assert (calls[-1]["launcher"], calls[-1]["workers"]) == ("local", 2)
    monkeypatch.setenv(WORKERS_ENV, "3")  # a CPU profile runs default_workers() at a time: here 3
    assert mqar.main(["--profile", "ci", "--out", str(out)]) == 0
    assert calls[-1]["workers"] == 3

    calls = _capture(monkeypatch, wikitext)
    assert wikitext.main(["--profile", "gpu", "--launcher", "ray", "--data-dir", str(tmp_path)]) == 0
    call = calls.pop()
    assert (call["launcher"], call["gpus_per_run"]) == ("ray", 1.0)
    assert call["fn"].func is wikitext.run_wikitext and call["fn"].keywords == {"data_dir": str(tmp_path)}


@pytest.mark.parametrize("argv, message", [
    (["--address", "10.0.0.1:6379"], "--address only go with --launcher ray"),
    (["--gpus-per-run", "1"], "--gpus-per-run only go with --launcher ray"),
    (["--launcher", "ray", "--workers", "2"], "--workers is for --launcher local"),
    (["--launcher", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be a finite number > 0"),
    (["--launcher", "ray", "--cpus-per-run", "inf"], "--cpus-per-run must be a finite number > 0"),
    (["--launcher", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be a finite number >= 0"),
    (["--profile", "gpu", "--launcher", "ray", "--gpus-per-run", "0"], "'gpu' needs a GPU per run"),
    (["--launcher", "slurm"], "invalid choice: 'slurm'"),
])
def test_bad_launcher_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        mqar.main(["--profile", "ci", "--estimate-only", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_ray_under_torchrun_or_with_a_device_is_refused(monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        wikitext.main(["--profile", "ci", "--launcher", "ray", "--device", "cpu", "--estimate-only"])
    assert info.value.code == 2 and "--device is for the local launcher" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as info:
        wikitext.main(["--profile", "ci", "--launcher", "ray", "--estimate-only"])
    assert info.value.code == 2 and "under torchrun" in capsys.readouterr().err


def test_failed_runs_make_the_cli_exit_1(tmp_path, monkeypatch, capsys):
    import dsflib.sweep

    def failing(configs, fn, path, **kwargs):
        raise SweepError([{"run_id": "abc", "error": "ValueError", "message": "boom"}], [], tmp_path / "f.csv")

    monkeypatch.setattr(dsflib.sweep, "run_sweep", failing)
    assert mqar.main(["--profile", "ci", "--out", str(tmp_path / "m.csv"), "--launcher", "ray"]) == 1
    assert "1 run(s) of the sweep failed: abc (ValueError: boom)" in capsys.readouterr().err
