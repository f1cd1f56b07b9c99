"""The MQAR experiment: every model builds and runs, both grids have the right runs, one tiny run
returns its metrics, the best-over-lr rule, and errors for unknown names."""
import math
from collections import Counter

import pytest
import torch

from dsflib.experiments import mqar
from dsflib.experiments.mqar import MODELS, PROFILES, QLSTM, best_over_lr, build_model, grid, run_mqar

PAPER_TASKS = [(64, 4), (128, 8), (256, 16), (512, 64)]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_builds_and_maps_tokens_to_logits(model):
    n = 2 if model in QLSTM else 4
    net = build_model(model, d_model=8, n=n, seq_len=16, vocab_size=32)
    x = torch.randint(0, 32, (2, 16))
    logits = net(x)
    assert logits.shape == (2, 16, 32) and torch.isfinite(logits).all()
    logits.sum().backward()  # trainable end to end
    assert (net.pos is not None) == MODELS[model][2]  # position embeddings: all but S6/SSD
    assert net.num_parameters() > 0


def test_models_use_the_mixer_and_state_size_they_name():
    assert build_model("softmax", 8, 4, 16, 32).blocks[0].mixer.head_dim == 4  # n is d_qk
    assert build_model("linear", 8, 4, 16, 32).blocks[0].mixer.n == 4
    for norm in ("exp", "softplus", "sigmoid"):
        mixer = build_model(mqar.NORMALIZATIONS[norm], 8, 4, 16, 32).blocks[0].mixer
        assert mixer.norm == norm and mixer.n == 4
    assert build_model("s6", 8, 4, 16, 32).blocks[0].mixer.n == 4
    assert build_model("qlstm", 8, 2, 16, 32).blocks[0].mixer.reversed_sigmoid is False
    assert build_model("qlstm_rev", 8, 2, 16, 32).blocks[0].mixer.reversed_sigmoid is True


def test_paper_grid_is_the_released_sweep_plus_the_normalization_table():
    runs = grid("paper")
    main = [r for r in runs if not r["model"].startswith("normalized_")]
    assert len(main) == 1376  # 5 x 4 tasks x 4 d x 4 n x 4 lr + 2 x 3 tasks x 4 d x 4 lr
    assert len(runs) == 1376 + 2 * 4 * 4 * 4
    counts = Counter(r["model"] for r in runs)
    assert counts == {"softmax": 256, "linear": 256, "normalized": 256, "s6": 256, "ssd": 256,
                      "qlstm": 48, "qlstm_rev": 48, "normalized_softplus": 64, "normalized_sigmoid": 64}
    for r in runs:
        task = (r["seq_len"], r["num_kv_pairs"])
        if r["model"] in QLSTM:
            assert task in PAPER_TASKS[:3] and r["n"] == 2
            assert r["batch_size"] == {64: 256, 128: 128, 256: 64}[r["seq_len"]]
        else:
            assert r["batch_size"] == {64: 512, 128: 256, 256: 128, 512: 64}[r["seq_len"]]
        if r["model"].startswith("normalized_"):
            assert task == (512, 64)
        assert r["vocab_size"] == 8192 and r["epochs"] == 64 and r["num_train"] == 100_000
        assert r["num_test"] == 3_000 and "threads" not in r
    assert {(r["seq_len"], r["num_kv_pairs"]) for r in runs if r["model"] in QLSTM} == set(PAPER_TASKS[:3])
    assert sorted({r["lr"] for r in runs}) == pytest.approx([1e-4, 4.6416e-4, 2.1544e-3, 1e-2], rel=1e-4)
    assert sorted({r["d_model"] for r in runs}) == [64, 128, 256, 512]
    assert sorted({r["n"] for r in runs if r["model"] not in QLSTM}) == [32, 64, 128, 256]
    assert len({tuple(sorted(r.items())) for r in runs}) == len(runs)  # all distinct


