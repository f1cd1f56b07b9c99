"""The shared trainer: learns easy tasks, stops early, is deterministic, validates its input."""
import pytest
import torch

from dsflib.data.mqar import MQARConfig, generate_mqar
from dsflib.network import SequenceModel
from dsflib.train import TrainConfig, evaluate, train_model


def _contains_one(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(2, 12, (n, 16), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(0, 16, (n,), generator=g)
    x[y == 1, pos[y == 1]] = 1  # class 1: token 1 appears somewhere
    return x, y


def _classifier():
    torch.manual_seed(0)
    return SequenceModel("linear_attention", 16, 1, task="classify", vocab_size=12, num_classes=2,
                         mixer_kwargs={"n": 4})


def test_learns_a_sequence_classification_task_and_stops_early():
    config = TrainConfig(lr=1e-2, epochs=30, batch_size=32, early_stop_accuracy=0.97, progress=False)
    result = train_model(_classifier(), _contains_one(512, 0), _contains_one(256, 1), config)
    assert result["accuracy"] > 0.97 and result["epochs_run"] < 30
    assert set(result) >= {"accuracy", "loss", "best_accuracy", "epochs_run", "steps", "train_loss", "seconds", "device"}
    assert result["steps"] == result["epochs_run"] * 16 and result["device"] == "cpu"


def test_token_level_labels_ignore_unlabelled_positions():
    cfg = MQARConfig(16, 2, vocab_size=32)
    data = generate_mqar(cfg, 64, seed=0)
    torch.manual_seed(0)
    model = SequenceModel("softmax_attention", 16, 1, vocab_size=32, max_len=16)
    metrics = evaluate(model, (data.inputs, data.labels))
    assert 0.0 <= metrics["accuracy"] <= 1.0
    logits = model(data.inputs)
    mask = data.labels != -100
    expected = (logits.argmax(-1)[mask] == data.labels[mask]).double().mean().item()
    assert metrics["accuracy"] == pytest.approx(expected)


def test_deterministic_given_the_seed():
    config = TrainConfig(lr=3e-3, epochs=2, batch_size=64, early_stop_accuracy=None, progress=False)
    a = train_model(_classifier(), _contains_one(256, 0), _contains_one(128, 1), config)
    b = train_model(_classifier(), _contains_one(256, 0), _contains_one(128, 1), config)
    assert a["loss"] == b["loss"] and a["train_loss"] == b["train_loss"]


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(lr=0.0), "lr must be > 0"), (dict(epochs=0), "epochs must be a positive int"),
     (dict(warmup_steps=-1), "warmup_steps must be >= 0")],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_data_errors():
    model = _classifier()
    x, y = _contains_one(8, 0)
    with pytest.raises(TypeError, match=r"train must be a pair \(inputs, labels\)"):
        train_model(model, x, (x, y), TrainConfig(progress=False))
    with pytest.raises(ValueError, match=r"train labels must have shape \(examples, L\) or \(examples,\)"):
        train_model(model, (x, y[:4]), (x, y), TrainConfig(progress=False))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train_model(model, (x, y), (x, y), {"lr": 1e-3})
