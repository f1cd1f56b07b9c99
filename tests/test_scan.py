"""The structured scan: chunked == recurrent (fp64, ragged L, gradients), stability, DSF link, errors."""
import pytest
import torch

from dsflib import recurrence
from dsflib.models._common import dsf_from_scan
from dsflib.scan import (linear_scan, linear_scan_chunked, linear_scan_parallel, linear_scan_recurrent,
                         linear_scan_sequential, selective_scan)

F64 = torch.float64


def _inputs(L, per_key, b=2, H=3, dk=4, dv=5, dtype=F64, decay=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, L, H, dk, generator=g, dtype=F64) for _ in range(2))
    v = torch.randn(b, L, H, dv, generator=g, dtype=F64)
    shape = (b, L, H, dk) if per_key else (b, L, H)
    log_a = -decay * torch.rand(shape, generator=g, dtype=F64)
    return [t.to(dtype) for t in (q, k, v, log_a)]


@pytest.mark.parametrize("per_key", [False, True])
@pytest.mark.parametrize("L", [1, 7, 63, 130])
@pytest.mark.parametrize("chunk_size", [None, 5, 16])
def test_chunked_and_parallel_equal_recurrent(per_key, L, chunk_size):
    q, k, v, log_a = _inputs(L, per_key)
    S0 = torch.randn(2, 3, 4, 5, dtype=F64)
    y_ref, s_ref = linear_scan_recurrent(q, k, v, log_a, initial_state=S0, return_final_state=True)
    y, s = linear_scan_chunked(q, k, v, log_a, initial_state=S0, return_final_state=True, chunk_size=chunk_size)
    assert y.shape == (2, L, 3, 5) and s.shape == (2, 3, 4, 5)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    y, s = linear_scan_parallel(q, k, v, log_a, initial_state=S0, return_final_state=True, chunk_size=chunk_size or 16)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("per_key", [False, True])
def test_chunked_gradients_equal_recurrent(per_key):
    leaves = [t.requires_grad_() for t in _inputs(63, per_key)]
    w = torch.randn(2, 63, 3, 5, dtype=F64)

    def grads(fn):
        for t in leaves:
            t.grad = None
        (fn(*leaves) * w).sum().backward()
        return [t.grad.clone() for t in leaves]

    ref = grads(linear_scan_recurrent)
    for fn in (lambda *a: linear_scan_chunked(*a, chunk_size=16), linear_scan_parallel):
        got = grads(fn)
        for name, a, b in zip(["q", "k", "v", "log_a"], got, ref):
            assert torch.isfinite(a).all(), name
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=f"gradient wrt {name}")


def test_scalar_decay_is_per_key_decay_constant_over_keys():
    q, k, v, log_a = _inputs(40, per_key=False)
    y_scalar = linear_scan_chunked(q, k, v, log_a)
    y_key = linear_scan_chunked(q, k, v, log_a[..., None].expand(-1, -1, -1, 4).contiguous())
    torch.testing.assert_close(y_scalar, y_key, rtol=0, atol=1e-12)


@pytest.mark.parametrize("per_key", [False, True])
def test_strong_decay_stays_finite_in_float32(per_key):
    # log-decays down to -60 per step: cumulative sums reach -3800 inside a chunk, and a
    # global-cumsum formulation would overflow exp(); the chunk-local one must not.
    q, k, v, log_a = _inputs(130, per_key, dtype=torch.float32, decay=60.0)
    y = linear_scan_chunked(q, k, v, log_a, chunk_size=64)
    assert torch.isfinite(y).all()
    assert torch.isfinite(linear_scan_parallel(q, k, v, log_a)).all()
    ref = linear_scan_recurrent(*(t.double() for t in (q, k, v, log_a)))
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)
    # no less accurate than the fp32 step-by-step recurrence on the same inputs
    step = linear_scan_recurrent(q, k, v, log_a)
    rel = lambda x: ((x.double() - ref).abs() / (ref.abs() + 1e-3)).max().item()  # noqa: E731
    assert rel(y) <= 1.5 * rel(step), (rel(y), rel(step))


def test_float32_matches_float64():
    q, k, v, log_a = _inputs(130, per_key=False)
    ref = linear_scan_recurrent(q, k, v, log_a)
    y = linear_scan_chunked(*(t.float() for t in (q, k, v, log_a)))
    assert y.dtype == torch.float32
    assert ((y.double() - ref).abs().max() / ref.abs().max()).item() < 1e-5


