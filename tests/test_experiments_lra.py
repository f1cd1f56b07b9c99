"""The LRA experiment: every model builds a classifier for every task, the grids have the right runs
(ci: every seed of the profile and two learning rates per cell), a tiny generated run returns its
metrics, the warm-up as a fraction of the steps, chance levels, the results path, errors for unknown
names, the gpu profile (stand-ins, budget, CLI)."""
import itertools
import json
import math
from collections import Counter

import pytest
import torch

from dsflib.experiments import lra
from dsflib.experiments.lra import MODELS, NUM_CLASSES, TASKS, build_model, chance, grid, run_lra
from dsflib.sweep import run_id


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("task", TASKS)
def test_every_model_classifies_every_task(model, task):
    net = build_model(model, task, vocab_size=20, seq_len=12, d_model=8, n=4, n_layers=1, mlp_mult=1)
    x = torch.randint(0, 20, (3, 12))
    logits = net(x)
    assert logits.shape == (3, NUM_CLASSES[task]) and torch.isfinite(logits).all()
    assert net.pooling == ("mean" if task in ("image", "pathfinder") else "last")
    assert (net.pos is not None) == (model != "s6")


def test_last_position_pooling_sees_the_first_token():
    # pooling the last position of a causal model: the logits depend on the sequence's first token,
    # so a left-padded expression is read in full
    net = build_model("linear", "listops", vocab_size=16, seq_len=10, d_model=8, n=4, n_layers=1).eval()
    x = torch.randint(1, 16, (1, 10))
    y = x.clone()
    y[0, 0] = (x[0, 0] % 15) + 1
    assert not torch.allclose(net(x), net(y))


def test_chance_is_one_over_the_class_count():
    assert [chance(t) for t in TASKS] == [0.1, 0.5, 0.5, 0.1, 0.5]
    assert sum(chance(t) for t in TASKS) / 5 == pytest.approx(0.34)


def test_grids():
    ci = grid("ci")
    seeds, lrs = lra.seeds_of("ci"), {t: lra.lrs_of(s) for t, s in lra.PROFILES["ci"]["tasks"].items()}
    cells = ([("listops", m) for m in lra.MAIN_MODELS] + [("pathfinder", m) for m in lra.MAIN_MODELS]
             + [(t, m) for t, ms in lra.PROFILES["ci"]["extra"].items() for m in ms])
    assert Counter((r["task"], r["model"]) for r in ci) == Counter(
        {c: len(seeds) * len(lrs[c[0]]) for c in cells})
    assert all(r["source"] == "generated" and r["threads"] == 1 for r in ci)
    assert {r["generator"]["size"] for r in ci if r["task"] == "pathfinder"} == {
        lra.PROFILES["ci"]["tasks"]["pathfinder"]["generator"]["size"]}
    paper = grid("paper")
    assert {r["task"] for r in paper} == set(TASKS) and len(paper) == 5 * 4 + 2
    assert {r["model"] for r in paper if r["task"] == "image"} == set(MODELS)
    assert all(r["source"] != "generated" and "threads" not in r for r in paper)
    costs = sorted(ci, key=lra.cost_hint, reverse=True)
    assert (costs[0]["task"], costs[0]["model"]) == ("pathfinder", "s6")


def test_the_ci_grid_runs_every_seed_and_two_learning_rates():
    # the paper's rule needs >= 2 learning rates to pick from, the verdicts >= 3 seeds for their spread
    seeds = lra.seeds_of("ci")
    assert len(seeds) >= 3 and len(set(seeds)) == len(seeds)
    ci = grid("ci")
    for task, settings in lra.PROFILES["ci"]["tasks"].items():
        lrs = lra.lrs_of(settings)
        assert len(set(lrs)) >= 2
        for model in {r["model"] for r in ci if r["task"] == task}:
            runs = [r for r in ci if (r["task"], r["model"]) == (task, model)]
            assert sorted((r["seed"], r["lr"]) for r in runs) == sorted(itertools.product(seeds, lrs))
            # the runs of a cell differ in seed and lr only
            assert len({json.dumps({k: v for k, v in r.items() if k not in ("seed", "lr")}, sort_keys=True)
                        for r in runs}) == 1
    assert len({run_id(r) for r in ci}) == len(ci)
    # seed=s: that seed alone, every learning rate
    one = grid("ci", seed=4)
    assert {r["seed"] for r in one} == {4} and len(one) * len(seeds) == len(ci)
    assert [dict(r, seed=0) for r in one] == [r for r in ci if r["seed"] == 0]
    # one seed and one lr in the paper profile: its lr stays a number in every run
    assert lra.seeds_of("paper") == [0] and all(isinstance(r["lr"], float) for r in grid("paper"))
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        grid("ci", seed=-1)
    with pytest.raises(ValueError, match="profile must be one of"):
        lra.seeds_of("gpu-huge")
    for bad in ([], [0.0], ["1e-3"], True, -1e-3):
        with pytest.raises(ValueError, match="lr must be a positive number"):
            lra.lrs_of({"lr": bad})
    assert lra.lrs_of({"lr": 1e-3}) == [1e-3] and lra.lrs_of({"lr": (1e-3, 3e-3)}) == [1e-3, 3e-3]


