"""Pathfinder generator: positives are connected through the drawn pixels and negatives are not (checked on
the image alone), markers and paths look as specified, balance, determinism, speed, errors."""
import time

import numpy as np
import pytest
import torch

from dsflib.data.pathfinder import MARKER_VALUE, PATH_VALUE, PathfinderConfig, connected, generate_pathfinder

CONFIGS = [PathfinderConfig(size=16, min_steps=6, max_steps=12, num_distractors=1),
           PathfinderConfig(size=32, min_steps=10, max_steps=24, num_distractors=2, gap=2)]


@pytest.mark.parametrize("config", CONFIGS, ids=["16px", "32px-gap2"])
def test_positives_are_connected_and_negatives_are_not(config):
    data = generate_pathfinder(config, 200, seed=3)
    assert data.images.shape == (200, config.size, config.size) and data.images.dtype == torch.uint8
    assert 80 <= int(data.labels.sum()) <= 120  # balanced
    for image, label, (a, b) in zip(data.images, data.labels.tolist(), data.markers.tolist()):
        assert image[a[0], a[1]] == MARKER_VALUE and image[b[0], b[1]] == MARKER_VALUE
        assert connected(image, a, b, tolerance=config.gap + 1) == bool(label)
        assert set(np.unique(image.numpy()).tolist()) <= {0, PATH_VALUE, MARKER_VALUE}
        assert (image == MARKER_VALUE).sum() == 2 * config.marker**2  # two whole markers


def test_path_ownership_matches_the_label():
    config = CONFIGS[0]
    data = generate_pathfinder(config, 100, seed=0)
    for owner, label, (a, b), image in zip(data.paths, data.labels, data.markers.tolist(), data.images):
        assert ((owner >= 0) == (image > 0)).all()  # every ink pixel belongs to one path
        assert set(owner.unique().tolist()) == {-1, 0, 1, 2}  # 2 + 1 distractor paths in both classes
        same = owner[a[0], a[1]] == owner[b[0], b[1]]
        assert bool(same) == bool(label)


def test_dashes_leave_gaps():
    # with dashes the ink of a path is not 8-connected: tolerance 1 breaks most positives apart
    config = PathfinderConfig(size=32, min_steps=16, max_steps=24, num_distractors=0, gap=1)
    data = generate_pathfinder(config, 40, seed=1)
    pos = [i for i in range(40) if data.labels[i]]
    broken = sum(not connected(data.images[i], *data.markers[i].tolist(), tolerance=1) for i in pos)
    assert broken >= len(pos) // 2


def test_deterministic_and_fast():
    a, b, c = (generate_pathfinder(CONFIGS[0], 20, seed=s).images for s in (2, 2, 9))
    assert torch.equal(a, b) and not torch.equal(a, c)
    start = time.perf_counter()
    generate_pathfinder(CONFIGS[1], 1000, seed=0)
    assert time.perf_counter() - start < 30  # 2000 32x32 images took 2.4 s on one idle core


def test_tokens_are_row_major_pixels():
    data = generate_pathfinder(CONFIGS[0], 3, seed=0)
    tokens = data.tokens()
    assert tokens.shape == (3, 256) and tokens.dtype == torch.long
    assert torch.equal(tokens[1].view(16, 16), data.images[1].long())


def test_errors():
    with pytest.raises(ValueError, match="size must be >= 8"):
        PathfinderConfig(size=4)
    with pytest.raises(ValueError, match="min_steps=9 must be <= max_steps=3"):
        PathfinderConfig(min_steps=9, max_steps=3)
    with pytest.raises(TypeError, match="config must be a PathfinderConfig"):
        generate_pathfinder({"size": 16}, 2, 0)
    with pytest.raises(ValueError, match="could not place"):
        generate_pathfinder(PathfinderConfig(size=8, min_steps=6, max_steps=6, num_distractors=4), 1, 0, max_tries=5)
    with pytest.raises(ValueError, match="not an ink pixel"):
        connected(torch.zeros(8, 8, dtype=torch.uint8), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        connected(torch.zeros(2, 8, 8), (0, 0), (1, 1))
