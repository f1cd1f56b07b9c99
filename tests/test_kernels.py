"""Triton kernels of dsflib.kernels == dsflib's torch paths == the fp64 step-by-step recurrence.

Runs under the Triton CPU interpreter (tests/conftest.py sets TRITON_INTERPRET=1) on tiny ragged
shapes: L not a multiple of the chunk (16 there), dk/dv/H not multiples of the blocks (16 for the
chunked kernel, 2 heads for the diagonal one). With TRITON_INTERPRET=0 on a CUDA machine the same
tests run on the GPU. Every kernel output is NaN-poisoned before the kernels write it.
"""
import os

import pytest
import torch

triton = pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from dsflib import kernels  # noqa: E402
from dsflib.kernels import _common  # noqa: E402
from dsflib.kernels.api import linear_scan  # noqa: E402
from dsflib.scan import linear_scan as dsf_linear_scan  # noqa: E402
from dsflib.scan import linear_scan_chunked, linear_scan_parallel, linear_scan_recurrent  # noqa: E402

INTERPRET = kernels.interpret_mode()
if not INTERPRET and not torch.cuda.is_available():
    pytest.skip("TRITON_INTERPRET is off and there is no CUDA device", allow_module_level=True)
DEVICE = "cpu" if INTERPRET else "cuda"
F64 = torch.float64
NAMES = ["q", "k", "v", "log_a", "initial_state"]


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("DSFLIB_KERNELS_POISON", "1")  # unwritten outputs would show up as NaN
    monkeypatch.setenv("DSFLIB_KERNELS_AUTOTUNE", "0")  # single-config mode on a GPU too


def _inputs(b, L, H, dk, dv, per_key, decay=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, L, H, dk, generator=g, dtype=F64)
    k = torch.randn(b, L, H, dk, generator=g, dtype=F64) / dk**0.5
    v = torch.randn(b, L, H, dv, generator=g, dtype=F64)
    log_a = -decay * torch.rand((b, L, H, dk) if per_key else (b, L, H), generator=g, dtype=F64)
    h0 = torch.randn(b, H, dk, dv, generator=g, dtype=F64)
    wy = torch.randn(b, L, H, dv, generator=g, dtype=F64)  # loss weights for y and the final state
    ws = torch.randn(b, H, dk, dv, generator=g, dtype=F64)
    return [q, k, v, log_a, h0], wy, ws


def _run(fn, tensors, wy, ws, dtype, device, with_h0=True, final=True):
    """Output, final state and gradients of sum(wy * y) + sum(ws * S_L) for ``fn``, as fp64 on the CPU."""
    leaves = [t.detach().to(device=device, dtype=dtype).clone().requires_grad_() for t in tensors]
    if not with_h0:
        leaves[4] = None
    out = fn(*leaves[:4], initial_state=leaves[4], return_final_state=final)
    y, state = out if final else (out, None)
    loss = (y.double() * wy.to(device)).sum()
    if final:
        loss = loss + (state.double() * ws.to(device)).sum()
    loss.backward()
    cpu = lambda t: None if t is None else t.detach().to("cpu", F64)  # noqa: E731
    return dict(y=cpu(y), state=cpu(state), **{n: cpu(t.grad) if t is not None else None
                                               for n, t in zip(NAMES, leaves, strict=True)}), y.dtype


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


def _compare(got, ref, tol, what):
    errors = {}
    for name, r in ref.items():
        if r is None:
            assert got[name] is None, f"{what}: {name} should be None"
            continue
        assert got[name].shape == r.shape, (what, name)
        assert torch.isfinite(got[name]).all(), f"{what}: {name} has non-finite entries (unwritten output?)"
        errors[name] = _rel(got[name], r)
        assert errors[name] <= tol, f"{what}: max error of {name} {errors[name]:.2e} > {tol:.0e}"
    return errors


def _reference(tensors, wy, ws, with_h0=True, final=True):
    return _run(linear_scan_recurrent, tensors, wy, ws, F64, "cpu", with_h0, final)[0]


