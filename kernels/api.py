"""The entry point of the Triton kernels: validate, pick a kernel by decay layout, launch."""
from __future__ import annotations

import torch

from ._common import validate
from .chunked_scan import MAX_DIM, chunked_scan
from .diag_scan import MAX_DK, diag_scan
from .gla_scan import MAX_DK as GLA_MAX_DK
from .gla_scan import gla_scan

__all__ = ["linear_scan", "supports"]


def supports(q, k, v, log_a) -> str | None:
    """Why the kernels cannot take this layout, or ``None`` when they can (shapes only; see ``validate``)."""
    dk, dv = q.shape[-1], v.shape[-1]
    if log_a.ndim == 3:
        if dk > MAX_DIM or dv > MAX_DIM:
            return f"the chunked scan kernel supports dk, dv <= {MAX_DIM}, got dk={dk}, dv={dv}"
        L, H = q.shape[1], q.shape[2]
        if L * H * max(dk, dv) >= 2**31:  # offsets inside one batch element are 32-bit
            return f"the chunked scan kernel needs L * H * max(dk, dv) < 2**31, got {L * H * max(dk, dv)}"
        return None
    if dv != 1:
        if dk > GLA_MAX_DK:
            return f"the GLA scan kernel (per-key decays, matrix state) supports dk <= {GLA_MAX_DK}, got dk={dk}"
        L, H = q.shape[1], q.shape[2]
        if L * H * max(dk, dv) >= 2**31:
            return f"the GLA scan kernel needs L * H * max(dk, dv) < 2**31, got {L * H * max(dk, dv)}"
        return None
    if dk > MAX_DK:
        return f"the diagonal scan kernel supports dk <= {MAX_DK}, got dk={dk}"
    return None


def linear_scan(q, k, v, log_a, *, initial_state=None, return_final_state=False):
    r"""The structured DSF scan :math:`S_i = \mathrm{diag}(a_i) S_{i-1} + k_i v_i^T`, :math:`y_i = S_i^T q_i` on Triton.

    Same contract as :func:`dsflib.scan.linear_scan` (shapes ``q, k: (b, L, H, dk)``,
    ``v: (b, L, H, dv)``, ``log_a: (b, L, H)`` or ``(b, L, H, dk)``, state ``(b, H, dk, dv)``;
    ``y`` in ``v``'s dtype, the final state in float32), differentiable wrt every tensor input.

    * scalar decay per head (``log_a`` of shape ``(b, L, H)``) -> the chunked kernel;
    * per-key decays with ``dv == 1`` (S6, qLSTM, RG-LRU) -> the sequential diagonal kernel;
    * per-key decays with ``dv > 1`` (GLA) -> the chunked GLA kernel;
    * float64, ``dk``/``dv`` beyond the kernels' limits -> ``NotImplementedError`` (a dispatcher
      should fall back to the torch paths).

    Bad input raises ``TypeError``/``ValueError`` naming the argument. Inputs are made contiguous.
    """
    b, L, H, dk, dv = validate(q, k, v, log_a, initial_state)
    reason = supports(q, k, v, log_a)
    if reason is not None:
        raise NotImplementedError(reason)
    if L == 0 or b * H * dk * dv == 0:  # nothing for a kernel to do
        y = v.new_zeros(b, L, H, dv)
        state = q.new_zeros(b, H, dk, dv, dtype=torch.float32) if initial_state is None else initial_state.float()
        return (y, state) if return_final_state else y
    q, k, v, log_a = (t.contiguous() for t in (q, k, v, log_a))
    scan = chunked_scan if log_a.ndim == 3 else (diag_scan if dv == 1 else gla_scan)
    return scan(q, k, v, log_a, initial_state=initial_state, return_final_state=return_final_state)
