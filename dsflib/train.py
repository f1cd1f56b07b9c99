"""One trainer for every experiment: AdamW, warm-up + cosine schedule, tqdm progress, early stop.

Data are tensors: ``inputs`` ``(num_examples, L)`` token ids (or ``(num_examples, L, features)``)
and ``labels`` either per position ``(num_examples, L)`` (MQAR, language modelling; ``-100`` is
ignored) or per sequence ``(num_examples,)`` (LRA classification). Accuracy counts the positions
(or sequences) whose argmax prediction equals the label.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from ._progress import tqdm

from ._checks import check_positive_int, check_tensor
from .env import seed_everything

__all__ = ["TrainConfig", "train_model", "evaluate", "resolve_device", "adamw", "warmup_cosine", "optimizer_step"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``epochs`` passes over the training set, evaluated after each one."""

    lr: float = 1e-3
    weight_decay: float = 0.1
    epochs: int = 10
    batch_size: int = 64
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    early_stop_accuracy: float | None = 0.99
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_positive_int(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (``ndim >= 2``) only, not on biases, gains and decay rates."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                             lr=lr, betas=betas)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warm-up to 1 over
    ``warmup_steps``, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def optimizer_step(model: torch.nn.Module, loss: torch.Tensor, optimizer, scheduler, grad_clip: float | None,
                   step: int) -> None:
    """One update from ``loss``: refuse a non-finite loss (``FloatingPointError``), backward, clip, step."""
    if not torch.isfinite(loss):
        lr = optimizer.param_groups[0]["lr"]
        raise FloatingPointError(f"training loss became {loss.item()} at step {step} (lr={lr:.3g})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()


def _check_data(name: str, data) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (inputs, labels) of tensors")
    inputs, labels = data
    check_tensor(f"{name} inputs", inputs, (None, None) if inputs.ndim == 2 else (None, None, None),
                 "(examples, L) or (examples, L, features)", floating=inputs.ndim == 3)
    check_tensor(f"{name} labels", labels, (inputs.shape[0], inputs.shape[1]) if labels.ndim == 2 else (inputs.shape[0],),
                 "(examples, L) or (examples,)", floating=False)
    return inputs, labels


def _loss_and_hits(logits: torch.Tensor, labels: torch.Tensor):
    if labels.ndim == 2:  # per position
        flat, target = logits.flatten(0, 1), labels.flatten()
    else:
        flat, target = logits, labels
    loss = F.cross_entropy(flat.float(), target, ignore_index=IGNORE_INDEX)
    valid = target != IGNORE_INDEX
    hits = ((flat.argmax(-1) == target) & valid).sum()
    return loss, hits, valid.sum()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, batch_size: int = 256, device: str | torch.device = "cpu") -> dict:
    """Mean loss and accuracy over the labelled positions (or sequences) of ``data``."""
    inputs, labels = _check_data("data", data)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_loss, hits, count = 0.0, 0, 0
    for start in range(0, inputs.shape[0], batch_size):
        x = inputs[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        loss, h, c = _loss_and_hits(model(x), y)
        total_loss += loss.item() * c.item()
        hits += h.item()
        count += c.item()
    model.train(was_training)
    return {"loss": total_loss / max(count, 1), "accuracy": hits / max(count, 1)}


def train_model(model: torch.nn.Module, train, test, config: TrainConfig = TrainConfig(), *, desc: str = "train") -> dict:
    """Train ``model`` on ``train`` and return metrics on ``test`` after the last (or early-stopped) epoch.

    The returned dict has ``accuracy``, ``loss`` (test), ``best_accuracy``, ``epochs_run``, ``steps``,
    ``train_loss`` (mean over the last epoch), ``seconds`` and ``device``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    train_x, train_y = _check_data("train", train)
    test_data = _check_data("test", test)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model.to(device).train()
    optimizer = adamw(model, config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(train_x.shape[0] / config.batch_size)
    total = steps_per_epoch * config.epochs

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, config.warmup_steps, total))
    gen = torch.Generator().manual_seed(config.seed)
    start, step, best, epochs_run = time.perf_counter(), 0, 0.0, 0
    metrics = {"loss": float("nan"), "accuracy": 0.0}
    bar = tqdm(total=total, desc=desc, disable=not config.progress, leave=False)
    for epoch in range(config.epochs):
        order = torch.randperm(train_x.shape[0], generator=gen)
        epoch_loss = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            loss, _, _ = _loss_and_hits(model(train_x[idx].to(device)), train_y[idx].to(device))
            optimizer_step(model, loss, optimizer, scheduler, config.grad_clip, step)
            step += 1
            epoch_loss += loss.item()
            bar.update(1)
        epochs_run = epoch + 1
        metrics = evaluate(model, test_data, config.eval_batch_size, device)
        best = max(best, metrics["accuracy"])
        bar.set_postfix(epoch=epochs_run, acc=f"{metrics['accuracy']:.3f}", loss=f"{epoch_loss / steps_per_epoch:.3f}")
        if config.early_stop_accuracy is not None and metrics["accuracy"] > config.early_stop_accuracy:
            break
    bar.close()
    return {**metrics, "best_accuracy": best, "epochs_run": epochs_run, "steps": step,
            "train_loss": epoch_loss / steps_per_epoch, "seconds": time.perf_counter() - start,
            "device": str(device)}


def config_dict(config: TrainConfig) -> dict:
    """The settings as a plain dict (for result rows)."""
    return asdict(config)
