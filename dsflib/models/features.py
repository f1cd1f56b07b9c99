r"""Feature maps :math:`\phi` of separable attention: elu+1, truncated Taylor, positive random features."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._checks import check_positive_int, check_tensor

__all__ = [
    "elu_plus_one",
    "taylor_feature_dim",
    "taylor_features",
    "random_feature_weights",
    "positive_random_features",
]


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    r"""The linear-attention feature map :math:`\phi(x) = \mathrm{elu}(x) + 1 > 0`, elementwise."""
    return F.elu(x) + 1.0


def _check_features_input(name: str, x: object, min_ndim: int, dims: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.ndim < min_ndim:
        raise ValueError(f"{name} must have shape {dims}, got shape {tuple(x.shape)}")
    return check_tensor(name, x, (None,) * (x.ndim if isinstance(x, torch.Tensor) else min_ndim), dims)


def _check_order(order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be a non-negative int, got {type(order).__name__}")
    if order < 0:
        raise ValueError(f"order must be a non-negative int, got {order}")
    return order


def taylor_feature_dim(m: int, order: int) -> int:
    r"""Size :math:`\sum_{r=0}^{p} m^r` of the order-``p`` Taylor features of an ``m``-vector."""
    check_positive_int("m", m)
    return sum(m**r for r in range(_check_order(order) + 1))


def taylor_features(x: torch.Tensor, order: int) -> torch.Tensor:
    r"""Order-``p`` Taylor features :math:`[1, x, x^{\otimes 2}/\sqrt{2!}, \dots, x^{\otimes p}/\sqrt{p!}]`
    of the last axis of ``x`` (size ``m``), so that
    :math:`\phi_p(x)^\top \phi_p(y) = \sum_{r \le p} (x^\top y)^r / r!`, the truncation of :math:`e^{x^\top y}`.

    Output shape ``(..., taylor_feature_dim(m, order))``; memory grows like :math:`m^p`.
    """
    _check_features_input("x", x, 1, "(..., m)")
    order = _check_order(order)
    term = x.new_ones(*x.shape[:-1], 1)
    parts = [term]
    for r in range(1, order + 1):
        # x^{⊗r}/sqrt(r!) = (x^{⊗(r-1)}/sqrt((r-1)!)) ⊗ x / sqrt(r)
        term = (term[..., :, None] * x[..., None, :]).flatten(-2) / math.sqrt(r)
        parts.append(term)
    return torch.cat(parts, dim=-1)


def random_feature_weights(
    m: int,
    num_features: int,
    *,
    heads: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    r"""Gaussian projections :math:`w_r \sim \mathcal{N}(0, I_m)` for :func:`positive_random_features`:
    shape ``(num_features, m)``, or ``(heads, num_features, m)`` (independent per head). Reproducible
    from ``seed`` (drawn in float64 on the CPU, then cast)."""
    check_positive_int("m", m)
    check_positive_int("num_features", num_features)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    shape = (num_features, m) if heads is None else (check_positive_int("heads", heads), num_features, m)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)


def positive_random_features(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""Positive random features (Performer) :math:`\phi(x)_r = \exp(w_r^\top x - \|x\|^2/2)/\sqrt{R}`, with
    :math:`\mathbb{E}[\phi(x)^\top \phi(y)] = e^{x^\top y}` for :math:`w_r \sim \mathcal{N}(0, I)`.

    ``x`` is ``(..., m)`` with ``weights`` ``(R, m)``, or ``(..., H, m)`` with ``weights`` ``(H, R, m)``
    (one set per head); the result is ``(..., R)`` resp. ``(..., H, R)``.
    """
    _check_features_input("weights", weights, 2, "(R, m) or (H, R, m)")
    if weights.ndim > 3:
        raise ValueError(f"weights must have shape (R, m) or (H, R, m), got shape {tuple(weights.shape)}")
    m = weights.shape[-1]
    if weights.ndim == 2:
        _check_features_input("x", x, 1, "(..., m)")
        if x.shape[-1] != m:
            raise ValueError(f"x must have shape (..., m={m}), got shape {tuple(x.shape)}")
        proj = x @ weights.to(x.dtype).T
    else:
        H = weights.shape[0]
        _check_features_input("x", x, 2, "(..., H, m)")
        if x.shape[-2:] != (H, m):
            raise ValueError(f"x must have shape (..., H={H}, m={m}), got shape {tuple(x.shape)}")
        proj = torch.einsum("...hm,hrm->...hr", x, weights.to(x.dtype))
    R = weights.shape[-2]
    return torch.exp(proj - 0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(R)
