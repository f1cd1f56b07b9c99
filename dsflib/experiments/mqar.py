"""The paper's MQAR experiment: model builders, one run function, and the grids of both profiles.

``paper`` is the released sweep of the paper (tasks (L, KV) = (64, 4) ... (512, 64), vocabulary 8192,
d in {64, 128, 256, 512}, n in {32, 64, 128, 256}, 2 layers, 1 head, four learning rates in
logspace(-4, -2), best over learning rates reported), for a GPU. ``ci`` is a reduced grid for two CPU
cores that keeps the comparisons of the paper's figures. Models (the paper's MQAR configs):

* softmax / linear / normalized attention: learned position embeddings, no MLP; ``n`` is the
  query/key dimension (the state expansion of the linear and normalized forms);
* S6 and SSD: no position embeddings, no MLP; ``n`` is the SSM state size;
* qLSTM and its eq.-23 variant: position embeddings; its state is fixed at 2d (``n = 2``).

One deliberate difference to the released configs: normalized attention gets no MLP either (the
released config gave it a 4x MLP the others lack; see the notes), so the mixers are compared alone.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch

from ..data.mqar import MQARConfig, generate_mqar
from ..network import SequenceModel
from ..train import TrainConfig, train_model

__all__ = ["MODELS", "build_model", "run_mqar", "grid", "PROFILES"]

# model name -> (mixer, extra mixer kwargs, position embeddings)
MODELS = {
    "softmax": ("softmax_attention", {}, True),
    "linear": ("linear_attention", {}, True),
    "normalized": ("normalized_attention", {"norm": "exp"}, True),
    "normalized_softplus": ("normalized_attention", {"norm": "softplus"}, True),
    "normalized_sigmoid": ("normalized_attention", {"norm": "sigmoid"}, True),
    "s6": ("s6", {}, False),
    "ssd": ("ssd", {}, False),
    "qlstm": ("qlstm", {"reversed_sigmoid": False}, True),
    "qlstm_rev": ("qlstm", {"reversed_sigmoid": True}, True),
}
QLSTM = ("qlstm", "qlstm_rev")


def build_model(model: str, d_model: int, n: int, seq_len: int, vocab_size: int, n_layers: int = 2) -> SequenceModel:
    """The MQAR network for ``model`` (a key of :data:`MODELS`) with width ``d_model`` and state ``n``."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    mixer, extra, positions = MODELS[model]
    kwargs = dict(extra)
    if mixer == "softmax_attention":
        kwargs["head_dim"] = n  # the paper's d_qk
    elif mixer != "qlstm":
        kwargs["n"] = n
    return SequenceModel(mixer, d_model, n_layers, vocab_size=vocab_size, max_len=seq_len if positions else None,
                         mixer_kwargs=kwargs)


@lru_cache(maxsize=8)
def _data(seq_len: int, num_kv_pairs: int, vocab_size: int, num_examples: int, seed: int):
    data = generate_mqar(MQARConfig(seq_len, num_kv_pairs, vocab_size), num_examples, seed)
    return data.inputs, data.labels


def run_mqar(config: dict) -> dict:
    """Train one MQAR config (a row of :func:`grid`) and return its test metrics.

    Keys: ``model, seq_len, num_kv_pairs, vocab_size, d_model, n, lr, epochs, batch_size,
    num_train, num_test, seed`` (and optionally ``device``).
    """
    c = dict(config)
    train = _data(c["seq_len"], c["num_kv_pairs"], c["vocab_size"], c["num_train"], c["seed"])
    test = _data(c["seq_len"], c["num_kv_pairs"], c["vocab_size"], c["num_test"], c["seed"] + 2**31)
    torch.manual_seed(c["seed"])
    model = build_model(c["model"], c["d_model"], c["n"], c["seq_len"], c["vocab_size"])
    train_config = TrainConfig(lr=c["lr"], epochs=c["epochs"], batch_size=c["batch_size"], weight_decay=0.1,
                               early_stop_accuracy=0.99, seed=c["seed"], device=c.get("device", "auto"),
                               progress=False)
    metrics = train_model(model, train, test, train_config, desc=f"{c['model']} d={c['d_model']} n={c['n']}")
    return {"accuracy": metrics["accuracy"], "best_accuracy": metrics["best_accuracy"],
            "test_loss": metrics["loss"], "train_loss": metrics["train_loss"], "epochs_run": metrics["epochs_run"],
            "steps": metrics["steps"], "num_parameters": model.num_parameters(), "device": metrics["device"]}


PAPER_TASKS = [(64, 4), (128, 8), (256, 16), (512, 64)]
PAPER_BATCH = {64: 512, 128: 256, 256: 128, 512: 64}
PAPER_BATCH_QLSTM = {64: 256, 128: 128, 256: 64}

PROFILES = {
    "paper": dict(tasks=PAPER_TASKS, vocab_size=8192, d_model=[64, 128, 256, 512], n=[32, 64, 128, 256],
                  lr=[float(x) for x in np.logspace(-4, -2, 4)], epochs=64, num_train=100_000, num_test=3_000,
                  models=["softmax", "linear", "normalized", "s6", "ssd", "qlstm", "qlstm_rev",
                          "normalized_softplus", "normalized_sigmoid"], seed=0),
}


def grid(profile: str) -> list[dict]:
    """Every run config of ``profile`` (see :data:`PROFILES`)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    p = PROFILES[profile]
    runs = []
    for model in p["models"]:
        tasks = p["tasks"][:3] if model in QLSTM else p["tasks"]
        if model.startswith("normalized_"):  # the normalization table: L=512/KV=64 only (paper p. 19)
            tasks = [p["tasks"][-1]]
        ns = [2] if model in QLSTM else p["n"]
        for (L, kv), d, n, lr in itertools.product(tasks, p["d_model"], ns, p["lr"]):
            batch = p.get("batch_size") or (PAPER_BATCH_QLSTM if model in QLSTM else PAPER_BATCH)[L]
            runs.append(dict(model=model, seq_len=L, num_kv_pairs=kv, vocab_size=p["vocab_size"], d_model=d, n=n,
                             lr=lr, epochs=p["epochs"], batch_size=batch, num_train=p["num_train"],
                             num_test=p["num_test"], seed=p["seed"]))
    return runs
