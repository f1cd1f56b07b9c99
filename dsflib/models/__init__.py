"""The architectures of the paper (and a few beyond it), one module each.

Every module defines a causal sequence mixer ``(batch, L, d_model) -> (batch, L, d_model)`` with
``forward`` (fast: chunked torch on CPU, Triton on CUDA via :func:`dsflib.scan.linear_scan`) and
``to_dsf(u)``, the exact :class:`dsflib.DSF` of the layer for input ``u``. :func:`build_mixer`
creates one by name.
"""
from __future__ import annotations

import importlib

import torch

__all__ = ["MIXERS", "build_mixer"]

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


def mixer_class(name: str) -> type[torch.nn.Module]:
    """The class registered under ``name`` (see :data:`MIXERS`)."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; known mixers: {sorted(MIXERS)}")
    module, cls = MIXERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_mixer(name: str, d_model: int, **kwargs) -> torch.nn.Module:
    """Instantiate the mixer ``name`` with width ``d_model`` and its keyword arguments."""
    return mixer_class(name)(d_model, **kwargs)
