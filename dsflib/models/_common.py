"""Shared pieces of the model modules: the DSF of a structured scan, and input checks."""
from __future__ import annotations

import torch

from .._checks import check_tensor
from ..dsf import DSF

__all__ = ["dsf_from_scan", "check_mixer_input"]


def check_mixer_input(u: object, d_model: int) -> torch.Tensor:
    """A mixer's input must be a floating ``(batch, L, d_model)`` tensor."""
    return check_tensor("u", u, (None, None, d_model), f"(batch, L, d_model={d_model})")


def dsf_from_scan(
    q: torch.Tensor,
    k: torch.Tensor,
    log_a: torch.Tensor,
    value_map: torch.Tensor,
    output_map: torch.Tensor | None = None,
    feedthrough: torch.Tensor | None = None,
    normalizer: torch.Tensor | None = None,
) -> DSF:
    r"""The dense DSF of ``y_i = O_i (1/eta_i) S_i^T q_i + D_i u_i`` where
    ``S_i = diag(a_i) S_{i-1} + k_i (V_i u_i)^T`` per head (the form :func:`dsflib.scan.linear_scan` computes).

    Shapes: ``q, k`` ``(batch, L, H, dk)``; ``log_a`` ``(batch, L, H)`` or ``(batch, L, H, dk)``;
    ``value_map`` :math:`V_i` ``(batch, L, H*dv, d)`` (head ``h`` owns rows ``h*dv:(h+1)*dv``);
    ``output_map`` :math:`O_i` ``(batch, L, d, H*dv)`` (default identity, needs ``H*dv == d``);
    ``feedthrough`` :math:`D_i` ``(batch, L, d, d)``; ``normalizer`` :math:`\eta_i > 0` ``(batch, L, H)``.

    The state is :math:`S_i/\eta_i` stacked as index ``(head, value channel, key)``, so
    :math:`N = H d_v d_k` and, with a normalizer, :math:`A_i = a_i\,\eta_{i-1}/\eta_i` and
    :math:`B_i \propto 1/\eta_i` - the paper's "recurrent normalization" (:math:`\eta_{-1} := \eta_0`).
    """
    check_tensor("q", q, (None, None, None, None), "(batch, L, H, dk)")
    b, L, H, dk = q.shape
    check_tensor("k", k, (b, L, H, dk), "(batch, L, H, dk)")
    check_tensor("value_map", value_map, (b, L, None, None), "(batch, L, H*dv, d)")
    Hdv, d = value_map.shape[2:]
    if Hdv % H:
        raise ValueError(f"value_map must have H*dv rows with H={H}, got {Hdv}")
    dv = Hdv // H
    if output_map is None:
        if Hdv != d:
            raise ValueError(f"output_map is required when H*dv={Hdv} differs from d={d}")
        output_map = torch.eye(d, dtype=q.dtype, device=q.device).expand(b, L, d, d)
    check_tensor("output_map", output_map, (b, L, d, Hdv), "(batch, L, d, H*dv)")
    a = log_a.exp()
    if normalizer is not None:
        check_tensor("normalizer", normalizer, (b, L, H), "(batch, L, H)")
        if not (normalizer > 0).all():
            raise ValueError("normalizer must be positive")
        prev = torch.cat([normalizer[:, :1], normalizer[:, :-1]], dim=1)
        ratio = prev / normalizer
        a = a * (ratio if a.ndim == 3 else ratio[..., None])
        k = k / normalizer[..., None]
    if a.ndim == 3:
        A = a  # one scalar per head: DSF's (batch, L, H) form, head h owns dv*dk entries
    else:
        A = a[:, :, :, None, :].expand(b, L, H, dv, dk).reshape(b, L, H * dv * dk)
    V = value_map.reshape(b, L, H, dv, d)
    B = torch.einsum("blhk,blhcd->blhckd", k, V).reshape(b, L, H * dv * dk, d)
    O = output_map.reshape(b, L, d, H, dv)
    C = torch.einsum("blphc,blhk->blphck", O, q).reshape(b, L, d, H * dv * dk)
    return DSF(A, B, C, feedthrough)
