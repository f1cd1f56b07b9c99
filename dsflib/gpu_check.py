"""One short check that the experiments are sound on a GPU: kernels against fp64, then a few
training steps of every MQAR model with non-finite checks, each step timed and written as it finishes.

    python -m dsflib.gpu_check [--steps 50] [--out FILE.csv]     # on a CUDA machine (~2 min)
    python -m dsflib.gpu_check --dry [--out FILE.csv]            # tiny shapes on the CPU (tests, CI)

Parts, each in its own ``try`` so one failure does not hide the others:

1. ``kernel`` — the scalar-decay (chunked), per-key-decay (diag) and GLA Triton kernels, forward
   and gradients against the fp64 step-by-step recurrence, at a ragged sequence length, calling
   the backward three times: the default single config, the first autotuned call (on a GPU, where
   an in-place buffer used to compound, see ``kernels/_common.Launcher``) and the tuned config; and
   S6's compact scan kernel (``kernels/s6_scan.py``) against the fp64 selective scan the same way.
2. ``train`` — every model of :data:`dsflib.experiments.mqar.MODELS` as the MQAR network at
   (L=512, KV=64, vocabulary 8192, d=128, n=64, batch 64) on a GPU, trained ``--steps`` AdamW steps;
   every loss and every parameter must stay finite; ms per step (after the first, which compiles)
   and peak memory are recorded.

Rows (part, name, status, detail, ms_per_step, peak_mib, device, torch, triton, commit, date) are
appended to ``--out`` as each check ends (atomic per row, see :func:`dsflib.sweep.append_row`). Exit
status 0 when every check passed, 1 when one failed; 2 without CUDA unless ``--dry``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

__all__ = ["SHAPES", "check_kernels", "check_training", "main"]

# name -> (sizes on a GPU, sizes in --dry mode)
SHAPES = {
    "kernel_chunked": (dict(b=2, L=515, H=4, dk=64, dv=64), dict(b=1, L=37, H=2, dk=20, dv=24)),
    "kernel_diag": (dict(b=2, L=515, H=64, dk=64, dv=1), dict(b=1, L=29, H=3, dk=5, dv=1)),
    "kernel_gla": (dict(b=2, L=515, H=4, dk=64, dv=64), dict(b=1, L=37, H=2, dk=20, dv=24)),
    "kernel_s6": (dict(b=2, L=515, d=256, n=16), dict(b=1, L=23, d=5, n=3)),
    "train": (dict(seq_len=512, num_kv_pairs=64, vocab_size=8192, d_model=128, n=64, batch_size=64),
              dict(seq_len=16, num_kv_pairs=4, vocab_size=64, d_model=16, n=4, batch_size=4)),
}
COLUMNS = ["part", "name", "status", "detail", "ms_per_step", "peak_mib", "device", "torch", "triton", "commit",
           "date"]


def _versions() -> dict:
    from .env import device_name, git_commit

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "absent"
    return dict(device=device_name(), torch=torch.__version__, triton=triton_version, commit=git_commit(),
                date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1.0)).item()


def check_kernels(dry: bool, device: torch.device) -> list[dict]:
    """Kernel vs fp64 recurrence (values and gradients), the backward run twice; one row per kernel."""
    from .kernels.api import linear_scan
    from .scan import linear_scan_recurrent

    rows = []
    for name, per_key in (("kernel_chunked", False), ("kernel_diag", True), ("kernel_gla", True)):
        s = SHAPES[name][1 if dry else 0]
        g = torch.Generator().manual_seed(0)
        b, L, H, dk, dv = s["b"], s["L"], s["H"], s["dk"], s["dv"]
        ref_in = [torch.randn(b, L, H, dk, generator=g, dtype=torch.float64),
                  torch.randn(b, L, H, dk, generator=g, dtype=torch.float64) / dk**0.5,
                  torch.randn(b, L, H, dv, generator=g, dtype=torch.float64),
                  -torch.rand((b, L, H, dk) if per_key else (b, L, H), generator=g, dtype=torch.float64)]
        weight = torch.randn(b, L, H, dv, generator=g, dtype=torch.float64)

        def grads(fn, dtype, dev):
            leaves = [t.detach().to(dev, dtype).clone().requires_grad_() for t in ref_in]
            y = fn(*leaves)
            (y.double() * weight.to(dev)).sum().backward()
            return [y.detach().cpu()] + [t.grad.detach().cpu() for t in leaves]

        ref = grads(linear_scan_recurrent, torch.float64, "cpu")
        errors = []
        for autotune in MODES:  # default config, then autotuning, then the tuned config: all == fp64
            with _env("DSFLIB_KERNELS_AUTOTUNE", autotune):
                got = grads(linear_scan, torch.float32, device)
            finite = all(bool(torch.isfinite(t).all()) for t in got)
            errors.append(max(_rel(a, r) for a, r in zip(got, ref)) if finite else math.inf)
        rows.append(_kernel_row(name, s, errors))
    rows.append(_check_s6_compact(dry, device))
    return rows


# the kernel checks run three calls: the default single config, the first autotuned call (which
# benchmarks every candidate on the same buffers: where an in-place buffer used to compound, see
# kernels/_common.Launcher) and the tuned config
MODES = ("0", "1", "1")


class _env:
    """Set one environment variable inside a ``with`` block, restoring it afterwards."""

    def __init__(self, key: str, value: str):
        self.key, self.value = key, value

    def __enter__(self):
        self.old = os.environ.get(self.key)
        os.environ[self.key] = self.value

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop(self.key, None)
        else:
            os.environ[self.key] = self.old


def _kernel_row(name: str, shape: dict, errors: list[float], tol: float = 1e-4) -> dict:
    ok = max(errors) <= tol
    calls = ", ".join(f"call {i + 1} ({'autotune' if m == '1' else 'default'}) {e:.2e}"
                      for i, (m, e) in enumerate(zip(MODES, errors)))
    return dict(part="kernel", name=name, status="ok" if ok else "FAILED",
                detail=f"{shape}; max relative error of y and grads vs fp64: {calls} (tolerance {tol:.0e})",
                ms_per_step="", peak_mib="")


def _check_s6_compact(dry: bool, device: torch.device) -> dict:
    """S6's compact scan kernel (u, delta, A, B, C; nothing expanded) vs the fp64 selective scan."""
    from .kernels.s6_scan import s6_scan
    from .scan import selective_scan

    s = SHAPES["kernel_s6"][1 if dry else 0]
    b, L, d, n = s["b"], s["L"], s["d"], s["n"]
    g = torch.Generator().manual_seed(0)
    ref_in = [torch.randn(b, L, d, generator=g, dtype=torch.float64),
              torch.nn.functional.softplus(torch.randn(b, L, d, generator=g, dtype=torch.float64)),
              -torch.rand(d, n, generator=g, dtype=torch.float64) * 2,
              torch.randn(b, L, n, generator=g, dtype=torch.float64),
              torch.randn(b, L, n, generator=g, dtype=torch.float64)]
    weight = torch.randn(b, L, d, generator=g, dtype=torch.float64)

    def grads(fn, dtype, dev):
        leaves = [t.detach().to(dev, dtype).clone().requires_grad_() for t in ref_in]
        y = fn(*leaves)
        (y.double() * weight.to(dev)).sum().backward()
        return [y.detach().cpu()] + [t.grad.detach().cpu() for t in leaves]

    def torch_s6(u, delta, A, B, C):
        return selective_scan(C, B, delta * u, delta[..., None] * A)

    ref = grads(torch_s6, torch.float64, "cpu")
    errors = []
    for autotune in MODES:
        with _env("DSFLIB_KERNELS_AUTOTUNE", autotune):
            got = grads(s6_scan, torch.float32, device)
        finite = all(bool(torch.isfinite(t).all()) for t in got)
        errors.append(max(_rel(a, r) for a, r in zip(got, ref)) if finite else math.inf)
    return _kernel_row("kernel_s6_compact", s, errors)