SCALAR_SHAPES = [  # (b, L, H, dk, dv): ragged L (chunk 16) and ragged dk/dv (blocks of 16)
    (2, 37, 2, 20, 24),
    (1, 20, 2, 8, 5),
    (1, 32, 1, 16, 16),  # exact multiples
]
DIAG_SHAPES = [  # (b, L, H, dk): ragged H (blocks of 2 heads), dk not a power of two
    (2, 29, 3, 5),
    (1, 23, 5, 16),
]


@pytest.mark.parametrize("shape", SCALAR_SHAPES)
@pytest.mark.parametrize("with_h0", [True, False])
def test_chunked_kernel_equals_torch_and_fp64(shape, with_h0):
    tensors, wy, ws = _inputs(*shape, per_key=False, seed=sum(shape))
    ref = _reference(tensors, wy, ws, with_h0)
    got, dtype = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE, with_h0)
    assert dtype == torch.float32
    err = _compare(got, ref, 2e-5, "kernel vs fp64 recurrent")
    torch_fp32, _ = _run(lambda *a, **kw: linear_scan_chunked(*a, chunk_size=16, **kw), tensors, wy, ws,
                         torch.float32, "cpu", with_h0)
    _compare(got, torch_fp32, 2e-5, "kernel vs dsflib linear_scan_chunked (fp32)")
    torch_err = _compare(torch_fp32, ref, 2e-5, "torch chunked vs fp64")
    for name in err:  # no less accurate than the torch path in the same precision
        assert err[name] <= 10 * torch_err[name] + 2e-6, (name, err[name], torch_err[name])


@pytest.mark.parametrize("shape", DIAG_SHAPES)
@pytest.mark.parametrize("with_h0", [True, False])
def test_diag_kernel_equals_torch_and_fp64(shape, with_h0):
    tensors, wy, ws = _inputs(*shape, dv=1, per_key=True, seed=sum(shape))
    ref = _reference(tensors, wy, ws, with_h0)
    got, dtype = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE, with_h0)
    assert dtype == torch.float32
    err = _compare(got, ref, 2e-5, "kernel vs fp64 recurrent")
    for torch_path in (linear_scan_chunked, linear_scan_parallel):
        torch_fp32, _ = _run(torch_path, tensors, wy, ws, torch.float32, "cpu", with_h0)
        _compare(got, torch_fp32, 2e-5, f"kernel vs dsflib {torch_path.__name__} (fp32)")
    step, _ = _run(linear_scan_recurrent, tensors, wy, ws, torch.float32, "cpu", with_h0)
    step_err = _compare(step, ref, 2e-5, "fp32 recurrent vs fp64")
    for name in err:  # the kernel is the fp32 recurrence: same accuracy
        assert err[name] <= 10 * step_err[name] + 2e-6, (name, err[name], step_err[name])


GLA_SHAPES = [  # (b, L, H, dk, dv): ragged L (chunk 16), dk not a power of two, dv over two blocks of 16
    (2, 37, 2, 20, 24),
    (1, 16, 1, 16, 16),  # exact multiples
    (1, 5, 3, 3, 2),  # one short chunk
]


@pytest.mark.parametrize("shape", GLA_SHAPES)
@pytest.mark.parametrize("with_h0", [True, False])
def test_gla_kernel_equals_torch_and_fp64(shape, with_h0):
    """Per-key decays with a matrix state: naive fp64 recurrence == dsflib's chunked torch path ==
    the Triton GLA kernel, outputs, final state and every gradient (log_a's included)."""
    tensors, wy, ws = _inputs(*shape, per_key=True, seed=sum(shape))
    ref = _reference(tensors, wy, ws, with_h0)
    got, dtype = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE, with_h0)
    assert dtype == torch.float32
    err = _compare(got, ref, 2e-5, "GLA kernel vs fp64 recurrent")
    torch_fp32, _ = _run(linear_scan_chunked, tensors, wy, ws, torch.float32, "cpu", with_h0)
    _compare(got, torch_fp32, 2e-5, "GLA kernel vs dsflib linear_scan_chunked (fp32)")
    torch_err = _compare(torch_fp32, ref, 2e-5, "torch chunked vs fp64")
    for name in err:  # no less accurate than the torch path in the same precision
        assert err[name] <= 10 * torch_err[name] + 2e-6, (name, err[name], torch_err[name])


