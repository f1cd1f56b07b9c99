"""Pathfinder (Linsley et al. 2018, as used by the Long Range Arena), generated here from the task definition.

A ``size x size`` grayscale image shows several curved, dashed paths and two endpoint markers
(small squares). The label is 1 when both markers sit on the two ends of the *same* path, 0 when
they sit on two different paths. Read as a sequence of ``size**2`` pixel tokens (row by row), the
model has to trace a path across the whole image: a long-range dependency.

Construction (:func:`generate_pathfinder`): every image has ``2 + num_distractors`` paths. A path
starts at a random point with a random heading, turns by a normal random angle (std
``curvature`` radians) at each unit step, and is drawn dashed: ``dash`` pixels on, ``gap`` off,
with both ends always on. In a positive image path 0 carries a marker at each end; in a negative
image paths 0 and 1 carry one marker each (at their first end). All paths have the same length
distribution in both classes, so path count and ink do not give the label away. Paths (markers
included) keep a Chebyshev distance of at least ``gap + 2`` pixels from each other, so with the
dash-gap tolerance ``gap + 1`` of :func:`connected` different paths never touch: positives are
connected and negatives are not, which the tests check on the pixels alone.

Pixel values: background 0, path 160, marker 255 (tokens are the 8-bit pixel values, vocabulary 256).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_positive_int

__all__ = ["PathfinderConfig", "PathfinderData", "generate_pathfinder", "connected", "PATH_VALUE", "MARKER_VALUE"]

PATH_VALUE = 160
MARKER_VALUE = 255


@dataclass(frozen=True)
class PathfinderConfig:
    """Image ``size``, path length range (unit steps), distractor count, dash pattern, curvature."""

    size: int = 32
    min_steps: int = 10
    max_steps: int = 24
    num_distractors: int = 2
    dash: int = 2
    gap: int = 1
    curvature: float = 0.35
    marker: int = 2  # side of the square marker in pixels

    def __post_init__(self) -> None:
        for name in ("size", "min_steps", "max_steps", "dash", "marker"):
            check_positive_int(name, getattr(self, name))
        if self.num_distractors < 0 or self.gap < 0:
            raise ValueError(f"num_distractors and gap must be >= 0, got {self.num_distractors}, {self.gap}")
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps={self.min_steps} must be <= max_steps={self.max_steps}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {self.size}")
        if not self.curvature >= 0:
            raise ValueError(f"curvature must be >= 0, got {self.curvature}")


@dataclass(frozen=True)
class PathfinderData:
    """``images`` ``(n, size, size)`` uint8, ``labels`` ``(n,)`` int64, ``markers`` ``(n, 2, 2)`` (row, col)
    of the two markers' top-left pixels, and ``paths`` ``(n, size, size)`` int8: the index of the path
    that drew each pixel (-1 for background)."""

    images: torch.Tensor
    labels: torch.Tensor
    markers: torch.Tensor
    paths: torch.Tensor
    config: PathfinderConfig

    def __len__(self) -> int:
        return self.images.shape[0]

    def tokens(self) -> torch.Tensor:
        """The images as pixel-token sequences ``(n, size**2)`` int64 (row-major)."""
        return self.images.flatten(1).long()


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean dilation by a ``(2r+1) x (2r+1)`` square (Chebyshev ball); works on ``(..., H, W)``."""
    if radius <= 0:
        return mask.copy()
    h, w = mask.shape[-2:]
    padded = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(radius, radius), (radius, radius)])
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[..., dy : dy + h, dx : dx + w]
    return out


def _trace(rng: np.random.Generator, config: PathfinderConfig) -> np.ndarray | None:
    """Pixel coordinates ``(steps + 1, 2)`` of one random smooth path, or None if it left the image."""
    steps = int(rng.integers(config.min_steps, config.max_steps + 1))
    m = config.marker
    start = rng.uniform(m, config.size - m, size=2)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, config.curvature, size=steps))
    points = start + np.concatenate([[[0.0, 0.0]], np.cumsum(np.stack([np.sin(heading), np.cos(heading)], 1), 0)])
    pixels = np.rint(points).astype(int)
    if (pixels < 0).any() or (pixels > config.size - m).any():
        return None
    return pixels


