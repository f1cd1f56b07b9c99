"""Resumable sweeps: a grid of run configs, one result row per finished run, written atomically.

``run_sweep(configs, fn, path)`` calls ``fn(config) -> metrics`` for every config whose ``run_id``
(a hash of the config) is not yet in the results table at ``path`` (CSV), and appends each
finished run as one row: the run id, the config's keys, the metrics, wall time, device, commit and
date. Every append rewrites the table to a temporary file and renames it over the old one, so a
killed sweep loses at most the run in progress; rerunning the same sweep skips what is done.
Appends hold an exclusive lock on a sidecar file (``.<name>.lock``, POSIX), so two sweeps writing
one table at once (a chapter and a terminal, say) lose no rows; a run id already in the table is
not appended twice by a sweep (``append_row(..., unique=True)``).
``workers > 1`` runs configs in parallel processes (``fn`` must then be importable, i.e. defined at
module level); the parent process is the only writer.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ._progress import tqdm

from .env import device_name, git_commit

__all__ = ["run_id", "read_results", "append_row", "run_sweep", "row_checksum", "TornRowWarning", "ROW_CHECK"]

META = ("run_id", "wall_seconds", "device", "commit", "date", "config_json")


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


def _timed(fn: Callable[[dict], dict], config: dict) -> tuple[dict, float]:
    start = time.perf_counter()
    metrics = fn(dict(config))
    if not isinstance(metrics, Mapping):
        raise TypeError(f"the sweep function must return a dict of metrics, got {type(metrics).__name__}")
    return dict(metrics), time.perf_counter() - start


def run_sweep(
    configs: Sequence[Mapping],
    fn: Callable[[dict], dict],
    path: Path,
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "sweep",
) -> list[dict]:
    """Run every config not yet in ``path``; return the rows of ``configs`` (finished ones) in order."""
    configs = [dict(c) for c in configs]
    ids = [run_id(c) for c in configs]
    if len(set(ids)) != len(ids):
        raise ValueError("configs must be distinct: the sweep holds the same config twice")
    done = {r["run_id"] for r in read_results(path)}
    pending = [(i, c) for i, c in zip(ids, configs) if i not in done]
    bar = tqdm(total=len(configs), initial=len(configs) - len(pending), desc=desc, disable=not progress)

    def record(rid: str, config: dict, metrics: dict, seconds: float) -> None:
        clash = set(config) & (set(metrics) | set(META))
        if clash - {"device"}:
            raise ValueError(f"metric names {sorted(clash)} clash with config keys")
        append_row(path, {"run_id": rid, **config, **metrics, "wall_seconds": round(seconds, 3),
                          "device": metrics.get("device", device_name()), "commit": git_commit(),
                          "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                          "config_json": json.dumps(config, sort_keys=True, default=str)}, unique=True)
        bar.update(1)

    if workers <= 1:
        for rid, config in pending:
            record(rid, config, *_timed(fn, config))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_timed, fn, config): (rid, config) for rid, config in pending}
            for future in as_completed(futures):
                rid, config = futures[future]
                record(rid, config, *future.result())
    bar.close()
    rows = {r["run_id"]: r for r in read_results(path)}
    return [rows[i] for i in ids if i in rows]