def test_ci_grid_sizes_and_settings():
    runs = grid("ci")
    seeds, lrs = mqar.seeds_of("ci"), PROFILES["ci"]["lr"]
    assert len(seeds) >= 3 and len(lrs) >= 2  # the rule: >= 3 seeds, >= 2 learning rates per cell
    per_cell = Counter((r["model"], r["d_model"], r["n"]) for r in runs)
    assert set(per_cell.values()) == {len(seeds) * len(lrs)}  # every cell: every seed x every lr
    counts = Counter(m for m, _, _ in per_cell)
    assert counts == {"softmax": 6, "linear": 6, "normalized": 4, "ssd": 3, "s6": 3, "qlstm": 2, "qlstm_rev": 2,
                      "normalized_softplus": 1, "normalized_sigmoid": 1}
    assert len(runs) == 28 * len(seeds) * len(lrs)
    assert {(r["seq_len"], r["num_kv_pairs"]) for r in runs} == {(16, 4)}
    assert all(r["threads"] == 1 and r["vocab_size"] == PROFILES["ci"]["vocab_size"] for r in runs)
    # the smallest state binds: fewer key dimensions than pairs
    assert min(r["n"] for r in runs if r["model"] not in QLSTM) < min(r["num_kv_pairs"] for r in runs)
    # every figure has its points: n axis (softmax, linear), d axis at Fig. 2's n (five models),
    # qLSTM against d, the three normalizations in a common cell
    for model in ("softmax", "linear"):
        for d in (32, 64):
            assert sorted({r["n"] for r in runs if r["model"] == model and r["d_model"] == d}) == [2, 8, 32]
    for model in ("softmax", "linear", "normalized", "s6", "ssd"):
        assert sorted({r["d_model"] for r in runs if r["model"] == model and r["n"] == 8}) == [32, 64]
    for model in QLSTM:
        assert len({r["d_model"] for r in runs if r["model"] == model}) == 2
    norm_cells = [{(r["d_model"], r["n"]) for r in runs if r["model"] == m} for m in mqar.NORMALIZATIONS.values()]
    assert set.intersection(*norm_cells) == {(64, 8)}
    assert {r["seed"] for r in grid("ci", seed=3)} == {3} and sorted({r["seed"] for r in runs}) == seeds
    assert len(grid("ci", seed=3)) * len(seeds) == len(runs)


def test_seed_summary_gives_mean_spread_and_seed_count_per_cell():
    cell = dict(model="linear", seq_len=16, num_kv_pairs=4, d_model=32, n=8)
    rows = [dict(cell, seed=s, lr=lr, accuracy=a) for s, lr, a in
            [(0, 1e-3, 0.3), (0, 3e-3, 0.6), (1, 1e-3, 0.8), (1, 3e-3, 0.5), (2, 1e-3, "nan"), (2, 3e-3, "nan")]]
    per_seed = best_over_lr(rows)
    assert per_seed.set_index("seed")["accuracy"].tolist()[:2] == [0.6, 0.8]  # best lr per seed
    assert per_seed.set_index("seed")["lr"].tolist()[:2] == [3e-3, 1e-3]
    summary = mqar.seed_summary(per_seed).iloc[0]
    assert summary["accuracy"] == pytest.approx(0.7) and summary["n_seeds"] == 2  # seed 2 diverged
    assert summary["std"] == pytest.approx(0.1414, abs=1e-4) and (summary["min"], summary["max"]) == (0.6, 0.8)
    assert summary["lrs"] == "0.003/0.001/nan"
    one = mqar.seed_summary(best_over_lr(rows[:2])).iloc[0]
    assert one["n_seeds"] == 1 and math.isnan(one["std"])
    with pytest.raises(ValueError, match="best_over_lr"):
        mqar.seed_summary(per_seed.drop(columns="seed"))


def test_unknown_model_and_profile_are_errors():
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("transformer", 8, 4, 16, 32)
    with pytest.raises(ValueError, match="profile must be one of"):
        grid("tpu")
    with pytest.raises(ValueError, match="seed"):
        grid("ci", seed=-1)
    config = dict(grid("ci")[0], model="mamba")
    with pytest.raises(ValueError, match="model must be one of"):
        run_mqar(config)
    with pytest.raises(ValueError, match="misses the keys"):
        run_mqar({"model": "softmax"})


