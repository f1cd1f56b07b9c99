"""Input validation shared by dsflib: every public function checks its arguments with these
helpers, so bad input fails early with a message that names the argument and the expected
shape or dtype instead of producing a silently wrong answer."""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["check_tensor", "check_finite", "check_same", "check_positive_int"]


def check_tensor(
    name: str,
    x: object,
    shape: Sequence[int | None],
    dims: str,
    *,
    floating: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of shape ``shape`` (``None`` = any size) described by ``dims``.

    ``dims`` is the human-readable layout, e.g. ``"(batch, L, d)"``; it appears in the error.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {dims}, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (float16/bfloat16/float32/float64), got {x.dtype}")
    if x.ndim != len(shape):
        raise ValueError(f"{name} must have shape {dims} ({len(shape)} dims), got shape {tuple(x.shape)}")
    for got, want in zip(x.shape, shape):
        if want is not None and got != want:
            expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {dims} = {expected}, got shape {tuple(x.shape)}")
    return x


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite values."""
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} must be finite, but {bad} of its {x.numel()} entries are NaN or infinite")
    return x


def check_same(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """Require ``x`` to share dtype and device with ``ref``."""
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {x.dtype}")
    if x.device != ref.device:
        raise ValueError(f"{name} must be on the device of {ref_name} ({ref.device}), got {x.device}")


def check_positive_int(name: str, value: object) -> int:
    """Require a positive Python integer (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value
