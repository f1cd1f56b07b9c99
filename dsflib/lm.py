"""Step-based causal language-model training with checkpoint/resume and data parallelism.

:func:`train_lm` trains any :class:`~dsflib.network.SequenceModel` (``task="lm"``) on packed blocks
``(inputs, targets)`` (see :func:`dsflib.data.wikitext.pack_blocks`) for a fixed number of optimizer
steps: AdamW (betas 0.9/0.95, weight decay on matrices only), linear warm-up then cosine decay,
gradient clipping, tqdm progress with loss, perplexity and tokens/s, and evaluation every
``eval_every`` steps (perplexity = exp of the mean token cross-entropy).

**Data order.** The batch of step ``s`` is a function of ``(seed, s)`` alone: epoch ``s // S`` (``S`` full
batches per epoch) draws a permutation of the blocks from a generator seeded with the seed and the
epoch. The data position of a checkpoint is therefore its step, and a resumed run sees exactly the
batches the uninterrupted run would have seen.

**Checkpoints.** Every ``checkpoint_every`` steps (and at the end) ``<checkpoint_dir>/last.pt`` is
rewritten atomically (temporary file + rename) with the model, optimizer and scheduler states, the
step, the RNG states, the metric history and the config. ``train_lm`` resumes from it when it
exists and was written with the same config.

**Data parallel.** With a :class:`~dsflib.distributed.DistContext` of ``world_size`` > 1 (under
``torchrun``), the model is wrapped in DistributedDataParallel and each process takes a contiguous
``batch_size / world_size`` share of every global batch; gradients are averaged, so a step equals the
single-process step on the same global batch. Evaluation is sharded and summed. Only rank 0 writes.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from ._progress import tqdm

from ._checks import check_positive_int, check_tensor
from .distributed import DistContext, all_reduce_sum, barrier
from .train import adamw, optimizer_step, warmup_cosine

__all__ = ["LMConfig", "train_lm", "evaluate_lm", "batch_indices", "lr_factor", "load_checkpoint",
           "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "last.pt"


@dataclass(frozen=True)
class LMConfig:
    """Settings of one language-model training run (``batch_size`` is the global batch, in blocks)."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batch_size: int = 32
    eval_blocks: int | None = None  # validation blocks (evenly spread) of the intermediate evaluations; final: all
    train_eval_blocks: int | None = None
    checkpoint_every: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("eval_blocks", "train_eval_blocks", "checkpoint_every"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two floats in [0, 1), got {self.betas}")


def lr_factor(step: int, config: LMConfig) -> float:
    """Multiplier of ``lr`` at optimizer step ``step`` (0-based): linear warm-up to 1 over
    ``warmup_steps``, then cosine decay to ``min_lr_ratio`` at the last step."""
    return warmup_cosine(step, config.warmup_steps, config.steps, config.min_lr_ratio)


def batch_indices(step: int, num_blocks: int, batch_size: int, seed: int) -> torch.Tensor:
    """The block indices of the global batch of ``step``: a function of ``(seed, step)`` only."""
    if batch_size > num_blocks:
        raise ValueError(f"batch_size={batch_size} exceeds the {num_blocks} training blocks")
    per_epoch = num_blocks // batch_size
    epoch, i = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_blocks, generator=gen)[i * batch_size : (i + 1) * batch_size]


def _check_blocks(name: str, data) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (inputs, targets) of (blocks, L) token-id tensors")
    inputs, targets = data
    check_tensor(f"{name} inputs", inputs, (None, None), "(blocks, L)", floating=False)
    check_tensor(f"{name} targets", targets, tuple(inputs.shape), "(blocks, L)", floating=False)
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} holds no blocks")
    return inputs, targets


def _token_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())


