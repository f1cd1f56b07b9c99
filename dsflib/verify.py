"""Check that a layer is what its ``to_dsf`` says: the numeric test every chapter prints.

``verify_layer(layer, u)`` evaluates the same map three ways - the layer's own ``forward``, the DSF
recurrence and the materialized :math:`\\Phi` - and reports the largest disagreements. Use it on a
float64 copy of the layer for a rounding-level check (``layer.double()``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_tensor
from .dsf import DSF, apply_phi, materialize_phi, recurrence

__all__ = ["DSFReport", "verify_layer"]


@dataclass(frozen=True)
class DSFReport:
    """Largest absolute differences between the three evaluations, and the DSF's sizes."""

    forward_vs_recurrence: float
    forward_vs_phi: float
    recurrence_vs_phi: float
    scale: float  # max |forward(u)|, to read the errors against
    N: int
    n: int

    @property
    def max_error(self) -> float:
        return max(self.forward_vs_recurrence, self.forward_vs_phi, self.recurrence_vs_phi)

    def ok(self, atol: float) -> bool:
        """True when every disagreement is at most ``atol``."""
        return self.max_error <= atol

    def __str__(self) -> str:
        # one fact per line, so the report fits a page's column
        return (f"N = {self.N} (n = {self.n}), max |y| = {self.scale:.2e}\n"
                f"max |forward - recurrence| = {self.forward_vs_recurrence:.2e}\n"
                f"max |forward - Phi u|      = {self.forward_vs_phi:.2e}\n"
                f"max |recurrence - Phi u|   = {self.recurrence_vs_phi:.2e}")


def verify_layer(layer: torch.nn.Module, u: torch.Tensor) -> DSFReport:
    """Compare ``layer(u)``, ``recurrence(layer.to_dsf(u), u)`` and ``Phi u`` for one input."""
    check_tensor("u", u, (None, None, None), "(batch, L, d)")
    if not callable(getattr(layer, "to_dsf", None)):
        raise TypeError(f"layer must define to_dsf(u) -> DSF; {type(layer).__name__} does not")
    with torch.no_grad():
        system = layer.to_dsf(u)
        if not isinstance(system, DSF):
            raise TypeError(f"layer.to_dsf(u) must return a dsflib.DSF, got {type(system).__name__}")
        y = layer(u)
        y_rec = recurrence(system, u)
        y_phi = apply_phi(materialize_phi(system), u)
    err = lambda a, b: (a - b).abs().max().item() if a.numel() else 0.0  # noqa: E731
    return DSFReport(err(y, y_rec), err(y, y_phi), err(y_rec, y_phi), y.abs().max().item() if y.numel() else 0.0,
                     system.N, system.n)
