"""The contract every token mixer in :mod:`dsflib.models` meets, written once as plain assertion helpers.

Each ``tests/test_<model>.py`` calls these with its own layer, inputs and tolerances (and keeps the
tests of what is particular to its model):

* :func:`assert_layer_equals_its_dsf` - the fp64 layer, the recurrence of its ``to_dsf`` and
  :math:`\\Phi u` agree (on the ragged lengths :data:`RAGGED_LENGTHS`);
* :func:`assert_backends_agree` - the chunked and parallel scans give the step-by-step recurrence's
  output and gradients wrt every parameter and the input (on :data:`LONG_LENGTHS`);
* :func:`assert_float32_close` - the float32 layer stays close to the float64 one;
* :func:`assert_rejects_bad_input` - bad ``u`` fails early, with a message that names ``u``;
* :data:`MIXER_ARG_ERRORS`, :data:`HEADS_ARG_ERRORS` - the constructor errors every mixer shares
  (:func:`dsflib.models._common.check_mixer_args`);
* :func:`assert_registry_builds` - :func:`dsflib.models.build_mixer` builds the class, which trains a step.

Imported as ``from contract import ...``: pytest puts ``tests/`` (no ``__init__.py``) on ``sys.path``.
"""
from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F

from dsflib import apply_phi, materialize_phi, recurrence
from dsflib.models import build_mixer
from dsflib.scan import BACKENDS

F64 = torch.float64
# float64's spacing at 1 (2.2e-16): where two evaluations of one quantity round differently (another
# kernel, summation order or libm), a tolerance is a stated number of these, times the terms summed
EPS = torch.finfo(F64).eps
RAGGED_LENGTHS = (1, 7, 63, 130)  # one token, less than a chunk, a chunk minus one, chunks plus a remainder
LONG_LENGTHS = (63, 130)  # lengths at which the chunked and parallel scans differ from the recurrence
# every torch evaluation of linear_scan but the step-by-step reference ("recurrent")
SCAN_BACKENDS = tuple(b for b in ("chunked", "parallel") if b in BACKENDS)