@pytest.mark.parametrize("per_key", [False, True])
def test_scan_is_the_dsf_of_dsf_from_scan(per_key):
    b, L, H, dk, dv, d = 2, 19, 2, 3, 2, 6
    g = torch.Generator().manual_seed(1)
    u = torch.randn(b, L, d, generator=g, dtype=F64)
    q, k, _, log_a = _inputs(L, per_key, b=b, H=H, dk=dk, dv=dv)
    V = torch.randn(b, L, H * dv, d, generator=g, dtype=F64)
    O = torch.randn(b, L, d, H * dv, generator=g, dtype=F64)
    D = torch.randn(b, L, d, d, generator=g, dtype=F64)
    eta = torch.rand(b, L, H, generator=g, dtype=F64) + 0.5
    v = torch.einsum("blcd,bld->blc", V, u).reshape(b, L, H, dv)
    y = linear_scan(q, k, v, log_a) / eta[..., None]
    y = torch.einsum("blpc,blc->blp", O, y.reshape(b, L, H * dv)) + torch.einsum("blpq,blq->blp", D, u)
    system = dsf_from_scan(q, k, log_a, V, O, D, normalizer=eta)
    assert system.N == H * dv * dk and system.scalar_A == (not per_key)
    torch.testing.assert_close(recurrence(system, u), y, rtol=0, atol=1e-11)
    # the recurrent normalization: A_i = a_i * eta_{i-1} / eta_i
    if not per_key:
        expected = log_a[:, 1:].exp() * eta[:, :-1] / eta[:, 1:]
        torch.testing.assert_close(system.A[:, 1:], expected, rtol=1e-13, atol=0)


def test_dispatch_and_backends():
    q, k, v, log_a = _inputs(10, per_key=False)
    ref = linear_scan_recurrent(q, k, v, log_a)
    for backend in ("auto", "chunked", "parallel", "recurrent"):
        torch.testing.assert_close(linear_scan(q, k, v, log_a, backend=backend), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"linear_scan_sequential needs vector states"):
        linear_scan(q, k, v, log_a, backend="sequential")
    with pytest.raises(ValueError, match=r"backend must be one of"):
        linear_scan(q, k, v, log_a, backend="fast")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="backend='kernel' needs dsflib.kernels.linear_scan"):
            linear_scan(q, k, v, log_a, backend="kernel")


@pytest.mark.parametrize(
    "mutate,exc,match",
    [
        (lambda q, k, v, a: (q[0], k, v, a), ValueError, r"q must have shape \(batch, L, H, dk\)"),
        (lambda q, k, v, a: (q, k[..., :3], v, a), ValueError, r"k must have shape \(batch, L, H, dk\)"),
        (lambda q, k, v, a: (q, k, v[:, :4], a), ValueError, r"v must have shape \(batch, L, H, dv\)"),
        (lambda q, k, v, a: (q, k, v, a[..., :2]), ValueError, r"log_a must have shape \(batch, L, H\) or"),
        (lambda q, k, v, a: (q, k, v, a.abs() + 0.1), ValueError, r"log_a must be <= 0"),
        (lambda q, k, v, a: (q, k, v, a.float()), TypeError, r"log_a must have the dtype of q"),
        (lambda q, k, v, a: (q, k.long(), v, a), TypeError, r"k must have a floating dtype"),
        (lambda q, k, v, a: (q, k, v, a.index_fill(1, torch.tensor([0]), float("nan"))), ValueError,
         r"log_a must be finite"),
    ],
)
def test_bad_input(mutate, exc, match):
    args = mutate(*_inputs(5, per_key=False))
    for fn in (linear_scan_chunked, linear_scan_parallel, linear_scan_recurrent):
        with pytest.raises(exc, match=match):
            fn(*args)
    q, k, v, a = args
    with pytest.raises(exc, match=match):  # the vector-state path checks the same way
        linear_scan_sequential(q, k, v[..., :1], a)