TINY = dict(task="listops", source="generated", model="softmax",
            generator=dict(max_depth=2, max_args=3, min_length=4, max_length=16),
            num_train=64, num_test=32, d_model=8, n=4, n_layers=1, mlp_mult=1, lr=3e-3, epochs=2, batch_size=16,
            seed=0, threads=1, device="cpu")


@pytest.mark.parametrize("config", [TINY, dict(TINY, model="s6"),
                                    dict(TINY, task="pathfinder", model="normalized_sigmoid",
                                         generator=dict(size=16, min_steps=6, max_steps=10, num_distractors=1))])
def test_run_lra_returns_its_metrics(config):
    before = torch.get_num_threads()
    try:
        out = run_lra(config)
    finally:
        torch.set_num_threads(before)
    assert set(out) == set(lra.METRICS)
    assert 0.0 <= out["accuracy"] <= out["best_accuracy"] <= 1.0 and out["diverged"] == 0
    assert out["steps"] == 2 * 4 and out["device"] == "cpu" and out["num_test_examples"] == 32
    assert out["seq_len_used"] == (256 if config["task"] == "pathfinder" else 16)
    assert 1 / NUM_CLASSES[config["task"]] <= out["majority_accuracy"] <= 1.0
    assert math.isfinite(out["test_loss"])


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("transformer", "listops", vocab_size=16, seq_len=8, d_model=8, n=4, n_layers=1)
    with pytest.raises(ValueError, match="task must be one of"):
        build_model("softmax", "pathx", vocab_size=16, seq_len=8, d_model=8, n=4, n_layers=1)
    with pytest.raises(ValueError, match="misses the keys"):
        run_lra({"task": "listops"})
    with pytest.raises(ValueError, match="task must be one of"):
        run_lra(dict(TINY, task="pathx"))
    with pytest.raises(ValueError, match="source must be one of"):
        run_lra(dict(TINY, source="web"))
    with pytest.raises(ValueError, match="only listops and pathfinder are generated"):
        run_lra(dict(TINY, task="image"))
    with pytest.raises(FileNotFoundError, match="lra_release"):
        run_lra(dict(TINY, source="lra_release", data_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="profile must be one of"):
        grid("gpu-huge")
    with pytest.raises(TypeError, match="config must be a mapping"):
        run_lra([1, 2])


def test_a_diverged_run_is_recorded_not_raised(monkeypatch):
    def diverge(*args, **kwargs):
        raise FloatingPointError("training loss became nan")

    monkeypatch.setattr(lra, "train_model", diverge)
    out = run_lra(dict(TINY, threads=None))
    assert out["diverged"] == 1 and math.isnan(out["accuracy"]) and set(out) == set(lra.METRICS)


def test_warmup_is_a_fraction_of_the_steps(monkeypatch):
    # App. J.2: "Linear warmup with duration of 10%": both profiles give it as a fraction of each run's steps
    assert all(r["warmup_fraction"] == 0.1 and "warmup_steps" not in r for r in grid("paper") + grid("ci"))
    seen = {}

    def capture(model, train, test, config, desc=""):
        seen["config"] = config
        return {"accuracy": 0.5, "best_accuracy": 0.5, "loss": 1.0, "train_loss": 1.0, "epochs_run": config.epochs,
                "steps": 0, "device": "cpu"}

    monkeypatch.setattr(lra, "train_model", capture)
    run_lra(dict(TINY, threads=None, warmup_fraction=0.1, num_train=160, batch_size=16, epochs=5))
    assert seen["config"].warmup_steps == 5  # 10 % of 5 epochs x 10 steps
    run_lra(dict(TINY, threads=None, warmup_steps=3))
    assert seen["config"].warmup_steps == 3
    run_lra(dict(TINY, threads=None))
    assert seen["config"].warmup_steps == 0
    with pytest.raises(ValueError, match="not both"):
        run_lra(dict(TINY, warmup_steps=3, warmup_fraction=0.1))
    with pytest.raises(ValueError, match=r"warmup_fraction must be a number in \[0, 1\)"):
        run_lra(dict(TINY, warmup_fraction=1.5))


def test_results_path():
    assert lra.results_path("ci").name == "lra-ci.csv" and lra.results_path("paper").parent.name == "results"
    with pytest.raises(ValueError, match="profile must be one of"):
        lra.results_path("gpu-huge")


def test_gpu_profile_uses_larger_stand_ins_within_its_budget_and_refuses_without_cuda(capsys):
    runs = grid("gpu")
    # the four main models on the same generated stand-ins as ci (the GPU machine has no network for the LRA
    # data), the other normalizers on Pathfinder; one seed, one lr
    main = {(r["task"], r["model"]) for r in runs if r["model"] in lra.MAIN_MODELS}
    assert main == {(r["task"], r["model"]) for r in grid("ci") if r["model"] in lra.MAIN_MODELS}
    assert {r["model"] for r in runs if r["model"] not in lra.MAIN_MODELS} == {"normalized_softplus",
                                                                                 "normalized_sigmoid"}
    assert Counter((r["task"], r["model"]) for r in runs).most_common(1)[0][1] == 1
    assert all(r["source"] == "generated" and "threads" not in r for r in runs)
    ci = {r["task"]: r for r in grid("ci")}
    for r in runs:  # larger tasks, wider models and more steps than ci
        assert r["d_model"] > ci[r["task"]]["d_model"] and lra.steps_of(r) > lra.steps_of(ci[r["task"]])
        assert r["warmup_fraction"] == 0.1 and r["num_test"] >= 2000
    assert {r["generator"]["size"] for r in runs if r["task"] == "pathfinder"} == {32}  # the real task's size
    assert {r["generator"]["max_length"] for r in runs if r["task"] == "listops"} == {256}
    assert lra.results_path("gpu").parts[-3:] == ("book", "results", "lra-gpu.csv")
    assert lra.results_path("ci").parts[-3:] == ("_build", "results", "lra-ci.csv")
    workers = lra.PROFILES["gpu"]["workers"]
    assert lra.estimate_seconds(runs, workers=workers) <= 2 * 60  # the profile's budget
    # the estimate: at least the longest run, at least the summed GPU-busy time, more with fewer workers
    assert lra.estimate_seconds(runs, workers=1) > lra.estimate_seconds(runs, workers=workers)
    assert lra.estimate_seconds(runs, workers=100) == pytest.approx(max(lra.run_seconds(r)[0] for r in runs))
    with pytest.raises(ValueError, match="workers"):
        lra.estimate_seconds(runs, workers=0)
    assert lra.main(["--profile", "gpu", "--estimate-only"]) == 0
    out = capsys.readouterr().out
    assert "LRA gpu: 10 runs" in out and "generated stand-in" in out and "estimated" in out
    if not torch.cuda.is_available():
        assert lra.main(["--profile", "gpu"]) == 2
        captured = capsys.readouterr()
        assert "needs a CUDA GPU" in captured.err and "estimated" in captured.out  # the estimate comes first


def test_the_gpu_verdicts_label_the_stand_ins():
    acc = {"softmax": 0.55, "linear": 0.52, "normalized": 0.60, "s6": 0.58, "normalized_softplus": 0.5,
           "normalized_sigmoid": 0.5}
    rows = [dict(c, accuracy=acc[c["model"]], num_test_examples=c["num_test"], device="cuda (NVIDIA H200)")
            for c in grid("gpu")]
    v = {x.claim.id: x for x in lra.paper_verdicts("gpu", rows)}
    assert v["C11"].profile == "gpu" and v["C11"].device == "cuda (NVIDIA H200)"
    assert "stand-in" in v["C11"].scale and "2 of 5" in v["C11"].cells
    assert v["C13"].outcome == "not tested"  # Image has no stand-in
    assert [x.outcome for x in lra.paper_verdicts("gpu", [])] == ["not tested"] * 3
