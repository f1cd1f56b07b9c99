"""GPU benchmark of the Triton scan kernels against the torch paths, mamba_ssm and fla.

    python -m dsflib.kernels.bench [--kinds diag chunked gla] [--dtype bf16] [--length 4096] [--out FILE.csv]

Three problems of fixed size (``SHAPES``):

* ``diag`` - S6 / Mamba-1: B=8, L=4096, d=H=2048 channels, n=dk=16, dv=1, per-key decays; the
  general diagonal kernel on the expanded layout (``kernel``), S6's compact kernel on u, delta, A,
  B, C (``kernel_s6_compact``, nothing expanded), and ``mamba_ssm.selective_scan_fn`` (the same
  compact layout) when importable.
* ``chunked`` - scalar decay per head: B=8, H=16, L=4096, dk=dv=128; compared with
  ``fla.ops.simple_gla.chunk_simple_gla`` when importable.
* ``gla`` - per-key decays with a matrix state: B=4, H=16, L=4096, dk=dv=128; compared with
  ``fla.ops.gla.chunk_gla`` when importable (fla refuses its backward on Triton < 3.7.1 on Hopper:
  recorded as that method's error).

Every method is timed forward and forward+backward with ``triton.testing.do_bench`` (median), after
a correctness gate: its output is compared with the kernel's, and the kernel's with the fp32
step-by-step recurrence on a slice. A method that runs out of memory or fails is recorded as such.
Each row also reports the wall time of the method's first call (``first_call_s``: compilation, plus
autotuning when ``DSFLIB_KERNELS_AUTOTUNE=1``; the kernels default to one heuristic configuration),
achieved bytes/s on the method's minimal HBM traffic and two floors: this layout's
(bytes / ``--bandwidth``) and the reference H100 floor ``NOTE_FLOORS_US`` for the problem (bf16
I/O, compact layout). Both floors are arithmetic from assumed hardware rates, not measurements.
On a machine without CUDA the script exits with status 2: GPU speed cannot be measured there.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path

import torch

# Reference H100 floors in microseconds: arithmetic, not measurements (bf16 I/O; assumed rates:
# 3.0 TB/s of HBM bandwidth, 67 TFLOP/s on the FP32 cores, ~3.9e12 exp2/s on the special function
# units, i.e. 16 results per SM per clock on 132 SMs at about 1.85 GHz):
# diag: 404.9 MB -> 135 us HBM, but ~275 us of exp2 on the SFU; backward minimum 675.5 MB -> 225 us.
# chunked: 536.9 MB -> 179 us forward, backward 939.5 MB -> 313 us, fwd+bwd ~ 0.49 ms.
NOTE_FLOORS_US = {
    ("diag", "fwd"): 280.0,  # max(HBM 135, FP32 ALU 144, SFU exp ~275), rounded up
    ("diag", "fwd+bwd"): 280.0 + 225.0,
    ("chunked", "fwd"): 179.0,
    ("chunked", "fwd+bwd"): 179.0 + 313.0,
}
SHAPES = {
    "diag": dict(batch=8, length=4096, heads=2048, dk=16, dv=1),
    "chunked": dict(batch=8, length=4096, heads=16, dk=128, dv=128),
    "gla": dict(batch=4, length=4096, heads=16, dk=128, dv=128),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
REFUSAL = ("dsflib.kernels.bench: no CUDA device is available, so GPU speed cannot be measured here. "
           "(The Triton CPU interpreter runs the kernels for testing only; its timings say nothing about a GPU.) "
           "Run this on a machine with an NVIDIA GPU.")


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return "absent"


def _size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def dsf_bytes(kind: str, shape: dict, dtype: torch.dtype, pass_: str) -> int:
    """Minimal HBM bytes of the dsflib layout: every input read once, every output written once."""
    b, L, H, dk, dv = (shape[n] for n in ("batch", "length", "heads", "dk", "dv"))
    s = _size(dtype)
    la = b * L * H * (1 if kind == "chunked" else dk)  # per-key decays for diag (S6) and gla
    fwd = s * (2 * b * L * H * dk + 2 * b * L * H * dv + la)  # q, k, v, log_a in; y out
    # backward: q, k, v, dy, log_a in; dq, dk, dv, dlog_a out (4 dk-, 3 dv-sized tensors, 2 log_a)
    bwd = s * (4 * b * L * H * dk + 3 * b * L * H * dv + 2 * la)
    return fwd if pass_ == "fwd" else fwd + bwd


def mamba_bytes(shape: dict, dtype: torch.dtype, pass_: str) -> int:
    """Minimal HBM bytes of mamba's compact layout: u, delta, B, C, A in, y out."""
    b, L, d, n = (shape[x] for x in ("batch", "length", "heads", "dk"))
    s = _size(dtype)
    fwd = s * b * L * (3 * d + 2 * n) + 4 * d * n
    bwd = s * b * L * (5 * d + 4 * n) + 8 * d * n
    return fwd if pass_ == "fwd" else fwd + bwd