def make_input(batch: int, length: int, d: int, *, seed: int = 1) -> torch.Tensor:
    """A reproducible standard normal float64 input ``(batch, length, d)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, d, generator=g, dtype=F64)


def assert_close(actual, expected, *, rtol=0.0, atol=0.0, rel=None, msg=None):
    """:func:`torch.testing.assert_close` with ``rtol``/``atol``; with ``rel`` instead
    ``max|actual - expected| <= rel * max|expected|`` (for sums whose size grows with L)."""
    if rel is None:
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=msg)
        return
    err = ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-300)).item()
    assert err <= rel, f"{msg + ': ' if msg else ''}relative error {err:.3g} > {rel}"


# ---- the layer is its DSF -------------------------------------------------------------------------

def assert_dsf_reproduces(dsf, u, y, atol=1e-10):
    """Both evaluations of ``dsf`` on ``u``, its recurrence and :math:`\\Phi u`, give ``y``."""
    torch.testing.assert_close(recurrence(dsf, u), y, rtol=0, atol=atol)
    torch.testing.assert_close(apply_phi(materialize_phi(dsf), u), y, rtol=0, atol=atol)


def assert_layer_equals_its_dsf(layer, u, *, n, A_dim, feedthrough=False, atol=1e-10):
    """``layer(u)`` (shape and dtype of ``u``) equals the recurrence and :math:`\\Phi u` of ``layer.to_dsf(u)``,
    a DSF with ``N = n d``, ``A`` of shape ``(batch, L, A_dim)`` (one scalar per head where ``A_dim < N``)
    and a feedthrough ``D`` of shape ``(batch, L, d, d)`` exactly when ``feedthrough``. Returns ``(y, dsf)``."""
    b, L, d = u.shape
    y = layer(u)
    assert y.shape == u.shape and y.dtype == u.dtype
    dsf = layer.to_dsf(u)
    assert (dsf.N, dsf.n, dsf.d) == (n * d, n, d)
    assert dsf.A.shape == (b, L, A_dim) and dsf.scalar_A == (A_dim != n * d)
    if feedthrough:
        assert dsf.D is not None and dsf.D.shape == (b, L, d, d)
    else:
        assert dsf.D is None
    assert_dsf_reproduces(dsf, u, y, atol)
    return y, dsf


# ---- backends -------------------------------------------------------------------------------------

def outputs_and_gradients(layer, u, w, backend=None, fn=None):
    """``y = fn(u)`` (default: ``layer(u)`` with ``layer.backend = backend``, restored afterwards) and the
    gradients of ``sum(y * w)`` wrt every parameter of ``layer`` (by name) and wrt ``u`` (key ``"u"``)."""
    saved = layer.backend
    if backend is not None:
        layer.backend = backend
    try:
        layer.zero_grad(set_to_none=True)
        x = u.detach().clone().requires_grad_()
        y = (fn or layer)(x)
        (y * w).sum().backward()
    finally:
        layer.backend = saved
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    grads["u"] = x.grad
    layer.zero_grad(set_to_none=True)
    return y.detach(), grads


def assert_same_outputs_and_gradients(result, reference, *, out_tol, grad_tol, input_grad_tol=None,
                                      nonzero_grads=False, label=""):
    """Two :func:`outputs_and_gradients` results agree: outputs within ``out_tol``, parameter gradients within
    ``grad_tol`` and the input gradient within ``input_grad_tol`` (default ``grad_tol``), all keyword
    arguments of :func:`assert_close`; with ``nonzero_grads`` no gradient of ``result`` is identically zero."""
    (y, grads), (y_ref, grads_ref) = result, reference
    assert grads.keys() == grads_ref.keys()
    assert_close(y, y_ref, **out_tol, msg=f"{label}output")
    for name in grads:
        if nonzero_grads:
            assert grads[name].abs().max() > 0, f"{label}gradient wrt {name} is zero"
        tol = input_grad_tol if name == "u" and input_grad_tol is not None else grad_tol
        assert_close(grads[name], grads_ref[name], **tol, msg=f"{label}gradient wrt {name}")


def assert_backends_agree(layer, u, w, *, params, backends=SCAN_BACKENDS, reference="recurrent",
                          out_tol, grad_tol, input_grad_tol=None, nonzero_grads=False):
    """Every backend in ``backends`` reproduces the ``reference`` backend: the output of ``layer`` on ``u`` and
    the gradients of ``sum(layer(u) * w)`` wrt every parameter - whose names must be exactly ``params`` -
    and wrt ``u`` (tolerances as in :func:`assert_same_outputs_and_gradients`)."""
    ref = outputs_and_gradients(layer, u, w, reference)
    assert set(ref[1]) == set(params) | {"u"}, sorted(ref[1])
    for backend in backends:
        assert_same_outputs_and_gradients(
            outputs_and_gradients(layer, u, w, backend), ref, out_tol=out_tol, grad_tol=grad_tol,
            input_grad_tol=input_grad_tol, nonzero_grads=nonzero_grads, label=f"{backend}: ")


# ---- precision, causality -------------------------------------------------------------------------

def assert_float32_close(layer, u, rel):
    """A float32 copy of the float64 ``layer`` on ``u.float()`` stays strictly within ``rel * max|y|`` of
    the float64 output ``y = layer(u)``."""
    y64 = layer(u)
    y32 = copy.deepcopy(layer).float()(u.float())
    assert y64.dtype == F64 and y32.dtype == torch.float32
    err = ((y32.double() - y64).abs().max() / y64.abs().max()).item()
    assert err < rel, f"float32 relative error {err:.3g} >= {rel}"


def assert_causal(layer, u, u_changed, t):
    """``u`` and ``u_changed`` agree before token ``t`` and differ from it on: the outputs agree before ``t``
    (to 1e-12) and differ after (by more than 1e-3)."""
    assert torch.equal(u[:, :t], u_changed[:, :t]) and not torch.equal(u[:, t:], u_changed[:, t:])
    y, y2 = layer(u), layer(u_changed)
    torch.testing.assert_close(y[:, :t], y2[:, :t], rtol=0, atol=1e-12)
    assert (y[:, t:] - y2[:, t:]).abs().max() > 1e-3


# ---- bad input and arguments ----------------------------------------------------------------------

def assert_rejects_bad_input(layer, d_model, methods=()):
    """``layer``, ``layer.to_dsf`` and every callable in ``methods`` reject, with a message naming ``u``:
    a wrong width (one less and one more), too few and too many dims, integer dtypes, and non-tensors."""
    d = d_model
    shape = re.escape(f"u must have shape (batch, L, d_model={d})")
    for fn in (layer, layer.to_dsf, *methods):
        for width in (d - 1, d + 1):
            with pytest.raises(ValueError, match=rf"^{shape} = \(\*, \*, {d}\), got shape \(2, 5, {width}\)$"):
                fn(torch.randn(2, 5, width))
        for bad in (torch.randn(5, d), torch.randn(2, 1, 5, d)):
            got = re.escape(str(tuple(bad.shape)))
            with pytest.raises(ValueError, match=rf"^{shape} \(3 dims\), got shape {got}$"):
                fn(bad)
        for dtype in (torch.int32, torch.int64):
            with pytest.raises(TypeError, match=rf"^u must have a floating dtype .*, got {dtype}$"):
                fn(torch.ones(2, 5, d, dtype=dtype))
        for bad in ([[0.0] * d], None):
            with pytest.raises(TypeError, match=rf"^u must be a torch.Tensor of shape \(batch, L, d_model={d}\), "
                                                rf"got {type(bad).__name__}$"):
                fn(bad)


def _arg_error(args, kwargs, exc, message):
    """A constructor case ``cls(*args, **kwargs)`` that raises ``exc`` with exactly ``message``."""
    case_id = ",".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return pytest.param(args, kwargs, exc, f"^{re.escape(message)}$", id=case_id)


# (args, kwargs, exc, match) with d_model = 8, for ``pytest.mark.parametrize("args,kwargs,exc,match", ...)``
MIXER_ARG_ERRORS = [
    _arg_error((0,), {}, ValueError, "d_model must be a positive int, got 0"),
    _arg_error((8.0,), {}, TypeError, "d_model must be a positive int, got float"),
    _arg_error((8,), {"n": 0}, ValueError, "n must be a positive int, got 0"),
    _arg_error((8,), {"n": 1.5}, TypeError, "n must be a positive int, got float"),
    _arg_error((8,), {"backend": "cuda"}, ValueError, f"backend must be one of {BACKENDS}, got 'cuda'"),
]
HEADS_ARG_ERRORS = [  # for the mixers with heads
    _arg_error((8,), {"heads": 0}, ValueError, "heads must be a positive int, got 0"),
    _arg_error((8,), {"heads": True}, TypeError, "heads must be a positive int, got bool"),
    _arg_error((8,), {"heads": 3}, ValueError, "heads must divide d_model=8, got heads=3"),
]


# ---- registry -------------------------------------------------------------------------------------

def assert_registry_builds(name, cls, d_model, **kwargs):
    """``build_mixer(name, d_model, **kwargs)`` is a ``cls`` that trains a step: a loss on a random input
    gives every parameter a finite gradient. Returns the layer (gradients cleared)."""
    layer = build_mixer(name, d_model, **kwargs)
    assert isinstance(layer, cls)
    u = torch.randn(2, 16, d_model)
    F.mse_loss(layer(u), u.flip(1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    layer.zero_grad(set_to_none=True)
    return layer