@torch.no_grad()
def evaluate_lm(model: nn.Module, data, *, batch_size: int = 32, max_blocks: int | None = None,
                device: str | torch.device = "cpu", ctx: DistContext | None = None) -> dict:
    """Mean token cross-entropy ``loss`` and perplexity ``ppl = exp(loss)`` over ``data``, or over
    ``max_blocks`` of its blocks spread evenly over it (every ``ceil(blocks / max_blocks)``-th block),
    sharded over the processes of ``ctx``. Also returns the ``tokens`` and ``blocks`` evaluated."""
    inputs, targets = _check_blocks("data", data)
    ctx = ctx or DistContext(device=torch.device(device))
    stride = 1 if max_blocks is None else math.ceil(inputs.shape[0] / check_positive_int("max_blocks", max_blocks))
    chosen = list(range(0, inputs.shape[0], stride))
    idx = chosen[ctx.rank :: ctx.world_size]  # round-robin shard of the evaluation blocks
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for start in range(0, len(idx), batch_size):
        sel = torch.tensor(idx[start : start + batch_size])
        x, y = inputs[sel].to(ctx.device), targets[sel].to(ctx.device)
        logits = model(x)
        total[0] += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").double()
        total[1] += y.numel()
    model.train(was_training)
    total = all_reduce_sum(total, ctx)
    loss = (total[0] / total[1]).item() if total[1] > 0 else float("nan")
    return {"loss": loss, "ppl": math.exp(loss) if loss < 700 else float("inf"), "tokens": int(total[1].item()),
            "blocks": len(chosen)}


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _resume_key(config: LMConfig) -> dict:
    """The settings a checkpoint must share with the run that resumes it."""
    return {k: v for k, v in asdict(config).items() if k not in ("progress", "checkpoint_every")}


def load_checkpoint(checkpoint_dir: str | os.PathLike) -> dict | None:
    """The checkpoint stored in ``checkpoint_dir`` (a dict), or ``None`` when there is none."""
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def _save_checkpoint(checkpoint_dir: Path, state: dict) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = checkpoint_dir / f".{CHECKPOINT_NAME}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, checkpoint_dir / CHECKPOINT_NAME)


