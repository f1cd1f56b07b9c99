"""Sweeps: one atomic row per finished run, resumable after a kill, parallel workers, errors."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import dsflib.sweep
from dsflib.experiments import mqar
from dsflib.sweep import (VOLATILE, WORKERS_ENV, SweepError, TornRowWarning, append_row, default_workers,
                          failures_path, read_failures, read_results, row_checksum, row_contents, run_id, run_sweep)
from sweep_helpers import square, tiny_mqar

TESTS = Path(__file__).resolve().parent


def test_rows_hold_config_metrics_and_provenance(tmp_path):
    path = tmp_path / "r.csv"
    rows = run_sweep([{"x": 2}, {"x": 3}], square, path, progress=False)
    assert [int(r["square"]) for r in rows] == [4, 9]
    for r in rows:
        assert r["run_id"] == run_id({"x": int(r["x"])})
        assert r["commit"] and r["date"].endswith("UTC") and r["device"] == "cpu (test)"
        assert float(r["wall_seconds"]) >= 0 and r["config_json"].startswith("{")
    contents = row_contents(rows)  # what two tables of one sweep are compared on
    assert list(contents) == [r["run_id"] for r in rows]
    assert set(contents[rows[0]["run_id"]]) == set(rows[0]) - set(VOLATILE) and "square" in contents[rows[0]["run_id"]]


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


def test_an_mqar_sweep_gives_the_same_table_with_one_and_three_workers(tmp_path):
    # each run sets its own threads and seeds, so how many run at a time changes no result
    configs = [tiny_mqar(0), tiny_mqar(1), tiny_mqar(0, "softmax"), tiny_mqar(0, "s6")]
    tables = {}
    threads = torch.get_num_threads()
    try:
        for workers in (1, 3):
            tables[workers] = run_sweep(configs, mqar.run_mqar, tmp_path / f"w{workers}.csv", workers=workers,
                                        progress=False)
    finally:
        torch.set_num_threads(threads)  # run_mqar sets threads=1 in this process for the 1-worker sweep
    assert len(tables[1]) == 4 and all(float(r["accuracy"]) >= 0 for r in tables[1])
    assert row_contents(tables[1]) == row_contents(tables[3])


def test_default_workers_is_one_per_usable_core_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert default_workers() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=f"DSF_WORKERS must be an int >= 1, got '{bad}'"):
            default_workers()
    monkeypatch.delenv(WORKERS_ENV)
    monkeypatch.delattr(os, "sched_getaffinity")  # where there is none (macOS): every core
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert default_workers() == 5
    # run_sweep(workers=None) runs default_workers() at a time; the default stays 1 (this process)
    seen = []
    monkeypatch.setattr(dsflib.sweep, "_local", lambda fn, pending, workers: seen.append(workers) or iter(()))
    run_sweep([{"x": 1}], square, tmp_path / "a.csv", workers=None, progress=False)
    run_sweep([{"x": 1}], square, tmp_path / "b.csv", progress=False)
    assert seen == [5, 1]


def test_append_row_unions_columns(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, {"run_id": "a", "acc": 0.5})
    append_row(path, {"run_id": "b", "loss": 1.0})
    rows = read_results(path)
    assert [{k: v for k, v in r.items() if k != "row_check"} for r in rows] == [
        {"run_id": "a", "acc": "0.5", "loss": ""}, {"run_id": "b", "acc": "", "loss": "1.0"}]
    assert all(r["row_check"] == row_checksum(r) for r in rows)  # each row carries its checksum


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="configs must be distinct"):
        run_sweep([{"x": 1}, {"x": 1}], square, tmp_path / "r.csv", progress=False)
    with pytest.raises(SweepError, match="TypeError: the sweep function must return a dict of metrics"):
        run_sweep([{"x": 1}], lambda c: 3, tmp_path / "r.csv", progress=False)
    for kwargs, message in [(dict(launcher="slurm"), "launcher must be one of"),
                            (dict(address="10.0.0.1:6379"), "address names a Ray cluster"),
                            (dict(workers=0), "workers must be an int >= 1"),
                            (dict(launcher="ray", cpus_per_run=0), "cpus_per_run must be a finite number > 0"),
                            (dict(launcher="ray", gpus_per_run=float("inf")), "gpus_per_run must be a finite"),
                            (dict(gpus_per_run=-1), "gpus_per_run must be a finite number >= 0"),
                            (dict(cpus_per_run=2), "cpus_per_run and gpus_per_run are what a Ray task reserves"),
                            (dict(launcher="ray", workers=2), "workers is for launcher='local'"),
                            (dict(on_error="ignore"), "on_error must be one of")]:
        with pytest.raises(ValueError, match=message):
            run_sweep([{"x": 1}], square, tmp_path / "r.csv", progress=False, **kwargs)
    for kwargs, message in [(dict(launcher="ray", cpus_per_run="2"), "cpus_per_run must be a number, got str"),
                            (dict(launcher="ray", gpus_per_run=None), "gpus_per_run must be a number, got NoneType"),
                            (dict(launcher="ray", cpus_per_run=True), "cpus_per_run must be a number, got bool")]:
        with pytest.raises(TypeError, match=message):
            run_sweep([{"x": 1}], square, tmp_path / "r.csv", progress=False, **kwargs)
    with pytest.raises(TypeError, match="fn must be picklable for workers > 1"):
        run_sweep([{"x": 1}], lambda c: square(c), tmp_path / "r.csv", workers=2, progress=False)
    assert not (tmp_path / "r.csv").exists()  # nothing ran
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


def _table(tmp_path, n=4):
    path = tmp_path / "r.csv"
    configs = [{"x": x} for x in range(1, n + 1)]
    run_sweep(configs, square, path, progress=False)
    return path, configs


def test_a_row_cut_mid_write_is_dropped_reported_and_run_again(tmp_path):
    path, configs = _table(tmp_path)
    text = path.read_bytes()
    for cut in (3, 12, 40):  # inside the last row: its checksum, its config_json, a metric
        path.write_bytes(text[:-cut])
        with pytest.warns(TornRowWarning, match=r"line 5 .*the file ends inside it"):
            rows = read_results(path)
        assert [r["x"] for r in rows] == ["1", "2", "3"], cut
    calls = []
    with pytest.warns(TornRowWarning):
        rows = run_sweep(configs, lambda c: calls.append(c) or square(c), path, progress=False)
    assert calls == [{"x": 4}]  # only the torn run is redone
    assert [r["x"] for r in rows] == ["1", "2", "3", "4"] and rows[-1]["square"] == "16"
    assert [r["run_id"] for r in read_results(path)] == [run_id(c) for c in configs]  # no warning now


def test_a_changed_or_short_row_is_dropped(tmp_path):
    path, _ = _table(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    assert header[-1] == "row_check"
    y = header.index("square")
    fields = lines[2].rstrip("\r\n").split(",")
    fields[y] = "5"  # a metric that reads 5 instead of 4: the checksum no longer matches
    lines[2] = ",".join(fields) + "\r\n"
    lines[3] = ",".join(lines[3].split(",")[:3]) + "\r\n"  # a row with too few fields
    path.write_text("".join(lines))
    with pytest.warns(TornRowWarning) as record:
        rows = read_results(path)
    message = str(record[0].message)
    assert "dropped 2 torn row(s)" in message and "checksum does not match" in message
    assert f"3 fields where the header has {len(header)}" in message
    assert [r["x"] for r in rows] == ["1", "4"]


def test_a_config_that_is_not_its_run_id_is_dropped(tmp_path):
    path, _ = _table(tmp_path, 2)
    text = path.read_text().replace('{""x"": 2}', '{""x"": 7}')
    assert text != path.read_text()
    path.write_text(text)
    with pytest.warns(TornRowWarning, match="does not hash to its run_id|checksum does not match"):
        rows = read_results(path)
    assert [r["x"] for r in rows] == ["1"]
    # older tables without checksums are read as they are
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("run_id,acc\r\na,0.5\r\n")
    assert read_results(legacy) == [{"run_id": "a", "acc": "0.5"}]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_that_raises_is_logged_and_the_sweep_goes_on(tmp_path, workers):
    path = tmp_path / "r.csv"
    configs = [{"x": 1}, {"y": 5}, {"x": 2}, {"x": 3}]  # {"y": 5} raises KeyError in square
    with pytest.raises(SweepError, match=r"1 run\(s\) of the sweep failed: .*KeyError") as info:
        run_sweep(configs, square, path, workers=workers, progress=False)
    assert sorted(int(r["x"]) for r in info.value.rows) == [1, 2, 3]  # every other run finished
    assert [f["run_id"] for f in info.value.failures] == [run_id({"y": 5})]
    logged = read_failures(path)
    assert failures_path(path).name == "r.failures.csv" and len(logged) == 1
    assert logged[0]["run_id"] == run_id({"y": 5}) and logged[0]["error"] == "KeyError"
    assert "square" in logged[0]["traceback"] and logged[0]["launcher"] == "local"
    assert float(logged[0]["wall_seconds"]) >= 0 and logged[0]["host"]
    # the failed run has no result row, so the next launch runs it (and only it) again
    calls = []
    with pytest.raises(SweepError):
        run_sweep(configs, lambda c: calls.append(c) or square(c), path, progress=False)
    assert calls == [{"y": 5}] and len(read_failures(path)) == 2  # one log row per failed attempt


def test_on_error_raise_stops_at_the_first_failure(tmp_path):
    path = tmp_path / "r.csv"
    calls = []
    with pytest.raises(SweepError, match="KeyError") as info:
        run_sweep([{"x": 1}, {"y": 5}, {"x": 2}], lambda c: calls.append(c) or square(c), path,
                  on_error="raise", progress=False)
    assert calls == [{"x": 1}, {"y": 5}] and [r["x"] for r in info.value.rows] == ["1"]
    assert len(read_failures(path)) == 1


def test_a_sweep_error_crosses_process_boundaries(tmp_path):
    import pickle

    error = SweepError([{"run_id": "abc", "error": "KeyError", "message": "'x'"}], [{"run_id": "d"}], tmp_path / "f")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.failures, copy.rows, copy.log) == (str(error), error.failures, error.rows, error.log)
