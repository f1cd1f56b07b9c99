"""The paper's language-modelling comparison: linear, normalized (exp) and softmax attention and S6 at
matched parameter counts, trained as causal LMs on WikiText; one run function, both profiles, a CLI.

The paper trains ~70M-parameter models on WikiText-103 and reports training perplexity; its exact
settings and numbers are not known to us (paper notes §4.3, §5). Profiles:

* ``paper`` — WikiText-103 with the settings of the authors' follow-up repository, taken as a
  **proxy**: GPT-2 BPE (tiktoken), blocks of 1024 tokens, 6 layers, width 512, 8 heads, 4x MLP,
  batch 8, 130k steps, lr 1e-3, warm-up 3000, AdamW (0.9, 0.95), wd 0.1, evaluation every 1000
  steps; untied input/output embeddings, which bring the softmax model to about 70M parameters. Needs a
  GPU (run it with ``torchrun`` on several).
* ``ci`` — a CPU **stand-in**: train on WikiText-2's validation split, evaluate on its test split (the
  offline files in ``../shared/data/wikitext-2``), a word vocabulary of the 4096 most frequent
  training words (the rest ``<unk>``), blocks of 64 tokens, 2 layers of width about 64.

Models (:data:`MODELS`): position embeddings for softmax and linear attention (learned, as in the MQAR
experiment); none for normalized attention (as in the follow-up configs) and S6. Parameter counts are
matched by :func:`matched_widths`: softmax attention keeps the profile's width, every other model gets
the width (a multiple of ``width_step``) whose parameter count is closest to softmax attention's.

CLI (also under ``torchrun --nproc_per_node=K``)::

    python -m dsflib.experiments.wikitext --profile paper --models softmax s6 [--steps N] [--data-dir D]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..data import wikitext as wt
from ..distributed import DistContext, init_distributed, shutdown_distributed
from ..env import REPO_ROOT, device_name, git_commit
from ..lm import LMConfig, train_lm
from ..network import SequenceModel
from ..sweep import append_row, run_id
from ._common import check_config, check_seed

__all__ = ["MODELS", "LABELS", "PROFILES", "build_model", "count_parameters", "matched_widths", "grid",
           "prepare_data", "run_wikitext", "results_dir", "record_result", "METRICS", "main"]

# model name -> (mixer, extra mixer kwargs, learned position embeddings)
MODELS = {
    "linear": ("linear_attention", {}, True),
    "normalized": ("normalized_attention", {"norm": "exp"}, False),
    "softmax": ("softmax_attention", {}, True),
    "s6": ("s6", {}, False),
}
LABELS = {"linear": "linear attention", "normalized": "normalized attention (exp)",
          "softmax": "softmax attention", "s6": "S6"}
REFERENCE = "softmax"

PROFILES = {
    "paper": dict(
        dataset="wikitext-103", train_split="train", eval_split="valid", tokenizer="gpt2", max_vocab=None,
        vocab_size=50257, block_len=1024, d_model=512, width_step=8, heads=8,
        n={"linear": 64, "normalized": 64, "s6": 16}, n_layers=6, mlp_mult=4, tie_embeddings=False,
        steps=130_000, batch_size=8, lr=1e-3, warmup_steps=3000, min_lr_ratio=0.1, eval_every=1000,
        eval_blocks=256, checkpoint_every=1000, seed=0, models=list(MODELS),
    ),
    # Calibrated on 2 CPU cores shared with other jobs (one run per core, one torch thread each): at 600
    # steps the four runs took 5.7 min wall (S6 alone ~5 min: its per-channel state is the costly part on a
    # CPU, ~2k tokens/s against 4-8k for the attention models), so ci trains 400 steps of 16 x 64 tokens
    # (410k tokens, about 1.9 passes over the 217k training tokens). The chapter prints the measured times.
    "ci": dict(
        dataset="wikitext-2", train_split="valid", eval_split="test", tokenizer="word", max_vocab=4096,
        vocab_size=4096, block_len=64, d_model=64, width_step=2, heads=1,
        n={"linear": 16, "normalized": 16, "s6": 16}, n_layers=2, mlp_mult=4, tie_embeddings=True,
        steps=400, batch_size=16, lr=3e-3, warmup_steps=40, min_lr_ratio=0.1, eval_every=50,
        eval_blocks=256, checkpoint_every=100, seed=0, threads=1, models=list(MODELS),
    ),
}
METRICS = ("train_loss", "train_ppl", "valid_loss", "valid_ppl", "steps_done", "tokens", "tokens_per_s",
           "train_seconds", "eval_seconds", "num_parameters", "vocab_size", "resumed_from", "world_size", "device",
           "curve")
MODEL_KEYS = ("model", "d_model", "n", "heads", "n_layers", "mlp_mult", "tie_embeddings", "block_len")


def build_model(model: str, d_model: int, *, vocab_size: int, block_len: int, n: int | None = None,
                heads: int = 1, n_layers: int = 2, mlp_mult: int = 4, tie_embeddings: bool = True) -> SequenceModel:
    """The LM network of ``model`` (a key of :data:`MODELS`): ``n_layers`` pre-norm blocks of the mixer and
    a ``mlp_mult`` x GELU MLP. ``n`` is the state size (feature size per head for linear/normalized
    attention, per-channel state for S6; unused by softmax attention, whose head size is d/heads)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    mixer, extra, positions = MODELS[model]
    kwargs = dict(extra)
    if mixer in ("linear_attention", "normalized_attention", "softmax_attention"):
        kwargs["heads"] = heads
    if mixer != "softmax_attention":
        if n is None:
            raise ValueError(f"model {model!r} needs the state size n")
        kwargs["n"] = n
    return SequenceModel(mixer, d_model, n_layers, task="lm", vocab_size=vocab_size,
                         max_len=block_len if positions else None, mlp_mult=mlp_mult,
                         tie_embeddings=tie_embeddings, mixer_kwargs=kwargs)


