"""Resumable sweeps: a grid of run configs, one result row per finished run, written atomically.

``run_sweep(configs, fn, path)`` calls ``fn(config) -> metrics`` for every config whose ``run_id``
(a hash of the config) is not yet in the results table at ``path`` (CSV), and appends each
finished run as one row: the run id, the config's keys, the metrics, wall time, device, commit and
date. Every append rewrites the table to a temporary file and renames it over the old one, so a
killed sweep loses at most the run in progress; rerunning the same sweep skips what is done.
Appends hold an exclusive lock on a sidecar file (``.<name>.lock``, POSIX), so two sweeps writing
one table at once (a chapter and a terminal, say) lose no rows; a run id already in the table is
not appended twice by a sweep (``append_row(..., unique=True)``).
Launchers: ``launcher="local"`` runs the configs in this process (``workers=1``) or in ``workers``
parallel processes (``fn`` must then be importable, i.e. defined at module level; ``workers=None``:
:func:`default_workers`, one per usable core);
``launcher="ray"`` makes every run a Ray task with declared resources (``cpus_per_run``,
``gpus_per_run``) on a Ray cluster (``address``; see :mod:`dsflib.cluster`). Either way this
process is the only writer: results stream back and are appended as they finish.
A run that raises does not stop the sweep: its error is appended to the failures log
(:func:`failures_path`, one row per failed attempt) and, once every other run has finished,
:class:`SweepError` names the failed runs (``on_error="raise"`` stops at the first one instead, as
does a failure that would repeat for every run: a broken process pool, a Ray node with other code).
A failed run has no row in the results table, so the next launch runs it again.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import numbers
import os
import pickle
import socket
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from ._progress import tqdm

from .env import code_fingerprint, device_name, git_commit

__all__ = ["run_id", "read_results", "append_row", "run_sweep", "row_checksum", "TornRowWarning", "ROW_CHECK",
           "LAUNCHERS", "SweepError", "failures_path", "read_failures", "result_row", "VOLATILE", "row_contents",
           "attempt", "failure_outcome", "default_workers", "WORKERS_ENV"]

META = ("run_id", "wall_seconds", "device", "commit", "code", "date", "config_json")
WORKERS_ENV = "DSF_WORKERS"
LAUNCHERS = ("local", "ray")
ON_ERROR = ("continue", "raise")


def run_id(config: Mapping) -> str:
    """Stable 12-hex-digit id of a config (its JSON with sorted keys)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    text = json.dumps(dict(config), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class TornRowWarning(UserWarning):
    """A results row that was cut or corrupted (e.g. a crash or a full disk during a write) was dropped."""


ROW_CHECK = "row_check"  # per-row checksum column: see :func:`row_checksum`


def row_checksum(row: Mapping) -> str:
    """12 hex digits over the row's non-empty fields as written to the CSV (``str``), ``row_check``
    excluded: a value cut short or changed after the row was written no longer matches."""
    fields = {str(k): str(v) for k, v in row.items() if k != ROW_CHECK and v is not None and str(v) != ""}
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _row_problem(row: dict, n_columns: int) -> str | None:
    """Why a row read back from a results table cannot be a finished run, or None."""
    if None in row:
        return f"{n_columns + len(row[None])} fields where the header has {n_columns}"
    missing = [k for k, v in row.items() if v is None]
    if missing:
        return f"{n_columns - len(missing)} fields where the header has {n_columns}"
    if row.get(ROW_CHECK) and row[ROW_CHECK] != row_checksum(row):
        return "its checksum does not match its fields"
    if row.get("config_json"):
        try:
            config = json.loads(row["config_json"])
        except json.JSONDecodeError:
            return "its config_json is not valid JSON"
        if row.get("run_id") and isinstance(config, dict) and run_id(config) != row["run_id"]:
            return "its config_json does not hash to its run_id"
    return None


def read_results(path: Path) -> list[dict]:
    """The rows of a results table (empty when the file does not exist).

    A torn row — cut mid-write (the file does not end with a newline), with too few or too many
    fields, a ``row_check`` that does not match its fields, or a ``config_json`` that is not the
    config of its ``run_id`` — is dropped with a :class:`TornRowWarning` naming its line, so a
    resumed sweep runs it again; every other row is kept.
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        text = fh.read()
    reader = csv.DictReader(io.StringIO(text))
    parsed = [(reader.line_num, row, _row_problem(row, len(reader.fieldnames or ()))) for row in reader]
    if parsed and not text.endswith("\n"):  # our writer ends every row: the last one was cut
        parsed[-1] = (*parsed[-1][:2], "the file ends inside it (no final newline: a write was cut)")
    rows = [row for _, row, problem in parsed if problem is None]
    torn = [f"line {line} ({row.get('run_id') or 'no run id'}): {problem}"
            for line, row, problem in parsed if problem is not None]
    if torn:
        warnings.warn(f"{path}: dropped {len(torn)} torn row(s), to be run again: " + "; ".join(torn),
                      TornRowWarning, stacklevel=2)
    return rows


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path``'s sidecar lock file (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: single writer assumed
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_row(path: Path, row: Mapping, *, unique: bool = False) -> bool:
    """Append ``row`` to the CSV at ``path`` atomically (columns are the union over all rows).

    With ``unique=True`` a row whose ``run_id`` is already in the table is not written (returns False).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        rows = read_results(path)
        if unique and any(r.get("run_id") == str(row["run_id"]) for r in rows):
            return False
        new = {k: ("" if v is None else v) for k, v in row.items() if k != ROW_CHECK}
        _write_rows(path, rows + [{**new, ROW_CHECK: row_checksum(new)}])
    return True


def _write_rows(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def failures_path(path: Path) -> Path:
    """The failures log next to the results table ``path``: ``<stem>.failures<suffix>``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failures{path.suffix}")


def read_failures(path: Path) -> list[dict]:
    """The failed attempts logged for the results table ``path`` (oldest first; empty when none)."""
    return read_results(failures_path(path))


class SweepError(RuntimeError):
    """Runs of a sweep raised. ``failures``: one dict per failed run (``run_id``, ``error``,
    ``message``, ``traceback``, ``config``); ``rows``: the finished rows, as :func:`run_sweep` returns."""

    def __init__(self, failures: list[dict], rows: list[dict], log: Path):
        self.failures, self.rows, self.log = failures, rows, Path(log)
        self._init_args = (failures, rows, str(log))
        listed = "; ".join(f"{f['run_id']} ({f['error']}: {f['message']})" for f in failures[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} run(s) of the sweep failed: {listed}{more}. Their errors and "
                         f"tracebacks are in {log}; the other runs finished ({len(rows)} rows), and running the "
                         "sweep again runs only what is missing")

    def __reduce__(self):  # so that it crosses process boundaries (a sweep run in a worker or Ray task)
        return (SweepError, self._init_args)


def _today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def result_row(config: Mapping, metrics: Mapping, seconds: float, commit: str | None = None,
               code: str | None = None) -> dict:
    """The results-table row of one finished run: run id, config, metrics and the :data:`META`
    columns (``device`` from the metrics when they report one; ``commit`` and ``code``, the
    :func:`~dsflib.env.code_fingerprint` of the library that computed it, read now unless given)."""
    config = dict(config)
    clash = set(config) & (set(metrics) | set(META))
    if clash - {"device"}:
        raise ValueError(f"metric names {sorted(clash)} clash with config keys")
    device = metrics["device"] if "device" in metrics else device_name()  # (device_name imports torch)
    return {"run_id": run_id(config), **config, **metrics, "wall_seconds": round(seconds, 3), "device": device,
            "commit": git_commit() if commit is None else commit,
            "code": code_fingerprint() if code is None else code, "date": _today(),
            "config_json": json.dumps(config, sort_keys=True, default=str)}


#: columns that say when and how long a run took, not what it computed: two tables of the same sweep
#: (run again, or on another launcher) agree on everything else (:func:`row_contents`)
VOLATILE = ("wall_seconds", "date", "row_check")


def row_contents(rows: Sequence[Mapping]) -> dict[str, dict]:
    """``{run_id: row without its VOLATILE columns}``: what to compare between two results tables."""
    return {r["run_id"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in rows}


def failure_outcome(error: str, message: str, *, traceback: str = "", seconds: float = float("nan"),
                    host: str = "", fatal: bool = False) -> dict:
    """A failed run as :func:`attempt` describes it; ``fatal``: the failure would repeat for every run,
    so the sweep stops."""
    return {"ok": False, "error": error, "message": str(message)[:500], "traceback": traceback[-4000:],
            "seconds": seconds, "host": host, "fatal": fatal}


def attempt(fn: Callable[[dict], dict], config: dict) -> dict:
    """Run ``fn(config)`` and describe the outcome (picklable, so it can come back from another
    process or a Ray worker): ``{"ok": True, "metrics", "seconds"}`` or ``{"ok": False, "error",
    "message", "traceback", "seconds", "host"}``."""
    start = time.perf_counter()
    try:
        metrics = fn(dict(config))
        if not isinstance(metrics, Mapping):
            raise TypeError(f"the sweep function must return a dict of metrics, got {type(metrics).__name__}")
        return {"ok": True, "metrics": dict(metrics), "seconds": time.perf_counter() - start}
    except Exception as exc:  # noqa: BLE001 - a run's error is recorded, not fatal to the sweep
        return failure_outcome(type(exc).__name__, str(exc), traceback="".join(traceback.format_exception(exc)),
                               seconds=time.perf_counter() - start, host=socket.gethostname())


def default_workers() -> int:
    """Runs at a time when a sweep is given none: ``$DSF_WORKERS`` where set, else one per core this
    process may run on (``os.sched_getaffinity``; ``os.cpu_count()`` where that does not exist).
    Each run sets its own torch threads (the configs' ``threads``), so the count changes no result."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"${WORKERS_ENV} must be an int >= 1, got {raw!r}")
        return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _local(fn, pending: list[tuple[str, dict]], workers: int) -> Iterator[tuple[str, dict, dict]]:
    """Outcomes of the pending runs in this process (``workers=1``) or a pool of processes."""
    if workers <= 1:
        for rid, config in pending:
            yield rid, config, attempt(fn, config)
        return
    import multiprocessing as mp

    try:
        pickle.dumps(fn)
    except Exception as exc:  # noqa: BLE001 - lambdas, closures, functions defined in __main__ of a notebook
        raise TypeError(f"fn must be picklable for workers > 1 (a function defined at module level), "
                        f"got {fn!r}: {exc}") from exc
    # no idle processes: at most one per pending run
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(pending))), mp_context=mp.get_context("spawn"))
    try:
        futures = {pool.submit(attempt, fn, config): (rid, config) for rid, config in pending}
        for future in as_completed(futures):
            rid, config = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker process died (killed, out of memory): the pool
                # is broken and every run still pending would fail the same way, so the sweep stops here
                outcome = failure_outcome(type(exc).__name__, str(exc), host=socket.gethostname(), fatal=True)
            yield rid, config, outcome
    finally:  # also when the sweep stops early: runs not yet started are cancelled
        pool.shutdown(wait=True, cancel_futures=True)


