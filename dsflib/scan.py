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
* :func:`linear_scan_parallel` - a Hillis-Steele prefix scan over materialized states, the faster
  CPU path for per-key decays with small state;
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

    ``chunk_size`` defaults to 64 for scalar decays and 16 for per-key decays (whose intra-chunk
    term needs a ``chunk x chunk x dk`` tensor). ``L`` need not be a multiple of it.
    """
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    per_key = log_a.ndim == 4
    C = check_positive_int("chunk_size", chunk_size if chunk_size is not None else (16 if per_key else 64))
    acc = accumulation_dtype(q.dtype)
    S = q.new_zeros(b, H, dk, dv, dtype=acc) if initial_state is None else initial_state.to(acc)
    if L == 0:
        y = v.new_zeros(b, 0, H, dv)
        return (y, S) if return_final_state else y
    pad = (-L) % C
    nc = (L + pad) // C

    def chunks(x):  # (b, L, H, ...) -> (b, nc, C, H, ...) in acc, zero-padded at the end
        x = x.to(acc)
        if pad:
            x = F.pad(x, (0, 0) * (x.ndim - 2) + (0, pad))
        return x.reshape(b, nc, C, *x.shape[2:])

    qc, kc, vc = chunks(q), chunks(k), chunks(v)
    # log_a = 0 on padding: padded tokens carry k = v = 0, so they change nothing.
    la = chunks(log_a)  # (b, nc, C, H[, dk])
    G = torch.cumsum(la, dim=2)  # chunk-local cumulative log-decay G_i, <= 0
    # G_last - G_j and G_i - G_j are formed as sums of the log-decays between the two tokens,
    # never as differences of large cumulative sums (which would cancel catastrophically).
    suffix = torch.flip(torch.cumsum(torch.flip(la, [2]), 2), [2])  # sum_{k >= j}
    to_end = torch.cat([suffix[:, :, 1:], torch.zeros_like(suffix[:, :, :1])], dim=2)  # sum_{k > j}
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    strict = causal.tril(-1)
    shape = (1, 1, C, C) + (1,) * (la.ndim - 3)
    # seg[i, j] = sum_{j < k <= i} log_a_k (for i >= j): a cumulative sum over k of a masked copy
    seg = torch.cumsum(torch.where(strict.view(shape), la[:, :, :, None], 0.0), dim=2)
    decay = torch.where(causal.view(shape), seg, float("-inf")).exp()  # (b, nc, Ci, Cj, H[, dk]), <= 1

    if per_key:
        scores = torch.einsum("bnihk,bnjhk,bnijhk->bnhij", qc, kc, decay)
        q_in = qc * G.exp()  # reads the state entering the chunk: exp(G_i) <= 1
        k_out = kc * to_end.exp()  # writes into the state leaving the chunk: exp(G_last - G_j) <= 1
        chunk_decay = G[:, :, -1].exp()  # (b, nc, H, dk)
    else:
        scores = torch.einsum("bnihk,bnjhk->bnhij", qc, kc) * decay.permute(0, 1, 4, 2, 3)
        q_in = qc * G.exp()[..., None]
        k_out = kc * to_end.exp()[..., None]
        chunk_decay = G[:, :, -1].exp()[..., None]  # (b, nc, H, 1)

    y_intra = torch.einsum("bnhij,bnjhv->bnihv", scores, vc)
    # contribution of each chunk to the state at its end: sum_j exp(G_last - G_j) k_j v_j^T
    chunk_states = torch.einsum("bnjhk,bnjhv->bnhkv", k_out, vc)
    outs = []
    for c in range(nc):
        outs.append(y_intra[:, c] + torch.einsum("bihk,bhkv->bihv", q_in[:, c], S))
        S = chunk_decay[:, c, :, :, None] * S + chunk_states[:, c]
    y = torch.stack(outs, 1).reshape(b, nc * C, H, dv)[:, :L].to(v.dtype)
    return (y, S) if return_final_state else y


def linear_scan_parallel(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    r"""Parallel prefix scan over materialized states: the fast CPU path for per-key decays.

    Forms every :math:`k_i v_i^T` (memory ``batch * L * H * dk * dv``) and combines them in
    :math:`\lceil \log_2 L \rceil` Hillis-Steele steps of ``S_i += A_i S_{i-s}``, ``A_i *= A_{i-s}``.
    Decays are only ever multiplied (all factors in (0, 1]), so nothing can overflow.
    """
    b, L, H, dk, dv = _validate(q, k, v, log_a, initial_state)
    acc = accumulation_dtype(q.dtype)
    a = log_a.to(acc).exp()
    a = (a[..., None] if a.ndim == 3 else a)[..., None]  # (b, L, H, dk or 1, 1)
    S = k.to(acc)[..., None] * v.to(acc)[..., None, :]  # (b, L, H, dk, dv)
    shift = 1
    while shift < L:
        S = torch.cat([S[:, :shift], S[:, shift:] + a[:, shift:] * S[:, :-shift]], dim=1)
        a = torch.cat([a[:, :shift], a[:, shift:] * a[:, :-shift]], dim=1)
        shift *= 2
    if initial_state is not None:  # a now holds the decay from the start: prod_{j <= i} a_j
        S = S + a * initial_state.to(acc)[:, None]
    y = torch.einsum("blhkv,blhk->blhv", S, q.to(acc)).to(v.dtype)
    if not return_final_state:
        return y
    final = S[:, -1] if L else (q.new_zeros(b, H, dk, dv, dtype=acc) if initial_state is None else initial_state.to(acc))
    return y, final


def linear_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False, backend="auto", chunk_size=None):
    """Evaluate the structured DSF with the chosen ``backend``.

    ``"auto"`` picks the Triton kernel for CUDA tensors when one is available; otherwise
    :func:`linear_scan_chunked` for scalar decays and :func:`linear_scan_parallel` for per-key
    decays (the faster of the two torch paths for each on a CPU, see ``python -m dsflib.bench``).
    ``"chunked"``, ``"parallel"``, ``"recurrent"`` and ``"kernel"`` force one path.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    kernel = _kernel()
    if backend == "kernel" or (backend == "auto" and q.is_cuda and kernel is not None):
        if kernel is None:
            raise RuntimeError("backend='kernel' needs dsflib.kernels.linear_scan (Triton), which is not available")
        return kernel(q, k, v, log_a, initial_state=initial_state, return_final_state=return_final_state)
    options = dict(initial_state=initial_state, return_final_state=return_final_state)
    if backend == "recurrent":
        return linear_scan_recurrent(q, k, v, log_a, **options)
    if backend == "parallel" or (backend == "auto" and log_a.ndim == 4):
        return linear_scan_parallel(q, k, v, log_a, **options)
    return linear_scan_chunked(q, k, v, log_a, chunk_size=chunk_size, **options)


def _kernel():
    try:
        from . import kernels
    except ImportError:  # pragma: no cover - kernels ship with dsflib
        return None
    return getattr(kernels, "linear_scan", None)