def make_inputs(kind: str, shape: dict, dtype: torch.dtype, device="cuda", seed=0):
    """dsflib-layout inputs (q, k, v, log_a) and the other layouts of the same problem by flavour:
    for ``diag``, ``{"mamba": (u, delta, A, B, C) as (batch, d, L), "compact": the same as (batch, L, d)}``
    (S6's compact inputs, which q, k, v, log_a expand); empty for the others."""
    g = torch.Generator(device=device).manual_seed(seed)
    b, L, H, dk, dv = (shape[n] for n in ("batch", "length", "heads", "dk", "dv"))
    if kind in ("chunked", "gla"):
        q = torch.randn(b, L, H, dk, device=device, generator=g).to(dtype)
        k = (torch.randn(b, L, H, dk, device=device, generator=g) / dk**0.5).to(dtype)
        v = torch.randn(b, L, H, dv, device=device, generator=g).to(dtype)
        decay_shape = (b, L, H) if kind == "chunked" else (b, L, H, dk)
        log_a = (-0.1 * torch.rand(decay_shape, device=device, generator=g)).to(dtype)
        return (q, k, v, log_a), {}
    # S6: h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t . h_t, per channel h (dk = n states)
    u = torch.randn(b, H, L, device=device, generator=g)
    delta = 0.01 + 0.1 * torch.rand(b, H, L, device=device, generator=g)
    A = -torch.rand(H, dk, device=device, generator=g) - 0.1
    Bm = torch.randn(b, dk, L, device=device, generator=g)
    Cm = torch.randn(b, dk, L, device=device, generator=g)
    q = Cm.transpose(1, 2)[:, :, None, :].expand(b, L, H, dk).to(dtype).contiguous()
    k = (delta.transpose(1, 2)[..., None] * Bm.transpose(1, 2)[:, :, None, :]).to(dtype)
    v = u.transpose(1, 2)[..., None].to(dtype).contiguous()
    log_a = (delta.transpose(1, 2)[..., None] * A).to(dtype)
    mamba = (u.to(dtype), delta.to(dtype), A, Bm.to(dtype), Cm.to(dtype))
    compact = tuple(t.transpose(1, 2).contiguous() if t.ndim == 3 else t for t in mamba)
    return (q, k, v, log_a), {"mamba": mamba, "compact": compact}


def methods(kind: str):
    """name -> (function of its flavour's inputs returning y as (b, L, H, dv), flavour). The flavour
    names the inputs (``"dsf"``: q, k, v, log_a; ``"mamba"``/``"compact"``: see :func:`make_inputs`)
    and the bytes the method must move at least."""
    from dsflib.scan import linear_scan_chunked, linear_scan_parallel, linear_scan_recurrent

    from .api import linear_scan

    out = {"kernel": (lambda x: linear_scan(*x), "dsf"),
           "torch_chunked": (lambda x: linear_scan_chunked(*x), "dsf")}
    if kind == "diag":
        from .s6_scan import s6_scan

        out["kernel_s6_compact"] = (lambda m: s6_scan(*m)[..., None], "compact")
        out["torch_parallel"] = (lambda x: linear_scan_parallel(*x), "dsf")
    if kind != "gla":  # the step loop over a 128 x 128 state per head would take minutes per call
        out["torch_loop"] = (lambda x: linear_scan_recurrent(*x), "dsf")
    if kind == "diag":
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

            out["mamba_ssm.selective_scan_fn"] = (lambda m: selective_scan_fn(*m).transpose(1, 2)[..., None], "mamba")
        except Exception:  # noqa: BLE001
            pass
    elif kind == "chunked":
        try:
            from fla.ops.simple_gla import chunk_simple_gla

            out["fla.chunk_simple_gla"] = (
                lambda x: chunk_simple_gla(x[0], x[1], x[2], x[3].float(), scale=1.0)[0], "dsf")
        except Exception:  # noqa: BLE001
            pass
    else:
        try:
            from fla.ops.gla import chunk_gla

            out["fla.chunk_gla"] = (lambda x: chunk_gla(x[0], x[1], x[2], x[3].float(), scale=1.0)[0], "dsf")
        except Exception:  # noqa: BLE001
            pass
    return out


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item()