def test_gla_kernel_strong_decays_fp16_and_partial_outputs():
    shape = (1, 37, 2, 20, 24)
    for decay in (60.0, 0.0):  # chunk-local sums reach -1000; and no decay at all
        tensors, wy, ws = _inputs(*shape, per_key=True, decay=decay)
        got, _ = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE)
        _compare(got, _reference(tensors, wy, ws), 2e-5, f"GLA decay scale {decay}")
    tensors, wy, ws = _inputs(*shape, per_key=True)
    half = [t.half().double() for t in tensors]
    got, dtype = _run(linear_scan, half, wy, ws, torch.float16, DEVICE)
    assert dtype == torch.float16
    _compare(got, _reference(half, wy, ws), 4e-3, "fp16 GLA kernel vs fp64 recurrent")
    got, _ = _run(_final_state_only, tensors, 0 * wy, ws, torch.float32, DEVICE)
    _compare(got, _reference(tensors, 0 * wy, ws), 2e-5, "GLA final state only")


def test_gla_layer_uses_the_kernel_through_linear_scan(monkeypatch):
    """dsflib's dispatcher hands GLA's layout to the kernel (on a GPU; here the interpreter stands in)."""
    from dsflib.models.gla import GLA

    monkeypatch.setattr(kernels, "linear_scan", linear_scan, raising=False)
    torch.manual_seed(0)
    layer = GLA(8, n=2).to(DEVICE)
    u = torch.randn(2, 21, 8, device=DEVICE)
    layer.backend = "chunked"
    ref = layer(u)
    layer.backend = "kernel"
    torch.testing.assert_close(layer(u), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_key", [False, True])
def test_float16_inputs(per_key):
    shape = (2, 37, 2, 20, 24) if not per_key else (2, 29, 3, 5, 1)
    tensors, wy, ws = _inputs(*shape, per_key=per_key)
    tensors = [t.half().double() for t in tensors]  # the reference sees the same rounded inputs
    ref = _reference(tensors, wy, ws)
    got, dtype = _run(linear_scan, tensors, wy, ws, torch.float16, DEVICE)
    assert dtype == torch.float16
    # fp16 outputs/gradients (rounding 5e-4) and, in the chunked kernel, fp16 matmul operands
    _compare(got, ref, 4e-3, "fp16 kernel vs fp64 recurrent")
    torch_half, _ = _run(linear_scan_chunked, tensors, wy, ws, torch.float16, "cpu")
    _compare(got, torch_half, 4e-3, "fp16 kernel vs dsflib linear_scan_chunked (fp16)")


@pytest.mark.parametrize("per_key", [False, True])
def test_strong_and_zero_decays(per_key):
    shape = (1, 37, 2, 20, 24) if not per_key else (1, 29, 3, 5, 1)
    # log-decays down to -60 per step: chunk-local sums reach -1000, exp of global sums would underflow
    # to 0 and their differences overflow; and log_a == 0 (plain linear attention)
    for decay in (60.0, 0.0):
        tensors, wy, ws = _inputs(*shape, per_key=per_key, decay=decay)
        ref = _reference(tensors, wy, ws)
        got, _ = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE)
        _compare(got, ref, 2e-5, f"decay scale {decay}")


def _final_state_only(*args, **kwargs):
    y, state = linear_scan(*args, **kwargs)
    return y.detach(), state  # y leaves the graph: the backward gets dy = None


@pytest.mark.parametrize("per_key", [False, True])
def test_partial_outputs(per_key):
    # no final state asked for; and only the final state used in the loss
    shape = (1, 21, 2, 20, 24) if not per_key else (1, 21, 3, 5, 1)
    tensors, wy, ws = _inputs(*shape, per_key=per_key)
    ref = _reference(tensors, wy, ws, final=False)
    got, _ = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE, final=False)
    _compare(got, ref, 2e-5, "y only")
    ref = _reference(tensors, 0 * wy, ws)
    got, _ = _run(_final_state_only, tensors, 0 * wy, ws, torch.float32, DEVICE)
    _compare(got, ref, 2e-5, "final state only")


