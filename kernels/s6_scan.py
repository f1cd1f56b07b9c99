r"""S6's selective scan in its compact layout: no ``(batch, L, d, n)`` tensor ever reaches memory.

Mamba's S6 layer (``dsflib.models.s6``) runs, per batch element, channel ``c`` and state entry ``j``,

.. math::  s_{i,c,j} = e^{\Delta_{i,c} A_{c,j}}\, s_{i-1,c,j} + \Delta_{i,c} u_{i,c} B_{i,j}, \qquad
           y_{i,c} = \sum_j C_{i,j}\, s_{i,c,j},

from ``u, delta`` ``(batch, L, d)``, ``A`` ``(d, n)`` (``<= 0``) and ``B, C`` ``(batch, L, n)``, the
inputs of the general diagonal kernel (:mod:`.diag_scan`) before they are expanded: ``q = C`` and
``k = B`` are shared by the channels, ``log_a = delta * A`` and ``v = delta * u`` are formed in
registers. Each program holds the states of ``BD`` channels x all ``n`` entries and walks the
sequence (``grid = (cdiv(d, BD), batch)``); memory traffic is the compact inputs and ``y`` only.

Backward, without checkpoints (the identity of :mod:`.diag_scan`): the gradient wrt the cumulative
log-decay at step ``i`` is :math:`g_i = \sum_{t \ge i} (q_t \odot dq_t - k_t \odot dk_t)`, and
``d log_a_i = g_i`` turns into :math:`d\Delta_{i,c} \mathrel{+}= \sum_j A_{c,j} g_{i,c,j}` and
:math:`dA_{c,j} = \sum_i \Delta_{i,c} g_{i,c,j}` in registers. Two kernels:

* ``_bwd_fwd`` (forward in time) recomputes :math:`s_i`; with the exclusive prefix
  :math:`P_i = \sum_{t<i} q_t \odot dq_t` it adds :math:`-P_i` to ``g_i`` (``d delta`` and ``dA``
  contributions), writes the channel block's share of :math:`dC_i = \sum_c do_{i,c}\, s_{i,c,:}` and
  leaves the total :math:`T = P_L` for the reverse pass;
* ``_bwd_rev`` (reverse in time) carries the adjoint :math:`\lambda_i = C_i\, do_i + a_{i+1} \lambda_{i+1}`
  and the running :math:`T - \sum_{t \ge i} k_t \odot dk_t`, and writes ``d delta`` (finished),
  ``du``, ``dA`` and the block's share of ``dB``.

The per-block shares of ``dB``/``dC`` (``(batch, cdiv(d, BD), L, n)``, float32) and of ``dA``
(``(batch, d, n)``) are summed by torch. Everything accumulates in float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._checks import check_finite, check_same, check_tensor
from ._common import SUPPORTED_DTYPES, Launcher, _flag, device_guard, new_output, pow2

__all__ = ["s6_scan", "S6ScanFn", "MAX_N", "validate_s6"]

MAX_N = 256  # state entries per channel held in registers


@triton.jit
def _fwd(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, y_ptr,
         L, D, N,
         BD: tl.constexpr, BN: tl.constexpr):
    i_d = tl.program_id(0)
    i_b = tl.program_id(1).to(tl.int64)
    o_d = i_d * BD + tl.arange(0, BD)
    o_n = tl.arange(0, BN)
    m_d = o_d < D
    m_n = o_n < N
    m = m_d[:, None] & m_n[None, :]
    A = tl.load(a_ptr + o_d[:, None] * N + o_n[None, :], mask=m, other=0.0).to(tl.float32)
    p_u = u_ptr + i_b * L * D + o_d
    p_dt = dt_ptr + i_b * L * D + o_d
    p_y = y_ptr + i_b * L * D + o_d
    p_b = b_ptr + i_b * L * N + o_n
    p_c = c_ptr + i_b * L * N + o_n
    s = tl.zeros([BD, BN], dtype=tl.float32)
    for _ in range(0, L):
        b_u = tl.load(p_u, mask=m_d, other=0.0).to(tl.float32)
        b_dt = tl.load(p_dt, mask=m_d, other=0.0).to(tl.float32)
        b_b = tl.load(p_b, mask=m_n, other=0.0).to(tl.float32)
        b_c = tl.load(p_c, mask=m_n, other=0.0).to(tl.float32)
        s = tl.exp(b_dt[:, None] * A) * s + (b_dt * b_u)[:, None] * b_b[None, :]
        tl.store(p_y, tl.sum(s * b_c[None, :], axis=1).to(y_ptr.dtype.element_ty), mask=m_d)
        p_u += D
        p_dt += D
        p_y += D
        p_b += N
        p_c += N


@triton.jit
def _bwd_fwd(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, do_ptr,
             ddt_ptr, da_ptr, dc_ptr, tot_ptr,
             L, D, N,
             BD: tl.constexpr, BN: tl.constexpr):
    # writes: ddt (fp32, the -P_i part), da (fp32, per batch), dc (fp32, per channel block), tot = P_L
    i_d = tl.program_id(0)
    i_b = tl.program_id(1).to(tl.int64)
    n_blocks = tl.num_programs(0)
    o_d = i_d * BD + tl.arange(0, BD)
    o_n = tl.arange(0, BN)
    m_d = o_d < D
    m_n = o_n < N
    m = m_d[:, None] & m_n[None, :]
    dn = o_d[:, None] * N + o_n[None, :]
    A = tl.load(a_ptr + dn, mask=m, other=0.0).to(tl.float32)
    p_u = u_ptr + i_b * L * D + o_d
    p_dt = dt_ptr + i_b * L * D + o_d
    p_do = do_ptr + i_b * L * D + o_d
    p_ddt = ddt_ptr + i_b * L * D + o_d
    p_b = b_ptr + i_b * L * N + o_n
    p_c = c_ptr + i_b * L * N + o_n
    p_dc = dc_ptr + (i_b * n_blocks + i_d) * L * N + o_n
    s = tl.zeros([BD, BN], dtype=tl.float32)
    prefix = tl.zeros([BD, BN], dtype=tl.float32)  # sum_{t < i} q_t * dq_t
    da = tl.zeros([BD, BN], dtype=tl.float32)
    for _ in range(0, L):
        b_u = tl.load(p_u, mask=m_d, other=0.0).to(tl.float32)
        b_dt = tl.load(p_dt, mask=m_d, other=0.0).to(tl.float32)
        b_do = tl.load(p_do, mask=m_d, other=0.0).to(tl.float32)
        b_b = tl.load(p_b, mask=m_n, other=0.0).to(tl.float32)
        b_c = tl.load(p_c, mask=m_n, other=0.0).to(tl.float32)
        s = tl.exp(b_dt[:, None] * A) * s + (b_dt * b_u)[:, None] * b_b[None, :]
        tl.store(p_ddt, -tl.sum(A * prefix, axis=1), mask=m_d)
        da -= b_dt[:, None] * prefix
        dq = b_do[:, None] * s
        prefix += b_c[None, :] * dq
        tl.store(p_dc, tl.sum(dq, axis=0), mask=m_n)
        p_u += D
        p_dt += D
        p_do += D
        p_ddt += D
        p_b += N
        p_c += N
        p_dc += N
    tl.store(da_ptr + i_b * D * N + dn, da, mask=m)
    tl.store(tot_ptr + i_b * D * N + dn, prefix, mask=m)


@triton.jit
def _bwd_rev(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, do_ptr,
             ddt_ptr, da_ptr, db_ptr, tot_ptr, du_ptr,
             L, D, N,
             BD: tl.constexpr, BN: tl.constexpr):
    # ddt and da hold _bwd_fwd's parts on entry (fp32) and the full gradients on exit
    i_d = tl.program_id(0)
    i_b = tl.program_id(1).to(tl.int64)
    n_blocks = tl.num_programs(0)
    o_d = i_d * BD + tl.arange(0, BD)
    o_n = tl.arange(0, BN)
    m_d = o_d < D
    m_n = o_n < N
    m = m_d[:, None] & m_n[None, :]
    dn = o_d[:, None] * N + o_n[None, :]
    A = tl.load(a_ptr + dn, mask=m, other=0.0).to(tl.float32)
    last_d = (i_b * L + L - 1) * D + o_d  # the last token; pointers walk backwards from it
    last_n = (i_b * L + L - 1) * N + o_n
    p_u = u_ptr + last_d
    p_dt = dt_ptr + last_d
    p_do = do_ptr + last_d
    p_ddt = ddt_ptr + last_d
    p_du = du_ptr + last_d
    p_b = b_ptr + last_n
    p_c = c_ptr + last_n
    p_db = db_ptr + ((i_b * n_blocks + i_d) * L + L - 1) * N + o_n
    lam = tl.zeros([BD, BN], dtype=tl.float32)  # adjoint of s_i
    decay = tl.zeros([BD, BN], dtype=tl.float32) + 1.0  # a_{i+1}
    g = tl.load(tot_ptr + i_b * D * N + dn, mask=m, other=0.0)  # T - sum_{t >= i} k_t * dk_t
    da = tl.load(da_ptr + i_b * D * N + dn, mask=m, other=0.0)
    for _ in range(0, L):
        b_u = tl.load(p_u, mask=m_d, other=0.0).to(tl.float32)
        b_dt = tl.load(p_dt, mask=m_d, other=0.0).to(tl.float32)
        b_do = tl.load(p_do, mask=m_d, other=0.0).to(tl.float32)
        b_b = tl.load(p_b, mask=m_n, other=0.0).to(tl.float32)
        b_c = tl.load(p_c, mask=m_n, other=0.0).to(tl.float32)
        lam = decay * lam + b_c[None, :] * b_do[:, None]
        b_v = b_dt * b_u
        dk = lam * b_v[:, None]
        tl.store(p_db, tl.sum(dk, axis=0), mask=m_n)
        dv = tl.sum(lam * b_b[None, :], axis=1)
        g -= b_b[None, :] * dk
        b_ddt = tl.load(p_ddt, mask=m_d, other=0.0) + tl.sum(A * g, axis=1) + dv * b_u
        tl.store(p_ddt, b_ddt, mask=m_d)
        tl.store(p_du, (dv * b_dt).to(du_ptr.dtype.element_ty), mask=m_d)
        da += b_dt[:, None] * g
        decay = tl.exp(b_dt[:, None] * A)
        p_u -= D
        p_dt -= D
        p_do -= D
        p_ddt -= D
        p_du -= D
        p_b -= N
        p_c -= N
        p_db -= N
    tl.store(da_ptr + i_b * D * N + dn, da, mask=m)


# ----------------------------------------------------------------------------- configurations

def _config(n):
    from . import interpret_mode
    if interpret_mode():  # small channel blocks so tiny test shapes span several (ragged) blocks
        return triton.Config({"BD": 2}, num_warps=1, num_stages=1)
    bn = pow2(n)
    return triton.Config({"BD": max(1, min(64, 256 // bn))}, num_warps=2, num_stages=2)


_CANDIDATES = [triton.Config({"BD": bd}, num_warps=w, num_stages=2) for bd in (4, 8, 16, 32, 64) for w in (1, 2, 4)]


def _prune(configs, named_args):
    bn = pow2(named_args["N"])
    kept = [c for c in configs if 64 <= c.kwargs["BD"] * bn <= 2048 and c.num_warps * 32 <= c.kwargs["BD"] * bn]
    return kept or [_config(named_args["N"])]


# the forward may autotune (opt-in, DSFLIB_KERNELS_AUTOTUNE=1); the backward runs _config's choice
_FWD = Launcher(_fwd, _config, _CANDIDATES, key=["D", "N"], prune=_prune)


# ----------------------------------------------------------------------------- host side

def validate_s6(u, delta, A, B, C) -> tuple[int, int, int, int]:
    """Check the compact S6 inputs; returns ``(batch, L, d, n)``.

    ``TypeError``/``ValueError`` name the argument for bad input; ``NotImplementedError`` marks valid
    input the kernel does not cover (float64, a CPU tensor outside the interpreter, bfloat16 inside
    it, ``n > MAX_N``), so a caller can fall back to the torch path.
    """
    from . import interpret_mode

    check_tensor("u", u, (None, None, None), "(batch, L, d)")
    b, L, d = u.shape
    check_tensor("delta", delta, (b, L, d), "(batch, L, d)")
    check_tensor("A", A, (d, None), "(d, n)")
    n = A.shape[1]
    check_tensor("B", B, (b, L, n), "(batch, L, n)")
    check_tensor("C", C, (b, L, n), "(batch, L, n)")
    for name, x in (("delta", delta), ("B", B), ("C", C)):
        check_same(name, x, "u", u)
    if A.device != u.device:
        raise ValueError(f"A must be on the device of u ({u.device}), got {A.device}")
    for name, x in (("u", u), ("A", A)):
        if x.dtype not in SUPPORTED_DTYPES:
            raise NotImplementedError(f"the S6 scan kernel takes float16, bfloat16 or float32 inputs, got {name} of "
                                      f"dtype {x.dtype}; use dsflib.scan.selective_scan for it")
    if u.device.type != "cuda" and not (u.device.type == "cpu" and interpret_mode()):
        raise NotImplementedError(f"the S6 scan kernel needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1), "
                                  f"got u on {u.device}")
    if interpret_mode() and torch.bfloat16 in (u.dtype, A.dtype):
        raise NotImplementedError("bfloat16 is not supported by the Triton CPU interpreter; use float16/float32 there")
    if n > MAX_N:
        raise NotImplementedError(f"the S6 scan kernel supports n <= {MAX_N}, got n={n}")
    if _flag("DSFLIB_KERNELS_CHECK", "1"):
        check_finite("A", A)
        check_finite("delta", delta)
        if (A > 0).any() or (delta < 0).any():
            raise ValueError("the S6 scan needs A <= 0 and delta >= 0 (decays exp(delta * A) in (0, 1]); got "
                             f"max(A) = {A.max().item():.3g}, min(delta) = {delta.min().item():.3g}")
    return b, L, d, n


def _grid(b, d):
    return lambda meta: (triton.cdiv(d, meta["BD"]), b)


class S6ScanFn(torch.autograd.Function):
    """Differentiable compact S6 scan on validated, contiguous inputs (see :func:`s6_scan`)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        b, L, d = u.shape
        n = A.shape[1]
        y = new_output((b, L, d), u.dtype, u.device)
        with device_guard(u):
            _FWD(_grid(b, d), (u, delta, A, B, C, y, L, d, n), dict(BN=pow2(n)), dict(n=n))
        ctx.save_for_backward(u, delta, A, B, C)
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C = ctx.saved_tensors
        b, L, d = u.shape
        n = A.shape[1]
        dev = u.device
        dy = dy.to(u.dtype).contiguous()
        # one fixed configuration for both passes: the per-block shares of dB and dC are laid out by
        # the number of channel blocks, so the two kernels must agree on it (no autotuning here)
        config = _config(n)
        blocks = triton.cdiv(d, config.kwargs["BD"])
        ddt = new_output((b, L, d), torch.float32, dev)
        da = new_output((b, d, n), torch.float32, dev)
        tot = new_output((b, d, n), torch.float32, dev)
        du = new_output((b, L, d), u.dtype, dev)
        dc = new_output((b, blocks, L, n), torch.float32, dev)
        db = new_output((b, blocks, L, n), torch.float32, dev)
        launch = dict(BN=pow2(n), **config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)
        with device_guard(u):
            _bwd_fwd[(blocks, b)](u, delta, A, B, C, dy, ddt, da, dc, tot, L, d, n, **launch)
            _bwd_rev[(blocks, b)](u, delta, A, B, C, dy, ddt, da, db, tot, du, L, d, n, **launch)
        return du, ddt.to(delta.dtype), da.sum(0).to(A.dtype), db.sum(1).to(B.dtype), dc.sum(1).to(C.dtype)


def s6_scan(u, delta, A, B, C):
    r"""S6's selective scan from its compact inputs, on Triton: ``y`` ``(batch, L, d)`` in ``u``'s dtype.

    :math:`s_{i,c,:} = e^{\Delta_{i,c} A_{c,:}} \odot s_{i-1,c,:} + \Delta_{i,c} u_{i,c} B_i`,
    :math:`y_{i,c} = C_i^\top s_{i,c,:}`, zero initial state; equal to
    ``dsflib.scan.selective_scan(C, B, delta * u, delta[..., None] * A)``. Shapes: ``u, delta``
    ``(batch, L, d)``, ``A`` ``(d, n)`` with ``A <= 0``, ``B, C`` ``(batch, L, n)``; differentiable wrt
    all five. Bad input raises ``TypeError``/``ValueError`` naming the argument; layouts the kernel
    does not cover raise ``NotImplementedError``.
    """
    b, L, d, n = validate_s6(u, delta, A, B, C)
    if L == 0 or b * d == 0:  # nothing for a kernel to do
        return u.new_zeros(b, L, d) + 0.0 * (delta.sum() + A.sum() + B.sum() + C.sum())
    return S6ScanFn.apply(*(t.contiguous() for t in (u, delta, A, B, C)))