def _gate_kernel(kind, inputs, dtype) -> float:
    """Kernel vs the fp32 step-by-step recurrence on a slice (1 batch element, first 512 tokens, <= 64 heads)."""
    from dsflib.scan import linear_scan_recurrent

    from .api import linear_scan

    sl = [t[:1, :512, :64].contiguous() for t in inputs]
    y = linear_scan(*sl)
    ref = linear_scan_recurrent(*(t.float() for t in sl))
    return _rel_err(y, ref)


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:  # never touch torch.cuda for CPU tensors (the interpreter runs the tests)
        torch.cuda.synchronize(x.device)


def _timings(fn, args, dy_shape, dtype, do_bench, warmup, rep) -> dict:
    """Median ms of the forward and of forward+backward of one method (``do_bench``) on ``args``."""
    leaves = [t.detach().clone().requires_grad_() for t in args]
    dy = torch.randn(dy_shape, device=args[0].device, dtype=dtype)  # y is (b, L, H, dv) for all

    def forward():
        with torch.no_grad():
            fn(args)

    def forward_backward():
        fn(leaves).backward(dy)

    return {"fwd": do_bench(forward, warmup=warmup, rep=rep, return_mode="median"),
            "fwd+bwd": do_bench(forward_backward, warmup=warmup, rep=rep, grad_to_none=leaves,
                                return_mode="median")}


def _bench_kind(kind, shape, dtype, common, bandwidth, warmup, rep, only, do_bench) -> list[dict]:
    rows = []
    tol = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    inputs, others = make_inputs(kind, shape, dtype)
    y_kernel = None
    for name, (fn, flavour) in methods(kind).items():
        if only and name not in only:
            continue
        row = dict(kind=kind, method=name, shape=" ".join(f"{k}={v}" for k, v in shape.items()),
                   dtype=str(dtype).replace("torch.", ""), **common)
        try:
            # correctness gate: the kernel against the fp32 recurrence, every other method against the kernel
            args = inputs if flavour == "dsf" else others[flavour]
            # the first calls compile (and autotune, when asked): timed apart as the compile latency
            start = time.perf_counter()
            with torch.no_grad():
                y = fn(args)
            _sync(args[0])
            first_fwd_s = time.perf_counter() - start
            leaves = [t.detach().clone().requires_grad_() for t in args]
            start = time.perf_counter()
            fn(leaves).backward(torch.ones_like(y))
            _sync(args[0])
            first_fwd_bwd_s = time.perf_counter() - start
            del leaves
            if name == "kernel":
                err = _gate_kernel(kind, inputs, dtype)
                y_kernel = y
            else:
                err = _rel_err(y, y_kernel) if y_kernel is not None else float("nan")
            del y
            times = _timings(fn, args, inputs[2].shape, dtype, do_bench, warmup, rep)
            for pass_, ms in times.items():
                nbytes = dsf_bytes(kind, shape, dtype, pass_) if flavour == "dsf" else mamba_bytes(shape, dtype, pass_)
                first = first_fwd_s if pass_ == "fwd" else first_fwd_bwd_s
                rows.append(dict(row, pass_=pass_, ms=ms, first_call_s=first, bytes=nbytes, GBps=nbytes / ms / 1e6,
                                 layout_floor_us=dsf_bytes(kind, shape, dtype, pass_) / bandwidth * 1e6,
                                 note_floor_us=NOTE_FLOORS_US.get((kind, pass_), float("nan")), max_rel_err=err,
                                 status="ok" if err <= tol else "MISMATCH"))
        except torch.OutOfMemoryError:
            rows.append(dict(row, pass_="-", ms=float("nan"), status="out of memory"))
        except Exception as exc:  # noqa: BLE001 - a failing baseline must not stop the benchmark
            rows.append(dict(row, pass_="-", ms=float("nan"), status=f"error: {type(exc).__name__}: {exc}"[:200]))
        torch.cuda.empty_cache()
    return rows


