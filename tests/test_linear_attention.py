"""Linear attention: forward == DSF recurrence == Φ u, the direct quadratic form, A_i = eta_{i-1}/eta_i."""
import copy

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.models.features import elu_plus_one
from dsflib.models.linear_attention import LinearAttention

F64 = torch.float64
D, N_EXP = 8, 3


def _layer(heads=1, n=N_EXP, seed=0):
    torch.manual_seed(seed)
    return LinearAttention(D, n=n, heads=heads).double()


def _input(length, batch=2, seed=1, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, D, generator=g, dtype=F64).to(dtype)


def _direct(layer, u):
    """Textbook masked (quadratic) causal linear attention, independent of the scan and the DSF."""
    b, L, d = u.shape
    H, n = layer.heads, layer.n
    q = elu_plus_one(u @ layer.W_Q.weight.T).reshape(b, L, H, n)
    k = elu_plus_one(u @ layer.W_K.weight.T).reshape(b, L, H, n)
    v = (u @ layer.W_V.weight.T).reshape(b, L, H, d // H)
    scores = torch.einsum("bihn,bjhn->bhij", q, k).tril()
    eta = scores.sum(-1)  # (b, H, L)
    y = torch.einsum("bhij,bjhc->bihc", scores / eta[..., None], v).reshape(b, L, d)
    return y @ layer.W_O.weight.T, eta.transpose(1, 2)


def test_elu_plus_one_is_positive_and_matches_definition():
    x = torch.linspace(-30, 5, 101, dtype=F64)
    phi = elu_plus_one(x)
    assert (phi > 0).all()
    torch.testing.assert_close(phi, torch.where(x > 0, x + 1, x.exp()), rtol=0, atol=1e-15)


@pytest.mark.parametrize("length", [1, 7, 63, 130])
@pytest.mark.parametrize("heads", [1, 2])
def test_forward_equals_dsf_recurrence_and_phi(length, heads):
    layer = _layer(heads)
    u = _input(length)
    y = layer(u)
    assert y.shape == u.shape and y.dtype == F64
    dsf = layer.to_dsf(u)
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D, N_EXP, D)
    assert dsf.A.shape == (2, length, heads) and dsf.D is None
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)
    y_direct, eta_direct = _direct(layer, u)
    torch.testing.assert_close(y, y_direct, rtol=0, atol=1e-10)
    torch.testing.assert_close(layer.normalizer(u), eta_direct, rtol=1e-12, atol=0)


def test_A_is_ratio_of_normalizers_paper_convention():
    layer = _layer(heads=2)
    u = _input(20)
    eta = layer.normalizer(u)
    assert eta.shape == (2, 20, 2) and (eta > 0).all()
    A = layer.to_dsf(u).A
    torch.testing.assert_close(A[:, 1:], eta[:, :-1] / eta[:, 1:], rtol=1e-13, atol=0)
    torch.testing.assert_close(A[:, 0], torch.ones_like(A[:, 0]), rtol=0, atol=0)  # eta_{-1} := eta_0
    # eta grows (features are positive), but not necessarily monotonically: A_i may exceed 1
    assert not torch.equal(A[:, 1:], torch.ones_like(A[:, 1:]))


def test_phi_block_is_normalized_kernel_times_value_projection():
    # Φ_ij = W_O blockdiag_h( phi(q_i)^T phi(k_j) / eta_i ) W_V  (paper-notes §3.1, eta's telescope)
    layer = _layer(heads=2)
    u = _input(9, batch=1)
    phi = materialize_phi(layer.to_dsf(u))
    q = elu_plus_one(u @ layer.W_Q.weight.T).reshape(1, 9, 2, N_EXP)
    k = elu_plus_one(u @ layer.W_K.weight.T).reshape(1, 9, 2, N_EXP)
    eta = layer.normalizer(u)
    i, j = 7, 3
    w = (q[0, i] * k[0, j]).sum(-1) / eta[0, i]  # (H,)
    mask = torch.repeat_interleave(w, D // 2)
    expected = layer.W_O.weight @ torch.diag(mask) @ layer.W_V.weight
    torch.testing.assert_close(phi[0, i, j], expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("length", [63, 130])
def test_chunked_and_recurrent_backends_agree_with_gradients(length):
    layer = _layer(heads=2)
    u = _input(length).requires_grad_()
    w = _input(length, seed=5)

    def run(backend):
        layer.backend = backend
        layer.zero_grad()
        u.grad = None
        y = layer(u)
        (y * w).sum().backward()
        return y.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()}, u.grad.clone()

    y_c, g_c, gu_c = run("chunked")
    y_r, g_r, gu_r = run("recurrent")
    torch.testing.assert_close(y_c, y_r, rtol=0, atol=1e-12)
    assert set(g_c) == {"W_Q.weight", "W_K.weight", "W_V.weight", "W_O.weight"}
    for name in g_c:
        torch.testing.assert_close(g_c[name], g_r[name], rtol=1e-10, atol=1e-11, msg=f"gradient wrt {name}")
    torch.testing.assert_close(gu_c, gu_r, rtol=1e-10, atol=1e-11)


def test_float32_matches_float64():
    # The output is a convex combination of values (positive weights summing to one) followed by W_O,
    # accumulated in fp32: the error is a few float32 ulps (6e-8) times the depth of the sums (measured
    # 1.8e-7 relative); 1e-5 of the output scale leaves a wide margin and still catches an fp16 path
    # (~1e-3) or a wrong formula (O(1)).
    layer = _layer(heads=2)
    u = _input(130)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    err = (y32.double() - y64).abs().max() / y64.abs().max()
    assert err < 1e-5, err


def test_bad_input():
    layer = LinearAttention(D, n=2)
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) = \(\*, \*, 8\)"):
        layer(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) \(3 dims\)"):
        layer(torch.randn(5, 8))
    with pytest.raises(TypeError, match=r"u must have a floating dtype"):
        layer(torch.ones(2, 5, 8, dtype=torch.long))
    with pytest.raises(TypeError, match=r"u must be a torch.Tensor"):
        layer.to_dsf([[0.0] * 8])
    with pytest.raises(ValueError, match=r"u must have shape"):
        layer.normalizer(torch.randn(2, 5, 9))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(d_model=0), ValueError, "d_model must be a positive int, got 0"),
        (dict(n=0), ValueError, "n must be a positive int, got 0"),
        (dict(n=2.5), TypeError, "n must be a positive int, got float"),
        (dict(heads=3), ValueError, "heads must divide d_model=8, got heads=3"),
        (dict(backend="cuda"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    args = dict(d_model=D)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        LinearAttention(args.pop("d_model"), **args)


def test_registry_builds_it_and_it_trains_a_step():
    layer = build_mixer("linear_attention", D, n=4, heads=2)
    assert isinstance(layer, LinearAttention)
    u = torch.randn(2, 16, D)
    loss = F.mse_loss(layer(u), u.flip(1))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