def check_training(dry: bool, device: torch.device, steps: int, models=None) -> list[dict]:
    """``steps`` AdamW steps of each MQAR model; every loss and parameter finite; one row per model."""
    from .data.mqar import MQARConfig, generate_mqar
    from .experiments import mqar
    from .train import TrainConfig, adamw, train_step

    s = SHAPES["train"][1 if dry else 0]
    data = generate_mqar(MQARConfig(s["seq_len"], s["num_kv_pairs"], s["vocab_size"]), s["batch_size"] * steps, 0)
    x_all, y_all = data.inputs.to(device), data.labels.to(device)
    rows = []
    for model_name in models or list(mqar.MODELS):
        torch.manual_seed(0)
        detail, status, ms, peak = "", "ok", "", ""
        try:
            n = 2 if model_name in mqar.QLSTM else s["n"]
            model = mqar.build_model(model_name, s["d_model"], n, s["seq_len"], s["vocab_size"]).to(device)
            config = TrainConfig(lr=1e-3, weight_decay=0.1, grad_clip=1.0, batch_size=s["batch_size"])
            optimizer = adamw(model, config.lr, config.weight_decay)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            losses, times = [], []
            for step in range(steps):
                start = time.perf_counter()
                idx = slice(step * s["batch_size"], (step + 1) * s["batch_size"])
                losses.append(train_step(model, x_all[idx], y_all[idx], optimizer, scheduler, config))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
            losses = torch.stack(losses).cpu()
            bad_params = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
            if not torch.isfinite(losses).all() or bad_params:
                first = int((~torch.isfinite(losses)).nonzero()[0]) if not torch.isfinite(losses).all() else None
                status = "FAILED"
                detail = f"non-finite loss at step {first}; " if first is not None else ""
                detail += f"non-finite parameters: {bad_params[:5]}" if bad_params else ""
            else:
                detail = f"loss {losses[0]:.3f} -> {losses[-1]:.3f} over {steps} steps"
            timed = times[1:] or times
            ms = f"{1000 * sorted(timed)[len(timed) // 2]:.2f}"
            if device.type == "cuda":
                peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
        except Exception as exc:  # noqa: BLE001 - record and go on with the next model
            status, detail = "FAILED", f"{type(exc).__name__}: {exc}"[:500]
            traceback.print_exc()
        rows.append(dict(part="train", name=model_name, status=status, detail=f"{s}; {detail}", ms_per_step=ms,
                         peak_mib=peak))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsflib.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="tiny shapes on the CPU (kernels under TRITON_INTERPRET=1)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per model (default 50, dry 3)")
    parser.add_argument("--out", type=Path, default=None, help="CSV file the rows are appended to")
    parser.add_argument("--parts", nargs="+", choices=["kernel", "train"], default=["kernel", "train"])
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if not args.dry and not torch.cuda.is_available():
        print("dsflib.gpu_check: no CUDA device is available; run it on a GPU machine, or with --dry for the tiny "
              "CPU version", file=sys.stderr)
        return 2
    if args.dry:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    device = torch.device("cpu" if args.dry else "cuda")
    steps = args.steps or (3 if args.dry else 50)
    info = _versions()
    failed = False
    from .sweep import append_row

    for part in args.parts:
        start = time.perf_counter()
        try:
            rows = check_kernels(args.dry, device) if part == "kernel" else check_training(args.dry, device, steps)
        except Exception as exc:  # noqa: BLE001 - e.g. Triton missing: one FAILED row for the part
            traceback.print_exc()
            rows = [dict(part=part, name="(all)", status="FAILED", detail=f"{type(exc).__name__}: {exc}"[:500],
                         ms_per_step="", peak_mib="")]
        for row in rows:
            row |= info
            failed |= row["status"] != "ok"
            print(f"[{row['part']}] {row['name']}: {row['status']} — {row['detail']}"
                  + (f" ({row['ms_per_step']} ms/step)" if row["ms_per_step"] else ""), flush=True)
            if args.out is not None:
                append_row(args.out, {c: row[c] for c in COLUMNS})
        print(f"[{part}] {time.perf_counter() - start:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
