r"""Chunked scan with per-key decays and a matrix state (GLA, ``dv > 1``).

Per batch element and head the state is a ``dk x dv`` matrix,

.. math::  S_i = \mathrm{diag}(a_i)\, S_{i-1} + k_i v_i^\top, \qquad y_i = S_i^\top q_i,
           \qquad a_i = e^{\text{log\_a}_i} \in (0, 1]^{dk},

the layout of gated linear attention. A chunk of ``BT`` tokens is evaluated in parallel:

* within the chunk, ``scores[i, j] = sum_c q[i, c] k[j, c] exp(seg[i, j, c])`` for ``j <= i``, with the
  per-key segment sums ``seg[i, j, c] = sum_{j < t <= i} log_a[t, c]`` accumulated from the
  log-decays between the two tokens (a masked cumulative sum, no difference of prefix sums, so no
  cancellation); the causal mask is applied before the ``exp`` and every exponent is ``<= 0``;
* across chunks, the entering state is read with ``q_i * exp(g_i)`` (``g`` = chunk-local cumulative
  log-decay) and carried with ``exp(g_last)`` and ``k_j * exp(to_end_j)`` (``to_end_j`` = log-decay from
  ``j`` to the chunk's end): all exponents ``<= 0``.

Per-key decays do not factor out of ``q k^T`` (as a scalar decay does in :mod:`.chunked_scan`), so
the intra-chunk scores are a ``(BT, BT, dk)`` product-sum rather than one ``tl.dot``: correct and
stable, with a small chunk (``BT = 16``). Grid ``(cdiv(dv, BV), batch * H)``: each program holds a
``dk x BV`` slice of the state.

Backward (no stored states, as in :mod:`.diag_scan`): ``_bwd_dq`` runs forward in time and writes
the program's share of ``dq`` (the ``v`` columns it holds); ``_bwd_dkdv`` runs backward in time with
the state adjoint ``dS`` and writes ``dv`` and its share of ``dk``; torch sums the shares and forms
``d log_a`` from the identity ``dL/dG_i = q_i * dq_i - k_i * dk_i`` (``G`` = global cumulative
log-decay; plus ``dS_L * S_L`` at the last token), ``d log_a_t = sum_{i >= t} dL/dG_i``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import device_guard, dot_precision, new_output, pow2

__all__ = ["gla_scan", "GLAScanFn", "MAX_DK"]

MAX_DK = 128  # keys per head: the intra-chunk product-sum holds (BT, BT, dk) values


@triton.jit
def _chunk(la_ptrs, m_tk, o_t, BT: tl.constexpr):
    """Per-key decays of one chunk: g (BT, BK), to_end (BT, BK), g_last (BK,), decay (BT, BT, BK)."""
    b_la = tl.load(la_ptrs, mask=m_tk, other=0.0).to(tl.float32)  # padding: log a = 0
    g = tl.cumsum(b_la, axis=0)
    g_last = tl.sum(b_la, axis=0)
    after = o_t[:, None] > o_t[None, :]  # (t, j): t > j
    terms = tl.where(after[:, :, None], b_la[:, None, :], 0.0)  # (t, j, c)
    seg = tl.cumsum(terms, axis=0)  # seg[i, j, c] = sum_{j < t <= i} log a[t, c]
    to_end = tl.minimum(tl.sum(terms, axis=0), 0.0)  # (j, c): sum_{t > j} log a[t, c]
    causal = o_t[:, None] >= o_t[None, :]
    decay = tl.exp(tl.minimum(tl.where(causal[:, :, None], seg, float("-inf")), 0.0))  # mask, then exp
    return g, to_end, g_last, decay


@triton.jit
def _fwd(q_ptr, k_ptr, v_ptr, la_ptr, h0_ptr, y_ptr, ht_ptr,
         L, H, DK, DV,
         BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
         HAS_H0: tl.constexpr, STORE_HT: tl.constexpr, PREC: tl.constexpr):
    i_v = tl.program_id(0)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // H
    i_h = i_bh % H
    DT = q_ptr.dtype.element_ty
    o_t = tl.arange(0, BT)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < DK
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    q_ptr += (i_b * L * H + i_h) * DK
    k_ptr += (i_b * L * H + i_h) * DK
    la_ptr += (i_b * L * H + i_h) * DK
    v_ptr += (i_b * L * H + i_h) * DV
    y_ptr += (i_b * L * H + i_h) * DV
    s_off = i_bh * DK * DV + o_k[:, None] * DV + o_v[None, :]

    S = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        S = tl.load(h0_ptr + s_off, mask=m_kv, other=0.0).to(tl.float32)
    for c in range(0, tl.cdiv(L, BT)):
        t = c * BT + o_t
        m_t = t < L
        tk = t[:, None] * (H * DK) + o_k[None, :]
        m_tk = m_t[:, None] & m_k[None, :]
        tv = t[:, None] * (H * DV) + o_v[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        b_q = tl.load(q_ptr + tk, mask=m_tk, other=0.0).to(tl.float32)
        b_k = tl.load(k_ptr + tk, mask=m_tk, other=0.0).to(tl.float32)
        b_v = tl.load(v_ptr + tv, mask=m_tv, other=0.0)
        g, to_end, g_last, decay = _chunk(la_ptr + tk, m_tk, o_t, BT)
        scores = tl.sum(b_q[:, None, :] * b_k[None, :, :] * decay, axis=2)  # (BT, BT)
        b_y = tl.dot((b_q * tl.exp(g)).to(DT), S.to(DT), input_precision=PREC)
        b_y = tl.dot(scores.to(DT), b_v, acc=b_y, input_precision=PREC)
        tl.store(y_ptr + tv, b_y.to(y_ptr.dtype.element_ty), mask=m_tv)
        k_out = (b_k * tl.exp(to_end)).to(DT)
        S = tl.dot(tl.trans(k_out), b_v, acc=S * tl.exp(g_last)[:, None], input_precision=PREC)
    if STORE_HT:
        tl.store(ht_ptr + s_off, S, mask=m_kv)


@triton.jit
def _bwd_dq(q_ptr, k_ptr, v_ptr, la_ptr, h0_ptr, do_ptr, dq_ptr,
            B, L, H, DK, DV,
            BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, PREC: tl.constexpr):
    # dq_ptr: (cdiv(DV, BV), B, L, H, DK) fp32, this program's share of dq
    i_v = tl.program_id(0)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // H
    i_h = i_bh % H
    DT = q_ptr.dtype.element_ty
    o_t = tl.arange(0, BT)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < DK
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    q_ptr += (i_b * L * H + i_h) * DK
    k_ptr += (i_b * L * H + i_h) * DK
    la_ptr += (i_b * L * H + i_h) * DK
    dq_ptr += ((i_v * B + i_b) * L * H + i_h) * DK
    v_ptr += (i_b * L * H + i_h) * DV
    do_ptr += (i_b * L * H + i_h) * DV
    causal = o_t[:, None] >= o_t[None, :]

    S = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        S = tl.load(h0_ptr + i_bh * DK * DV + o_k[:, None] * DV + o_v[None, :], mask=m_kv, other=0.0)
    for c in range(0, tl.cdiv(L, BT)):
        t = c * BT + o_t
        m_t = t < L
        tk = t[:, None] * (H * DK) + o_k[None, :]
        m_tk = m_t[:, None] & m_k[None, :]
        tv = t[:, None] * (H * DV) + o_v[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        b_k = tl.load(k_ptr + tk, mask=m_tk, other=0.0).to(tl.float32)
        b_v = tl.load(v_ptr + tv, mask=m_tv, other=0.0)
        b_do = tl.load(do_ptr + tv, mask=m_tv, other=0.0)
        g, to_end, g_last, decay = _chunk(la_ptr + tk, m_tk, o_t, BT)
        d_scores = tl.where(causal, tl.dot(b_do, tl.trans(b_v), input_precision=PREC), 0.0)  # (i, j)
        b_dq = tl.sum(d_scores[:, :, None] * b_k[None, :, :] * decay, axis=1)
        b_dq += tl.exp(g) * tl.dot(b_do, tl.trans(S.to(DT)), input_precision=PREC)
        tl.store(dq_ptr + tk, b_dq, mask=m_tk)
        k_out = (b_k * tl.exp(to_end)).to(DT)
        S = tl.dot(tl.trans(k_out), b_v, acc=S * tl.exp(g_last)[:, None], input_precision=PREC)


@triton.jit
def _bwd_dkdv(q_ptr, k_ptr, v_ptr, la_ptr, do_ptr, dht_ptr, dk_ptr, dv_ptr, dh0_ptr,
              B, L, H, DK, DV,
              BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
              HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, PREC: tl.constexpr):
    # dk_ptr: (cdiv(DV, BV), B, L, H, DK) fp32, this program's share of dk; dv: complete for its columns
    i_v = tl.program_id(0)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // H
    i_h = i_bh % H
    DT = q_ptr.dtype.element_ty
    o_t = tl.arange(0, BT)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < DK
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    q_ptr += (i_b * L * H + i_h) * DK
    k_ptr += (i_b * L * H + i_h) * DK
    la_ptr += (i_b * L * H + i_h) * DK
    dk_ptr += ((i_v * B + i_b) * L * H + i_h) * DK
    v_ptr += (i_b * L * H + i_h) * DV
    do_ptr += (i_b * L * H + i_h) * DV
    dv_ptr += (i_b * L * H + i_h) * DV
    s_off = i_bh * DK * DV + o_k[:, None] * DV + o_v[None, :]
    causal = o_t[:, None] >= o_t[None, :]

    dS = tl.zeros([BK, BV], dtype=tl.float32)  # adjoint of the state leaving the chunk
    if HAS_DHT:
        dS = tl.load(dht_ptr + s_off, mask=m_kv, other=0.0)
    n_chunks = tl.cdiv(L, BT)
    for r in range(0, n_chunks):
        t = (n_chunks - 1 - r) * BT + o_t
        m_t = t < L
        tk = t[:, None] * (H * DK) + o_k[None, :]
        m_tk = m_t[:, None] & m_k[None, :]
        tv = t[:, None] * (H * DV) + o_v[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        b_q = tl.load(q_ptr + tk, mask=m_tk, other=0.0).to(tl.float32)
        b_k = tl.load(k_ptr + tk, mask=m_tk, other=0.0).to(tl.float32)
        b_v = tl.load(v_ptr + tv, mask=m_tv, other=0.0)
        b_do = tl.load(do_ptr + tv, mask=m_tv, other=0.0)
        g, to_end, g_last, decay = _chunk(la_ptr + tk, m_tk, o_t, BT)
        scores = tl.sum(b_q[:, None, :] * b_k[None, :, :] * decay, axis=2)  # (i, j), zero above the diagonal
        d_scores = tl.where(causal, tl.dot(b_do, tl.trans(b_v), input_precision=PREC), 0.0)
        b_dk = tl.sum(d_scores[:, :, None] * b_q[:, None, :] * decay, axis=0)  # (j, c)
        b_dk += tl.exp(to_end) * tl.dot(b_v, tl.trans(dS.to(DT)), input_precision=PREC)
        tl.store(dk_ptr + tk, b_dk, mask=m_tk)
        k_out = b_k * tl.exp(to_end)
        b_dv = tl.dot(tl.trans(scores.to(DT)), b_do, input_precision=PREC)
        b_dv = tl.dot(k_out.to(DT), dS.to(DT), acc=b_dv, input_precision=PREC)
        tl.store(dv_ptr + tv, b_dv.to(dv_ptr.dtype.element_ty), mask=m_tv)
        q_in = (b_q * tl.exp(g)).to(DT)
        dS = tl.dot(tl.trans(q_in), b_do, acc=dS * tl.exp(g_last)[:, None], input_precision=PREC)
    if STORE_DH0:
        tl.store(dh0_ptr + s_off, dS, mask=m_kv)


# ----------------------------------------------------------------------------- configuration

def _config(dk, dv):
    """One configuration from the shape (no autotuning: the product-sum's size is fixed by BT and dk)."""
    from . import interpret_mode
    if interpret_mode():
        return triton.Config({"BT": 16, "BV": 16}, num_warps=4, num_stages=1)
    bk = pow2(dk, 16)
    return triton.Config({"BT": 16, "BV": min(32, pow2(dv, 16))}, num_warps=8 if bk >= 128 else 4, num_stages=1)


def _launch(kernel, grid, args, consts, config):
    kernel[grid](*args, **consts, **config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)


# ----------------------------------------------------------------------------- host side

class GLAScanFn(torch.autograd.Function):
    """Differentiable per-key-decay matrix-state scan on validated, contiguous inputs (see :func:`gla_scan`)."""

    @staticmethod
    def forward(ctx, q, k, v, log_a, initial_state, return_final_state):
        b, L, H, dk = q.shape
        dv = v.shape[-1]
        h0 = None if initial_state is None else initial_state.detach().to(torch.float32).contiguous()
        y = new_output((b, L, H, dv), v.dtype, q.device)
        ht = new_output((b, H, dk, dv), torch.float32, q.device) if return_final_state else None
        config = _config(dk, dv)
        grid = (triton.cdiv(dv, config.kwargs["BV"]), b * H)
        with device_guard(q):
            _launch(_fwd, grid, (q, k, v, log_a, h0 if h0 is not None else q, y, ht if ht is not None else y,
                                 L, H, dk, dv),
                    dict(BK=pow2(dk, 16), HAS_H0=h0 is not None, STORE_HT=ht is not None, PREC=dot_precision()),
                    config)
        ctx.save_for_backward(q, k, v, log_a, h0, ht)
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)
        return y, ht

    @staticmethod
    def backward(ctx, dy, dht):
        q, k, v, log_a, h0, ht = ctx.saved_tensors
        b, L, H, dk = q.shape
        dv = v.shape[-1]
        dev = q.device
        dy = torch.zeros_like(v) if dy is None else dy.to(v.dtype).contiguous()
        dht = None if dht is None else dht.to(torch.float32).contiguous()
        need_dh0 = h0 is not None and ctx.needs_input_grad[4]
        config = _config(dk, dv)
        blocks = triton.cdiv(dv, config.kwargs["BV"])
        dq = new_output((blocks, b, L, H, dk), torch.float32, dev)
        dk_ = new_output((blocks, b, L, H, dk), torch.float32, dev)
        dv_ = new_output(v.shape, v.dtype, dev)
        dh0 = new_output((b, H, dk, dv), torch.float32, dev) if need_dh0 else None
        consts = dict(BK=pow2(dk, 16), PREC=dot_precision())
        grid = (blocks, b * H)
        with device_guard(q):
            _launch(_bwd_dq, grid, (q, k, v, log_a, h0 if h0 is not None else q, dy, dq, b, L, H, dk, dv),
                    dict(consts, HAS_H0=h0 is not None), config)
            _launch(_bwd_dkdv, grid, (q, k, v, log_a, dy, dht if dht is not None else q, dk_, dv_,
                                      dh0 if need_dh0 else q, b, L, H, dk, dv),
                    dict(consts, HAS_DHT=dht is not None, STORE_DH0=need_dh0), config)
        dq, dk_ = dq.sum(0), dk_.sum(0)
        # dL/dG_i (global cumulative log-decay, per key) = q_i dq_i - k_i dk_i (+ <dS_L, S_L> at the end)
        dG = q.float() * dq - k.float() * dk_
        if dht is not None:
            dG[:, -1] += (dht * ht).sum(-1)
        dla = dG.flip(1).cumsum(1).flip(1)
        return (dq.to(q.dtype), dk_.to(k.dtype), dv_, dla.to(log_a.dtype),
                (dh0.to(ctx.h0_dtype) if need_dh0 else None), None)


def gla_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    """The per-key-decay matrix-state scan on the Triton kernels; inputs validated and contiguous.

    Use :func:`dsflib.kernels.linear_scan`, which validates and dispatches.
    """
    if q.shape[-1] > MAX_DK:
        raise NotImplementedError(f"the GLA scan kernel supports dk <= {MAX_DK}, got {q.shape[-1]}")
    y, ht = GLAScanFn.apply(q, k, v, log_a, initial_state, return_final_state)
    return (y, ht) if return_final_state else y