def _check_amount(name: str, value, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def _check_launch(launcher, workers, address, cpus_per_run, gpus_per_run, on_error) -> None:
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    if cpus_per_run is not None:
        _check_amount("cpus_per_run", cpus_per_run, positive=True)
    _check_amount("gpus_per_run", gpus_per_run, positive=False)
    if launcher == "local":
        if address is not None:
            raise ValueError("address names a Ray cluster: pass it with launcher='ray'")
        if cpus_per_run is not None or gpus_per_run:
            raise ValueError("cpus_per_run and gpus_per_run are what a Ray task reserves: pass them with "
                             "launcher='ray' (locally, workers sets the runs at a time)")
    elif workers not in (1, None):
        raise ValueError("workers is for launcher='local': on Ray the runs at a time follow from the cluster's "
                         "resources and cpus_per_run/gpus_per_run")


def run_sweep(
    configs: Sequence[Mapping],
    fn: Callable[[dict], dict],
    path: Path,
    *,
    workers: int | None = 1,
    launcher: str = "local",
    address: str | None = None,
    cpus_per_run: float | None = None,
    gpus_per_run: float = 0,
    on_error: str = "continue",
    progress: bool = True,
    desc: str = "sweep",
) -> list[dict]:
    """Run every config not yet in ``path``; return the rows of ``configs`` (finished ones) in order.

    ``launcher="local"`` runs ``workers`` configs at a time on this machine (``None``: :func:`default_workers`,
    one per usable core; 1: in this process); ``launcher="ray"`` runs
    each config as a Ray task needing ``cpus_per_run`` CPUs (default: the config's ``threads``, else 1)
    and ``gpus_per_run`` GPUs (fractions share a GPU) on the cluster at ``address`` (default: the
    connected one, ``$RAY_ADDRESS``, or a new local instance). Raises :class:`SweepError` after the
    sweep when runs failed (``on_error="continue"``) or at the first failure (``"raise"``).
    """
    _check_launch(launcher, workers, address, cpus_per_run, gpus_per_run, on_error)
    configs = [dict(c) for c in configs]
    ids = [run_id(c) for c in configs]
    if len(set(ids)) != len(ids):
        raise ValueError("configs must be distinct: the sweep holds the same config twice")
    done = {r["run_id"] for r in read_results(path)}
    pending = [(i, c) for i, c in zip(ids, configs) if i not in done]
    bar = tqdm(total=len(configs), initial=len(configs) - len(pending), desc=desc, disable=not progress)
    failures: list[dict] = []
    commit, code = git_commit(), code_fingerprint()  # the code this sweep imported: once, not per row

    def record(rid: str, config: dict, metrics: dict, seconds: float) -> None:
        append_row(path, result_row(config, metrics, seconds, commit, code), unique=True)

    def record_failure(rid: str, config: dict, outcome: dict) -> None:
        failure = {"run_id": rid, "error": outcome["error"], "message": outcome["message"],
                   "traceback": outcome.get("traceback", ""), "wall_seconds": round(outcome["seconds"], 3),
                   "host": outcome.get("host", ""), "launcher": launcher, "commit": commit, "date": _today(),
                   "config_json": json.dumps(config, sort_keys=True, default=str)}
        append_row(failures_path(path), failure)
        failures.append({**failure, "config": config})
        bar.set_postfix(failed=len(failures))

    if launcher == "ray":
        from .cluster import ray_outcomes

        outcomes = ray_outcomes(fn, pending, address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    else:
        outcomes = _local(fn, pending, default_workers() if workers is None else workers)
    try:
        for rid, config, outcome in outcomes:
            if outcome["ok"]:
                record(rid, config, outcome["metrics"], outcome["seconds"])
            else:
                record_failure(rid, config, outcome)
            bar.update(1)
            if not outcome["ok"] and (on_error == "raise" or outcome.get("fatal")):
                break  # a fatal failure (a broken worker pool, a node with other code) would repeat for every run
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # stops a process pool or cancels Ray tasks still pending
        bar.close()
    rows = {r["run_id"]: r for r in read_results(path)}
    finished = [rows[i] for i in ids if i in rows]
    if failures:
        raise SweepError(failures, finished, failures_path(path))
    return finished
