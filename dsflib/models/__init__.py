"""The architectures of the paper (and a few beyond it), one module each.

Every module defines a causal sequence mixer ``(batch, L, d_model) -> (batch, L, d_model)`` with
``forward`` (fast: chunked torch on CPU, Triton on CUDA via :func:`dsflib.scan.linear_scan`) and
``to_dsf(u)``, the exact :class:`dsflib.DSF` of the layer for input ``u``. :func:`build_mixer`
creates one by name; :func:`register_mixer` adds your own (see the chapter "Build your own"), and
:func:`dsf_from_scan` builds the DSF of any layer written with :func:`dsflib.scan.linear_scan`.
"""
from __future__ import annotations

import importlib

import torch

from ._common import dsf_from_scan

__all__ = ["MIXERS", "build_mixer", "dsf_from_scan", "mixer_class", "mixer_names", "register_mixer"]

# name -> "module:Class"; the module file is dsflib/models/<module>.py, its chapter book/<module>.py
MIXERS = {
    "softmax_attention": "softmax_attention:SoftmaxAttention",
    "linear_attention": "linear_attention:LinearAttention",
    "normalized_attention": "normalized_attention:NormalizedAttention",
    "lti_ssm": "lti_ssm:LTISSM",
    "s6": "s6:S6",
    "ssd": "ssd:SSD",
    "qlstm": "qlstm:QLSTM",
    "rglru": "rglru:RGLRU",
    "retnet": "retnet:Retention",
    "gla": "gla:GLA",
    "mlstm": "mlstm:MLSTM",
}


_REGISTERED: dict[str, type[torch.nn.Module]] = {}


def register_mixer(name: str, cls: type[torch.nn.Module]) -> None:
    """Make a user-defined mixer class available to :func:`build_mixer` and
    :class:`dsflib.network.SequenceModel` under ``name``. The class must be an ``nn.Module`` whose
    constructor takes ``d_model`` first; it should define ``to_dsf(u)``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier, got {name!r}")
    if name in MIXERS:
        raise ValueError(f"name {name!r} is a built-in mixer; choose another")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise TypeError(f"cls must be a torch.nn.Module subclass, got {cls!r}")
    _REGISTERED[name] = cls


def mixer_names() -> list[str]:
    """Every name :func:`build_mixer` accepts: built-in and registered."""
    return sorted([*MIXERS, *_REGISTERED])


def mixer_class(name: str) -> type[torch.nn.Module]:
    """The class registered under ``name`` (see :data:`MIXERS` and :func:`register_mixer`)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; known mixers: {mixer_names()}")
    module, cls = MIXERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_mixer(name: str, d_model: int, **kwargs) -> torch.nn.Module:
    """Instantiate the mixer ``name`` with width ``d_model`` and its keyword arguments."""
    return mixer_class(name)(d_model, **kwargs)