def _marker_mask(size: int, corner: np.ndarray, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[corner[0] : corner[0] + side, corner[1] : corner[1] + side] = True
    return mask


def _image(rng: np.random.Generator, config: PathfinderConfig, positive: bool, max_tries: int):
    S, sep = config.size, config.gap + 2
    image = np.zeros((S, S), dtype=np.uint8)
    owner = np.full((S, S), -1, dtype=np.int8)
    taken = np.zeros((S, S), dtype=bool)
    markers = []
    for path in range(2 + config.num_distractors):
        for _ in range(max_tries):
            pixels = _trace(rng, config)
            if pixels is None:
                continue
            period = config.dash + config.gap
            on = (np.arange(len(pixels)) % period) < config.dash
            on[0] = on[-1] = True
            ink = np.zeros((S, S), dtype=bool)
            ink[pixels[on, 0], pixels[on, 1]] = True
            ends = []
            if path == 0:
                ends = [pixels[0], pixels[-1]] if positive else [pixels[0]]
            elif path == 1 and not positive:
                ends = [pixels[0]]
            marks = np.zeros((S, S), dtype=bool)
            for end in ends:
                marks |= _marker_mask(S, end, config.marker)
            if positive and path == 0 and np.abs(pixels[0] - pixels[-1]).max() < 2 * config.marker:
                continue  # the two markers would merge into one blob
            drawn = ink | marks
            if (drawn & taken).any():
                continue
            image[ink] = PATH_VALUE
            image[marks] = MARKER_VALUE
            owner[drawn] = path
            taken |= _dilate(drawn, sep - 1)
            markers += [end for end in ends]
            break
        else:
            return None
    return image, owner, np.stack(markers)


def generate_pathfinder(config: PathfinderConfig, num_examples: int, seed: int, *, max_tries: int = 200) -> PathfinderData:
    """``num_examples`` images, half positive (shuffled), deterministic in ``seed``."""
    if not isinstance(config, PathfinderConfig):
        raise TypeError(f"config must be a PathfinderConfig, got {type(config).__name__}")
    check_positive_int("num_examples", num_examples)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % 2)
    images = np.zeros((num_examples, config.size, config.size), dtype=np.uint8)
    owners = np.zeros_like(images, dtype=np.int8)
    markers = np.zeros((num_examples, 2, 2), dtype=np.int64)
    for i, label in enumerate(labels):
        for _ in range(max_tries):
            out = _image(rng, config, bool(label), max_tries)
            if out is not None:
                images[i], owners[i], markers[i] = out
                break
        else:
            raise ValueError(f"could not place {2 + config.num_distractors} separated paths in a "
                             f"{config.size}x{config.size} image: use fewer distractors or shorter paths ({config})")
    return PathfinderData(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                          torch.from_numpy(markers), torch.from_numpy(owners), config)


def connected(image, a, b, tolerance: int = 2) -> bool:
    """Whether pixel ``a`` (row, col) reaches pixel ``b`` through ink (nonzero pixels), stepping between
    ink pixels at Chebyshev distance ``<= tolerance`` (so dashes with gaps of ``tolerance - 1`` pixels
    count as one path). ``image`` is ``(H, W)`` (tensor or array)."""
    image = np.asarray(image.numpy() if isinstance(image, torch.Tensor) else image)
    if image.ndim != 2:
        raise ValueError(f"image must have shape (H, W), got {image.shape}")
    ink = image > 0
    for name, p in (("a", a), ("b", b)):
        if not ink[p[0], p[1]]:
            raise ValueError(f"{name}={tuple(p)} is not an ink pixel")
    reach = np.zeros_like(ink)
    reach[a[0], a[1]] = True
    while True:
        grown = _dilate(reach, tolerance) & ink
        if grown[b[0], b[1]]:
            return True
        if (grown == reach).all():
            return False
        reach = grown