def run(kinds, dtype, length=None, batch=None, bandwidth=3.0e12, warmup=25, rep=100, only=None,
        out: Path | None = None) -> list[dict]:
    """Gate and time every method of every kind; one row per (kind, method, pass). With ``out`` the
    rows so far are written there (atomically) after each kind."""
    import triton
    from triton.testing import do_bench

    from dsflib.env import git_commit

    common = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                  cuda=torch.version.cuda, mamba_ssm=_version("mamba_ssm"), fla=_version("fla"),
                  date=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), commit=git_commit(),
                  fp32_matmul_precision=torch.get_float32_matmul_precision())
    rows = []
    for kind in kinds:
        shape = dict(SHAPES[kind])
        if length:
            shape["length"] = length
        if batch:
            shape["batch"] = batch
        rows += _bench_kind(kind, shape, dtype, common, bandwidth, warmup, rep, only, do_bench)
        torch.cuda.empty_cache()
        if out is not None:  # after each problem, so a killed run keeps what it finished
            write_csv(rows, out)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    """Write ``rows`` atomically (temporary file + rename); columns are the union of the rows' keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsflib.kernels.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=sorted(SHAPES), default=["diag", "chunked", "gla"])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--length", type=int, default=None, help="override L (default 4096)")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size (default 8)")
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods")
    parser.add_argument("--bandwidth", type=float, default=3.0e12, help="HBM bytes/s for the layout floor")
    parser.add_argument("--warmup", type=int, default=25, help="do_bench warm-up [ms]")
    parser.add_argument("--rep", type=int, default=100, help="do_bench repetition time [ms]")
    parser.add_argument("--out", type=Path, default=Path("book/results/kernels_bench.csv"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(REFUSAL, file=sys.stderr)
        return 2
    if importlib.util.find_spec("triton") is None:
        print("dsflib.kernels.bench: triton is not installed, so the kernels cannot run.", file=sys.stderr)
        return 2
    from . import interpret_mode
    if interpret_mode():
        print("dsflib.kernels.bench: TRITON_INTERPRET is set; unset it to time the compiled kernels.", file=sys.stderr)
        return 2
    rows = run(args.kinds, DTYPES[args.dtype], args.length, args.batch, args.bandwidth, args.warmup, args.rep,
               args.methods, out=args.out)
    print(f"device: {rows[0]['device']}, torch {rows[0]['torch']}, triton {rows[0]['triton']}, "
          f"mamba_ssm {rows[0]['mamba_ssm']}, fla {rows[0]['fla']}")
    print(f"{'kind':8} {'method':28} {'pass':8} {'ms':>9} {'first s':>8} {'GB/s':>8} {'floor(layout) us':>17} "
          f"{'floor(H100) us':>15} {'err':>9}  status")
    for r in rows:
        if r["pass_"] == "-":
            print(f"{r['kind']:8} {r['method']:28} {'-':8} {'-':>9} {'-':>8} {'-':>8} {'-':>17} {'-':>15} {'-':>9}  "
                  f"{r['status']}")
            continue
        print(f"{r['kind']:8} {r['method']:28} {r['pass_']:8} {r['ms']:9.3f} {r['first_call_s']:8.1f} "
              f"{r['GBps']:8.1f} {r['layout_floor_us']:17.1f} {r['note_floor_us']:15.1f} {r['max_rel_err']:9.2e}  "
              f"{r['status']}")
    print(f"rows written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
