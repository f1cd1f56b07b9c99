"""The DSF core: recurrence == Phi u (fp64, ragged L), gradients, state passing, bad input."""
import pytest
import torch

import dsflib
from dsflib import DSF, apply_phi, materialize_phi, phi_matrix, random_dsf, recurrence

F64 = torch.float64


def _input(system: DSF, seed: int = 1, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(system.batch, system.length, system.d, generator=g, dtype=F64).to(dtype)


@pytest.mark.parametrize("length", [1, 7, 63, 130])
@pytest.mark.parametrize("heads", [None, 2])
@pytest.mark.parametrize("feedthrough", [True, False])
def test_recurrence_equals_phi(length, heads, feedthrough):
    system = random_dsf(2, length, 4, 3, heads=heads, feedthrough=feedthrough, seed=length, dtype=F64)
    u = _input(system)
    y = recurrence(system, u)
    phi = materialize_phi(system)
    assert y.shape == (2, length, 4) and phi.shape == (2, length, length, 4, 4)
    torch.testing.assert_close(apply_phi(phi, u), y, rtol=0, atol=1e-12)
    flat = (phi_matrix(phi) @ u.flatten(1).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(flat, y.flatten(1), rtol=0, atol=1e-12)


def test_phi_is_causal_and_diagonal_blocks_match_definition():
    system = random_dsf(1, 9, 3, 2, seed=3, dtype=F64)
    phi = materialize_phi(system)
    upper = torch.triu(torch.ones(9, 9, dtype=torch.bool), diagonal=1)
    assert phi[0][upper].abs().max() == 0
    i, j = 6, 2
    decay = system.A[0, j + 1 : i + 1].prod(dim=0)
    expected = system.C[0, i] @ torch.diag(decay) @ system.B[0, j]
    torch.testing.assert_close(phi[0, i, j], expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(phi[0, i, i], system.C[0, i] @ system.B[0, i] + system.D[0, i], rtol=0, atol=1e-14)


def test_phi_handles_zero_and_negative_transitions():
    system = random_dsf(1, 8, 2, 2, seed=4, dtype=F64)
    A = system.A.clone()
    A[0, 3] = 0.0  # resets the state: no token before 3 reaches outputs from 3 on
    A[0, 5, :2] = -0.5
    system = DSF(A, system.B, system.C, system.D)
    u = _input(system)
    phi = materialize_phi(system)
    assert phi[0, 3:, :3].abs().max() == 0
    torch.testing.assert_close(apply_phi(phi, u), recurrence(system, u), rtol=0, atol=1e-12)


def test_scalar_per_head_equals_expanded_diagonal():
    system = random_dsf(2, 11, 4, 2, heads=4, seed=5, dtype=F64)
    assert system.scalar_A and system.A.shape == (2, 11, 4)
    expanded = DSF(system.diag_A(), system.B, system.C, system.D)
    assert not expanded.scalar_A
    # head h owns state entries [h*N/H, (h+1)*N/H)
    assert torch.equal(expanded.A[..., 2:4], system.A[..., 1:2].expand(-1, -1, 2))
    u = _input(system)
    # exact: diag_A() is a copy, so both recurrences run the same operations on the same numbers
    torch.testing.assert_close(recurrence(system, u), recurrence(expanded, u), rtol=0, atol=0)


def test_initial_state_splits_the_sequence():
    system = random_dsf(2, 20, 3, 2, seed=6, dtype=F64)
    u = _input(system)
    y, h_final = recurrence(system, u, return_final_state=True)
    first = DSF(system.A[:, :8], system.B[:, :8], system.C[:, :8], system.D[:, :8])
    second = DSF(system.A[:, 8:], system.B[:, 8:], system.C[:, 8:], system.D[:, 8:])
    y1, h1 = recurrence(first, u[:, :8], return_final_state=True)
    y2, h2 = recurrence(second, u[:, 8:], initial_state=h1, return_final_state=True)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=0, atol=1e-13)
    torch.testing.assert_close(h2, h_final, rtol=0, atol=1e-13)


def test_gradients_of_recurrence_match_phi_path():
    system = random_dsf(2, 13, 3, 2, seed=7, dtype=F64)
    leaves = [t.clone().requires_grad_() for t in (system.A, system.B, system.C, system.D)]
    u = _input(system).requires_grad_()
    w = _input(system, seed=9)

    def grads(fn):
        for t in (*leaves, u):
            t.grad = None
        (fn(DSF(*leaves), u) * w).sum().backward()
        return [t.grad.clone() for t in (*leaves, u)]

    g_rec = grads(recurrence)
    g_phi = grads(lambda s, x: apply_phi(materialize_phi(s), x))
    for name, a, b in zip("ABCDu", g_rec, g_phi):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"gradient wrt {name}")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float16, 2e-2)])
def test_low_precision_accumulates_in_float32(dtype, tol):
    system = random_dsf(1, 130, 3, 2, seed=8, dtype=F64)
    u = _input(system)
    ref = recurrence(system, u)
    y = recurrence(system.to(dtype), u.to(dtype))
    assert y.dtype == dtype
    _, h = recurrence(system.to(dtype), u.to(dtype), return_final_state=True)
    assert h.dtype == torch.float32
    assert ((y.double() - ref).abs().max() / ref.abs().max()).item() < tol