def test_non_contiguous_inputs_and_empty_sequence():
    tensors, wy, ws = _inputs(2, 19, 2, 8, 6, per_key=False)
    # the same values in transposed storage: views that are not contiguous
    views = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in tensors]
    assert not any(t.is_contiguous() for t in views)
    ref = _reference(tensors, wy, ws)
    got, _ = _run(linear_scan, views, wy, ws, torch.float32, DEVICE)
    _compare(got, ref, 2e-5, "non-contiguous")
    q, k, v, log_a, h0 = (t.float().to(DEVICE) for t in tensors)
    y, state = linear_scan(q[:, :0], k[:, :0], v[:, :0], log_a[:, :0], initial_state=h0, return_final_state=True)
    assert y.shape == (2, 0, 2, 6)
    torch.testing.assert_close(state, h0, rtol=0, atol=0)


def test_outputs_are_poisoned_then_fully_written(monkeypatch):
    buf = _common.new_output((3, 4), torch.float32, "cpu")
    assert torch.isnan(buf).all()
    monkeypatch.setenv("DSFLIB_KERNELS_POISON", "0")
    assert not _common.poison_outputs()
    # the comparisons above run with poisoned outputs; here check every output element directly
    monkeypatch.setenv("DSFLIB_KERNELS_POISON", "1")
    for per_key, shape in ((False, (1, 17, 3, 17, 17)), (True, (1, 17, 3, 3, 1))):
        tensors, wy, ws = _inputs(*shape, per_key=per_key)
        got, _ = _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE)
        assert all(torch.isfinite(t).all() for t in got.values()), per_key


def test_single_config_mode_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("DSFLIB_KERNELS_AUTOTUNE", "1")
    if INTERPRET:
        assert not _common.autotune_enabled()  # multi-config autotuning needs a GPU driver
    from dsflib.kernels import chunked_scan, diag_scan
    for fn in (chunked_scan._fwd_config, chunked_scan._dqdk_config, chunked_scan._dv_config):
        config = fn(dk=20, dv=24)
        assert isinstance(config, triton.Config) and all(v >= 16 for v in config.kwargs.values())
    assert diag_scan._config(dk=5).kwargs["BH"] >= 1
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setenv("DSFLIB_KERNELS_AUTOTUNE", "0")
    assert not _common.autotune_enabled()
    monkeypatch.delenv("DSFLIB_KERNELS_AUTOTUNE")
    assert not _common.autotune_enabled()  # opt-in: the default is one heuristic config (compile once)
    monkeypatch.setenv("DSFLIB_KERNELS_AUTOTUNE", "1")
    assert _common.autotune_enabled()
    big = chunked_scan._fwd_config(dk=128, dv=128)
    assert big.kwargs == {"BT": 64, "BV": 64}


def _bad(per_key=False, **change):
    tensors, _, _ = _inputs(1, 5, 2, 4, 1 if per_key else 3, per_key=per_key)
    args = dict(zip(NAMES, (t.float() for t in tensors), strict=True))
    args.update(change)
    return args


@pytest.mark.parametrize(
    "change,exc,match",
    [
        (dict(q=torch.zeros(5, 2, 4)), ValueError, r"q must have shape \(batch, L, H, dk\)"),
        (dict(k=torch.zeros(1, 5, 2, 3)), ValueError, r"k must have shape \(batch, L, H, dk\)"),
        (dict(v=torch.zeros(1, 4, 2, 3)), ValueError, r"v must have shape \(batch, L, H, dv\)"),
        (dict(log_a=torch.zeros(1, 5, 3)), ValueError, r"log_a must have shape \(batch, L, H\) or"),
        (dict(log_a=torch.full((1, 5, 2), 0.5)), ValueError, r"log_a must be <= 0"),
        (dict(log_a=torch.full((1, 5, 2), float("nan"))), ValueError, r"log_a must be finite"),
        (dict(log_a=torch.zeros(1, 5, 2, dtype=F64)), TypeError, r"log_a must have the dtype of q"),
        (dict(k=torch.zeros(1, 5, 2, 4, dtype=torch.long)), TypeError, r"k must have a floating dtype"),
        (dict(v=[[0.0]]), TypeError, r"v must be a torch.Tensor"),
        (dict(log_a=None), TypeError, r"log_a must be a torch.Tensor"),
        (dict(initial_state=torch.zeros(1, 2, 3, 4)), ValueError, r"initial_state must have shape \(batch, H, dk, dv\)"),
    ],
)
def test_bad_input(change, exc, match):
    args = _bad(**change)
    with pytest.raises(exc, match=match):
        linear_scan(args["q"], args["k"], args["v"], args["log_a"], initial_state=args["initial_state"])


