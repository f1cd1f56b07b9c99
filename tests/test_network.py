"""The experiment wrapper: every mixer plugs in, outputs are causal, pooling respects masks."""
import pytest
import torch

from dsflib.models import MIXERS, build_mixer
from dsflib.network import SequenceModel

SMALL = {"n": 4}


def _lm(mixer, **kw):
    torch.manual_seed(0)
    return SequenceModel(mixer, 16, 2, vocab_size=32, mixer_kwargs=SMALL, **kw)


@pytest.mark.parametrize("mixer", sorted(MIXERS))
def test_lm_is_causal_for_every_mixer(mixer):
    model = _lm(mixer).eval()
    x = torch.randint(0, 32, (2, 21))
    logits = model(x)
    assert logits.shape == (2, 21, 32) and torch.isfinite(logits).all()
    y = x.clone()
    y[:, 10:] = torch.randint(0, 32, (2, 11))
    torch.testing.assert_close(model(y)[:, :10], logits[:, :10], rtol=0, atol=1e-5)
    assert not torch.allclose(model(y)[:, 10:], logits[:, 10:])


@pytest.mark.parametrize("mixer", sorted(MIXERS))
def test_every_mixer_returns_its_width(mixer):
    layer = build_mixer(mixer, 8, n=2)
    assert layer(torch.randn(3, 5, 8)).shape == (3, 5, 8)


def test_classifier_pools_only_valid_positions():
    torch.manual_seed(0)
    model = SequenceModel("linear_attention", 16, 1, task="classify", vocab_size=20, num_classes=5,
                          mixer_kwargs=SMALL).eval()
    x = torch.randint(0, 20, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[0, 7:] = False
    out = model(x, mask)
    assert out.shape == (3, 5)
    x2 = x.clone()
    x2[0, 7:] = 0  # change only the padding of sequence 0
    torch.testing.assert_close(model(x2, mask), out, rtol=0, atol=1e-6)
    last = SequenceModel("linear_attention", 16, 1, task="classify", vocab_size=20, num_classes=5,
                         pooling="last", mixer_kwargs=SMALL).eval()
    torch.testing.assert_close(last(x2, mask)[0], last(x, mask)[0], rtol=0, atol=1e-6)


def test_feature_inputs_and_positions():
    model = SequenceModel("s6", 16, 1, task="classify", input_dim=3, num_classes=2, max_len=10, mixer_kwargs=SMALL)
    assert model(torch.randn(4, 10, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="length 11 > max_len=10"):
        model(torch.randn(4, 11, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, L, input_dim=3\)"):
        model(torch.randn(4, 10, 2))


def test_tied_head_and_parameter_count():
    model = _lm("linear_attention")
    assert model.head.weight is model.embed.weight
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(mixer="mamba"), ValueError, r"mixer must be one of"),
        (dict(task="seq2seq"), ValueError, r"task must be one of \('lm', 'classify'\)"),
        (dict(input_dim=4), ValueError, "exactly one of vocab_size"),
        (dict(task="classify"), TypeError, "num_classes must be a positive int"),
        (dict(n_layers=0), ValueError, "n_layers must be a positive int, got 0"),
        (dict(pooling="max"), ValueError, "pooling must be one of"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    args = dict(mixer="linear_attention", d_model=8, n_layers=1, vocab_size=10)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        SequenceModel(args.pop("mixer"), args.pop("d_model"), args.pop("n_layers"), **args)


def test_token_input_errors():
    model = _lm("linear_attention")
    with pytest.raises(TypeError, match="x must hold integer token ids"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x must hold token ids in \[0, 32\), got range \[0, 40\]"):
        model(torch.tensor([[0, 40]]))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, L\) of token ids"):
        model(torch.zeros(2, 5, 1, dtype=torch.long))


def test_a_tiny_lm_learns_a_shift_task():
    torch.manual_seed(0)
    model = SequenceModel("linear_attention", 32, 1, vocab_size=16, mixer_kwargs={"n": 8})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.randint(0, 16, (32, 24))
    target = (x + 1) % 16  # next token = current token + 1: needs no memory, must be learned quickly
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), target.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses[::10]


def test_registered_custom_mixer_plugs_into_the_wrapper():
    from dsflib.models import mixer_class, mixer_names, register_mixer
    from dsflib.models.retnet import Retention

    class MyRetention(Retention):
        pass

    register_mixer("my_retention_for_test", MyRetention)
    assert "my_retention_for_test" in mixer_names() and mixer_class("my_retention_for_test") is MyRetention
    model = SequenceModel("my_retention_for_test", 8, 1, vocab_size=10, mixer_kwargs={"n": 2})
    assert isinstance(model.blocks[0].mixer, MyRetention)
    with pytest.raises(ValueError, match="is a built-in mixer"):
        register_mixer("s6", MyRetention)
    with pytest.raises(TypeError, match="cls must be a torch.nn.Module subclass"):
        register_mixer("not_a_module", int)
    with pytest.raises(ValueError, match="name must be a Python identifier"):
        register_mixer("my mixer", MyRetention)


def test_positions_select_the_logits_the_loss_reads():
    torch.manual_seed(0)
    model = SequenceModel("linear_attention", 16, 2, vocab_size=20, max_len=8)
    x = torch.randint(0, 20, (3, 8))
    keep = torch.rand(3, 8) < 0.4
    full = model(x)
    picked = model(x, positions=keep)
    assert picked.shape == (int(keep.sum()), 20)
    torch.testing.assert_close(picked, full[keep], rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match=r"positions must be a bool tensor"):
        model(x, positions=keep.long())
    with pytest.raises(ValueError, match=r"positions must have shape \(batch, L\)"):
        model(x, positions=keep[:, :4])
    classifier = SequenceModel("linear_attention", 16, 1, task="classify", vocab_size=20, num_classes=2)
    with pytest.raises(ValueError, match=r"positions selects logits of task='lm' only"):
        classifier(x, positions=keep)
