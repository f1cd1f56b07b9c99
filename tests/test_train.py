"""The shared trainer: learns easy tasks, stops early, is deterministic, validates its input."""
import pytest
import torch

from dsflib.data.mqar import MQARConfig, generate_mqar
from dsflib.network import SequenceModel
from dsflib.train import TrainConfig, adamw, evaluate, train_model


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
     (dict(warmup_steps=-1), "warmup_steps must be >= 0"), (dict(amp="fp8"), "amp must be one of"),
     (dict(log_every=0), "log_every must be a positive int")],
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


def test_adamw_decays_matrices_only():
    from dsflib.train import adamw

    layer = torch.nn.Linear(3, 2)
    groups = adamw(layer, 1e-3, 0.1, betas=(0.9, 0.95)).param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert groups[0]["params"][0] is layer.weight and groups[1]["params"][0] is layer.bias
    assert groups[0]["betas"] == (0.9, 0.95)


def test_warmup_cosine_warms_up_then_decays_to_its_floor():
    from dsflib.train import warmup_cosine

    assert [warmup_cosine(s, 4, 20) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert warmup_cosine(12, 4, 20) == pytest.approx(0.5)  # half way through the decay
    assert warmup_cosine(20, 4, 20) == pytest.approx(0.0) and warmup_cosine(50, 4, 20, 0.1) == pytest.approx(0.1)


def test_optimizer_step_refuses_a_non_finite_loss_before_touching_the_weights():
    from dsflib.train import adamw, optimizer_step

    layer = torch.nn.Linear(3, 1)
    before = layer.weight.detach().clone()
    optimizer = adamw(layer, 1e-2, 0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    loss = layer(torch.ones(1, 3)).sum() * float("inf")
    with pytest.raises(FloatingPointError, match="at step 7"):
        optimizer_step(layer, loss, optimizer, scheduler, 1.0, 7)
    torch.testing.assert_close(layer.weight.detach(), before)
    optimizer_step(layer, layer(torch.ones(1, 3)).sum(), optimizer, scheduler, 1.0, 8)
    assert not torch.equal(layer.weight.detach(), before)


def test_a_nan_loss_is_caught_at_the_next_host_read(monkeypatch):
    """The loop reads the loss every ``log_every`` steps; a NaN in between still stops the run."""
    import dsflib.train as train

    real = train.train_step
    calls = []

    def nan_at_third(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(train, "train_step", nan_at_third)
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=16, log_every=5, early_stop_accuracy=None, progress=False)
    with pytest.raises(FloatingPointError, match="at or before step 5"):
        train_model(_classifier(), _contains_one(256, 0), _contains_one(64, 1), config)
    assert len(calls) == 5  # steps 4 and 5 ran before the host looked


def test_bf16_autocast_trains_with_fp32_weights():
    config = TrainConfig(lr=1e-2, epochs=3, batch_size=32, amp="bf16", early_stop_accuracy=None, progress=False)
    model = _classifier()
    result = train_model(model, _contains_one(256, 0), _contains_one(128, 1), config)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.isfinite(torch.tensor(result["train_loss"])) and result["accuracy"] > 0.6
    fp32 = train_model(_classifier(), _contains_one(256, 0), _contains_one(128, 1),
                       TrainConfig(lr=1e-2, epochs=3, batch_size=32, early_stop_accuracy=None, progress=False))
    assert result["train_loss"] != fp32["train_loss"]  # autocast really changed the arithmetic


def test_train_bench_prints_a_row_per_model(tmp_path, capsys):
    from dsflib import train_bench

    out = tmp_path / "bench.csv"
    assert train_bench.main(["--shape", "ci", "--models", "softmax", "ssd", "--steps", "2", "--warmup", "1",
                             "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "softmax" in text and "ms/step" in text
    import csv

    rows = list(csv.DictReader(out.open()))
    assert [r["model"] for r in rows] == ["softmax", "ssd"] and all(float(r["ms_per_step"]) > 0 for r in rows)
    if not torch.cuda.is_available():
        assert train_bench.main(["--shape", "gpu"]) == 2
    times = train_bench.read_step_times(out, shape="ci")  # what the book's cost estimate reads
    assert set(times) == {"softmax", "ssd"}
    assert times["ssd"]["ms_per_step"] == float(rows[1]["ms_per_step"]) and times["ssd"]["device"] == rows[1]["device"]
    assert train_bench.read_step_times(out) == {}  # no gpu-shape rows stored
    assert train_bench.read_step_times(out, shape="ci", compiled=True) == {}  # nor torch.compile'd ones
    assert train_bench.read_step_times(tmp_path / "missing.csv") == {}
    with pytest.raises(ValueError, match="shape must be one of"):
        train_bench.read_step_times(out, shape="huge")


def test_adamw_is_fused_and_a_step_reads_only_labelled_positions(monkeypatch):
    from dsflib.train import train_step

    torch.manual_seed(0)
    model = SequenceModel("softmax_attention", 16, 1, vocab_size=32, max_len=16)
    optimizer = adamw(model, 1e-3, 0.1)
    assert all(group["fused"] for group in optimizer.param_groups)
    data = generate_mqar(MQARConfig(16, 2, vocab_size=32), 8, seed=0)
    seen = {}
    original = SequenceModel.forward

    def spy(self, x, mask=None, *, positions=None):
        seen["positions"] = positions
        return original(self, x, mask, positions=positions)

    monkeypatch.setattr(SequenceModel, "forward", spy)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    expected = torch.nn.functional.cross_entropy(model(data.inputs).flatten(0, 1), data.labels.flatten(),
                                                 ignore_index=-100)
    loss = train_step(model, data.inputs, data.labels, optimizer, scheduler, TrainConfig(device="cpu"))
    assert torch.equal(seen["positions"], data.labels != -100)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-6)
