"""One trainer for every experiment: AdamW, warm-up + cosine schedule, tqdm progress, early stop.

On a GPU the loop stays on the device: the training set is moved there once, each step
(:func:`train_step`) returns its loss as a device tensor, and the host reads losses (and checks them
for NaN/inf) only every ``log_every`` steps and at the end of an epoch, so steps are not serialized
by a synchronisation each. ``amp="bf16"`` runs the forward under bfloat16 autocast: the weights and
the optimizer stay fp32, the loss is computed in fp32, and the scans accumulate their states in fp32.

Data are tensors: ``inputs`` ``(num_examples, L)`` token ids (or ``(num_examples, L, features)``)
and ``labels`` either per position ``(num_examples, L)`` (MQAR, language modelling; ``-100`` is
ignored) or per sequence ``(num_examples,)`` (LRA classification). Accuracy counts the positions
(or sequences) whose argmax prediction equals the label.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from ._progress import tqdm

from ._checks import check_positive_int, check_tensor
from .env import seed_everything

__all__ = ["TrainConfig", "train_model", "train_step", "evaluate", "resolve_device", "adamw", "warmup_cosine",
           "optimizer_step", "autocast"]

IGNORE_INDEX = -100
AMP_MODES = (None, "bf16")


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
    amp: str | None = None  # "bf16": bfloat16 autocast for the forward (fp32 weights, optimizer and loss)
    compile: bool = False  # torch.compile the model for the training steps
    log_every: int = 50  # read (and check) the loss on the host every this many steps

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            check_positive_int(name, getattr(self, name))
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
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
    # fused: one kernel for all parameters (CPU and CUDA) instead of a few ops per tensor
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                             lr=lr, betas=betas, fused=fused or None)


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
    _update(model, loss, optimizer, scheduler, grad_clip)


def _update(model: torch.nn.Module, loss: torch.Tensor, optimizer, scheduler, grad_clip: float | None) -> None:
    """Backward from ``loss``, clip the gradients of ``model``, optimizer and schedule step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()


def autocast(amp: str | None, device: torch.device):
    """The autocast context of ``amp`` (``None``: none, ``"bf16"``: bfloat16) on ``device``."""
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def train_step(step_model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer, scheduler,
               config: TrainConfig, *, model: torch.nn.Module | None = None) -> torch.Tensor:
    """One update on the batch ``(x, y)``: forward (under ``config.amp``), fp32 loss, backward, clipping,
    optimizer and schedule step. Returns the loss as a detached device tensor — no host sync.
    ``step_model`` may be a compiled wrapper of ``model`` (whose parameters are clipped)."""
    model = step_model if model is None else model
    with autocast(config.amp, x.device):
        logits, y = _logits(step_model, model, x, y)
    loss = _loss(logits, y)  # no accuracy here: the step needs only the loss
    _update(model, loss, optimizer, scheduler, config.grad_clip)
    return loss.detach()


def _logits(step_model, model, x: torch.Tensor, y: torch.Tensor):
    """The logits and labels the loss reads. On a CPU a language-model head (a :class:`SequenceModel`
    with ``task="lm"``) runs only at the labelled positions (MQAR labels a quarter of them); on a GPU
    the selection would cost a host sync, so every position goes through the head there."""
    from .network import SequenceModel

    if y.ndim == 2 and x.device.type == "cpu" and isinstance(model, SequenceModel) and model.task == "lm":
        keep = y != IGNORE_INDEX
        return step_model(x, positions=keep), y[keep]
    return step_model(x), y


def _check_data(name: str, data) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (inputs, labels) of tensors")
    inputs, labels = data
    check_tensor(f"{name} inputs", inputs, (None, None) if inputs.ndim == 2 else (None, None, None),
                 "(examples, L) or (examples, L, features)", floating=inputs.ndim == 3)
    check_tensor(f"{name} labels", labels, (inputs.shape[0], inputs.shape[1]) if labels.ndim == 2 else (inputs.shape[0],),
                 "(examples, L) or (examples,)", floating=False)
    return inputs, labels


