"""dsflib: the Dynamical Systems Framework (Sieber et al., NeurIPS 2024) as a library.

Every token mixer is a linear time-varying system ``h_i = A_i h_{i-1} + B_i u_i``,
``y_i = C_i h_i + D_i u_i`` with diagonal ``A_i``; :mod:`dsflib.dsf` holds that object and its
evaluations, :mod:`dsflib.models` the architectures, :mod:`dsflib.kernels` the Triton kernels.
"""
__all__ = ["DSF", "accumulation_dtype", "apply_phi", "materialize_phi", "past_to_future", "phi_matrix", "random_dsf",
           "random_input", "recurrence"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``dsflib.DSF`` and the other names of :mod:`dsflib.dsf`, imported on first use: a process that
    only needs the sweep bookkeeping (``dsflib.sweep``, a sweep's worker) does not import torch."""
    if name in __all__:
        from . import dsf

        return getattr(dsf, name)
    raise AttributeError(f"module 'dsflib' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