def train_lm(
    model: nn.Module,
    train,
    valid,
    config: LMConfig = LMConfig(),
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    ctx: DistContext | None = None,
    device: str | torch.device | None = None,
    callback: Callable[[int, nn.Module, dict], None] | None = None,
    desc: str = "lm",
) -> dict:
    """Train ``model`` for ``config.steps`` optimizer steps; return the final metrics and the history.

    ``train`` and ``valid`` are ``(inputs, targets)`` pairs of ``(blocks, L)`` token ids. ``ctx`` is the
    data-parallel context (default: one process on ``device``, CPU unless given). ``callback(step,
    model, record)`` is called after every optimizer step (``step`` counts from 1, ``model`` is the
    unwrapped model whose ``.grad`` still hold the step's averaged, clipped gradients). The result has
    ``train_loss``/``train_ppl`` (mean over the steps since the previous evaluation, or on the first
    ``train_eval_blocks`` training blocks in eval mode when that is set), ``valid_loss``/``valid_ppl``,
    ``steps``, ``tokens``, ``seconds`` (wall time of the run, summed over resumptions), ``eval_seconds``
    (the part spent evaluating), ``tokens_per_s`` (training tokens per second, evaluation excluded),
    ``resumed_from`` (the checkpoint's step, or ``None``), ``device``, ``world_size`` and ``history``
    (one dict per evaluation).
    """
    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    train_x, train_y = _check_blocks("train", train)
    valid_data = _check_blocks("valid", valid)
    ctx = ctx or DistContext(device=torch.device(device or "cpu"))
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by world_size={ctx.world_size}")
    local_batch = config.batch_size // ctx.world_size
    block_len = train_x.shape[1]
    model.to(ctx.device).train()
    net = model
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    optimizer = adamw(model, config.lr, config.weight_decay, config.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))

    step, history, seconds_before, resumed_from = 0, [], 0.0, None
    clock = {"eval": 0.0}  # seconds spent evaluating (excluded from the training throughput)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = load_checkpoint(ckpt_dir) if (ckpt_dir is not None and resume) else None
    if state is not None:
        if state["config"] != _resume_key(config):
            raise ValueError(f"the checkpoint in {ckpt_dir} was written with another config "
                             f"({state['config']}); delete it or pass resume=False")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, history = state["step"], list(state["history"])
        seconds_before, clock["eval"] = state["seconds"], state["eval_seconds"]
        resumed_from = step
    else:
        torch.manual_seed(config.seed)

    def checkpoint() -> None:
        if ckpt_dir is not None and ctx.is_main:
            _save_checkpoint(ckpt_dir, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step, "rng": _rng_state(), "history": history,
                "seconds": seconds_before + (time.perf_counter() - start), "eval_seconds": clock["eval"],
                "config": _resume_key(config)})
        barrier(ctx)

    def evaluate_now(window_losses: list[float], final: bool) -> dict:
        began = time.perf_counter()
        val = evaluate_lm(model, valid_data, batch_size=config.eval_batch_size,
                          max_blocks=None if final else config.eval_blocks, ctx=ctx)
        if config.train_eval_blocks:
            tr = evaluate_lm(model, (train_x, train_y), batch_size=config.eval_batch_size,
                             max_blocks=config.train_eval_blocks, ctx=ctx)
            train_loss = tr["loss"]
        else:
            mean = torch.tensor([sum(window_losses), len(window_losses)], dtype=torch.float64, device=ctx.device)
            mean = all_reduce_sum(mean, ctx)
            train_loss = (mean[0] / mean[1]).item() if mean[1] > 0 else float("nan")
        clock["eval"] += time.perf_counter() - began
        elapsed = seconds_before + (time.perf_counter() - start)
        tokens = step * config.batch_size * block_len
        training = elapsed - clock["eval"]
        return {"step": step, "tokens": tokens, "lr": scheduler.get_last_lr()[0], "train_loss": train_loss,
                "train_ppl": math.exp(min(train_loss, 700)), "valid_loss": val["loss"], "valid_ppl": val["ppl"],
                "valid_blocks": val["blocks"], "seconds": elapsed,
                "tokens_per_s": tokens / training if training > 0 else float("nan")}

    start, start_step, eval_before = time.perf_counter(), step, clock["eval"]
    window: list[float] = []
    bar = tqdm(total=config.steps, initial=step, desc=desc, disable=not (config.progress and ctx.is_main),
               leave=False)
    while step < config.steps:
        idx = batch_indices(step, train_x.shape[0], config.batch_size, config.seed)
        idx = idx[ctx.rank * local_batch : (ctx.rank + 1) * local_batch]
        x, y = train_x[idx].to(ctx.device), train_y[idx].to(ctx.device)
        loss = _token_loss(net, x, y)
        optimizer_step(model, loss, optimizer, scheduler, config.grad_clip, step)
        step += 1
        window.append(loss.item())
        record = {"step": step, "loss": window[-1]}
        if step % config.eval_every == 0 or step == config.steps:
            history.append(evaluate_now(window, final=step == config.steps))
            record.update(history[-1])
            window = []
        if callback is not None:
            callback(step, model, record)
        if ckpt_dir is not None and config.checkpoint_every and (step % config.checkpoint_every == 0
                                                                 or step == config.steps):
            checkpoint()
        elapsed = time.perf_counter() - start - (clock["eval"] - eval_before)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}",
                        ppl=f"{math.exp(min(record['loss'], 700)):.1f}",
                        tok_s=f"{(step - start_step) * config.batch_size * block_len / max(elapsed, 1e-9):.0f}")
    bar.close()
    final = history[-1]
    seconds = seconds_before + (time.perf_counter() - start)
    tokens = step * config.batch_size * block_len
    training = seconds - clock["eval"]
    return {"train_loss": final["train_loss"], "train_ppl": final["train_ppl"], "valid_loss": final["valid_loss"],
            "valid_ppl": final["valid_ppl"], "steps": step, "tokens": tokens, "seconds": seconds,
            "eval_seconds": clock["eval"], "tokens_per_s": tokens / training if training > 0 else float("nan"),
            "resumed_from": resumed_from,
            "device": str(ctx.device), "world_size": ctx.world_size, "history": history}