def test_accumulation_dtype():
    assert dsflib.accumulation_dtype(torch.float16) == torch.float32
    assert dsflib.accumulation_dtype(torch.bfloat16) == torch.float32
    assert dsflib.accumulation_dtype(torch.float64) == torch.float64


# ---- bad input ---------------------------------------------------------------------------

def _parts():
    s = random_dsf(2, 5, 3, 2, seed=0)
    return s.A, s.B, s.C, s.D


@pytest.mark.parametrize(
    "mutate,exc,match",
    [
        (lambda A, B, C, D: (A, B[0], C, D), ValueError, r"B must have shape \(batch, L, N, d\)"),
        (lambda A, B, C, D: (A, B[..., :5, :], C[..., :5], D), ValueError, "not a multiple of d=3"),
        (lambda A, B, C, D: (A, B, C[:, :, :2], D), ValueError, r"C must have shape \(batch, L, d, N\)"),
        (lambda A, B, C, D: (A[..., :4], B, C, D), ValueError, r"A must have shape \(batch, L, N\) .* H dividing N=6"),
        (lambda A, B, C, D: (A[:, :4], B, C, D), ValueError, r"A must have shape"),
        (lambda A, B, C, D: (A, B, C, D[..., :2]), ValueError, r"D must have shape \(batch, L, d, d\)"),
        (lambda A, B, C, D: (A.double(), B, C, D), TypeError, r"A must have the dtype of B"),
        (lambda A, B, C, D: (A, B.long(), C, D), TypeError, r"B must have a floating dtype"),
        (lambda A, B, C, D: (A, B, C.numpy(), D), TypeError, r"C must be a torch.Tensor"),
        (lambda A, B, C, D: (A.index_fill(1, torch.tensor([2]), float("nan")), B, C, D), ValueError,
         r"A must be finite, but 12 of its 60 entries"),
        (lambda A, B, C, D: (A, B, C, D.index_fill(0, torch.tensor([0]), float("inf"))), ValueError, r"D must be finite"),
    ],
)
def test_dsf_rejects_bad_matrices(mutate, exc, match):
    with pytest.raises(exc, match=match):
        DSF(*mutate(*_parts()))


def test_recurrence_rejects_bad_input():
    system = DSF(*_parts())
    u = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d\) = \(2, 5, 3\), got shape \(2, 5, 4\)"):
        recurrence(system, torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d\) \(3 dims\)"):
        recurrence(system, u[0])
    with pytest.raises(TypeError, match=r"u must have the dtype of the DSF matrices \(torch.float32\)"):
        recurrence(system, u.double())
    with pytest.raises(TypeError, match=r"u must have a floating dtype"):
        recurrence(system, u.long())
    with pytest.raises(ValueError, match=r"initial_state must have shape \(batch, N\)"):
        recurrence(system, u, initial_state=torch.zeros(2, 5))
    with pytest.raises(TypeError, match=r"dsf must be a dsflib.DSF"):
        recurrence((system.A, system.B), u)


def test_phi_helpers_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"phi must have shape \(batch, L, L, d, d\)"):
        phi_matrix(torch.zeros(1, 3, 4, 2, 2))
    with pytest.raises(ValueError, match=r"u must have shape \(batch, L, d\)"):
        apply_phi(torch.zeros(1, 3, 3, 2, 2), torch.zeros(1, 3, 3))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(d=0), ValueError, "d must be a positive int, got 0"),
        (dict(n=2.0), TypeError, "n must be a positive int, got float"),
        (dict(heads=4), ValueError, r"heads must divide N = n\*d = 6"),
        (dict(decay_range=(0.5, 1.5)), ValueError, "decay_range must satisfy"),
    ],
)
def test_random_dsf_rejects_bad_arguments(kwargs, exc, match):
    args = dict(batch=1, length=4, d=3, n=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        random_dsf(args.pop("batch"), args.pop("length"), args.pop("d"), args.pop("n"), **args)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_past_to_future_rank_is_bounded_by_the_state_size(n):
    d, L, t = 2, 24, 12
    system = random_dsf(1, L, d, n, seed=n, dtype=F64)
    block = dsflib.past_to_future(materialize_phi(system), t)
    assert block.shape == (1, (L - t) * d, t * d)
    # N = n*d < t*d: the rank is exactly N for a generic system, never more
    assert torch.linalg.matrix_rank(block[0]).item() == system.N


def test_past_to_future_rejects_bad_split():
    phi = materialize_phi(random_dsf(1, 5, 2, 1, seed=0))
    for t in (0, 5, 2.0):
        with pytest.raises(ValueError, match=r"t must be an int with 0 < t < L=5"):
            dsflib.past_to_future(phi, t)


def test_random_input_is_seeded_and_shaped():
    a, b = dsflib.random_input(2, 5, 3, seed=7), dsflib.random_input(2, 5, 3, seed=7)
    assert a.shape == (2, 5, 3) and a.dtype == F64 and torch.equal(a, b)
    assert not torch.equal(a, dsflib.random_input(2, 5, 3, seed=8))
    assert dsflib.random_input(1, 4, 2, seed=0, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="length must be a positive int, got 0"):
        dsflib.random_input(1, 0, 2, seed=0)
