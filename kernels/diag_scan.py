r"""Vector-state scan with per-key decays (the S6 / Mamba-1 family, ``dv == 1``).

Per batch element, head ``h`` and key ``n`` the state is one scalar:

.. math::  s_{i,n} = a_{i,n} s_{i-1,n} + k_{i,n} v_i, \qquad y_i = \sum_n q_{i,n} s_{i,n},
           \qquad a_{i,n} = e^{\text{log\_a}_{i,n}} .

The recurrence is elementwise, so there is nothing to gain from matmuls: each program holds the
states of ``BH`` heads x all ``dk`` keys in registers and walks the sequence one step at a time
(``grid = (cdiv(H, BH), batch)``; each step reads one contiguous ``BH x dk`` row of q, k, log_a).
The ``(batch, L, H, dk)`` states are never written to memory; only ``y`` (and the final state) are.

Backward: **run the forward again** instead of checkpointing. Two kernels:

* ``_bwd_dq`` (forward in time) recomputes :math:`s_i` and writes :math:`dq_i = do_i\, s_i` and the
  fp32 products :math:`q_i \odot dq_i` (into the buffer that becomes ``d log_a``);
* ``_bwd_rev`` (reverse in time) carries the adjoint :math:`\lambda_i = q_i do_i + a_{i+1}\lambda_{i+1}`
  (:math:`\lambda` starts at ``dS_L``) and writes :math:`dk_i = \lambda_i v_i`,
  :math:`dv_i = \lambda_i\cdot k_i`, ``dS_0`` :math:`= a_0 \lambda_0`, and
  :math:`d\log a_{i} = \sum_{j \ge i} (q_j\, dq_j - k_j\, dk_j)` (+ :math:`dS_L \odot S_L`), a running sum.

The last identity (the gradient wrt the global cumulative log-decay is :math:`q\,dq - k\,dk`) is what
makes checkpoints unnecessary: the reverse sweep never needs :math:`s_{i-1}`, which a reverse
recurrence could only get by dividing by :math:`a_i` (unstable) or from stored states. Running the
forward twice reads q, k, log_a, v once more than the minimum and stores nothing; chunk
checkpoints would need the same reads plus a scratch buffer for the states inside each chunk.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import Launcher, device_guard, new_output, pow2

__all__ = ["diag_scan", "DiagScanFn", "MAX_DK"]

MAX_DK = 1024  # keys per head held in registers by one program (BH >= 1 heads of BK keys)


@triton.jit
def _fwd(q_ptr, k_ptr, v_ptr, la_ptr, h0_ptr, y_ptr, ht_ptr,
         L, H, DK,
         BH: tl.constexpr, BK: tl.constexpr, HAS_H0: tl.constexpr, STORE_HT: tl.constexpr):
    i_h = tl.program_id(0)
    i_b = tl.program_id(1).to(tl.int64)
    o_h = i_h * BH + tl.arange(0, BH)
    o_k = tl.arange(0, BK)
    m_h = o_h < H
    m = m_h[:, None] & (o_k < DK)[None, :]
    hk = o_h[:, None] * DK + o_k[None, :]  # offset inside one token row of (H, dk)
    s_off = i_b * H * DK + hk
    # pointers advance by one token row per step (64-bit pointer arithmetic, no index overflow)
    p_q = q_ptr + i_b * L * H * DK + hk
    p_k = k_ptr + i_b * L * H * DK + hk
    p_la = la_ptr + i_b * L * H * DK + hk
    p_v = v_ptr + i_b * L * H + o_h
    p_y = y_ptr + i_b * L * H + o_h

    s = tl.zeros([BH, BK], dtype=tl.float32)
    if HAS_H0:
        s = tl.load(h0_ptr + s_off, mask=m, other=0.0).to(tl.float32)
    for _ in range(0, L):
        b_q = tl.load(p_q, mask=m, other=0.0).to(tl.float32)
        b_k = tl.load(p_k, mask=m, other=0.0).to(tl.float32)
        b_la = tl.load(p_la, mask=m, other=0.0).to(tl.float32)
        b_v = tl.load(p_v, mask=m_h, other=0.0).to(tl.float32)
        s = tl.exp(b_la) * s + b_k * b_v[:, None]
        tl.store(p_y, tl.sum(b_q * s, axis=1).to(y_ptr.dtype.element_ty), mask=m_h)
        p_q += H * DK
        p_k += H * DK
        p_la += H * DK
        p_v += H
        p_y += H
    if STORE_HT:
        tl.store(ht_ptr + s_off, s, mask=m)


@triton.jit
def _bwd_dq(q_ptr, k_ptr, v_ptr, la_ptr, h0_ptr, do_ptr, dq_ptr, qdq_ptr,
            L, H, DK,
            BH: tl.constexpr, BK: tl.constexpr, HAS_H0: tl.constexpr):
    i_h = tl.program_id(0)
    i_b = tl.program_id(1).to(tl.int64)
    o_h = i_h * BH + tl.arange(0, BH)
    o_k = tl.arange(0, BK)
    m_h = o_h < H
    m = m_h[:, None] & (o_k < DK)[None, :]
    hk = o_h[:, None] * DK + o_k[None, :]
    row = i_b * L * H * DK + hk
    p_q = q_ptr + row
    p_k = k_ptr + row
    p_la = la_ptr + row
    p_dq = dq_ptr + row
    p_qdq = qdq_ptr + row
    p_v = v_ptr + i_b * L * H + o_h
    p_do = do_ptr + i_b * L * H + o_h

    s = tl.zeros([BH, BK], dtype=tl.float32)
    if HAS_H0:
        s = tl.load(h0_ptr + i_b * H * DK + hk, mask=m, other=0.0).to(tl.float32)
    for _ in range(0, L):
        b_q = tl.load(p_q, mask=m, other=0.0).to(tl.float32)
        b_k = tl.load(p_k, mask=m, other=0.0).to(tl.float32)
        b_la = tl.load(p_la, mask=m, other=0.0).to(tl.float32)
        b_v = tl.load(p_v, mask=m_h, other=0.0).to(tl.float32)
        b_do = tl.load(p_do, mask=m_h, other=0.0).to(tl.float32)
        s = tl.exp(b_la) * s + b_k * b_v[:, None]
        b_dq = b_do[:, None] * s
        tl.store(p_dq, b_dq.to(dq_ptr.dtype.element_ty), mask=m)
        tl.store(p_qdq, b_q * b_dq, mask=m)
        p_q += H * DK
        p_k += H * DK
        p_la += H * DK
        p_dq += H * DK
        p_qdq += H * DK
        p_v += H
        p_do += H


@triton.jit
def _bwd_rev(q_ptr, k_ptr, v_ptr, la_ptr, do_ptr, ht_ptr, dht_ptr,
             dk_ptr, dv_ptr, dla_ptr, dh0_ptr,
             L, H, DK,
             BH: tl.constexpr, BK: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr):
    # dla_ptr holds q*dq (fp32) from _bwd_dq on entry and d log_a (fp32) on exit
    i_h = tl.program_id(0)
    i_b = tl.program_id(1).to(tl.int64)
    o_h = i_h * BH + tl.arange(0, BH)
    o_k = tl.arange(0, BK)
    m_h = o_h < H
    m = m_h[:, None] & (o_k < DK)[None, :]
    hk = o_h[:, None] * DK + o_k[None, :]
    s_off = i_b * H * DK + hk
    t_last = i_b * L + L - 1  # the last token (int64); pointers walk backwards from it
    last = t_last * H * DK + hk
    p_q = q_ptr + last
    p_k = k_ptr + last
    p_la = la_ptr + last
    p_dk = dk_ptr + last
    p_dla = dla_ptr + last
    p_v = v_ptr + t_last * H + o_h
    p_do = do_ptr + t_last * H + o_h
    p_dv = dv_ptr + t_last * H + o_h

    lam = tl.zeros([BH, BK], dtype=tl.float32)  # adjoint dL/ds_i, before the a_i factor
    acc = tl.zeros([BH, BK], dtype=tl.float32)  # running sum_{j >= i} dL/dG_j
    if HAS_DHT:
        lam = tl.load(dht_ptr + s_off, mask=m, other=0.0).to(tl.float32)
        acc = lam * tl.load(ht_ptr + s_off, mask=m, other=0.0).to(tl.float32)
    for _ in range(0, L):
        b_q = tl.load(p_q, mask=m, other=0.0).to(tl.float32)
        b_k = tl.load(p_k, mask=m, other=0.0).to(tl.float32)
        b_la = tl.load(p_la, mask=m, other=0.0).to(tl.float32)
        b_qdq = tl.load(p_dla, mask=m, other=0.0)
        b_v = tl.load(p_v, mask=m_h, other=0.0).to(tl.float32)
        b_do = tl.load(p_do, mask=m_h, other=0.0).to(tl.float32)
        lam += b_q * b_do[:, None]
        b_dk = lam * b_v[:, None]
        tl.store(p_dk, b_dk.to(dk_ptr.dtype.element_ty), mask=m)
        tl.store(p_dv, tl.sum(lam * b_k, axis=1).to(dv_ptr.dtype.element_ty), mask=m_h)
        acc += b_qdq - b_k * b_dk
        tl.store(p_dla, acc, mask=m)
        lam = lam * tl.exp(b_la)
        p_q -= H * DK
        p_k -= H * DK
        p_la -= H * DK
        p_dk -= H * DK
        p_dla -= H * DK
        p_v -= H
        p_do -= H
        p_dv -= H
    if STORE_DH0:
        tl.store(dh0_ptr + s_off, lam, mask=m)


# ----------------------------------------------------------------------------- configurations

def _config(dk):
    from . import interpret_mode
    if interpret_mode():  # small head blocks so tiny test shapes span several (ragged) blocks
        return triton.Config({"BH": 2}, num_warps=1, num_stages=1)
    bk = pow2(dk)
    bh = max(1, min(64, 512 // bk))  # ~512 states per program
    return triton.Config({"BH": bh}, num_warps=4, num_stages=2)


# autotuning candidates (GPU only), pruned to 128..1024 states per program and >= 1 state per thread
_CANDIDATES = [triton.Config({"BH": bh}, num_warps=w, num_stages=2)
               for bh in (4, 8, 16, 32, 64, 128) for w in (2, 4)]


def _prune(configs, named_args):
    bk = pow2(named_args["DK"])
    kept = [c for c in configs if 128 <= c.kwargs["BH"] * bk <= 1024 and c.num_warps * 32 <= c.kwargs["BH"] * bk]
    return kept or [_config(named_args["DK"])]


_FWD = Launcher(_fwd, _config, _CANDIDATES, key=["H", "DK"], prune=_prune)
_DQ = Launcher(_bwd_dq, _config, _CANDIDATES, key=["H", "DK"], prune=_prune)
# _bwd_rev turns q*dq into d log_a in place: the autotuner must restore that buffer between its launches
_REV = Launcher(_bwd_rev, _config, _CANDIDATES, key=["H", "DK"], prune=_prune, restore=("dla_ptr",))


# ----------------------------------------------------------------------------- host side

def _grid(b, H):
    return lambda meta: (triton.cdiv(H, meta["BH"]), b)


class DiagScanFn(torch.autograd.Function):
    """Differentiable per-key-decay vector scan on validated, contiguous inputs (see :func:`diag_scan`)."""

    @staticmethod
    def forward(ctx, q, k, v, log_a, initial_state, return_final_state):
        b, L, H, dk = q.shape
        h0 = None if initial_state is None else initial_state.detach().to(torch.float32).contiguous()
        y = new_output((b, L, H, 1), v.dtype, q.device)
        ht = new_output((b, H, dk, 1), torch.float32, q.device) if return_final_state else None
        with device_guard(q):
            _FWD(_grid(b, H), (q, k, v, log_a, h0 if h0 is not None else q, y, ht if ht is not None else y, L, H, dk),
                 dict(BK=pow2(dk), HAS_H0=h0 is not None, STORE_HT=ht is not None), dict(dk=dk))
        ctx.save_for_backward(q, k, v, log_a, h0, ht)
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)
        return y, ht

    @staticmethod
    def backward(ctx, dy, dht):
        q, k, v, log_a, h0, ht = ctx.saved_tensors
        b, L, H, dk = q.shape
        dev = q.device
        dy = torch.zeros_like(v) if dy is None else dy.to(v.dtype).contiguous()
        dht = None if dht is None else dht.to(torch.float32).contiguous()
        need_dh0 = h0 is not None and ctx.needs_input_grad[4]
        dq = new_output(q.shape, q.dtype, dev)
        dk_ = new_output(k.shape, k.dtype, dev)
        dv = new_output(v.shape, v.dtype, dev)
        dla = new_output(log_a.shape, torch.float32, dev)  # q*dq, then d log_a, in fp32
        dh0 = new_output((b, H, dk, 1), torch.float32, dev) if need_dh0 else None
        consts = dict(BK=pow2(dk))
        with device_guard(q):
            _DQ(_grid(b, H), (q, k, v, log_a, h0 if h0 is not None else q, dy, dq, dla, L, H, dk),
                dict(consts, HAS_H0=h0 is not None), dict(dk=dk))
            _REV(_grid(b, H), (q, k, v, log_a, dy, ht if dht is not None else q, dht if dht is not None else q,
                               dk_, dv, dla, dh0 if need_dh0 else q, L, H, dk),
                 dict(consts, HAS_DHT=dht is not None, STORE_DH0=need_dh0), dict(dk=dk))
        return dq, dk_, dv, dla.to(log_a.dtype), (dh0.to(ctx.h0_dtype) if need_dh0 else None), None


def diag_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    """The per-key-decay vector scan (``dv == 1``) on the Triton kernels; inputs validated and contiguous.

    Use :func:`dsflib.kernels.linear_scan`, which validates and dispatches.
    """
    if q.shape[-1] > MAX_DK:
        raise NotImplementedError(f"the diagonal scan kernel supports dk <= {MAX_DK}, got {q.shape[-1]}")
    y, ht = DiagScanFn.apply(q, k, v, log_a, initial_state, return_final_state)
    return (y, ht) if return_final_state else y