TINY = dict(model="softmax", seq_len=16, num_kv_pairs=2, vocab_size=16, d_model=8, n=4, lr=3e-3, epochs=2,
            batch_size=16, num_train=64, num_test=16, seed=0, threads=1, device="cpu")


@pytest.mark.parametrize("model", ["softmax", "s6", "qlstm_rev"])
def test_run_mqar_returns_its_metrics(model):
    before = torch.get_num_threads()
    try:
        out = run_mqar(dict(TINY, model=model, n=2 if model in QLSTM else 4))
    finally:
        torch.set_num_threads(before)
    assert set(out) == set(mqar.METRICS)
    assert 0.0 <= out["accuracy"] <= 1.0 and 0.0 <= out["best_accuracy"] <= 1.0
    assert out["accuracy"] <= out["best_accuracy"] and out["diverged"] == 0
    assert out["steps"] == out["epochs_run"] * 4 and out["device"] == "cpu"
    assert math.isfinite(out["test_loss"]) and out["num_parameters"] > 0


def test_best_over_lr_takes_the_best_finite_run_per_cell():
    cell = dict(model="linear", seq_len=16, num_kv_pairs=4, d_model=32, n=8)
    rows = [dict(cell, lr=1e-3, accuracy=0.4), dict(cell, lr=3e-3, accuracy=0.7),
            dict(cell, lr=1e-2, accuracy=float("nan")),
            dict(cell, n=16, lr=1e-2, accuracy="nan")]  # CSV rows hold strings
    table = best_over_lr(rows).set_index("n")
    assert table.loc[8, "accuracy"] == 0.7 and table.loc[8, "lr"] == 3e-3 and table.loc[8, "runs"] == 3
    assert math.isnan(table.loc[16, "accuracy"])  # every run of the cell diverged
    with pytest.raises(ValueError, match="miss the columns"):
        best_over_lr([{"model": "linear"}])


def test_a_diverged_run_is_recorded_not_raised(monkeypatch):
    def diverge(*args, **kwargs):
        raise FloatingPointError("training loss became nan")

    monkeypatch.setattr(mqar, "train_model", diverge)
    before = torch.get_num_threads()
    try:
        out = run_mqar(TINY)
    finally:
        torch.set_num_threads(before)
    assert set(out) == set(mqar.METRICS) and out["diverged"] == 1 and math.isnan(out["accuracy"])


# ---- recipes and verdicts -------------------------------------------------------------------------------

def test_recipes_text_and_code_differ_as_the_paper_and_its_code_do():
    text = build_model("softmax", 16, 8, 16, 32, recipe="text")
    code = build_model("softmax", 16, 8, 16, 32, recipe="code")
    alone = build_model("softmax", 16, 8, 16, 32, recipe="mixer_only")
    assert all(b.mlp is not None for b in text.blocks)  # "each with a sequence model and a MLP"
    assert all(b.mlp is None for b in code.blocks) and all(b.mlp is None for b in alone.blocks)
    assert all(b.mlp is not None for b in build_model("normalized", 16, 8, 16, 32, recipe="code").blocks)
    assert code.drop.p == 0.1 and text.drop.p == 0.0
    assert mqar.PROFILES["paper"]["recipe"] == "text"
    assert {r["recipe"] for r in grid("paper")} == {"text"}
    assert {r["recipe"] for r in grid("ci", recipe="code")} == {"code"}
    with pytest.raises(ValueError, match="recipe"):
        build_model("softmax", 16, 8, 16, 32, recipe="zoology")
    with pytest.raises(ValueError, match="recipe"):
        grid("ci", recipe="x")


def test_text_recipe_warms_up_over_a_tenth_of_the_steps(monkeypatch):
    seen = {}

    def fake_train(model, train, test, config, desc=""):
        seen["warmup"] = config.warmup_steps
        return {"accuracy": 0.5, "best_accuracy": 0.5, "loss": 1.0, "train_loss": 1.0, "epochs_run": 1,
                "steps": 1, "device": "cpu"}

    monkeypatch.setattr(mqar, "train_model", fake_train)
    config = dict(grid("ci")[0], num_train=640, epochs=5, recipe="text")  # 10 steps per epoch, 50 in all
    run_mqar(config)
    assert seen["warmup"] == 5
    run_mqar(dict(config, recipe="mixer_only"))
    assert seen["warmup"] == 0


