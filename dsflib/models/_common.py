"""Shared pieces of the model modules: argument and input checks, initialisation and dtype helpers,
the DSF of a structured scan, and the two read-outs most layers share (see :func:`projected_scan`
and :func:`ssm_output`), each next to the DSF that describes it."""
from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_positive_int, check_tensor
from ..dsf import DSF
from ..scan import BACKENDS, linear_scan

__all__ = [
    "check_backend",
    "check_mixer_args",
    "check_mixer_input",
    "common_dtype",
    "dt_bias_init",
    "dsf_from_scan",
    "project_heads",
    "projected_scan",
    "projected_scan_dsf",
    "ssm_output",
    "ssm_dsf",
]


# ---- checks -------------------------------------------------------------------------------------

def check_backend(backend: object) -> str:
    """``backend`` must be one of :data:`dsflib.scan.BACKENDS`."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def check_mixer_args(
    d_model: object,
    n: object,
    heads: object = None,
    backend: object = "auto",
    *,
    n_required: bool = True,
) -> None:
    """The arguments every mixer shares: ``d_model`` and the state size ``n`` positive ints, ``heads``
    (where the layer has heads; ``None`` where it has none) a positive int that divides ``d_model``,
    and ``backend`` one of :data:`dsflib.scan.BACKENDS`. Checked in that order. With
    ``n_required=False``, ``n=None`` passes (softmax attention: its exact state is infinite)."""
    check_positive_int("d_model", d_model)
    if n_required or n is not None:
        check_positive_int("n", n)
    if heads is not None:
        check_positive_int("heads", heads)
        if d_model % heads:
            raise ValueError(f"heads must divide d_model={d_model}, got heads={heads}")
    check_backend(backend)


def check_mixer_input(u: object, d_model: int, layer: nn.Module | None = None) -> torch.Tensor:
    """A mixer's input must be a floating ``(batch, L, d_model)`` tensor, of the ``layer``'s dtype
    (that of its floating parameters) unless ``torch.autocast`` is on for ``u``'s device, as torch's
    own layers expect: a TypeError names both dtypes and the two ways to run in another precision."""
    u = check_tensor("u", u, (None, None, d_model), f"(batch, L, d_model={d_model})")
    if layer is not None and not torch.is_autocast_enabled(u.device.type):
        dtype = next((p.dtype for p in layer.parameters() if p.is_floating_point()), None)
        if dtype is not None and u.dtype != dtype:
            raise TypeError(f"u must have the dtype of the {type(layer).__name__} layer's parameters ({dtype}), "
                            f"got {u.dtype}: convert the layer (layer.to({u.dtype})) or run it under "
                            f"torch.autocast")
    return u


# ---- initialisation and dtypes ------------------------------------------------------------------

def dt_bias_init(size: int, dt_min: float = 1e-3, dt_max: float = 1e-1) -> torch.Tensor:
    """Biases ``b`` with ``softplus(b)`` log-uniform in ``[dt_min, dt_max]`` (Mamba's step-size init)."""
    log_dt = torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    dt = log_dt.exp().clamp(min=1e-4)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


def common_dtype(*xs: torch.Tensor) -> list[torch.Tensor]:
    """Cast the scan operands to one dtype (their promotion), e.g. under autocast."""
    dtype = xs[0].dtype
    for x in xs[1:]:
        dtype = torch.promote_types(dtype, x.dtype)
    return [x.to(dtype) for x in xs]


# ---- the DSF of a structured scan ---------------------------------------------------------------

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


# ---- y = W_out scan(q, k, W_in u): attention-like layers and gated RNNs -------------------------

def project_heads(u: torch.Tensor, heads: int, *projections: nn.Linear) -> list[torch.Tensor]:
    """Each projection ``W(u)`` of ``u`` ``(batch, L, d)`` split evenly into ``heads`` heads:
    ``(batch, L, heads, W.out_features // heads)`` (e.g. ``q, k, v`` from ``W_Q, W_K, W_V``)."""
    b, L, _ = u.shape
    return [W(u).reshape(b, L, heads, -1) for W in projections]


def projected_scan(
    u: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    log_a: torch.Tensor,
    W_in: nn.Linear,
    W_out: nn.Linear,
    backend: str,
) -> torch.Tensor:
    """``y_i = W_out [S_i^T q_i]_heads`` with the values :math:`v_i = W_{in} u_i` split evenly over the
    ``H = q.shape[2]`` heads (RetNet, GLA: ``W_V``, ``W_O``; qLSTM, RG-LRU: one head per channel).
    :func:`projected_scan_dsf` is its DSF."""
    (v,) = project_heads(u, q.shape[2], W_in)
    q, k, v, log_a = common_dtype(q, k, v, log_a)  # autocast may have halved the projections only
    y = linear_scan(q, k, v, log_a, backend=backend)
    return W_out(y.flatten(2))


def projected_scan_dsf(
    q: torch.Tensor,
    k: torch.Tensor,
    log_a: torch.Tensor,
    W_in: torch.Tensor,
    W_out: torch.Tensor,
    normalizer: torch.Tensor | None = None,
) -> DSF:
    """The DSF of :func:`projected_scan` (with ``normalizer``: of ``W_out [S_i^T q_i / eta_i]_heads``):
    :func:`dsf_from_scan` with the weight matrices ``W_in`` (value map) and ``W_out`` (output map),
    each either one matrix for every step or already per step ``(batch, L, rows, cols)``."""
    b, L = q.shape[:2]

    def per_step(W: torch.Tensor) -> torch.Tensor:
        return W.expand(b, L, *W.shape) if W.ndim == 2 else W

    return dsf_from_scan(q, k, log_a, per_step(W_in), per_step(W_out), normalizer=normalizer)


# ---- y = W_out (scan(q, k, v) + D u): the state-space layers ------------------------------------

def ssm_output(
    u: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_a: torch.Tensor,
    D: torch.Tensor,
    W_out: nn.Linear,
    backend: str,
) -> torch.Tensor:
    """``y_i = W_out([S_i^T q_i]_heads + D * u_i)``, the read-out of S6, SSD and the LTI SSM; the scan
    runs in the promoted dtype of its operands. :func:`ssm_dsf` is its DSF."""
    b, L, d = u.shape
    q, k, v, log_a = common_dtype(q, k, v, log_a)
    y = linear_scan(q, k, v, log_a, backend=backend).reshape(b, L, d)
    return W_out(y.to(u.dtype) + D * u)


def ssm_dsf(
    q: torch.Tensor,
    k: torch.Tensor,
    log_a: torch.Tensor,
    value_map: torch.Tensor,
    D: torch.Tensor,
    W_out: nn.Linear,
    include_output_projection: bool,
    dtype: torch.dtype,
) -> DSF:
    """The DSF of :func:`ssm_output`: output map :math:`W_{out}` and feedthrough
    :math:`W_{out}\\,\\mathrm{diag}(D)` (``dtype``), or without the output projection
    (``include_output_projection=False``) the identity and :math:`\\mathrm{diag}(D)`."""
    b, L, d = value_map.shape[:3]
    D = torch.diag(D).to(dtype)
    if include_output_projection:
        W = W_out.weight
        output_map, feedthrough = W.expand(b, L, d, d), (W @ D).expand(b, L, d, d)
    else:
        output_map, feedthrough = None, D.expand(b, L, d, d)
    return dsf_from_scan(q, k, log_a, value_map, output_map=output_map, feedthrough=feedthrough)
