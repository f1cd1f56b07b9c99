"""Training-step benchmark: ms per step (forward, backward, optimizer) and peak memory per model.

    python -m dsflib.train_bench [--shape ci|gpu] [--models softmax s6 ...] [--steps 20] [--amp bf16]
                                 [--compile] [--out FILE.csv]

Shapes (:data:`SHAPES`): ``ci`` is the MQAR ``ci`` profile's training step (L=16, KV=4, vocabulary
128, d=64, n=8, batch 64) and runs anywhere; ``gpu`` is the MQAR step at the paper's longest task
(L=512, KV=64, vocabulary 8192, d=128, n=64, batch 64) and needs CUDA. Each model trains ``--steps``
steps through :func:`dsflib.train.train_step` (the trainer's own step) after ``--warmup`` steps that
are not timed (they include compilation); the median step time is reported, with a device
synchronisation per step so the time is the step's, not its launch's. This is a benchmark, not a
test: its numbers depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path

import torch

__all__ = ["SHAPES", "bench_model", "read_step_times", "main"]

SHAPES = {
    "ci": dict(seq_len=16, num_kv_pairs=4, vocab_size=128, d_model=64, n=8, batch_size=64),
    "gpu": dict(seq_len=512, num_kv_pairs=64, vocab_size=8192, d_model=128, n=64, batch_size=64),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(model_name: str, shape: dict, device: torch.device, steps: int, warmup: int, amp: str | None = None,
                compile_model: bool = False) -> dict:
    """Median ms per training step of the MQAR network ``model_name`` at ``shape``; peak MiB on CUDA."""
    from .data.mqar import MQARConfig, generate_mqar
    from .experiments import mqar
    from .train import TrainConfig, adamw, train_step

    torch.manual_seed(0)
    n = 2 if model_name in mqar.QLSTM else shape["n"]
    model = mqar.build_model(model_name, shape["d_model"], n, shape["seq_len"], shape["vocab_size"]).to(device)
    config = TrainConfig(lr=1e-3, batch_size=shape["batch_size"], amp=amp, compile=compile_model, device=str(device))
    step_model = torch.compile(model) if compile_model else model
    optimizer = adamw(model, config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    data = generate_mqar(MQARConfig(shape["seq_len"], shape["num_kv_pairs"], shape["vocab_size"]),
                         shape["batch_size"] * (steps + warmup), 0)
    x, y = data.inputs.to(device), data.labels.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(steps + warmup):
        batch = slice(i * shape["batch_size"], (i + 1) * shape["batch_size"])
        _sync(device)
        start = time.perf_counter()
        train_step(step_model, x[batch], y[batch], optimizer, scheduler, config, model=model)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return dict(model=model_name, ms_per_step=1000 * statistics.median(times), peak_mib=peak,
                parameters=sum(p.numel() for p in model.parameters()))


def read_step_times(path: Path, *, shape: str = "gpu", amp: str = "fp32", compiled: bool = False) -> dict[str, dict]:
    """The stored step times of ``path`` (rows written by ``--out``) at ``shape``, ``amp`` and with or
    without ``--compile``: per model the latest row's ``ms_per_step`` with its ``device`` and ``date``;
    empty when the file does not exist."""
    from .sweep import read_results

    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
    times = {}
    for row in read_results(Path(path)):
        if row.get("shape") == shape and row.get("amp") == amp and row.get("compile", "0") == str(int(compiled)):
            times[row["model"]] = dict(ms_per_step=float(row["ms_per_step"]), device=row.get("device", ""),
                                       date=row.get("date", ""))
    return times


def main(argv=None) -> int:
    from .env import device_name, git_commit
    from .experiments import mqar
    from .sweep import append_row

    parser = argparse.ArgumentParser(prog="python -m dsflib.train_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None, help="default: gpu on CUDA, else ci")
    parser.add_argument("--models", nargs="+", choices=list(mqar.MODELS), default=list(mqar.MODELS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=["bf16"], default=None, help="bf16 autocast (fp32 master weights)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--out", type=Path, default=None, help="CSV file the rows are appended to")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    cuda = torch.cuda.is_available()
    shape_name = args.shape or ("gpu" if cuda else "ci")
    if shape_name == "gpu" and not cuda:
        print("dsflib.train_bench: --shape gpu needs a CUDA device; use --shape ci on a CPU", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if cuda else "cpu")
    info = dict(shape=shape_name, amp=args.amp or "fp32", compile=int(args.compile), device=device_name(device),
                torch=torch.__version__, commit=git_commit(),
                date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print(f"{SHAPES[shape_name]} on {info['device']}, {info['amp']}, compile={bool(args.compile)}")
    for name in args.models:
        row = bench_model(name, SHAPES[shape_name], device, args.steps, args.warmup, args.amp, args.compile)
        row |= info
        peak = "" if row["peak_mib"] != row["peak_mib"] else f", peak {row['peak_mib']:.0f} MiB"
        print(f"{name:22s} {row['ms_per_step']:8.2f} ms/step{peak}", flush=True)
        if args.out is not None:
            append_row(args.out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