def test_unsupported_layouts_raise_not_implemented():
    args = _bad(per_key=True)
    # per-key decays with a matrix state (GLA) beyond the GLA kernel's keys: the dispatcher falls back
    q = torch.zeros(1, 5, 2, 200)
    with pytest.raises(NotImplementedError, match=r"GLA scan kernel .*dk <= 128, got dk=200"):
        linear_scan(q, q, torch.zeros(1, 5, 2, 3), torch.zeros(1, 5, 2, 200))
    q, k, v, log_a = (args[n].double() for n in NAMES[:4])
    with pytest.raises(NotImplementedError, match=r"float16, bfloat16 or float32 inputs, got q of dtype torch.float64"):
        linear_scan(q, k, v, log_a)
    if INTERPRET:
        q, k, v, log_a = (args[n].bfloat16() for n in NAMES[:4])
        with pytest.raises(NotImplementedError, match=r"bfloat16 is not supported by the Triton CPU interpreter"):
            linear_scan(q, k, v, log_a)
    q = torch.zeros(1, 5, 2, 300)
    with pytest.raises(NotImplementedError, match=r"dk, dv <= 256"):
        linear_scan(q, q, torch.zeros(1, 5, 2, 3), torch.zeros(1, 5, 2))


def test_dsflib_dispatch_sees_the_kernel_only_with_a_gpu():
    # dsflib.scan looks up dsflib.kernels.linear_scan; it exists only where a GPU can run it
    present = getattr(kernels, "linear_scan", None) is not None
    assert present == (torch.cuda.is_available() and kernels.triton_available())
    if not present:
        tensors, _, _ = _inputs(1, 5, 2, 4, 3, per_key=False)
        with pytest.raises(RuntimeError, match="backend='kernel' needs dsflib.kernels.linear_scan"):
            dsf_linear_scan(*tensors[:4], backend="kernel")


def test_bench_refuses_without_cuda(monkeypatch, capsys):
    from dsflib.kernels import bench

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) != 0
    assert "GPU speed cannot be measured here" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_bench_module_exits_nonzero_without_cuda():
    import subprocess
    import sys

    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "dsflib.kernels.bench"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode != 0 and "GPU speed cannot be measured here" in proc.stderr, proc.stderr


def test_bench_pipeline_on_tiny_shapes(monkeypatch):
    # the GPU benchmark's gating and bookkeeping, on the interpreter with a stub timer
    from dsflib.kernels import bench

    make = bench.make_inputs
    monkeypatch.setattr(bench, "make_inputs", lambda kind, shape, dtype, device=DEVICE, seed=0:
                        make(kind, shape, dtype, device=DEVICE, seed=seed))
    timed = []

    def stub_do_bench(fn, warmup, rep, grad_to_none=None, return_mode="median"):
        fn()
        timed.append(return_mode)
        return 2.0

    rows = []
    for kind, shape in (("diag", dict(batch=1, length=20, heads=3, dk=4, dv=1)),
                        ("chunked", dict(batch=1, length=20, heads=2, dk=16, dv=16)),
                        ("gla", dict(batch=1, length=20, heads=2, dk=16, dv=16))):
        rows += bench._bench_kind(kind, shape, torch.float32, {"device": "stub"}, 3e12, 1, 1, None, stub_do_bench)
    assert {r["status"] for r in rows} == {"ok"}, [r["status"] for r in rows]
    assert {(r["kind"], r["method"]) for r in rows} >= {("diag", "kernel"), ("chunked", "kernel"),
                                                        ("diag", "kernel_s6_compact"), ("gla", "kernel"),
                                                        ("gla", "torch_chunked"), ("diag", "torch_loop"),
                                                        ("chunked", "torch_chunked")}
    assert all(r["max_rel_err"] < 1e-5 and r["GBps"] == r["bytes"] / 2.0 / 1e6 for r in rows)
    assert set(timed) == {"median"} and len(timed) == len(rows)


