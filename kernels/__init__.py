"""Triton kernels for the DSF scans, installed as ``dsflib.kernels``.

Each kernel has the same API as a pure-torch path in dsflib; dsflib dispatches to the kernel for
CUDA tensors and to torch on the CPU. Under ``TRITON_INTERPRET=1`` the kernels also run on the CPU
(used by the tests, with small shapes and fp32/fp16 only, since the interpreter's bf16 is wrong).
"""
from __future__ import annotations

import importlib.util
import os

__all__ = ["triton_available", "interpret_mode"]


def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpret_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
