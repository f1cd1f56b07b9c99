r"""Chunked scan with one scalar decay per head (linear attention, SSD, RetNet, mLSTM).

Per batch element and head, with :math:`S_i \in \mathbb{R}^{d_k \times d_v}`,

.. math::  S_i = a_i S_{i-1} + k_i v_i^\top, \qquad y_i = S_i^\top q_i, \qquad a_i = e^{\text{log\_a}_i}.

Inside a chunk of ``BT`` tokens with chunk-local cumulative log-decays :math:`G_i = \sum_{s \le i} \log a_s`
(reset every chunk, so :math:`G_i \le 0` and :math:`G_{\text{last}} - G_j \le 0`)

.. math::

    Y = \big((Q K^\top) \circ D\big) V + (Q \circ e^{G}) S_{\text{in}}, \qquad
    D_{ij} = e^{G_i - G_j}\,[i \ge j], \qquad
    S_{\text{out}} = e^{G_{\text{last}}} S_{\text{in}} + (K \circ e^{G_{\text{last}} - G})^\top V .

Every ``exp`` sees a non-positive argument: the causal mask is applied before the ``exp``
(``-inf`` above the diagonal), and the segment sums :math:`G_i - G_j` and :math:`G_{\text{last}} - G_j`
are accumulated from the log-decays between the two tokens (a masked cumulative sum over the chunk,
as in :func:`dsflib.scan.linear_scan_chunked`), not subtracted, so they are :math:`\le 0` by
construction and free of cancellation; ``min(., 0)`` guards them anyway. Products and states
accumulate in fp32; with fp16/bf16 inputs the ``tl.dot`` operands (including the state and the
decay-weighted tiles) are cast to the input dtype, as in the public kernels.

Kernels (``grid = (blocks, batch * H)``, one program walks all chunks of one head in order, the
state lives in registers, nothing of size ``L x dk x dv`` is ever written):

* ``_fwd``: V-blocked (``BV`` columns of the state, all ``dk`` rows): ``y``, final state.
* ``_bwd_dqdk``: K-blocked (``BK`` rows, all ``dv`` columns), launched twice. The ``DQ_SWEEP``
  launch walks forward, recomputes the state ``S[Kblk, :]`` chunk by chunk and gives ``dq``; the
  ``DK_SWEEP`` launch walks backward carrying the adjoint state ``R = dL/dS`` and gives ``dk`` and
  ``dS_0``. (One loop per launch: with both loops in one kernel an sm_90 bf16 compile spilled
  1008 bytes/thread, against 272 and 600 for the two halves.) They also write the per-token partial sums ``q.dq`` and ``-k.dk`` of their K-block.
* ``_bwd_dv``: V-blocked reverse sweep with the adjoint ``R[:, Vblk]``: ``dv``.

The backward stores nothing from the forward except the final state (when it was returned):
both sweeps recompute what they need from the inputs. The decay gradient uses
:math:`\partial L/\partial G^{\text{global}}_i = q_i\cdot dq_i - k_i\cdot dk_i` (+ :math:`\langle dS_L, S_L\rangle`
at the last token), and ``d log_a`` is its reverse cumulative sum over time (done in torch on a
``(batch, L, H)`` fp32 tensor).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import Launcher, device_guard, dot_precision, new_output, pow2

__all__ = ["chunked_scan", "ChunkedScanFn", "MAX_DIM"]

MAX_DIM = 256  # dk and dv up to this: a program holds a (dk x BV) or (BK x dv) fp32 state in registers


@triton.jit
def _chunk_decays(la_ptrs, m_t, o_t, BT: tl.constexpr):
    """Chunk-local log-decays of one chunk: g (BT,), to_end (BT,), g_last, decay (BT, BT).

    g_i = sum_{k <= i} log a_k (from the chunk start), to_end_j = sum_{k > j} log a_k (to the chunk end),
    g_last = the chunk total, and decay[i, j] = exp(sum_{j < k <= i} log a_k) for i >= j, else 0.
    Segment sums are accumulated from the log-decays between the two tokens (a masked cumulative sum),
    not as differences G_i - G_j of chunk prefix sums, so they carry no cancellation error; all are <= 0,
    the causal mask is applied before the exp, and min(., 0) guards the exponent anyway.
    """
    b_la = tl.load(la_ptrs, mask=m_t, other=0.0).to(tl.float32)  # padding: log a = 0, k = v = q = 0
    g = tl.cumsum(b_la, axis=0)
    g_last = tl.sum(b_la, axis=0)
    after = o_t[:, None] > o_t[None, :]  # (k, j): k > j
    seg = tl.cumsum(tl.where(after, b_la[:, None], 0.0), axis=0)  # seg[i, j] = sum_{j < k <= i} log a_k
    to_end = tl.sum(tl.where(o_t[:, None] == BT - 1, seg, 0.0), axis=0)  # row BT - 1 of seg
    causal = o_t[:, None] >= o_t[None, :]
    decay = tl.exp(tl.minimum(tl.where(causal, seg, float("-inf")), 0.0))  # mask first, then exp
    return g, tl.minimum(to_end, 0.0), g_last, decay


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
    # token t of head (i_b, i_h) starts at ((i_b * L + t) * H + i_h) * D: 64-bit scalar bases,
    # 32-bit offsets inside one batch element (the wrapper checks L * H * max(dk, dv) < 2**31)
    q_ptr += (i_b * L * H + i_h) * DK
    k_ptr += (i_b * L * H + i_h) * DK
    v_ptr += (i_b * L * H + i_h) * DV
    y_ptr += (i_b * L * H + i_h) * DV
    la_ptr += i_b * L * H + i_h
    s_off = o_k[:, None] * DV + o_v[None, :]
    h0_ptr += i_bh * DK * DV
    ht_ptr += i_bh * DK * DV

    S = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        S = tl.load(h0_ptr + s_off, mask=m_kv, other=0.0).to(tl.float32)
    for c in range(0, tl.cdiv(L, BT)):
        t = c * BT + o_t
        m_t = t < L
        qk_off = t[:, None] * (H * DK) + o_k[None, :]
        m_tk = m_t[:, None] & m_k[None, :]
        b_q = tl.load(q_ptr + qk_off, mask=m_tk, other=0.0)
        b_k = tl.load(k_ptr + qk_off, mask=m_tk, other=0.0)
        v_off = t[:, None] * (H * DV) + o_v[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        b_v = tl.load(v_ptr + v_off, mask=m_tv, other=0.0)
        g, to_end, g_last, decay = _chunk_decays(la_ptr + t * H, m_t, o_t, BT)

        scores = tl.dot(b_q, tl.trans(b_k), input_precision=PREC) * decay  # (BT, BT), fp32
        q_in = (b_q * tl.exp(g)[:, None]).to(DT)  # reads the entering state, exp(G_i) <= 1
        b_y = tl.dot(q_in, S.to(DT), input_precision=PREC)
        b_y = tl.dot(scores.to(DT), b_v, acc=b_y, input_precision=PREC)
        tl.store(y_ptr + v_off, b_y.to(y_ptr.dtype.element_ty), mask=m_tv)

        k_out = (b_k * tl.exp(to_end)[:, None]).to(DT)  # exp(G_last - G_j) <= 1
        S = tl.dot(tl.trans(k_out), b_v, acc=S * tl.exp(g_last), input_precision=PREC)
    if STORE_HT:
        tl.store(ht_ptr + s_off, S, mask=m_kv)


@triton.jit
def _bwd_dqdk(q_ptr, k_ptr, v_ptr, la_ptr, h0_ptr, do_ptr, dht_ptr,
              dq_ptr, dk_ptr, dh0_ptr, dg_ptr,
              NK_MAX, B, L, H, DK, DV,
              BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
              HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, PREC: tl.constexpr,
              DQ_SWEEP: tl.constexpr, DK_SWEEP: tl.constexpr):
    i_k = tl.program_id(0)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // H
    i_h = i_bh % H
    DT = q_ptr.dtype.element_ty
    o_t = tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = tl.arange(0, BV)
    m_k = o_k < DK
    m_v = o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    q_ptr += (i_b * L * H + i_h) * DK
    k_ptr += (i_b * L * H + i_h) * DK
    dq_ptr += (i_b * L * H + i_h) * DK
    dk_ptr += (i_b * L * H + i_h) * DK
    v_ptr += (i_b * L * H + i_h) * DV
    do_ptr += (i_b * L * H + i_h) * DV
    la_ptr += i_b * L * H + i_h
    # partial decay gradients of this K-block: dg[0, i_k] = q.dq, dg[1, i_k] = -k.dk
    dgq_ptr = dg_ptr + i_k.to(tl.int64) * B * L * H + i_b * L * H + i_h
    dgk_ptr = dg_ptr + (NK_MAX + i_k).to(tl.int64) * B * L * H + i_b * L * H + i_h
    s_off = o_k[:, None] * DV + o_v[None, :]
    h0_ptr += i_bh * DK * DV
    dht_ptr += i_bh * DK * DV
    dh0_ptr += i_bh * DK * DV
    NC = tl.cdiv(L, BT)

    if DQ_SWEEP:
        # forward sweep: recompute S[Kblk, :], dq = ((dO V^T) o D) K + exp(G) dO S_in^T
        S = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_H0:
            S = tl.load(h0_ptr + s_off, mask=m_kv, other=0.0).to(tl.float32)
        for c in range(0, NC):
            t = c * BT + o_t
            m_t = t < L
            qk_off = t[:, None] * (H * DK) + o_k[None, :]
            m_tk = m_t[:, None] & m_k[None, :]
            v_off = t[:, None] * (H * DV) + o_v[None, :]
            m_tv = m_t[:, None] & m_v[None, :]
            b_q = tl.load(q_ptr + qk_off, mask=m_tk, other=0.0)
            b_k = tl.load(k_ptr + qk_off, mask=m_tk, other=0.0)
            b_v = tl.load(v_ptr + v_off, mask=m_tv, other=0.0)
            b_do = tl.load(do_ptr + v_off, mask=m_tv, other=0.0)
            g, to_end, g_last, decay = _chunk_decays(la_ptr + t * H, m_t, o_t, BT)

            dp = tl.dot(b_do, tl.trans(b_v), input_precision=PREC) * decay  # (BT_i, BT_j)
            b_dq = tl.dot((b_do * tl.exp(g)[:, None]).to(DT), tl.trans(S.to(DT)), input_precision=PREC)
            b_dq = tl.dot(dp.to(DT), b_k, acc=b_dq, input_precision=PREC)
            tl.store(dq_ptr + qk_off, b_dq.to(dq_ptr.dtype.element_ty), mask=m_tk)
            tl.store(dgq_ptr + t * H, tl.sum(b_q.to(tl.float32) * b_dq, axis=1), mask=m_t)

            k_out = (b_k * tl.exp(to_end)[:, None]).to(DT)
            S = tl.dot(tl.trans(k_out), b_v, acc=S * tl.exp(g_last), input_precision=PREC)

    if DK_SWEEP:
        # reverse sweep: adjoint R = dL/dS at the end of the chunk,
        # dk = ((dO V^T) o D)^T Q + exp(G_last - G) V R^T,  R <- exp(G_last) R + (Q o exp(G))^T dO
        R = tl.zeros([BK, BV], dtype=tl.float32)
        if HAS_DHT:
            R = tl.load(dht_ptr + s_off, mask=m_kv, other=0.0).to(tl.float32)
        for i in range(0, NC):
            c = NC - 1 - i
            t = c * BT + o_t
            m_t = t < L
            qk_off = t[:, None] * (H * DK) + o_k[None, :]
            m_tk = m_t[:, None] & m_k[None, :]
            v_off = t[:, None] * (H * DV) + o_v[None, :]
            m_tv = m_t[:, None] & m_v[None, :]
            b_q = tl.load(q_ptr + qk_off, mask=m_tk, other=0.0)
            b_k = tl.load(k_ptr + qk_off, mask=m_tk, other=0.0)
            b_v = tl.load(v_ptr + v_off, mask=m_tv, other=0.0)
            b_do = tl.load(do_ptr + v_off, mask=m_tv, other=0.0)
            g, to_end, g_last, decay = _chunk_decays(la_ptr + t * H, m_t, o_t, BT)

            dp = tl.dot(b_do, tl.trans(b_v), input_precision=PREC) * decay
            to_end = tl.exp(to_end)
            b_dk = tl.dot((b_v * to_end[:, None]).to(DT), tl.trans(R.to(DT)), input_precision=PREC)
            b_dk = tl.dot(tl.trans(dp.to(DT)), b_q, acc=b_dk, input_precision=PREC)
            tl.store(dk_ptr + qk_off, b_dk.to(dk_ptr.dtype.element_ty), mask=m_tk)
            tl.store(dgk_ptr + t * H, -tl.sum(b_k.to(tl.float32) * b_dk, axis=1), mask=m_t)

            q_in = (b_q * tl.exp(g)[:, None]).to(DT)
            R = tl.dot(tl.trans(q_in), b_do, acc=R * tl.exp(g_last), input_precision=PREC)
        if STORE_DH0:
            tl.store(dh0_ptr + s_off, R, mask=m_kv)


@triton.jit
def _bwd_dv(q_ptr, k_ptr, la_ptr, do_ptr, dht_ptr, dv_ptr,
            L, H, DK, DV,
            BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
            HAS_DHT: tl.constexpr, PREC: tl.constexpr):
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
    do_ptr += (i_b * L * H + i_h) * DV
    dv_ptr += (i_b * L * H + i_h) * DV
    la_ptr += i_b * L * H + i_h
    s_off = o_k[:, None] * DV + o_v[None, :]
    dht_ptr += i_bh * DK * DV
    NC = tl.cdiv(L, BT)

    # dv = ((Q K^T) o D)^T dO + exp(G_last - G) K R
    R = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        R = tl.load(dht_ptr + s_off, mask=m_kv, other=0.0).to(tl.float32)
    for i in range(0, NC):
        c = NC - 1 - i
        t = c * BT + o_t
        m_t = t < L
        qk_off = t[:, None] * (H * DK) + o_k[None, :]
        m_tk = m_t[:, None] & m_k[None, :]
        v_off = t[:, None] * (H * DV) + o_v[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        b_q = tl.load(q_ptr + qk_off, mask=m_tk, other=0.0)
        b_k = tl.load(k_ptr + qk_off, mask=m_tk, other=0.0)
        b_do = tl.load(do_ptr + v_off, mask=m_tv, other=0.0)
        g, to_end, g_last, decay = _chunk_decays(la_ptr + t * H, m_t, o_t, BT)

        scores = tl.dot(b_q, tl.trans(b_k), input_precision=PREC) * decay
        to_end = tl.exp(to_end)
        b_dv = tl.dot((b_k * to_end[:, None]).to(DT), R.to(DT), input_precision=PREC)
        b_dv = tl.dot(tl.trans(scores.to(DT)), b_do, acc=b_dv, input_precision=PREC)
        tl.store(dv_ptr + v_off, b_dv.to(dv_ptr.dtype.element_ty), mask=m_tv)

        q_in = (b_q * tl.exp(g)[:, None]).to(DT)
        R = tl.dot(tl.trans(q_in), b_do, acc=R * tl.exp(g_last), input_precision=PREC)


# ----------------------------------------------------------------------------- configurations
# tl.dot needs every block dimension >= 16. Under the interpreter the blocks are small so that
# tiny test shapes still span several chunks and several (ragged) blocks.

def _interpreting():
    from . import interpret_mode
    return interpret_mode()


def _fwd_config(dk, dv):
    if _interpreting():
        return triton.Config({"BT": 16, "BV": 16}, num_warps=4, num_stages=1)
    bk = pow2(dk, 16)
    return triton.Config({"BT": 64, "BV": min(64, pow2(dv, 16))}, num_warps=8 if bk >= 128 else 4, num_stages=2)


def _dqdk_config(dk, dv):
    if _interpreting():
        return triton.Config({"BT": 16, "BK": 16}, num_warps=4, num_stages=1)
    bv = pow2(dv, 16)
    return triton.Config({"BT": 64, "BK": min(64, pow2(dk, 16))}, num_warps=8 if bv >= 128 else 4, num_stages=2)


def _dv_config(dk, dv):
    if _interpreting():
        return triton.Config({"BT": 16, "BV": 16}, num_warps=4, num_stages=1)
    bk = pow2(dk, 16)
    return triton.Config({"BT": 64, "BV": min(64, pow2(dv, 16))}, num_warps=8 if bk >= 128 else 4, num_stages=2)


def _candidates(block):
    """Autotuning candidates (GPU only): 7 per launch, since each one is compiled on first use."""
    return [triton.Config({"BT": bt, block: bb}, num_warps=w, num_stages=st)
            for bt, bb, w, st in ((64, 32, 4, 2), (64, 32, 8, 2), (64, 64, 4, 2), (64, 64, 8, 2), (64, 64, 8, 1),
                                  (32, 64, 4, 2), (64, 16, 4, 2))]


def _prune(block, dim):
    def prune(configs, named_args):
        limit = pow2(named_args[dim], 16)
        kept = [c for c in configs if c.kwargs[block] <= limit]
        return kept or configs[:1]
    return prune


_FWD = Launcher(_fwd, _fwd_config, _candidates("BV"), key=["DK", "DV"], prune=_prune("BV", "DV"))
# the dq and dk sweeps run as two launches of _bwd_dqdk (one loop each spills less), tuned separately
_DQ = Launcher(_bwd_dqdk, _dqdk_config, _candidates("BK"), key=["DK", "DV"], prune=_prune("BK", "DK"))
_DK = Launcher(_bwd_dqdk, _dqdk_config, _candidates("BK"), key=["DK", "DV"], prune=_prune("BK", "DK"))
_DV = Launcher(_bwd_dv, _dv_config, _candidates("BV"), key=["DK", "DV"], prune=_prune("BV", "DV"))


# ----------------------------------------------------------------------------- host side

def _forward(q, k, v, log_a, h0, store_ht):
    b, L, H, dk = q.shape
    dv = v.shape[-1]
    y = new_output((b, L, H, dv), v.dtype, q.device)
    ht = new_output((b, H, dk, dv), torch.float32, q.device) if store_ht else y  # y: unused dummy pointer
    sizes = dict(dk=dk, dv=dv)
    consts = dict(BK=pow2(dk, 16), HAS_H0=h0 is not None, STORE_HT=store_ht, PREC=dot_precision())
    grid = lambda meta: (triton.cdiv(dv, meta["BV"]), b * H)  # noqa: E731
    with device_guard(q):
        _FWD(grid, (q, k, v, log_a, h0 if h0 is not None else q, y, ht, L, H, dk, dv), consts, sizes)
    return y, (ht if store_ht else None)


def _backward(q, k, v, log_a, h0, ht, do, dht, need_dh0):
    b, L, H, dk = q.shape
    dv = v.shape[-1]
    dev = q.device
    dq = new_output(q.shape, q.dtype, dev)
    dk_ = new_output(k.shape, k.dtype, dev)
    dv_ = new_output(v.shape, v.dtype, dev)
    dh0 = new_output((b, H, dk, dv), torch.float32, dev) if need_dh0 else None
    prec = dot_precision()
    sizes = dict(dk=dk, dv=dv)
    # per-K-block partial sums q.dq (dg[0]) and -k.dk (dg[1]); the number of K-blocks depends on the
    # (possibly autotuned) BK, so size the buffer for the smallest block and read back only those used
    nk_max = triton.cdiv(dk, 16)
    dg = new_output((2, nk_max, b, L, H), torch.float32, dev)
    dummy = q
    with device_guard(q):
        grid = lambda meta: (triton.cdiv(dk, meta["BK"]), b * H)  # noqa: E731
        args = (q, k, v, log_a, h0 if h0 is not None else dummy, do, dht if dht is not None else dummy,
                dq, dk_, dh0 if need_dh0 else dummy, dg, nk_max, b, L, H, dk, dv)
        consts = dict(BV=pow2(dv, 16), HAS_H0=h0 is not None, HAS_DHT=dht is not None, STORE_DH0=need_dh0,
                      PREC=prec)
        config_dq = _DQ(grid, args, dict(consts, DQ_SWEEP=True, DK_SWEEP=False), sizes)
        config_dk = _DK(grid, args, dict(consts, DQ_SWEEP=False, DK_SWEEP=True), sizes)
        grid = lambda meta: (triton.cdiv(dv, meta["BV"]), b * H)  # noqa: E731
        consts = dict(BK=pow2(dk, 16), HAS_DHT=dht is not None, PREC=prec)
        _DV(grid, (q, k, log_a, do, dht if dht is not None else dummy, dv_, L, H, dk, dv), consts, sizes)
    # dL/dG_i (global cumulative log-decay) = q_i.dq_i - k_i.dk_i (+ <dS_L, S_L> at the last token);
    # d log_a_t = sum_{i >= t} dL/dG_i
    dG = dg[0, :triton.cdiv(dk, config_dq["BK"])].sum(0) + dg[1, :triton.cdiv(dk, config_dk["BK"])].sum(0)
    if dht is not None:
        dG[:, -1] += (dht * ht).sum((-2, -1))
    dla = dG.flip(1).cumsum(1).flip(1).to(log_a.dtype)
    return dq, dk_, dv_, dla, dh0


class ChunkedScanFn(torch.autograd.Function):
    """Differentiable chunked scalar-decay scan on validated, contiguous inputs (see :func:`chunked_scan`)."""

    @staticmethod
    def forward(ctx, q, k, v, log_a, initial_state, return_final_state):
        h0 = None if initial_state is None else initial_state.detach().to(torch.float32).contiguous()
        y, ht = _forward(q, k, v, log_a, h0, store_ht=return_final_state)
        ctx.save_for_backward(q, k, v, log_a, h0, ht)
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)
        return y, ht

    @staticmethod
    def backward(ctx, dy, dht):
        q, k, v, log_a, h0, ht = ctx.saved_tensors
        if dy is None:
            dy = torch.zeros_like(v)
        dy = dy.to(v.dtype).contiguous()
        dht = None if dht is None else dht.to(torch.float32).contiguous()
        need_dh0 = h0 is not None and ctx.needs_input_grad[4]
        dq, dk, dv, dla, dh0 = _backward(q, k, v, log_a, h0, ht, dy, dht, need_dh0)
        if dh0 is not None:
            dh0 = dh0.to(ctx.h0_dtype)
        return dq, dk, dv, dla, dh0, None


def chunked_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    """The scalar-decay scan on the Triton kernels; inputs must already be validated and contiguous.

    Use :func:`dsflib.kernels.linear_scan`, which validates and dispatches.
    """
    for name, x in (("dk", q.shape[-1]), ("dv", v.shape[-1])):
        if x > MAX_DIM:
            raise NotImplementedError(f"the chunked scan kernel supports {name} <= {MAX_DIM}, got {x}")
    y, ht = ChunkedScanFn.apply(q, k, v, log_a, initial_state, return_final_state)
    return (y, ht) if return_final_state else y
