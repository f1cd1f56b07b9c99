"""S6 (Mamba's selective SSM): forward == DSF recurrence == Phi u, backends, precision, bad input,
channel-diagonal Phi and the reversed-sigmoid form of its transitions."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.models.s6 import S6

F64 = torch.float64
D_MODEL, N_EXP = 8, 3


def _layer(seed: int = 0, **kwargs) -> S6:
    """An fp64 S6 with randomised parameters (step sizes of order 1, so every term matters)."""
    torch.manual_seed(seed)
    layer = S6(D_MODEL, n=N_EXP, **kwargs).double()
    with torch.no_grad():
        layer.dt_up.bias.normal_(0.0, 0.5)
        layer.A_log.add_(0.3 * torch.randn_like(layer.A_log))
        layer.D.normal_(1.0, 0.5)
    return layer


def _input(batch: int, length: int, seed: int = 1, d: int = D_MODEL) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=g, dtype=F64)


@pytest.mark.parametrize("length", [1, 7, 63, 130])
def test_forward_equals_dsf_recurrence_and_phi(length):
    layer = _layer()
    u = _input(2, length)
    y = layer(u)
    dsf = layer.to_dsf(u)
    assert y.shape == (2, length, D_MODEL) and y.dtype == F64
    assert (dsf.N, dsf.n, dsf.d) == (N_EXP * D_MODEL, N_EXP, D_MODEL)
    assert dsf.A.shape == (2, length, N_EXP * D_MODEL) and not dsf.scalar_A
    assert dsf.D is not None and dsf.D.shape == (2, length, D_MODEL, D_MODEL)
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=1e-10)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=1e-10)


def test_forward_is_causal():
    layer = _layer()
    u = _input(1, 30)
    u2 = u.clone()
    u2[:, 17:] = _input(1, 13, seed=5)
    y, y2 = layer(u), layer(u2)
    torch.testing.assert_close(y[:, :17], y2[:, :17], rtol=0, atol=1e-12)
    assert (y[:, 17:] - y2[:, 17:]).abs().max() > 1e-3


@pytest.mark.parametrize("length", [63, 130])
def test_chunked_and_recurrent_backends_agree_with_gradients(length):
    layer = _layer()
    u = _input(2, length).requires_grad_()
    w = _input(2, length, seed=3)

    def run(backend):
        layer.backend = backend
        layer.zero_grad(set_to_none=True)
        u.grad = None
        y = layer(u)
        (y * w).sum().backward()
        grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
        grads["u"] = u.grad.clone()
        return y.detach(), grads

    y_c, g_c = run("chunked")
    y_r, g_r = run("recurrent")
    torch.testing.assert_close(y_c, y_r, rtol=0, atol=1e-10)
    assert set(g_c) == {"dt_down.weight", "dt_up.weight", "dt_up.bias", "B_proj.weight", "C_proj.weight",
                        "A_log", "D", "out_proj.weight", "u"}
    for name in g_c:
        assert g_c[name].abs().max() > 0, f"gradient wrt {name} is zero"
        torch.testing.assert_close(g_c[name], g_r[name], rtol=1e-9, atol=1e-10, msg=f"gradient wrt {name}")


def test_float32_matches_float64():
    # fp32 has unit roundoff 6e-8; the layer chains a few O(d) matmuls and a scan that sums at most
    # 16 tokens per chunk plus ~9 chunk-state updates (in fp32). Errors of a few hundred ulps of
    # max|y|, i.e. ~1e-5 relative, are the worst expected; a half-precision path (eps 1e-3) fails this.
    layer = _layer()
    u = _input(2, 130)
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y32.dtype == torch.float32
    rel = ((y32.double() - y64).abs().max() / y64.abs().max()).item()
    assert rel < 1e-5, rel


def test_bad_input_is_rejected():
    layer = S6(D_MODEL, n=N_EXP)
    u = torch.randn(2, 5, D_MODEL)
    for fn in (layer, layer.to_dsf):
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) = \(\*, \*, 8\), got shape"):
            fn(torch.randn(2, 5, 7))
        with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d_model=8\) \(3 dims\)"):
            fn(u[0])
        with pytest.raises(TypeError, match=r"u must have a floating dtype"):
            fn(u.long())


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((0,), {}, ValueError, "d_model must be a positive int, got 0"),
        ((8.0,), {}, TypeError, "d_model must be a positive int, got float"),
        ((8,), dict(n=0), ValueError, "n must be a positive int, got 0"),
        ((8,), dict(n=True), TypeError, "n must be a positive int, got bool"),
        ((8,), dict(dt_rank=-1), ValueError, "dt_rank must be a positive int, got -1"),
        ((8,), dict(backend="cuda"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        S6(*args, **kwargs)


def test_registry_and_init():
    layer = build_mixer("s6", 256, n=4)
    assert isinstance(layer, S6) and layer.dt_rank == 16
    assert S6(8).dt_rank == 1 and S6(17).dt_rank == 2 and S6(8, dt_rank=3).dt_rank == 3
    # S4D-real init a_{c,k} = -(k+1), D = 1
    torch.testing.assert_close(-torch.exp(layer.A_log), -torch.arange(1.0, 5.0).expand(256, 4))
    assert torch.equal(layer.D, torch.ones(256))
    # Mamba's step init: softplus(b_Delta) log-uniform in [1e-3, 1e-1]
    dt = F.softplus(layer.dt_up.bias.detach().double())
    assert dt.min() >= 1e-3 * (1 - 1e-6) and dt.max() <= 1e-1 * (1 + 1e-6)
    log_dt = dt.log()
    assert abs(log_dt.mean().item() - math.log(1e-2)) < 0.3  # centre of the log-uniform law
    assert (dt < 3e-3).any() and (dt > 3e-2).any()


# ---- model-specific properties -----------------------------------------------------------

def test_phi_is_diagonal_in_channels_before_the_output_projection():
    layer = _layer()
    length = 9
    u = _input(2, length)
    ssm = layer.to_dsf(u, include_output_projection=False)
    phi = materialize_phi(ssm)  # (b, L, L, d, d)
    off = ~torch.eye(D_MODEL, dtype=torch.bool)
    assert phi[..., off].abs().max() == 0
    # diagonal entries: Phi_ij[c, c] = c_i^T exp(A_c sum_{k=j+1}^{i} Delta_kc) b_j Delta_jc (+ D_c if i == j)
    with torch.no_grad():
        delta = F.softplus(layer.dt_up(layer.dt_down(u)))
        bb, cc, A = layer.B_proj(u), layer.C_proj(u), -torch.exp(layer.A_log)
    for i, j in [(6, 2), (8, 0), (4, 4)]:
        acc = delta[:, j + 1 : i + 1].sum(1)  # (b, d)
        expected = torch.einsum("bk,bck,bk->bc", cc[:, i], torch.exp(acc[..., None] * A), bb[:, j]) * delta[:, j]
        if i == j:
            expected = expected + layer.D.detach()
        torch.testing.assert_close(torch.diagonal(phi[:, i, j], dim1=-2, dim2=-1), expected, rtol=0, atol=1e-12)
    # with the output projection, Phi_ij = W_out Phi_ij^{SSM}: mixing comes only from W_out
    full = materialize_phi(layer.to_dsf(u))
    torch.testing.assert_close(full, layer.out_proj.weight @ phi, rtol=0, atol=1e-12)
    assert full[..., off].abs().max() > 1e-3


def test_reversed_sigmoid_identity():
    # exp(-a softplus(z)) = (1 + e^z)^(-a) = sigmoid(-z)^a for a > 0, including large |z|
    z = torch.cat([torch.linspace(-40.0, 40.0, 801, dtype=F64),
                   torch.tensor([-700.0, -300.0, -100.0, 100.0, 300.0, 700.0], dtype=F64)])
    softplus = torch.logaddexp(torch.zeros_like(z), z)  # exact softplus (F.softplus linearises above 20)
    for a in (0.25, 1.0, 2.5, 16.0):
        lhs = torch.exp(-a * softplus)
        rhs = torch.sigmoid(-z) ** a
        torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-300)
        torch.testing.assert_close(-a * softplus, a * F.logsigmoid(-z), rtol=1e-13, atol=1e-15)
    # a sanity check that the comparison can fail: the ordinary (not reversed) sigmoid differs
    assert not torch.allclose(torch.exp(-softplus), torch.sigmoid(z))


def test_transitions_are_reversed_sigmoids_of_a_low_rank_projection():
    # Delta_i = softplus(z_i), z_i = W_Delta u_i + b_Delta with W_Delta = W_Delta2 W_Delta1 (rank <= dt_rank):
    # A_i[c, k] = exp(Delta_ic A_ck) = sigmoid(-z_ic)^(-A_ck), with -A_ck = exp(A_log_ck) > 0
    layer = _layer()
    u = _input(2, 12)
    dsf = layer.to_dsf(u)
    with torch.no_grad():
        W = layer.dt_up.weight @ layer.dt_down.weight
        z = u @ W.T + layer.dt_up.bias
        power = torch.exp(layer.A_log)
    assert torch.linalg.matrix_rank(W).item() == layer.dt_rank == 1
    assert z.abs().max() < 20  # F.softplus is exact here (it switches to the identity above 20)
    expected = torch.sigmoid(-z)[..., None] ** power  # (b, L, d, n), state index (channel, key)
    torch.testing.assert_close(dsf.A, expected.reshape(2, 12, D_MODEL * N_EXP), rtol=1e-13, atol=0)
    assert (dsf.A > 0).all() and (dsf.A < 1).all()
    # the state's n entries of one channel decay at n different rates
    assert (dsf.A.reshape(2, 12, D_MODEL, N_EXP).diff(dim=-1).abs() > 0).all()