def _rows(acc, seeds=(0,), num_test=500):
    """Synthetic result rows: ``acc`` maps (model, L, KV, d, n) -> accuracy or list per seed."""
    rows = []
    for (model, L, kv, d, n), values in acc.items():
        values = values if isinstance(values, (list, tuple)) else [values] * len(seeds)
        for seed, a in zip(seeds, values):
            for lr, shift in ((1e-3, -0.2), (3e-3, 0.0)):  # the best lr holds the given accuracy
                rows.append(dict(model=model, seq_len=L, num_kv_pairs=kv, d_model=d, n=n, lr=lr, seed=seed,
                                 num_test=num_test, accuracy=a + shift if a == a else a, device="cpu"))
    return rows


def _outcomes(rows):
    return {v.claim.id: v.outcome for v in mqar.paper_verdicts("ci", rows)}


def test_verdicts_each_outcome_on_synthetic_tables():
    t = (16, 4)
    base = {("softmax", *t, 32, 8): 1.0, ("softmax", *t, 32, 32): 1.0,
            ("linear", *t, 32, 8): 0.5, ("linear", *t, 32, 32): 0.8,
            ("normalized", *t, 32, 8): 0.9, ("s6", *t, 32, 8): 0.6, ("ssd", *t, 32, 8): 0.9,
            ("qlstm", *t, 16, 2): 0.25, ("qlstm_rev", *t, 16, 2): 0.9}
    out = _outcomes(_rows(base))
    assert out["C1"] == "supported"            # linear 0.5 -> 0.8 with n; softmax perfect
    assert out["C3"] == "supported"            # normalized 0.9 vs linear 0.5 at (d=32, n=8)
    assert out["C4"] == "supported"            # SSD 0.9 vs S6 0.6
    assert out["C5"] == "contradicted"         # normalized 0.9 vs S6 0.6 is not "on par"
    assert out["C7"] == "supported"
    assert out["C8"] == "inconclusive"         # qLSTM sits at the 1/KV plateau
    assert out["C13"] == "not tested"          # no softplus/sigmoid runs
    assert out["C6"] == "supported"            # linear improves with n; others ran at one n (not tested)
    worse = base | {("linear", *t, 32, 32): 0.4, ("softmax", *t, 32, 8): 0.7, ("softmax", *t, 32, 32): 0.7}
    out = _outcomes(_rows(worse))
    assert out["C1"] == "contradicted" and out["C7"] == "contradicted"
    close = base | {("ssd", *t, 32, 8): 0.61}  # inside the binomial margin of 2000 queries (~0.045)
    assert _outcomes(_rows(close))["C4"] == "inconclusive"


def test_verdicts_use_seeds_nan_and_missing_cells():
    t = (16, 4)
    acc = {("ssd", *t, 32, 8): [0.9, 0.5, 0.7], ("s6", *t, 32, 8): [0.6, 0.8, 0.7],  # overlap: spread decides
           ("normalized", *t, 32, 8): [0.7, float("nan"), 0.72], ("linear", *t, 32, 8): [0.4, 0.42, 0.41]}
    v = {x.claim.id: x for x in mqar.paper_verdicts("ci", _rows(acc, seeds=(0, 1, 2)))}
    assert v["C4"].outcome == "inconclusive" and "inside the noise" in v["C4"].numbers
    assert v["C3"].outcome == "supported" and "1 diverged" not in v["C3"].numbers
    assert v["C3"].seeds == "0, 1, 2" and v["C3"].device == "cpu" and v["C3"].profile == "ci"
    m = mqar.cell_measures(_rows(acc, seeds=(0, 1, 2)))[("normalized", 16, 4, 32, 8)]
    assert m.seeds == 2 and math.isnan(m.values[1])
    diverged = {("ssd", *t, 32, 8): float("nan"), ("s6", *t, 32, 8): 0.7}
    v = {x.claim.id: x for x in mqar.paper_verdicts("ci", _rows(diverged))}
    assert v["C4"].outcome == "inconclusive" and "diverged" in v["C4"].numbers
    assert v["C2"].outcome == "not tested" and v["C8"].outcome == "not tested"
    empty = mqar.paper_verdicts("ci", [])
    assert {x.outcome for x in empty} == {"not tested"} and len(empty) == 9
    with pytest.raises(ValueError, match="columns"):
        mqar.cell_measures([{"model": "s6"}])
    with pytest.raises(ValueError, match="profile"):
        mqar.paper_verdicts("gpu-huge", [])


