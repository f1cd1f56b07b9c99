"""Shared plumbing of the Triton kernels: validation, output allocation, configs, launch.

Nothing here touches ``torch.cuda`` unless a tensor is on a CUDA device, so the kernels also run
on the CPU under ``TRITON_INTERPRET=1``. Environment switches (read at call time):

``DSFLIB_KERNELS_POISON=1``
    allocate every kernel output with ``torch.full(..., nan)`` instead of ``torch.empty``, so an
    element a kernel forgets to write shows up as NaN (the tests set it).
``DSFLIB_KERNELS_AUTOTUNE=1``
    autotune on a GPU (opt-in): benchmark the candidate configurations at the first call of each
    shape class. By default every kernel launches the single configuration its config function
    chooses from the shape (a heuristic), so the first call costs one compile per kernel and no
    benchmarking. Under the interpreter there is never autotuning (it needs a GPU driver).
``DSFLIB_KERNELS_CHECK=0``
    skip the value checks on ``log_a`` (finite and ``<= 0``), which cost a device sync.
"""
from __future__ import annotations

import contextlib
import os

import torch
import triton

from . import interpret_mode
from .._checks import check_finite, check_same, check_tensor

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default) not in ("", "0")


def poison_outputs() -> bool:
    """True when outputs are NaN-filled before the kernels write them (``DSFLIB_KERNELS_POISON=1``)."""
    return _flag("DSFLIB_KERNELS_POISON", "0")


def autotune_enabled() -> bool:
    """Autotune only on a real GPU and only when asked (``DSFLIB_KERNELS_AUTOTUNE=1``)."""
    return not interpret_mode() and _flag("DSFLIB_KERNELS_AUTOTUNE", "0")


def new_output(shape, dtype, device) -> torch.Tensor:
    """A kernel output buffer: uninitialized, or NaN-poisoned under ``DSFLIB_KERNELS_POISON=1``."""
    if poison_outputs():
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def dot_precision() -> str:
    """``input_precision`` of fp32 ``tl.dot``: IEEE unless torch allows TF32 for fp32 matmuls.

    Follows ``torch.set_float32_matmul_precision`` ("highest", torch's default, -> "ieee";
    "high"/"medium" -> "tf32"), so the kernel is exactly as accurate as torch's own matmuls.
    Half-precision operands always use the tensor cores; the interpreter ignores the setting.
    """
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def device_guard(x: torch.Tensor):
    """Launch on ``x``'s CUDA device; a no-op for CPU tensors (the interpreter)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def pow2(n: int, minimum: int = 1) -> int:
    """The smallest power of two ``>= max(n, minimum)``."""
    return max(minimum, triton.next_power_of_2(max(int(n), 1)))


def validate(q, k, v, log_a, initial_state):
    """Check the scan inputs like :mod:`dsflib.scan` does, plus what the kernels need.

    Returns ``(b, L, H, dk, dv)``. Raises ``TypeError``/``ValueError`` naming the argument for bad
    input and ``NotImplementedError`` for valid input the kernels do not cover (float64, a CPU
    tensor outside the interpreter, bfloat16 inside it), so a dispatcher can fall back to torch.
    """
    check_tensor("q", q, (None, None, None, None), "(batch, L, H, dk)")
    b, L, H, dk = q.shape
    check_tensor("k", k, (b, L, H, dk), "(batch, L, H, dk)")
    check_tensor("v", v, (b, L, H, None), "(batch, L, H, dv)")
    dv = v.shape[-1]
    if not isinstance(log_a, torch.Tensor):
        raise TypeError(f"log_a must be a torch.Tensor of shape (batch, L, H) or (batch, L, H, dk), "
                        f"got {type(log_a).__name__}")
    check_tensor("log_a", log_a, (b, L, H) if log_a.ndim == 3 else (b, L, H, dk),
                 "(batch, L, H) or (batch, L, H, dk)")
    for name, x in (("k", k), ("v", v), ("log_a", log_a)):
        check_same(name, x, "q", q)
    if initial_state is not None:
        check_tensor("initial_state", initial_state, (b, H, dk, dv), "(batch, H, dk, dv)")
        if initial_state.device != q.device:
            raise ValueError(f"initial_state must be on the device of q ({q.device}), got {initial_state.device}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise NotImplementedError(f"the Triton scan kernels take float16, bfloat16 or float32 inputs, got q of dtype "
                                  f"{q.dtype}; use dsflib.scan.linear_scan_chunked for it")
    if q.device.type != "cuda" and not (q.device.type == "cpu" and interpret_mode()):
        raise NotImplementedError(f"the Triton scan kernels need CUDA tensors (or CPU tensors with TRITON_INTERPRET=1), "
                                  f"got q on {q.device}")
    if interpret_mode() and q.dtype == torch.bfloat16:
        raise NotImplementedError("bfloat16 is not supported by the Triton CPU interpreter (it computes on the raw "
                                  "bit patterns); use float16/float32 there, bfloat16 on a GPU")
    if _flag("DSFLIB_KERNELS_CHECK", "1"):
        check_finite("log_a", log_a)
        if (log_a > 0).any():
            raise ValueError("log_a must be <= 0 everywhere (decays a = exp(log_a) in (0, 1]); "
                             f"its largest entry is {log_a.max().item():.3g}")
    return b, L, H, dk, dv


class Launcher:
    """One Triton kernel with a single-config mode and an optional autotuned mode.

    ``config_fn(**sizes)`` returns the ``triton.Config`` used without autotuning (always under
    the interpreter); ``configs`` are the candidates the autotuner benchmarks on a GPU, keyed on
    ``key`` (argument names of the kernel); ``prune(configs, named_args)`` drops useless ones.
    ``grid(meta)`` maps the launch meta-parameters (the kernel's arguments plus the chosen config)
    to the grid, so it works in both modes.

    ``restore`` names the pointer arguments the kernel reads *and* overwrites (an in-place update).
    The autotuner launches a kernel many times on the same buffers while it benchmarks the
    candidates; without restoring such a buffer between launches every launch would start from the
    previous one's output (this turned S6's ``d log_a`` into a repeated running sum on the GPU,
    overflowing to inf/NaN within a few training steps). They are passed to ``triton.autotune`` as
    ``restore_value``; ``tests/test_kernels.py`` checks that every buffer a repeated launch changes
    is declared here.
    """

    def __init__(self, kernel, config_fn, configs, key, prune=None, restore=()):
        self.kernel, self.config_fn, self.configs, self.key, self.prune = kernel, config_fn, configs, key, prune
        self.restore = tuple(restore)
        unknown = [name for name in self.restore if name not in kernel.arg_names]
        if unknown:
            raise ValueError(f"restore must name arguments of {kernel.fn.__name__}, got {unknown}")
        self._tuned = None

    def tuned(self):
        if self._tuned is None:
            prune = None
            if self.prune is not None:
                prune = {"early_config_prune": lambda configs, named_args, **kw: self.prune(configs, named_args)}
            self._tuned = triton.autotune(configs=self.configs, key=self.key, prune_configs_by=prune,
                                          restore_value=list(self.restore) or None)(self.kernel)
        return self._tuned

    def __call__(self, grid, args, consts, sizes) -> dict:
        """Launch; returns the meta-parameters of the configuration that ran."""
        if autotune_enabled():
            tuned = self.tuned()
            tuned[grid](*args, **consts)
            return dict(tuned.best_config.kwargs)
        config = self.config_fn(**sizes)
        self.kernel[grid](*args, **consts, **config.kwargs, num_warps=config.num_warps,
                          num_stages=config.num_stages)
        return dict(config.kwargs)
