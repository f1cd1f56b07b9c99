"""CPU benchmark of the structured scan: the torch paths of :mod:`dsflib.scan` vs the per-step loop.

    python -m dsflib.bench [--lengths 256 512] [--repeats 3] [--out FILE.csv]

Four shapes at batch 8, one per family of models (see ``SHAPES``): matrix state with a scalar
decay per head (linear attention, SSD, RetNet, mLSTM), matrix state with per-key decays (GLA),
vector state with per-key decays (S6) and elementwise state (qLSTM, RG-LRU). Times are the
median wall time of ``--repeats`` runs after one warm-up, forward and forward+backward. Rows carry
device, torch version, commit and date; the CSV is written atomically.

A ``floor`` row (forward only) times :func:`state_floor`: the elementwise work of forming every
state ``S_t`` once with no recurrence at all. Any method that forms every state (the loop, the
prefix scan) costs at least that; where ``loop / floor`` is small, no such method can be much
faster than the loop. Chunked matmul forms avoid forming the states only for scalar decays.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .env import device_name, git_commit
from .scan import linear_scan, linear_scan_chunked, linear_scan_parallel, linear_scan_recurrent

SHAPES = {
    "ssd": dict(batch=8, heads=4, dk=32, dv=32, per_key=False),
    "gla": dict(batch=8, heads=4, dk=16, dv=32, per_key=True),
    "s6": dict(batch=8, heads=64, dk=16, dv=1, per_key=True),
    "qlstm": dict(batch=8, heads=256, dk=1, dv=1, per_key=True),
}
METHODS = {"loop": linear_scan_recurrent, "chunked": linear_scan_chunked, "parallel": linear_scan_parallel,
           "auto": linear_scan}


def scan_inputs(shape: dict, length: int, seed: int = 0):
    """Random ``(q, k, v, log_a)`` for one of :data:`SHAPES` at sequence length ``length``."""
    g = torch.Generator().manual_seed(seed)
    b, H, dk, dv = shape["batch"], shape["heads"], shape["dk"], shape["dv"]
    q = torch.randn(b, length, H, dk, generator=g)
    k = torch.randn(b, length, H, dk, generator=g) / dk**0.5
    v = torch.randn(b, length, H, dv, generator=g)
    log_a = -torch.rand((b, length, H, dk) if shape["per_key"] else (b, length, H), generator=g) * 0.1
    return q, k, v, log_a


def state_floor(q, k, v, log_a) -> torch.Tensor:
    """Form every state's update ``a_t * (k_t v_t^T) + k_t v_t^T`` and read it with ``q_t``, for all t at once.

    Not a scan (no state is carried): the timing is a lower bound on the arithmetic of any method
    that materializes all ``L`` states of shape ``(dk, dv)``.
    """
    a = log_a.exp() if log_a.ndim == k.ndim else log_a.exp()[..., None]
    update = k[..., :, None] * v[..., None, :]
    states = a[..., None] * update + update
    return (states * q[..., None]).sum(-2)


def time_call(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn()`` after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(lengths=(256, 512), repeats: int = 3) -> list[dict]:
    """Time every (shape, length, method, pass) and return the rows."""
    rows = []
    common = dict(device=device_name("cpu"), torch=torch.__version__, commit=git_commit(),
                  date=time.strftime("%Y-%m-%d", time.gmtime()))
    jobs = [(s, L, m) for s in SHAPES for L in lengths for m in METHODS]
    for shape_name, length, method in tqdm(jobs, desc="scan benchmark"):
        inputs = scan_inputs(SHAPES[shape_name], length)
        fn = METHODS[method]

        def forward():
            with torch.no_grad():
                fn(*inputs)

        leaves = [t.clone().requires_grad_() for t in inputs]

        def forward_backward():
            fn(*leaves).sum().backward()

        for pass_name, call in (("fwd", forward), ("fwd+bwd", forward_backward)):
            rows.append(dict(shape=shape_name, length=length, method=method, pass_=pass_name,
                             seconds=time_call(call, repeats), **common))
        if method == "loop":
            with torch.no_grad():
                seconds = time_call(lambda: state_floor(*inputs), repeats)
            rows.append(dict(shape=shape_name, length=length, method="floor", pass_="fwd", seconds=seconds, **common))
    return rows


def speedups(rows: list[dict]) -> list[dict]:
    """Times of every method and loop / auto (the path ``linear_scan`` picks) per (shape, length, pass).

    Forward rows also carry ``floor`` and ``loop_over_floor`` (NaN for fwd+bwd: no floor is timed there).
    """
    index = {(r["shape"], r["length"], r["pass_"], r["method"]): r["seconds"] for r in rows}
    keys = dict.fromkeys((s, L, p) for s, L, p, m in index if m != "floor")
    table = []
    for s, L, p in keys:
        floor = index.get((s, L, p, "floor"), float("nan"))
        table.append(dict(shape=s, length=L, pass_=p, **{m: index[(s, L, p, m)] for m in METHODS},
                          speedup=index[(s, L, p, "loop")] / index[(s, L, p, "auto")], floor=floor,
                          loop_over_floor=index[(s, L, p, "loop")] / floor))
    return table


def write_csv(rows: list[dict], path: Path) -> None:
    """Write ``rows`` to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsflib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("_build/bench/scan_cpu.csv"))
    args = parser.parse_args(argv)
    rows = run(args.lengths, args.repeats)
    write_csv(rows, args.out)
    print(f"device: {rows[0]['device']}, torch {rows[0]['torch']}, commit {rows[0]['commit']}")
    print(f"{'shape':8} {'L':>5} {'pass':8} " + " ".join(f"{m + ' [ms]':>13}" for m in METHODS)
          + "  loop/auto   floor [ms]  loop/floor")
    for r in speedups(rows):
        times = " ".join(f"{1e3 * r[m]:13.2f}" for m in METHODS)
        floor = f"{1e3 * r['floor']:12.2f} {r['loop_over_floor']:10.1f}x" if r["floor"] == r["floor"] else ""
        print(f"{r['shape']:8} {r['length']:5d} {r['pass_']:8} {times} {r['speedup']:9.1f}x {floor}")
    print(f"rows written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