@pytest.mark.parametrize("per_key", [False, True], ids=["chunked", "diag"])
def test_repeated_launches_change_only_declared_in_place_buffers(monkeypatch, per_key):
    """The autotuner benchmarks a kernel by launching it many times on the same buffers. A kernel
    that updates a buffer in place (S6's d log_a: q*dq -> running sum) must declare it in its
    Launcher's ``restore`` (Triton's ``restore_value``), or the benchmark launches compound: on an
    H200 this made S6's d log_a overflow and its parameters NaN within three training steps.
    Replays each launch of a forward + backward twice and checks what the second launch changed."""
    calls = []
    original = _common.Launcher.__call__

    def record(self, grid, args, consts, sizes):
        calls.append((self, grid, [a.clone() if isinstance(a, torch.Tensor) else a for a in args], consts, sizes))
        return original(self, grid, args, consts, sizes)

    monkeypatch.setattr(_common.Launcher, "__call__", record)
    shape = (1, 19, 3, 5, 1) if per_key else (1, 19, 2, 17, 6)
    tensors, wy, ws = _inputs(*shape, per_key=per_key)
    _run(linear_scan, tensors, wy, ws, torch.float32, DEVICE)
    monkeypatch.setattr(_common.Launcher, "__call__", original)
    assert len(calls) >= 3  # forward and the backward's launches
    for launcher, grid, args, consts, sizes in calls:
        names = launcher.kernel.arg_names
        first = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        launcher(grid, first, consts, sizes)
        second = [a.clone() if isinstance(a, torch.Tensor) else a for a in first]
        launcher(grid, second, consts, sizes)
        changed = {names[i] for i, (a, b) in enumerate(zip(first, second))
                   if isinstance(a, torch.Tensor) and not torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))}
        assert changed <= set(launcher.restore), (
            f"{launcher.kernel.fn.__name__}: a repeated launch changed {sorted(changed - set(launcher.restore))}, "
            "which its Launcher does not declare in restore")
    assert any(launcher.restore for launcher, *_ in calls) == per_key  # the diag backward updates d log_a in place


def test_launcher_refuses_unknown_restore_names():
    from dsflib.kernels import diag_scan

    with pytest.raises(ValueError, match="restore must name arguments"):
        _common.Launcher(diag_scan._bwd_rev, diag_scan._config, [], key=["H"], restore=("nope",))
    assert diag_scan._REV.restore == ("dla_ptr",)


# --------------------------------------------------------------------------- S6's compact scan

def _close(got, ref, tol, what):
    """One tensor against its reference: finite (poisoned outputs all written), same shape, max error
    relative to the reference's largest entry (at least 1) within ``tol``."""
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert torch.isfinite(got).all(), f"{what} has non-finite entries (unwritten output?)"
    assert _rel(got, ref) <= tol, f"{what}: max error {_rel(got, ref):.2e} > {tol:.0e}"


def _s6_inputs(b, L, d, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, L, d, generator=g, dtype=F64)
    delta = torch.nn.functional.softplus(torch.randn(b, L, d, generator=g, dtype=F64))
    A = -torch.rand(d, n, generator=g, dtype=F64) * 2
    B, C = (torch.randn(b, L, n, generator=g, dtype=F64) for _ in range(2))
    return [u, delta, A, B, C]


def _s6_naive(u, delta, A, B, C):
    """The fp64 step-by-step recurrence of the expanded S6 (the naive reference)."""
    b, L, d = u.shape
    q, k = (x[:, :, None, :].expand(b, L, d, A.shape[1]) for x in (C, B))
    return linear_scan_recurrent(q, k, (delta * u)[..., None], delta[..., None] * A)[..., 0]


