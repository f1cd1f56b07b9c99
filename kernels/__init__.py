"""Triton kernels for the DSF scans, installed as ``dsflib.kernels``.

Each kernel has the same API as a pure-torch path in dsflib; dsflib dispatches to the kernel for
CUDA tensors and to torch on the CPU. Under ``TRITON_INTERPRET=1`` the kernels also run on the CPU
(used by the tests, with small shapes and fp32/fp16 only, since the interpreter's bf16 is wrong).

* :func:`dsflib.kernels.api.linear_scan` - validate, then pick by decay layout:
  :mod:`.chunked_scan` (scalar decay per head: linear attention, SSD, RetNet, mLSTM) or
  :mod:`.diag_scan` (per-key decays with ``dv == 1``: S6, qLSTM, RG-LRU) or :mod:`.gla_scan`
  (per-key decays with a matrix state: GLA); other inputs (float64, sizes beyond the limits) raise
  ``NotImplementedError``.
* :func:`dsflib.kernels.s6_scan.s6_scan` - S6's scan from its compact inputs (u, delta, A, B, C), no
  ``(batch, L, d, n)`` tensor in memory; the S6 layer uses it on CUDA.
* ``dsflib.kernels.linear_scan`` - the same function, present only where it can run on a GPU
  (triton importable and CUDA available); dsflib's dispatcher looks this attribute up, so on a
  CPU-only machine ``backend="kernel"`` keeps reporting that no kernel is available.
* ``python -m dsflib.kernels.bench`` - GPU timings against the torch paths, mamba_ssm and fla.
"""
from __future__ import annotations

import importlib.util
import os

__all__ = ["triton_available", "interpret_mode", "gpu_available"]


def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpret_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def gpu_available() -> bool:
    """True when the kernels can run on a GPU: triton importable and CUDA available to torch."""
    if not triton_available():
        return False
    import torch

    return torch.cuda.is_available()


def __getattr__(name):
    # `linear_scan` resolves lazily (importing triton only when asked) and only where a GPU can run it
    if name == "linear_scan" and gpu_available():
        from .api import linear_scan

        return linear_scan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
