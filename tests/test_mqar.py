"""MQAR generator: labels are the bound values, keys never repeat, shapes, determinism, errors."""
import time

import pytest
import torch

from dsflib.data.mqar import IGNORE_INDEX, MQARConfig, generate_mqar


@pytest.mark.parametrize("L,kv", [(64, 4), (128, 8), (256, 16), (512, 64), (16, 4)])
def test_every_query_is_labelled_with_the_value_bound_to_its_key(L, kv):
    data = generate_mqar(MQARConfig(L, kv, vocab_size=8192), 200, seed=L)
    x, y = data.inputs, data.labels
    assert x.shape == y.shape == (200, L) and x.dtype == y.dtype == torch.long
    keys, values = x[:, 0 : 2 * kv : 2], x[:, 1 : 2 * kv : 2]
    assert ((keys >= 1) & (keys < 4096)).all() and ((values >= 4096) & (values < 8192)).all()
    assert (keys.sort(1).values.diff(dim=1) != 0).all(), "a key repeats within a context"
    assert (values.sort(1).values.diff(dim=1) != 0).all(), "a value repeats within a context"
    assert (y[:, : 2 * kv] == IGNORE_INDEX).all()
    query = y != IGNORE_INDEX
    assert (query.sum(1) == kv).all(), "every key is queried exactly once"
    for row in range(200):
        binding = dict(zip(keys[row].tolist(), values[row].tolist()))
        pos = query[row].nonzero().flatten()
        assert ((pos - 2 * kv) % 2 == 0).all()
        assert sorted(x[row, pos].tolist()) == sorted(binding)  # each key once
        for p in pos.tolist():
            assert y[row, p].item() == binding[x[row, p].item()]
    rest = torch.ones_like(query)
    rest[:, : 2 * kv] = False
    assert (x[rest & ~query] == 0).all(), "non-query filler is token 0"


def test_gaps_follow_a_power_law_favouring_short_gaps():
    data = generate_mqar(MQARConfig(64, 4), 20_000, seed=0)
    pos = (data.labels != IGNORE_INDEX).nonzero()[:, 1]
    slot = (pos - 8) // 2  # query slot index in the query region
    freq = torch.bincount(slot, minlength=28).double() / slot.numel()
    assert (freq[:10].diff() < 0).all(), freq[:10]  # monotonically less likely with distance
    assert freq[:10].sum() > 0.6 and freq[20:].sum() < 0.15


def test_deterministic_per_seed():
    cfg = MQARConfig(128, 8)
    a, b, c = (generate_mqar(cfg, 50, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.inputs, c.inputs)


def test_fast_enough_for_100k_examples():
    start = time.perf_counter()
    data = generate_mqar(MQARConfig(512, 64), 100_000, seed=0)
    assert len(data) == 100_000
    assert time.perf_counter() - start < 20  # ~1.5 s on a 2-core CPU; generous for loaded CI


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(seq_len=63), ValueError, "seq_len must be even, got 63"),
        (dict(seq_len=64, num_kv_pairs=17), ValueError, r"seq_len must be >= 4 \* num_kv_pairs = 68"),
        (dict(vocab_size=8), ValueError, "vocab_size=8 has fewer than num_kv_pairs=4 keys"),
        (dict(power_a=0.0), ValueError, "power_a must be > 0"),
        (dict(num_kv_pairs=0), ValueError, "num_kv_pairs must be a positive int"),
    ],
)
def test_config_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MQARConfig(**kwargs)


def test_generate_errors():
    with pytest.raises(TypeError, match="config must be an MQARConfig"):
        generate_mqar({"seq_len": 64}, 10, 0)
    with pytest.raises(ValueError, match="num_examples must be a positive int, got 0"):
        generate_mqar(MQARConfig(), 0, 0)


def test_no_binding_accuracy_is_the_measured_plateau_above_one_over_kv():
    """Queries come in key order with power-law gaps, so answering by rank and position alone beats
    1/KV; a rule that binds nothing cannot beat what the data allow, and the estimate is stable."""
    from dsflib.data.mqar import no_binding_accuracy

    config = MQARConfig(16, 4, 128)
    level = no_binding_accuracy(config, 5000, seed=1)
    assert 1 / 4 < level < 0.45
    assert abs(level - no_binding_accuracy(config, 5000, seed=7)) < 0.03
    # with one pair there is nothing to bind: the rule is always right
    assert no_binding_accuracy(MQARConfig(8, 1, 16), 500) == 1.0
    # a longer task with more pairs has a lower plateau
    assert no_binding_accuracy(MQARConfig(64, 8, 256), 2000) < level
    with pytest.raises(TypeError, match="config"):
        no_binding_accuracy((16, 4, 128))