def _flat(logits: torch.Tensor, labels: torch.Tensor):
    if labels.ndim == 2 and logits.ndim == 3:  # per position
        return logits.flatten(0, 1), labels.flatten()
    return logits, labels


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    flat, target = _flat(logits, labels)
    return F.cross_entropy(flat.float(), target, ignore_index=IGNORE_INDEX)


def _loss_and_hits(logits: torch.Tensor, labels: torch.Tensor):
    flat, target = _flat(logits, labels)
    loss = F.cross_entropy(flat.float(), target, ignore_index=IGNORE_INDEX)
    valid = target != IGNORE_INDEX
    hits = ((flat.argmax(-1) == target) & valid).sum()
    return loss, hits, valid.sum()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, batch_size: int = 256, device: str | torch.device = "cpu",
             amp: str | None = None) -> dict:
    """Mean loss and accuracy over the labelled positions (or sequences) of ``data`` (one host sync)."""
    inputs, labels = _check_data("data", data)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros((), dtype=torch.int64, device=device)
    count = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, inputs.shape[0], batch_size):
        x = inputs[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        with autocast(amp, device):
            logits, y = _logits(model, model, x, y)
        loss, h, c = _loss_and_hits(logits, y)
        total_loss += loss.double() * c
        hits += h
        count += c
    model.train(was_training)
    n = max(int(count.item()), 1)
    return {"loss": total_loss.item() / n, "accuracy": hits.item() / n}


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
    train_x, train_y = train_x.to(device), train_y.to(device)  # resident: no copy per step
    step_model = torch.compile(model) if config.compile else model
    optimizer = adamw(model, config.lr, config.weight_decay)
    steps_per_epoch = math.ceil(train_x.shape[0] / config.batch_size)
    total = steps_per_epoch * config.epochs

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, config.warmup_steps, total))
    gen = torch.Generator().manual_seed(config.seed)
    start, step, best, epochs_run = time.perf_counter(), 0, 0.0, 0
    metrics = {"loss": float("nan"), "accuracy": 0.0}
    bar = tqdm(total=total, desc=desc, disable=not config.progress, leave=False)
    for epoch in range(config.epochs):
        order = torch.randperm(train_x.shape[0], generator=gen).to(device)
        epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
        window = torch.zeros((), dtype=torch.float64, device=device)
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            loss = train_step(step_model, train_x[idx], train_y[idx], optimizer, scheduler, config, model=model)
            step += 1
            window += loss
            if step % config.log_every == 0 or i == steps_per_epoch - 1:
                _check_finite_window(window, step, optimizer)  # the host reads the loss only here
                epoch_loss += window
                window.zero_()
                bar.update(step - bar.n)
        epoch_loss = epoch_loss.item()
        epochs_run = epoch + 1
        metrics = evaluate(model, test_data, config.eval_batch_size, device, config.amp)
        best = max(best, metrics["accuracy"])
        bar.set_postfix(epoch=epochs_run, acc=f"{metrics['accuracy']:.3f}", loss=f"{epoch_loss / steps_per_epoch:.3f}")
        if config.early_stop_accuracy is not None and metrics["accuracy"] > config.early_stop_accuracy:
            break
    bar.close()
    return {**metrics, "best_accuracy": best, "epochs_run": epochs_run, "steps": step,
            "train_loss": epoch_loss / steps_per_epoch, "seconds": time.perf_counter() - start,
            "device": str(device)}


def _check_finite_window(window: torch.Tensor, step: int, optimizer) -> None:
    """Raise ``FloatingPointError`` when a loss of the steps summed in ``window`` was NaN or infinite."""
    if not torch.isfinite(window):
        lr = optimizer.param_groups[0]["lr"]
        raise FloatingPointError(f"training loss became {window.item()} at or before step {step} (lr={lr:.3g})")


def config_dict(config: TrainConfig) -> dict:
    """The settings as a plain dict (for result rows)."""
    return asdict(config)