def test_register_model_puts_a_registered_mixer_on_the_grid(monkeypatch):
    monkeypatch.setattr(mqar, "MODELS", dict(mqar.MODELS))
    monkeypatch.setattr(mqar, "LABELS", dict(mqar.LABELS))
    mqar.register_model("lin2", "linear_attention", {}, positions=False, label="linear again")
    model = build_model("lin2", 16, 4, 16, 32)
    assert model.pos is None and type(model.blocks[0].mixer).__name__ == "LinearAttention"
    assert mqar.LABELS["lin2"] == "linear again"
    with pytest.raises(ValueError, match="already an MQAR model"):
        mqar.register_model("softmax", "linear_attention")
    with pytest.raises(ValueError, match="registered mixer"):
        mqar.register_model("x", "no_such_mixer")
    with pytest.raises(TypeError, match="mixer_kwargs"):
        mqar.register_model("y", "linear_attention", [1])


def test_gpu_profile_covers_every_figure_and_refuses_without_cuda(capsys):
    runs = grid("gpu")
    cells = {(r["model"], r["seq_len"], r["d_model"], r["n"]) for r in runs}
    fig = PROFILES["gpu"]["figures"]
    for L, _ in fig["fig1_tasks"]:  # Fig. 1: softmax and linear at two n on both tasks
        assert {("softmax", L, 128, n) for n in (16, 64)} <= cells and {("linear", L, 128, n) for n in (16, 64)} <= cells
    assert {(m, 512, d, 64) for m in ("softmax", "linear", "normalized", "s6", "ssd") for d in (64, 128)} <= cells
    assert {(m, L, 128, 2) for m in QLSTM for L in (64, 128, 256)} <= cells
    assert {("normalized_softplus", 512, 128, 64), ("normalized_sigmoid", 512, 128, 64)} <= cells
    assert {r["recipe"] for r in runs} == {"text"} and {r["vocab_size"] for r in runs} == {8192}
    assert mqar.results_path("gpu").parts[-3:] == ("book", "results", "mqar-gpu.csv")
    assert mqar.estimate_seconds(runs, workers=4) < 5 * 60  # the profile's budget
    # the cluster cost table: per model, measured step times where stored, else the assumed 3 ms
    cost = {r["model"]: r for r in mqar.sweep_cost(runs, {"s6": {"ms_per_step": 6.0, "device": "H200",
                                                                  "date": "2026-11-29"}})}
    assert sum(r["runs"] for r in cost.values()) == len(runs) and set(cost) == {r["model"] for r in runs}
    s6 = [r for r in runs if r["model"] == "s6"]
    assert cost["s6"]["gpu_hours"] == pytest.approx(mqar.estimate_seconds(s6, 1, ms_at_reference=6.0) / 3600)
    assert cost["s6"]["source"] == "measured, H200, 2026-11-29"
    assert cost["ssd"]["ms_per_step"] == mqar.ASSUMED_MS_PER_STEP and cost["ssd"]["source"].startswith("assumed")
    assert cost["ssd"]["steps"] == sum(mqar.steps_of(r) for r in runs if r["model"] == "ssd")
    assert mqar.main(["--profile", "gpu", "--estimate-only"]) == 0
    assert "72 runs" in capsys.readouterr().out
    if not torch.cuda.is_available():
        assert mqar.main(["--profile", "gpu"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
