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
* :func:`linear_scan_parallel` - a chunked Hillis-Steele prefix scan over materialized states,
  the faster CPU path for vector states (``dv == 1``);
* the Triton kernels of :mod:`dsflib.kernels` on CUDA, once present.

:func:`linear_scan` dispatches between them.
All paths accumulate in at least float32 and return ``y`` in ``v``'s dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_finite, check_positive_int, check_same, check_tensor
from .dsf import accumulation_dtype

__all__ = ["linear_scan", "linear_scan_recurrent", "linear_scan_chunked", "linear_scan_parallel", "BACKENDS"]

BACKENDS = ("auto", "chunked", "parallel", "recurrent", "kernel")


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
    check_finite("log_a", log_a)
    if (log_a > 0).any():
        raise ValueError("log_a must be <= 0 everywhere (decays a = exp(log_a) in (0, 1]); "
                         f"its largest entry is {log_a.max().item():.3g}")
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
    term needs a ``chunk x chunk x dk`` tensor). ``L`` need not be a multiple of it.
    """
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    per_key = log_a.ndim == 4
    C = check_positive_int("chunk_size", chunk_size if chunk_size is not None else (16 if per_key else 32))
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


def linear_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False, backend="auto", chunk_size=None):
    """Evaluate the structured DSF with the chosen ``backend``.

    ``"auto"`` picks the Triton kernel for CUDA tensors when one is available and covers the layout; otherwise
    :func:`linear_scan_parallel` for vector states (``dv == 1``: S6, qLSTM, RG-LRU) and
    :func:`linear_scan_chunked` for matrix states (the faster torch path for each on a CPU, see
    ``python -m dsflib.bench``).
    ``"chunked"``, ``"parallel"``, ``"recurrent"`` and ``"kernel"`` force one path.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
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
    if backend == "parallel" or (backend == "auto" and v.shape[-1] == 1):
        return linear_scan_parallel(q, k, v, log_a, chunk_size=chunk_size or 16, **options)
    return linear_scan_chunked(q, k, v, log_a, chunk_size=chunk_size, **options)


def _kernel():
    try:
        from . import kernels
    except ImportError:  # pragma: no cover - kernels ship with dsflib
        return None
    return getattr(kernels, "linear_scan", None)