def test_bad_state_and_chunk():
    q, k, v, log_a = _inputs(5, per_key=False)
    with pytest.raises(ValueError, match=r"initial_state must have shape \(batch, H, dk, dv\)"):
        linear_scan(q, k, v, log_a, initial_state=torch.zeros(2, 3, 5, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int, got 0"):
        linear_scan_chunked(q, k, v, log_a, chunk_size=0)


def test_kernel_layouts_it_does_not_cover_are_reported(monkeypatch):
    import dsflib.scan as scan

    def refuses(*args, **kwargs):
        raise NotImplementedError("per-key decays with dv > 1")

    monkeypatch.setattr(scan, "_kernel", lambda: refuses)
    q, k, v, log_a = _inputs(6, per_key=True)
    with pytest.raises(NotImplementedError, match="per-key decays with dv > 1"):
        scan.linear_scan(q, k, v, log_a, backend="kernel")
    # on CPU tensors "auto" never asks the kernel
    torch.testing.assert_close(scan.linear_scan(q, k, v, log_a), linear_scan_recurrent(q, k, v, log_a), rtol=0, atol=1e-12)


@pytest.mark.parametrize("per_key", [False, True])
@pytest.mark.parametrize("L", [1, 7, 33])
def test_sequential_vector_scan_equals_recurrent_with_gradients(per_key, L):
    q, k, v, log_a = _inputs(L, per_key, dv=1)
    S0 = torch.randn(2, 3, 4, 1, dtype=F64)
    leaves = [t.requires_grad_() for t in (q, k, v, log_a, S0)]
    w, w_state = torch.randn(2, L, 3, 1, dtype=F64), torch.randn(2, 3, 4, 1, dtype=F64)

    def run(fn):
        for t in leaves:
            t.grad = None
        y, s = fn(*leaves[:4], initial_state=leaves[4], return_final_state=True)
        ((y * w).sum() + (s * w_state).sum()).backward()
        return y.detach(), s.detach(), [t.grad.clone() for t in leaves]

    y_ref, s_ref, g_ref = run(linear_scan_recurrent)
    y, s, g = run(linear_scan_sequential)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    for name, a, b in zip(["q", "k", "v", "log_a", "initial_state"], g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"gradient wrt {name}")
    assert torch.autograd.gradcheck(lambda *t: linear_scan_sequential(*t), [t.detach()[:, :4].requires_grad_()
                                                                              for t in leaves[:4]])


def test_sequential_is_the_auto_path_for_vector_states_on_cpu():
    q, k, v, log_a = _inputs(9, per_key=True, dv=1, dtype=torch.float32)
    ref = linear_scan_recurrent(q.double(), k.double(), v.double(), log_a.double())
    y = linear_scan(q, k, v, log_a)  # float32 in, accumulated in float32
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(linear_scan(q, k, v, log_a, backend="sequential"), y, rtol=0, atol=0)  # the same path


@pytest.mark.parametrize("L", [1, 6, 21])
def test_selective_scan_is_the_scan_with_channel_shared_q_and_k(L):
    g = torch.Generator().manual_seed(1)
    b, H, dk = 2, 5, 3
    q, k = (torch.randn(b, L, dk, generator=g, dtype=F64, requires_grad=True) for _ in range(2))
    v = torch.randn(b, L, H, generator=g, dtype=F64, requires_grad=True)
    log_a = (-2 * torch.rand(b, L, H, dk, generator=g, dtype=F64)).requires_grad_()
    expand = (b, L, H, dk)
    ref = linear_scan_recurrent(q[:, :, None].expand(expand), k[:, :, None].expand(expand), v[..., None], log_a)
    y = selective_scan(q, k, v, log_a)
    assert y.shape == (b, L, H)
    torch.testing.assert_close(y, ref[..., 0], rtol=0, atol=1e-12)
    w = torch.randn(b, L, H, dtype=F64)
    got = torch.autograd.grad((y * w).sum(), (q, k, v, log_a))
    want = torch.autograd.grad((ref[..., 0] * w).sum(), (q, k, v, log_a))
    for name, a, c in zip(["q", "k", "v", "log_a"], got, want):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12, msg=f"gradient wrt {name}")


def test_selective_scan_bad_input():
    q = k = torch.zeros(2, 4, 3)
    v, log_a = torch.zeros(2, 4, 5), torch.zeros(2, 4, 5, 3)
    with pytest.raises(ValueError, match=r"k must have shape \(batch, L, dk\)"):
        selective_scan(q, k[:, :2], v, log_a)
    with pytest.raises(ValueError, match=r"log_a must have shape \(batch, L, H, dk\)"):
        selective_scan(q, k, v, log_a[..., :2])
    with pytest.raises(ValueError, match=r"log_a must be <= 0"):
        selective_scan(q, k, v, log_a + 1)
    with pytest.raises(TypeError, match=r"v must have the dtype of q"):
        selective_scan(q, k, v.double(), log_a)


def test_default_chunk_never_pads_a_short_sequence():
    q, k, v, log_a = _inputs(12, per_key=False)
    ref = linear_scan_recurrent(q, k, v, log_a)
    torch.testing.assert_close(linear_scan_chunked(q, k, v, log_a), ref, rtol=0, atol=1e-12)