@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (1, 1, 3, 4), (2, 20, 4, 16)], ids=["ragged", "L1", "n16"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_s6_compact_kernel_equals_selective_scan_and_fp64(shape, dtype):
    """naive fp64 recurrence == dsflib.scan.selective_scan == the compact Triton kernel, values and
    the gradients of all five inputs, on ragged channel blocks (2 channels per block here) and n."""
    from dsflib.kernels.s6_scan import s6_scan
    from dsflib.scan import selective_scan

    ref = [t.clone().requires_grad_() for t in _s6_inputs(*shape)]
    y_ref = _s6_naive(*ref)
    w = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    g_ref = torch.autograd.grad((y_ref * w).sum(), ref)
    torch_path = [t.clone().requires_grad_() for t in _s6_inputs(*shape)]
    u, delta, A, B, C = torch_path
    y_torch = selective_scan(C, B, delta * u, delta[..., None] * A)
    _close(y_torch, y_ref, 1e-12, "selective_scan y")
    got = [t.to(dtype).to(DEVICE).requires_grad_() for t in _s6_inputs(*shape)]
    if dtype == torch.float16:  # A stays float32 like the model's parameter
        got[2] = got[2].detach().float().requires_grad_()
    y = s6_scan(*got)
    assert y.dtype == dtype and y.shape == y_ref.shape
    grads = torch.autograd.grad((y.double() * w.to(DEVICE)).sum(), got)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    _close(y.double().cpu(), y_ref, tol, "y")
    for name, a, b in zip(["u", "delta", "A", "B", "C"], grads, g_ref):
        assert a.dtype == got[["u", "delta", "A", "B", "C"].index(name)].dtype
        _close(a.double().cpu(), b, tol, f"d{name}")


def test_s6_compact_kernel_empty_sequence_and_bad_input():
    from dsflib.kernels.s6_scan import MAX_N, s6_scan

    u, delta, A, B, C = (t.float().to(DEVICE) for t in _s6_inputs(2, 0, 3, 2))
    A.requires_grad_()
    y = s6_scan(u, delta, A, B, C)
    assert y.shape == (2, 0, 3)
    assert torch.equal(torch.autograd.grad(y.sum(), A)[0], torch.zeros_like(A))
    u, delta, A, B, C = (t.float().to(DEVICE) for t in _s6_inputs(1, 4, 3, 2))
    with pytest.raises(ValueError, match=r"delta must have shape \(batch, L, d\)"):
        s6_scan(u, delta[:, :3], A, B, C)
    with pytest.raises(ValueError, match=r"A must have shape \(d, n\)"):
        s6_scan(u, delta, A[:2], B, C)
    with pytest.raises(ValueError, match=r"C must have shape \(batch, L, n\)"):
        s6_scan(u, delta, A, B, C[..., :1])
    with pytest.raises(ValueError, match=r"A <= 0 and delta >= 0"):
        s6_scan(u, delta, -A, B, C)
    with pytest.raises(TypeError, match="u must be a torch.Tensor"):
        s6_scan(u.numpy(), delta, A, B, C)
    with pytest.raises(NotImplementedError, match="float16, bfloat16 or float32"):
        s6_scan(*(t.double() for t in (u, delta, A, B, C)))
    wide = torch.zeros(3, MAX_N + 1, device=DEVICE)
    with pytest.raises(NotImplementedError, match=f"n <= {MAX_N}"):
        s6_scan(u, delta, wide, torch.zeros(1, 4, MAX_N + 1), torch.zeros(1, 4, MAX_N + 1))


def test_s6_layer_on_the_compact_kernel_equals_its_cpu_path():
    """The S6 layer with backend="kernel" (what "auto" picks on CUDA) == its CPU path, values and every
    parameter's gradient."""
    from dsflib.models.s6 import S6

    torch.manual_seed(0)
    layer = S6(6, n=3).to(DEVICE)
    u = torch.randn(2, 9, 6, device=DEVICE, requires_grad=True)
    outs = {}
    for backend in ("sequential", "kernel"):
        layer.backend = backend
        y = layer(u)
        outs[backend] = (y, torch.autograd.grad(y.square().sum(), [u, *layer.parameters()]))
    _close(outs["kernel"][0].double().cpu(), outs["sequential"][0].double().cpu(), 1e-5, "y")
    for a, b in zip(outs["kernel"][1], outs["sequential"][1]):
        _close(a.double().cpu(), b.double().cpu(), 1e-5, "grad")
