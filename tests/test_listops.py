"""ListOps generator: the evaluator agrees with hand-computed values and with the labels, lengths and
depth respect the limits, tokenization handles LRA's parentheses, left padding, determinism, errors."""
import time

import pytest
import torch

from dsflib.data.listops import (OPERATORS, PAD, VOCAB, VOCAB_SIZE, ListOpsConfig, encode, evaluate,
                                 generate_listops, tokenize)


@pytest.mark.parametrize("text,value", [
    ("[MAX 2 9 ]", 9), ("[MIN 4 7 1 ]", 1), ("[SM 5 6 7 ]", 8), ("[MED 1 9 4 ]", 4),
    ("[MED 1 2 4 9 ]", 3),  # even count: floor of the mean of the middle two (2 + 4) / 2
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9), ("[SM [MAX 3 8 ] [MIN 9 7 ] ]", 5), ("7", 7),
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),  # LRA's tree parentheses are ignored
])
def test_evaluator_on_hand_computed_expressions(text, value):
    assert evaluate(text) == value


def _depth(tokens):
    depth = best = 0
    for t in tokens:
        depth += t in OPERATORS
        depth -= t == "]"
        best = max(best, depth)
    return best


def _reference(tokens):
    """An independent recursive evaluator (the module's is a stack machine)."""
    def parse(i):
        if tokens[i].isdigit():
            return int(tokens[i]), i + 1
        op, args, i = tokens[i], [], i + 1
        while tokens[i] != "]":
            v, i = parse(i)
            args.append(v)
        f = {"[MAX": max, "[MIN": min, "[SM": lambda a: sum(a) % 10,
             "[MED": lambda a: sorted(a)[(len(a) - 1) // 2] if len(a) % 2 else (sorted(a)[len(a) // 2 - 1] + sorted(a)[len(a) // 2]) // 2}
        return f[op](args), i + 1
    value, end = parse(0)
    assert end == len(tokens)
    return value


@pytest.mark.parametrize("config", [ListOpsConfig(max_depth=2, max_args=4, min_length=4, max_length=32),
                                    ListOpsConfig(max_depth=6, max_args=6, min_length=50, max_length=200)])
def test_generated_labels_agree_with_an_independent_evaluator(config):
    inputs, labels, expressions = generate_listops(config, 300, seed=1)
    assert inputs.shape == (300, config.max_length) and labels.shape == (300,)
    for expr, label in zip(expressions, labels.tolist()):
        assert config.min_length <= len(expr) <= config.max_length
        assert 1 <= _depth(expr) <= config.max_depth
        assert _reference(expr) == label == evaluate(expr)
        ops = [t for t in expr if t in OPERATORS]
        assert expr.count("]") == len(ops)
    assert len(set(labels.tolist())) == 10  # every class occurs


def test_encoding_is_left_padded_and_round_trips():
    inputs, _, expressions = generate_listops(ListOpsConfig(max_depth=3, max_args=4, min_length=4, max_length=40), 50, 0)
    inverse = {v: k for k, v in VOCAB.items()}
    for row, expr in zip(inputs, expressions):
        n_pad = (row == PAD).sum().item()
        assert (row[:n_pad] == PAD).all() and (row[n_pad:] != PAD).all()  # padding only on the left
        assert [inverse[i] for i in row[n_pad:].tolist()] == expr
    assert inputs.max() < VOCAB_SIZE and VOCAB_SIZE == 16
    assert tokenize("( [MAX 2 ) 9 ]") == ["[MAX", "2", "9", "]"]
    assert encode(["[MAX 2 9 ]"], 3).tolist() == [[VOCAB["2"], VOCAB["9"], VOCAB["]"]]]  # keeps the end


def test_deterministic_and_fast():
    config = ListOpsConfig(max_depth=3, max_args=5, min_length=20, max_length=150)
    a, b, c = (generate_listops(config, 40, seed=s)[0] for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    start = time.perf_counter()
    generate_listops(config, 3000, seed=0)
    assert time.perf_counter() - start < 30  # a few thousand in well under a minute (~1 s unloaded)


def test_full_lra_length_expressions():
    _, labels, expressions = generate_listops(ListOpsConfig(), 5, seed=0)
    assert all(500 <= len(e) <= 2000 and _depth(e) <= 10 for e in expressions)
    assert [evaluate(e) for e in expressions] == labels.tolist()


@pytest.mark.parametrize("kwargs,match", [
    (dict(max_args=1), "max_args must be >= 2"), (dict(min_length=50, max_length=10), "min_length=50"),
    (dict(value_p=1.0), "value_p"), (dict(max_depth=0), "max_depth must be a positive int"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ListOpsConfig(**kwargs)


def test_evaluate_and_encode_errors():
    with pytest.raises(ValueError, match="unknown ListOps token"):
        evaluate("[MAX 2 X ]")
    with pytest.raises(ValueError, match="unbalanced"):
        evaluate("[MAX 2 9")
    with pytest.raises(ValueError, match="unknown token"):
        encode(["[FOO 1 ]"], 8)
    with pytest.raises(TypeError, match="config must be a ListOpsConfig"):
        generate_listops({"max_depth": 2}, 4, 0)
    with pytest.raises(ValueError, match="no expression of length"):
        generate_listops(ListOpsConfig(max_depth=1, max_args=2, min_length=10, max_length=12), 1, 0)