def count_parameters(model: str, d_model: int, **kwargs) -> int:
    """Trainable parameters of :func:`build_model` (built on the ``meta`` device: no memory, no time)."""
    with torch.device("meta"):
        return build_model(model, d_model, **kwargs).num_parameters()


def _model_kwargs(p: Mapping, model: str) -> dict:
    return dict(vocab_size=p["vocab_size"], block_len=p["block_len"], n=p["n"].get(model), heads=p["heads"],
                n_layers=p["n_layers"], mlp_mult=p["mlp_mult"], tie_embeddings=p["tie_embeddings"])


def matched_widths(profile: str | Mapping) -> dict[str, dict]:
    """Per model: the width ``d_model`` whose parameter count is closest to softmax attention's at the
    profile's width (candidates: multiples of ``width_step`` between half and twice that width), its
    count and the relative difference to the reference."""
    p = PROFILES[_check_profile(profile)] if isinstance(profile, str) else dict(profile)
    target = count_parameters(REFERENCE, p["d_model"], **_model_kwargs(p, REFERENCE))
    out = {}
    for model in p["models"]:
        kwargs = _model_kwargs(p, model)
        if model == REFERENCE:
            best = p["d_model"]
        else:
            step = p["width_step"]
            candidates = range(max(step, (p["d_model"] // 2) // step * step), 2 * p["d_model"] + 1, step)
            best = min(candidates, key=lambda d: (abs(count_parameters(model, d, **kwargs) - target),
                                                  abs(d - p["d_model"])))
        count = count_parameters(model, best, **kwargs)
        out[model] = {"d_model": best, "num_parameters": count, "relative_difference": count / target - 1}
    return out


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return profile


RUN_KEYS = ("dataset", "train_split", "eval_split", "tokenizer", "max_vocab", "block_len", "heads", "n_layers",
            "mlp_mult", "tie_embeddings", "steps", "batch_size", "lr", "warmup_steps", "min_lr_ratio",
            "eval_every", "eval_blocks", "checkpoint_every")


def grid(profile: str, seed: int | None = None, models: Sequence[str] | None = None, **overrides) -> list[dict]:
    """One run config per model of ``profile`` at its matched width; ``overrides`` replace profile
    settings (e.g. ``steps``)."""
    p = dict(PROFILES[_check_profile(profile)])
    unknown = set(overrides) - set(p)
    if unknown:
        raise ValueError(f"overrides {sorted(unknown)} are not settings of the profile")
    p.update(overrides)
    seed = check_seed(seed, p["seed"])
    models = list(p["models"] if models is None else models)
    for m in models:
        if m not in MODELS:
            raise ValueError(f"models must be from {sorted(MODELS)}, got {m!r}")
    widths = matched_widths({**p, "models": models})
    runs = []
    for model in models:
        run = dict(profile=profile, model=model, d_model=widths[model]["d_model"], n=p["n"].get(model),
                   **{k: p[k] for k in RUN_KEYS}, seed=seed)
        if p.get("threads"):
            run["threads"] = p["threads"]
        runs.append(run)
    return runs


@lru_cache(maxsize=4)
def prepare_data(dataset: str, train_split: str, eval_split: str, tokenizer: str, max_vocab: int | None,
                 block_len: int, data_dir: str | None = None):
    """Read, tokenize (vocabulary from the training split) and pack both splits:
    ``(train_blocks, eval_blocks, tokenizer, token_counts)``."""
    if train_split == eval_split:
        raise ValueError(f"train_split and eval_split must differ, both are {train_split!r}")
    lines = wt.load_wikitext(dataset, [train_split, eval_split], data_dir=data_dir)
    tok = wt.build_tokenizer(tokenizer, lines[train_split], max_vocab)
    ids = {split: tok.encode(lines[split]) for split in (train_split, eval_split)}
    return (wt.pack_blocks(ids[train_split], block_len), wt.pack_blocks(ids[eval_split], block_len), tok,
            wt.token_counts(ids))


def results_dir(profile: str) -> Path:
    """``_build/results/wikitext-<profile>/``: ``runs.csv``, the curves and the checkpoints."""
    return REPO_ROOT / "_build" / "results" / f"wikitext-{_check_profile(profile)}"


REQUIRED = ("profile", "model", "d_model", "n", *RUN_KEYS, "seed")


def run_wikitext(config: Mapping, *, ctx: DistContext | None = None, data_dir: str | None = None,
                 out_dir: str | Path | None = None, progress: bool = False) -> dict:
    """Train one config (a row of :func:`grid`) and return its metrics (:data:`METRICS`).

    Checkpoints go to ``<out_dir>/checkpoints/<run_id>/`` (``out_dir`` defaults to
    :func:`results_dir`), so a killed run resumes where it stopped; the evaluation curve is written to
    ``<out_dir>/curve-<model>-<run_id>.csv``. Under ``torchrun`` pass the :func:`init_distributed`
    context; only rank 0 writes.
    """
    c = check_config(config, REQUIRED)
    if c.get("threads"):
        torch.set_num_threads(int(c["threads"]))
    ctx = ctx or DistContext(device=torch.device(c.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")))
    train, valid, tok, _ = prepare_data(c["dataset"], c["train_split"], c["eval_split"], c["tokenizer"],
                                        c["max_vocab"], c["block_len"], data_dir)
    torch.manual_seed(c["seed"])
    model = build_model(c["model"], c["d_model"], vocab_size=tok.vocab_size, block_len=c["block_len"], n=c["n"],
                        heads=c["heads"], n_layers=c["n_layers"], mlp_mult=c["mlp_mult"],
                        tie_embeddings=c["tie_embeddings"])
    lm_config = LMConfig(steps=c["steps"], batch_size=c["batch_size"], lr=c["lr"], warmup_steps=c["warmup_steps"],
                         min_lr_ratio=c["min_lr_ratio"], eval_every=c["eval_every"], eval_blocks=c["eval_blocks"],
                         checkpoint_every=c["checkpoint_every"], seed=c["seed"], progress=progress)
    rid = run_id(config)
    out = Path(out_dir) if out_dir is not None else results_dir(c["profile"])
    result = train_lm(model, train, valid, lm_config, checkpoint_dir=out / "checkpoints" / rid, ctx=ctx,
                      desc=f"{c['model']} d={c['d_model']}")
    curve = out / f"curve-{c['model']}-{rid}.csv"
    if ctx.is_main:
        if curve.exists():
            curve.unlink()
        for row in result["history"]:
            append_row(curve, {"run_id": rid, "model": c["model"], **row})
    return {"train_loss": result["train_loss"], "train_ppl": result["train_ppl"],
            "valid_loss": result["valid_loss"], "valid_ppl": result["valid_ppl"], "steps_done": result["steps"],
            "tokens": result["tokens"], "tokens_per_s": result["tokens_per_s"], "train_seconds": result["seconds"],
            "eval_seconds": result["eval_seconds"],
            "num_parameters": model.num_parameters(), "vocab_size": tok.vocab_size,
            "resumed_from": result["resumed_from"], "world_size": ctx.world_size,
            "device": device_name(ctx.device), "curve": curve.name}


def record_result(path: Path, config: Mapping, metrics: Mapping, seconds: float) -> None:
    """Append one finished run to the results table in the format of :func:`dsflib.sweep.run_sweep`."""
    append_row(path, {"run_id": run_id(config), **config, **metrics, "wall_seconds": round(seconds, 3),
                      "device": metrics.get("device", device_name()), "commit": git_commit(),
                      "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                      "config_json": json.dumps(dict(config), sort_keys=True, default=str)}, unique=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsflib.experiments.wikitext", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    parser.add_argument("--models", nargs="+", default=None, choices=sorted(MODELS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="override the profile's number of steps")
    parser.add_argument("--tokenizer", default=None, choices=wt.TOKENIZERS)
    parser.add_argument("--max-vocab", type=int, default=None, help="cap of the word vocabulary")
    parser.add_argument("--data-dir", default=None, help=f"data directory (default ${wt.ENV_VAR} or ../shared/data)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("steps", args.steps), ("tokenizer", args.tokenizer)) if v is not None}
    if args.max_vocab is not None:
        overrides.update(max_vocab=args.max_vocab, vocab_size=args.max_vocab)
    uncapped = PROFILES[args.profile]["max_vocab"] is None
    if overrides.get("tokenizer") == "word" and "max_vocab" not in overrides and uncapped:
        overrides.update(max_vocab=50257, vocab_size=50257)  # the GPT-2 vocabulary size, so the counts stay ~70M
    ctx = init_distributed(args.device)
    try:
        configs = grid(args.profile, seed=args.seed, models=args.models, **overrides)
        path = results_dir(args.profile) / "runs.csv"
        for config in configs:
            start = time.perf_counter()
            metrics = run_wikitext(config, ctx=ctx, data_dir=args.data_dir, progress=True)
            if ctx.is_main:
                record_result(path, config, metrics, time.perf_counter() - start)
                print(f"{config['model']}: train ppl {metrics['train_ppl']:.2f}, valid ppl {metrics['valid_ppl']:.2f}, "
                      f"{metrics['num_parameters']:,} parameters, {metrics['tokens_per_s']:.0f} tokens/s -> {path}")
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
