r"""Fast evaluation of the structured DSF that every model in dsflib reduces to.

Per head, the state is a matrix :math:`S_i \in \mathbb{R}^{d_k \times d_v}` and

.. math::

    S_i = \operatorname{diag}(a_i)\, S_{i-1} + k_i v_i^\top, \qquad y_i = S_i^\top q_i,

with decays :math:`a_i = \exp(\text{log\_a}_i) \in (0, 1]`, either one scalar per head
(``log_a`` of shape ``(batch, L, H)``: linear attention, SSD, RetNet, mLSTM) or one per key
dimension (``(batch, L, H, d_k)``: GLA, and S6 with one head per channel). Stacking the columns of
:math:`S_i` channel-major gives exactly the DSF with
:math:`A_i = I_{d_v} \otimes \operatorname{diag}(a_i)`, :math:`B_i u_i = \operatorname{vec}(k_i v_i^\top)`,
:math:`C_i = I_{d_v} \otimes q_i^\top`.

Four evaluations share one signature:

* :func:`linear_scan_recurrent` - one step at a time (the reference and the baseline);
* :func:`linear_scan_chunked` - matmuls inside chunks of ``chunk_size`` tokens and the recurrence
  across chunks; cumulative log-decays restart in every chunk and ``exp`` only ever sees
  sums of log-decays between two tokens, :math:`G_i - G_j \le 0` (``i >= j``), so nothing overflows;
* :func:`linear_scan_parallel` - a chunked Hillis-Steele prefix scan over materialized states;
* :func:`linear_scan_sequential` - the recurrence one token at a time for vector states
  (``dv == 1``) with a hand-written backward (one reverse loop, no autograd graph per token): the
  fastest CPU path for the qLSTM and RG-LRU, and :func:`selective_scan`, its form for S6's
  channel-shared ``q`` and ``k``;
* the Triton kernels of :mod:`dsflib.kernels` on CUDA, once present.

:func:`linear_scan` dispatches between them.
All paths accumulate in at least float32 and return ``y`` in ``v``'s dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_finite, check_positive_int, check_same, check_tensor
from .dsf import accumulation_dtype

__all__ = ["linear_scan", "linear_scan_recurrent", "linear_scan_chunked", "linear_scan_parallel",
           "linear_scan_sequential", "selective_scan", "BACKENDS"]

BACKENDS = ("auto", "chunked", "parallel", "sequential", "recurrent", "kernel")


def _validate(q, k, v, log_a, initial_state):
    check_tensor("q", q, (None, None, None, None), "(batch, L, H, dk)")
    b, L, H, dk = q.shape
    check_tensor("k", k, (b, L, H, dk), "(batch, L, H, dk)")
    check_tensor("v", v, (b, L, H, None), "(batch, L, H, dv)")
    dv = v.shape[-1]
    check_tensor("log_a", log_a, (b, L, H) if log_a.ndim == 3 else (b, L, H, dk),
                 "(batch, L, H) or (batch, L, H, dk)")
    for name, x in (("k", k), ("v", v), ("log_a", log_a)):
        check_same(name, x, "q", q)
    if q.is_meta:
        raise ValueError("q, k, v and log_a are on the meta device: a scan needs their values (log_a's "
                         "sign is checked); use cpu or cuda tensors")
    if log_a.numel():  # one pass over log_a for both checks (it is batch x L x H x dk for S6)
        lowest, highest = torch.aminmax(log_a)
        if not torch.isfinite(lowest) or not highest <= 0:  # NaN and inf propagate to lowest or highest
            check_finite("log_a", log_a)
            raise ValueError("log_a must be <= 0 everywhere (decays a = exp(log_a) in (0, 1]); "
                             f"its largest entry is {highest.item():.3g}")
    if initial_state is not None:
        check_tensor("initial_state", initial_state, (b, H, dk, dv), "(batch, H, dk, dv)")
        if initial_state.device != q.device:
            raise ValueError(f"initial_state must be on the device of q ({q.device}), got {initial_state.device}")
    return b, L, H, dk, dv


def linear_scan_recurrent(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    """Reference: the recurrence one token at a time (see the module docstring for shapes)."""
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    acc = accumulation_dtype(q.dtype)
    S = q.new_zeros(b, H, dk, dv, dtype=acc) if initial_state is None else initial_state.to(acc)
    a = log_a.to(acc).exp()
    if a.ndim == 3:
        a = a[..., None]  # scalar per head: broadcast over dk
    qa, ka, va = q.to(acc), k.to(acc), v.to(acc)
    ys = []
    for i in range(L):
        S = a[:, i, :, :, None] * S + ka[:, i, :, :, None] * va[:, i, :, None, :]
        ys.append(torch.einsum("bhkv,bhk->bhv", S, qa[:, i]))
    y = torch.stack(ys, 1) if ys else v.new_zeros(b, 0, H, dv, dtype=acc)
    y = y.to(v.dtype)
    return (y, S) if return_final_state else y


def linear_scan_chunked(q, k, v, log_a, *, initial_state=None, return_final_state=False, chunk_size=None):
    """Chunked evaluation: exact, matmul-rich, and every exponent non-positive.

    ``chunk_size`` defaults to 32 for scalar decays and 16 for per-key decays (whose intra-chunk
    term needs a ``chunk x chunk x dk`` tensor), or ``L`` when shorter. ``L`` need not be a multiple of it.
    """
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    per_key = log_a.ndim == 4
    if chunk_size is None:  # the default, but never longer than the sequence (no padded work)
        chunk_size = max(1, min(16 if per_key else 32, L))
    C = check_positive_int("chunk_size", chunk_size)
    acc = accumulation_dtype(q.dtype)
    S = q.new_zeros(b, H, dk, dv, dtype=acc) if initial_state is None else initial_state.to(acc)
    if L == 0:
        y = v.new_zeros(b, 0, H, dv)
        return (y, S) if return_final_state else y
    pad = (-L) % C
    nc = (L + pad) // C

    def chunks(x):  # (b, L, H, ...) -> head-major (b, H, nc, C, ...) in acc, zero-padded at the end
        x = x.to(acc)
        if pad:
            x = F.pad(x, (0, 0) * (x.ndim - 2) + (0, pad))
        x = x.reshape(b, nc, C, *x.shape[2:])
        return x.permute(0, 3, 1, 2, *range(4, x.ndim)).contiguous()

    qc, kc, vc = chunks(q), chunks(k), chunks(v)  # (b, H, nc, C, dk|dv)
    # log_a = 0 on padding: padded tokens carry k = v = 0, so they change nothing.
    la = chunks(log_a)  # (b, H, nc, C[, dk])
    G = torch.cumsum(la, dim=3)  # chunk-local cumulative log-decay G_i, <= 0
    # G_last - G_j and G_i - G_j are formed as sums of the log-decays between the two tokens,
    # never as differences of large cumulative sums (which would cancel catastrophically).
    suffix = torch.flip(torch.cumsum(torch.flip(la, [3]), 3), [3])  # sum_{k >= j}
    to_end = torch.cat([suffix[:, :, :, 1:], torch.zeros_like(suffix[:, :, :, :1])], dim=3)  # sum_{k > j}
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    shape = (C, C) + (1,) * (la.ndim - 4)
    # seg[i, j] = sum_{j < k <= i} log_a_k (for i >= j): a cumulative sum over k of a masked copy
    seg = torch.cumsum(torch.where(causal.tril(-1).view(shape), la[:, :, :, :, None], 0.0), dim=3)
    decay = torch.where(causal.view(shape), seg, float("-inf")).exp()  # (b, H, nc, Ci, Cj[, dk]), <= 1

    if per_key:
        scores = torch.einsum("bhnik,bhnjk,bhnijk->bhnij", qc, kc, decay)
        q_in = qc * G.exp()  # reads the state entering the chunk: exp(G_i) <= 1
        k_out = kc * to_end.exp()  # writes into the state leaving the chunk: exp(G_last - G_j) <= 1
        chunk_decay = G[:, :, :, -1, :, None].exp()  # (b, H, nc, dk, 1)
    else:
        scores = (qc @ kc.transpose(-1, -2)) * decay
        q_in = qc * G.exp()[..., None]
        k_out = kc * to_end.exp()[..., None]
        chunk_decay = G[:, :, :, -1, None, None].exp()  # (b, H, nc, 1, 1)

    # contribution of each chunk to the state at its end: sum_j exp(G_last - G_j) k_j v_j^T
    chunk_states = k_out.transpose(-1, -2) @ vc  # (b, H, nc, dk, dv)
    entering = []  # the state entering each chunk: a short recurrence over chunks
    for c in range(nc):
        entering.append(S)
        S = chunk_decay[:, :, c] * S + chunk_states[:, :, c]
    y = scores @ vc + q_in @ torch.stack(entering, dim=2)  # (b, H, nc, C, dv)
    y = y.permute(0, 2, 3, 1, 4).reshape(b, nc * C, H, dv)[:, :L].to(v.dtype)
    return (y, S) if return_final_state else y


def linear_scan_parallel(q, k, v, log_a, *, initial_state=None, return_final_state=False, chunk_size=16):
    r"""Parallel prefix scan over materialized states: the fast CPU path for vector states.

    Forms every :math:`k_i v_i^T` (memory ``batch * L * H * dk * dv``), combines them inside chunks
    of ``chunk_size`` tokens in :math:`\lceil \log_2 C \rceil` Hillis-Steele steps
    (``S_i += A_i S_{i-s}``, ``A_i *= A_{i-s}``), then carries the chunk-end states across chunks.
    Decays are only ever multiplied (all factors in (0, 1]), so nothing can overflow.
    """
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    C = check_positive_int("chunk_size", chunk_size)
    acc = accumulation_dtype(q.dtype)
    carry = q.new_zeros(b, H, dk, dv, dtype=acc) if initial_state is None else initial_state.to(acc)
    if L == 0:
        y = v.new_zeros(b, 0, H, dv)
        return (y, carry) if return_final_state else y
    a = log_a.to(acc).exp()
    a = (a[..., None] if a.ndim == 3 else a)[..., None]  # (b, L, H, dk or 1, 1)
    S = k.to(acc)[..., None] * v.to(acc)[..., None, :]  # (b, L, H, dk, dv)
    pad = (-L) % C
    nc = (L + pad) // C
    if pad:  # padded tokens: a = 1, nothing written, so the state passes through unchanged
        S = F.pad(S, (0, 0, 0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, 0, 0, 0, 0, pad), value=1.0)
    S = S.reshape(b, nc, C, *S.shape[2:])
    a = a.reshape(b, nc, C, *a.shape[2:])
    shift = 1
    while shift < C:
        S = torch.cat([S[:, :, :shift], S[:, :, shift:] + a[:, :, shift:] * S[:, :, :-shift]], dim=2)
        a = torch.cat([a[:, :, :shift], a[:, :, shift:] * a[:, :, :-shift]], dim=2)
        shift *= 2
    # a[:, c, i] is now the decay from the start of chunk c to token i: carry the entering states
    entering = []
    for c in range(nc):
        entering.append(carry)
        carry = a[:, c, -1] * carry + S[:, c, -1]
    S = S + a * torch.stack(entering, dim=1)[:, :, None]
    S = S.reshape(b, nc * C, H, dk, dv)[:, :L]
    y = torch.einsum("blhkv,blhk->blhv", S, q.to(acc)).to(v.dtype)
    return (y, carry) if return_final_state else y


class _SequentialVectorScan(torch.autograd.Function):
    r"""``h_i = a_i * h_{i-1} + k_i v_i``, ``y_i = q_i . h_i`` per head with ``dv == 1``, in ``acc``.

    The forward keeps every state (``batch x L x H x dk``); the backward runs one reverse loop for
    :math:`\bar h_i = q_i \bar y_i + a_{i+1} \bar h_{i+1}` and forms every other gradient at once:
    :math:`\bar q_i = \bar y_i h_i`, :math:`\bar k_i = \bar h_i v_i`, :math:`\bar v_i = \bar h_i \cdot k_i`,
    :math:`\overline{\log a}_i = \bar h_i \odot a_i \odot h_{i-1}`, :math:`\bar h_{-1} = a_0 \bar h_0`.
    """

    @staticmethod
    def forward(ctx, q, k, v, a, h0):
        b, L, H, dk = q.shape
        # time-major copies, so that every token's slice is contiguous
        a_t = a.transpose(0, 1).contiguous()  # (L, b, H, dk)
        x_t = (k * v).transpose(0, 1).contiguous()  # v broadcasts over dk
        states = torch.empty(L + 1, b, H, dk, dtype=q.dtype, device=q.device)  # states[i + 1] = h_i
        states[0] = h0
        for i in range(L):
            torch.addcmul(x_t[i], a_t[i], states[i], out=states[i + 1])
        hs = states[1:].transpose(0, 1)  # (b, L, H, dk)
        ctx.save_for_backward(q, k, v, a_t, states)
        return (q * hs).sum(-1, keepdim=True), states[L].clone()

    @staticmethod
    def backward(ctx, dy, dh_final):
        q, k, v, a_t, states = ctx.saved_tensors
        L = q.shape[1]
        qdy = (q * dy).transpose(0, 1).contiguous()  # the read-out's direct contribution to each state
        dstates = torch.empty_like(qdy)  # (L, b, H, dk): dstates[i] = dL/dh_i
        g = dh_final.clone() if dh_final is not None else torch.zeros_like(states[0])
        for i in range(L - 1, -1, -1):
            torch.add(qdy[i], g, out=dstates[i])
            g = a_t[i] * dstates[i]
        dh0 = g
        dh = dstates.transpose(0, 1)  # (b, L, H, dk)
        dq = dy * states[1:].transpose(0, 1)
        dk = dh * v
        dv = (dh * k).sum(-1, keepdim=True)
        da = (dstates * states[:-1]).transpose(0, 1)  # dL/da_i = dL/dh_i * h_{i-1}
        return dq, dk, dv, da, dh0


def linear_scan_sequential(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    """Vector states (``dv == 1``) one token at a time, with a hand-written backward.

    The same recurrence as :func:`linear_scan_recurrent`, but autograd sees one operation instead
    of a few per token, which makes it the fastest CPU path for S6, the qLSTM and RG-LRU (see
    ``python -m dsflib.bench``). Memory: every state, ``batch * L * H * dk`` in the accumulation dtype.
    """
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    if dv != 1:
        raise ValueError(f"linear_scan_sequential needs vector states: v of shape (batch, L, H, 1), got dv={dv}")
    acc = accumulation_dtype(q.dtype)
    h0 = q.new_zeros(b, H, dk, dtype=acc) if initial_state is None else initial_state.to(acc)[..., 0]
    a = log_a.to(acc).exp()
    if a.ndim == 3:
        a = a[..., None].expand(b, L, H, dk)
    y, h = _SequentialVectorScan.apply(q.to(acc), k.to(acc), v.to(acc), a, h0)
    y = y.to(v.dtype)
    return (y, h[..., None]) if return_final_state else y


class _SelectiveScan(torch.autograd.Function):
    """S6's layout of :class:`_SequentialVectorScan`: ``q`` and ``k`` shared by the ``H`` heads.

    ``h_i = exp(log_a_i) * h_{i-1} + v_i k_i^T`` with ``h_i`` ``(batch, H, dk)``, ``y_i = h_i q_i``; inputs
    ``q, k`` ``(batch, L, dk)``, ``v`` ``(batch, L, H)``, ``log_a`` ``(batch, L, H, dk)``. Reductions over
    the heads and over ``dk`` are batched matmuls, so no ``(batch, L, H, dk)`` copy of ``q`` or ``k`` is made.
    """

    @staticmethod
    def forward(ctx, q, k, v, log_a):
        b, L, H = v.shape
        a_t = log_a.exp().transpose(0, 1).contiguous()  # (L, b, H, dk)
        x_t = (v.transpose(0, 1)[..., None] * k.transpose(0, 1)[:, :, None, :]).contiguous()  # v_i k_i^T
        states = torch.empty(L + 1, b, H, q.shape[-1], dtype=q.dtype, device=q.device)
        states[0] = 0
        for i in range(L):
            torch.addcmul(x_t[i], a_t[i], states[i], out=states[i + 1])
        hs = states[1:].transpose(0, 1)  # (b, L, H, dk)
        y = (hs.reshape(b * L, H, -1) @ q.reshape(b * L, -1, 1)).reshape(b, L, H)
        ctx.save_for_backward(q, k, v, a_t, states)
        return y

    @staticmethod
    def backward(ctx, dy):
        q, k, v, a_t, states = ctx.saved_tensors
        b, L, H = v.shape
        dk_ = q.shape[-1]
        dy_t = dy.transpose(0, 1)  # (L, b, H)
        qdy = dy_t[..., None] * q.transpose(0, 1)[:, :, None, :]  # (L, b, H, dk)
        dstates = torch.empty_like(qdy)
        g = torch.zeros_like(states[0])
        for i in range(L - 1, -1, -1):
            torch.add(qdy[i], g, out=dstates[i])
            g = a_t[i] * dstates[i]
        flat = (b * L, H, dk_)
        hs = states[1:].transpose(0, 1).reshape(flat)
        dh = dstates.transpose(0, 1).reshape(flat)  # (b L, H, dk)
        dq = (dy.reshape(b * L, 1, H) @ hs).reshape(b, L, dk_)
        dk = (v.reshape(b * L, 1, H) @ dh).reshape(b, L, dk_)
        dv = (dh @ k.reshape(b * L, dk_, 1)).reshape(b, L, H)
        dlog_a = (dstates * states[:-1] * a_t).transpose(0, 1)  # dL/da_i * a_i, a_i = exp(log_a_i)
        return dq, dk, dv, dlog_a


def selective_scan(q, k, v, log_a):
    """S6's scan without expanding its shared ``q = C_i`` and ``k = B_i`` over the channels.

    ``q, k`` ``(batch, L, dk)``, ``v`` ``(batch, L, H)``, ``log_a`` ``(batch, L, H, dk)`` (``<= 0``);
    returns ``y`` ``(batch, L, H)``, equal to ``linear_scan`` of ``q, k`` expanded to
    ``(batch, L, H, dk)`` and ``v[..., None]`` (zero initial state), accumulated in at least float32. The
    fastest CPU path for S6 (one sequential loop, a hand-written backward, matmuls for the reductions).
    """
    check_tensor("q", q, (None, None, None), "(batch, L, dk)")
    b, L, dk = q.shape
    check_tensor("k", k, (b, L, dk), "(batch, L, dk)")
    check_tensor("v", v, (b, L, None), "(batch, L, H)")
    H = v.shape[-1]
    check_tensor("log_a", log_a, (b, L, H, dk), "(batch, L, H, dk)")
    for name, x in (("k", k), ("v", v), ("log_a", log_a)):
        check_same(name, x, "q", q)
    _validate(q[:, :, None, :].expand(b, L, H, dk), k[:, :, None, :].expand(b, L, H, dk), v[..., None], log_a, None)
    acc = accumulation_dtype(q.dtype)
    y = _SelectiveScan.apply(q.to(acc), k.to(acc), v.to(acc), log_a.to(acc))
    return y.to(v.dtype)


def linear_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False, backend="auto", chunk_size=None):
    """Evaluate the structured DSF with the chosen ``backend``.

    ``"auto"`` picks the Triton kernel for CUDA tensors when one is available and covers the layout; otherwise
    :func:`linear_scan_sequential` for vector states (``dv == 1``: S6, qLSTM, RG-LRU) and
    :func:`linear_scan_chunked` for matrix states (the faster torch path for each on a CPU, see
    ``python -m dsflib.bench``).
    ``"chunked"``, ``"parallel"``, ``"sequential"``, ``"recurrent"`` and ``"kernel"`` force one path.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if chunk_size is not None:  # checked whichever path runs (the sequential ones do not use it)
        check_positive_int("chunk_size", chunk_size)
    kernel = _kernel()
    if backend == "kernel" or (backend == "auto" and q.is_cuda and kernel is not None):
        if kernel is None:
            raise RuntimeError("backend='kernel' needs dsflib.kernels.linear_scan (Triton), which is not available")
        try:
            return kernel(q, k, v, log_a, initial_state=initial_state, return_final_state=return_final_state)
        except NotImplementedError:
            if backend == "kernel":
                raise
            # a layout the kernels do not cover (e.g. per-key decays with dv > 1, float64): torch path below
    options = dict(initial_state=initial_state, return_final_state=return_final_state)
    if backend == "recurrent":
        return linear_scan_recurrent(q, k, v, log_a, **options)
    if backend == "sequential" or (backend == "auto" and v.shape[-1] == 1):
        return linear_scan_sequential(q, k, v, log_a, **options)
    if backend == "parallel":
        return linear_scan_parallel(q, k, v, log_a, chunk_size=chunk_size or 16, **options)
    return linear_scan_chunked(q, k, v, log_a, chunk_size=chunk_size, **options)


def _kernel():
    try:
        from . import kernels
    except ImportError:  # pragma: no cover - kernels ship with dsflib
        return None
    return getattr(kernels, "linear_scan", None)
