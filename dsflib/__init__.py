"""dsflib: the Dynamical Systems Framework (Sieber et al., NeurIPS 2024) as a library.

Every token mixer is a linear time-varying system ``h_i = A_i h_{i-1} + B_i u_i``,
``y_i = C_i h_i + D_i u_i`` with diagonal ``A_i``; :mod:`dsflib.dsf` holds that object and its
evaluations, :mod:`dsflib.models` the architectures, :mod:`dsflib.kernels` the Triton kernels.
"""
from .dsf import (DSF, accumulation_dtype, apply_phi, materialize_phi, past_to_future, phi_matrix, random_dsf,
                  random_input, recurrence)

__all__ = ["DSF", "accumulation_dtype", "apply_phi", "materialize_phi", "past_to_future", "phi_matrix", "random_dsf",
           "random_input", "recurrence"]
__version__ = "0.1.0"
