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
    assert len(seeds) >= 3 and len(lrs) >= 2  # the rule: >= 3 seeds, >= 2 learning rates per cell ...
    per_cell = Counter((r["model"], r["d_model"], r["n"]) for r in runs)
    # ... except S6, at its calibrated rate alone (the CI budget; see PROFILES["ci"])
    assert {c: k for c, k in per_cell.items() if c[0] != "s6"} == {c: len(seeds) * len(lrs)
                                                                 for c in per_cell if c[0] != "s6"}
    assert {k for c, k in per_cell.items() if c[0] == "s6"} == {len(seeds)}
    counts = Counter(m for m, _, _ in per_cell)
    assert counts == {"softmax": 3, "linear": 3, "normalized": 2, "ssd": 2, "s6": 2, "qlstm": 1, "qlstm_rev": 1,
                      "normalized_softplus": 1, "normalized_sigmoid": 1}
    assert {(r["seq_len"], r["num_kv_pairs"]) for r in runs} == {(16, 4)}
    assert all(r["threads"] == 1 and r["vocab_size"] == PROFILES["ci"]["vocab_size"] for r in runs)
    assert {mqar.steps_of(r) for r in runs} == {4000}
    # the smallest state binds: fewer key dimensions than pairs
    assert min(r["n"] for r in runs if r["model"] not in QLSTM) < min(r["num_kv_pairs"] for r in runs)
    # every figure has its points: n axis (softmax, linear), Fig. 2's n (five models), the qLSTMs,
    # the three normalizations in a common cell
    for model in ("softmax", "linear"):
        assert sorted({r["n"] for r in runs if r["model"] == model and r["d_model"] == 64}) == [2, 8, 32]
    for model in ("softmax", "linear", "normalized", "s6", "ssd"):
        assert {r["d_model"] for r in runs if r["model"] == model and r["n"] == 8} == {64}
    for model in QLSTM:
        assert {r["d_model"] for r in runs if r["model"] == model} == {32}
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


T = (16, 4)  # the ci task


@pytest.fixture(autouse=True)
def _figures_at_two_widths(monkeypatch):
    """The synthetic tables below place Fig. 1 and Fig. 2 at d = 32 and 64 (the rules' tests do not depend
    on which widths the ci profile runs)."""
    monkeypatch.setitem(PROFILES["ci"], "figures", dict(PROFILES["ci"]["figures"], fig1_d=[32, 64]))
SD = 0.005  # the seed-to-seed spread of the synthetic rows


def _seeds(a, k=3):
    """``k`` seeds around accuracy ``a`` with a sample spread of SD (piled at 1.0 for a perfect cell)."""
    return [min(a, 1.0)] * k if a >= 1.0 or k == 1 else [a - SD, a, a + SD][:k]


def _rows(acc, num_test=500, vocab=128):
    """Synthetic result rows: ``acc`` maps (model, L, KV, d, n) -> an accuracy (three seeds around it) or a
    list of per-seed accuracies (seed 0, 1, ...); NaN marks a diverged seed. Two learning rates per seed, the
    better one holding the given accuracy."""
    rows = []
    for (model, L, kv, d, n), values in acc.items():
        values = values if isinstance(values, (list, tuple)) else _seeds(values)
        for seed, a in enumerate(values):
            for lr, shift in ((1e-3, -0.2), (3e-3, 0.0)):
                rows.append(dict(model=model, seq_len=L, num_kv_pairs=kv, d_model=d, n=n, lr=lr, seed=seed,
                                 num_test=num_test, vocab_size=vocab, accuracy=a + shift if a == a else a,
                                 device="cpu"))
    return rows


def _verdicts(acc, **kwargs):
    return {v.claim.id: v for v in mqar.paper_verdicts("ci", _rows(acc, **kwargs))}


def _results(acc, **kwargs):
    return {c: (v.outcome, v.category) for c, v in _verdicts(acc, **kwargs).items()}


# softmax perfect (the control), linear attention better at larger n, normalized attention and SSD well above
# linear attention and S6, the qLSTM stuck on the no-binding plateau
BASE = {("softmax", *T, 32, 8): 1.0, ("softmax", *T, 32, 32): 1.0, ("softmax", *T, 64, 32): 1.0,
        ("linear", *T, 32, 8): 0.5, ("linear", *T, 32, 32): 0.8,
        ("normalized", *T, 32, 8): 0.9, ("s6", *T, 32, 8): 0.6, ("ssd", *T, 32, 8): 0.9,
        ("qlstm", *T, 16, 2): 0.34, ("qlstm_rev", *T, 16, 2): 0.9}
DECIDED = ("supported", "decided"), ("contradicted", "decided")


def test_verdicts_each_outcome_on_synthetic_tables():
    v = _verdicts(BASE)
    out = {c: (x.outcome, x.category) for c, x in v.items()}
    assert out["C1"] == DECIDED[0]          # linear 0.5 -> 0.8 with n: the gap to softmax shrinks
    assert out["C2"] == out["C3"] == DECIDED[0]  # normalized 0.9 vs linear 0.5 at (d=32, n=8)
    assert out["C4"] == DECIDED[0]          # SSD 0.9 vs S6 0.6
    assert out["C5"] == DECIDED[1]          # normalized 0.9 vs S6 0.6 is not "on par"
    assert out["C6"] == DECIDED[0]          # linear improves with n; the others ran at one n (not run)
    assert out["C7"] == DECIDED[0]          # softmax perfect at (d=64, n=32)
    assert out["C8"] == ("inconclusive", "did not learn")  # the qLSTM sits below the plateau
    assert out["C13"] == ("not tested", "not run")  # no softplus/sigmoid runs
    assert v["C6"].counts == "1/0/0 of 1 (+3 not run)" and v["C1"].counts == "1/0/0 of 1 (+1 not run)"
    assert all(x.quantifier == "all" and "FAILED" not in x.controls for c, x in v.items() if c != "C13")
    assert "softmax solves L=16 (n=32, d=64): passed" in v["C4"].controls
    assert "s6 learns at n=8 (L=16): passed" in v["C4"].controls
    assert v["C3"].seeds == "0, 1, 2" and v["C3"].device == "cpu" and v["C3"].profile == "ci"
    # every comparison the other way: linear worse at larger n, normalized below linear, SSD below S6, the
    # reversed-sigmoid qLSTM below the original
    worse = BASE | {("linear", *T, 32, 8): 0.8, ("linear", *T, 32, 32): 0.6, ("normalized", *T, 32, 8): 0.6,
                    ("s6", *T, 32, 8): 0.9, ("ssd", *T, 32, 8): 0.6, ("qlstm", *T, 16, 2): 0.9,
                    ("qlstm_rev", *T, 16, 2): 0.5}
    out = _results(worse)
    assert all(out[c] == DECIDED[1] for c in ("C1", "C2", "C3", "C4", "C5", "C6", "C8")), out
    # the three normalizations: exp above softplus and sigmoid supports C13, softplus above exp contradicts it
    norms = BASE | {("normalized_softplus", *T, 32, 8): 0.7, ("normalized_sigmoid", *T, 32, 8): 0.6}
    assert _results(norms)["C13"] == DECIDED[0]
    v = _verdicts(norms | {("normalized_softplus", *T, 32, 8): 0.95})
    assert (v["C13"].outcome, v["C13"].counts) == ("contradicted", "1/1/0 of 2")
    # the reversed-sigmoid qLSTM above a qLSTM that learned supports C8
    assert _results(BASE | {("qlstm", *T, 16, 2): 0.5})["C8"] == DECIDED[0]


def test_differences_inside_the_test_set_noise_are_inconclusive():
    # SSD 0.03 above S6; the seeds agree to 0.005, but each accuracy is measured on num_test x KV = 2000
    # queries (a binomial standard error of ~0.011): the difference is inside the noise
    close = BASE | {("ssd", *T, 32, 8): 0.63}
    m = mqar.cell_measures(_rows(close))[("ssd", 16, 4, 32, 8)]
    assert m.test_items == 500 * 4 and m.std == pytest.approx(SD)
    v = _verdicts(close)
    assert (v["C4"].outcome, v["C4"].category) == ("inconclusive", "inside the noise")
    assert "contains 0" in v["C4"].numbers
    # the same accuracies measured on ten times the queries: decided
    assert _results(close, num_test=5000)["C4"] == DECIDED[0]


def test_c5_on_par_is_tost_with_a_margin_of_five_points():
    from dsflib.claims.mqar import ON_PAR_MARGIN_C5

    assert ON_PAR_MARGIN_C5 == 0.05
    # normalized attention 0.9 against S6 0.01, 0.04 and 0.08 below it; num_test 5000 (20,000 queries)
    results = {gap: _verdicts(BASE | {("s6", *T, 32, 8): 0.9 - gap}, num_test=5000)["C5"] for gap in (0.01, 0.04, 0.08)}
    assert (results[0.01].outcome, results[0.01].category) == DECIDED[0]  # interval inside ±0.05
    assert (results[0.04].outcome, results[0.04].category) == ("inconclusive", "inside the noise")  # crosses 0.05
    assert (results[0.08].outcome, results[0.08].category) == DECIDED[1]  # entirely beyond 0.05
    assert all("TOST, margin ±0.05" in x.numbers for x in results.values())
    # S6 above normalized attention by as much: the margin is two-sided
    assert _results(BASE | {("s6", *T, 32, 8): 0.98}, num_test=5000)["C5"] == DECIDED[1]


def test_cells_below_the_measured_plateau_did_not_learn():
    # the plateau is the measured no-binding accuracy (~0.387 at L=16, KV=4, vocabulary 128), above the
    # 1/KV = 0.25 of a blind guess among the context's values
    level = mqar.plateau(16, 4, 128)
    assert level == pytest.approx(0.387, abs=0.01) and level > 1 / 4
    measures = mqar.cell_measures(_rows(BASE | {("s6", *T, 32, 8): 0.45}))
    stuck, learned = measures[("qlstm", 16, 4, 16, 2)], measures[("s6", 16, 4, 32, 8)]
    assert stuck.floor == learned.floor == level
    assert not stuck.learned() and stuck.learned_seeds() == 0  # 0.34: above 1/KV, below the plateau
    assert learned.learned() and learned.learned_seeds() == 3  # 0.45: beyond the plateau and its noise
    # a cell only just above the plateau (inside its measurement noise) has not left it either
    assert not mqar.cell_measures(_rows({("qlstm", *T, 16, 2): level + 0.01}))[("qlstm", 16, 4, 16, 2)].learned()
    # S6 stuck at 0.34 at its largest n: C4's and C5's control "S6 learns" fails
    v = _verdicts(BASE | {("s6", *T, 32, 8): 0.34})
    for c in ("C4", "C5"):
        assert (v[c].outcome, v[c].category) == ("inconclusive", "controls failed")
        assert "s6 learns at n=8 (L=16): FAILED" in v[c].controls
        assert "0 of 3 seeds above the plateau 0.387" in v[c].numbers
    # a majority of the seeds must leave the plateau: two of three stuck is not learned
    v = _verdicts(BASE | {("qlstm", *T, 16, 2): [0.34, 0.6, 0.34]})
    assert (v["C8"].outcome, v["C8"].category) == ("inconclusive", "did not learn")


def test_controls_softmax_solves_the_task():
    # softmax attention at 0.9 everywhere: the task is not solved by the recipe, so the claims comparing other
    # models cannot be asked; C7 (which is about softmax itself) is contradicted
    unsolved = BASE | {k: 0.9 for k in BASE if k[0] == "softmax"}
    v = _verdicts(unsolved)
    for c in ("C2", "C3", "C4", "C5", "C6", "C8"):
        assert (v[c].outcome, v[c].category) == ("inconclusive", "controls failed"), c
        assert v[c].numbers.startswith("controls failed: softmax solves L=16")
    assert (v["C1"].outcome, v["C1"].category) == ("inconclusive", "controls failed")
    assert "softmax reaches 0.99 at L=16, d=32, n=8: FAILED" in v["C1"].controls
    assert (v["C7"].outcome, v["C7"].category) == DECIDED[1]
    # softmax perfect at its largest n but not at n = 8: only C1 (perfect "throughout") loses its control
    v = _verdicts(BASE | {("softmax", *T, 32, 8): 0.9})
    assert (v["C1"].outcome, v["C1"].category) == ("inconclusive", "controls failed")
    assert v["C4"].outcome == "supported" and v["C7"].outcome == "supported"
    # no softmax run at all: the control cannot be evaluated, the claims are not decided
    v = _verdicts({k: a for k, a in BASE.items() if k[0] != "softmax"})
    assert (v["C4"].outcome, v["C4"].category) == ("inconclusive", "not run")
    assert "controls not evaluable: softmax solves L=16 (not run: softmax not run there)" in v["C4"].numbers
    assert v["C7"].outcome == "not tested"


def test_one_seed_needs_a_spread_pooled_over_the_models_other_cells():
    # SSD and S6 ran one seed of their only cell: no spread to judge the difference by
    single = BASE | {("ssd", *T, 32, 8): [0.9], ("s6", *T, 32, 8): [0.6]}
    v = _verdicts(single)
    assert (v["C4"].outcome, v["C4"].category) == ("inconclusive", "too few seeds")
    assert "one seed and no seed-spread estimate" in v["C4"].numbers and "FAILED" not in v["C4"].controls
    # three seeds of each at another n: their spread, pooled over each model's cells of the task, is attached
    # to the single-seed cells, which are then judged
    pooled = single | {("ssd", *T, 32, 2): 0.7, ("s6", *T, 32, 2): 0.5}
    m = mqar.cell_measures(_rows(pooled))[("ssd", 16, 4, 32, 8)]
    assert m.seeds == 1 and m.seed_sd == pytest.approx(SD) and m.seed_sd_df == 2
    assert _results(pooled)["C4"] == DECIDED[0]
    # a pooled spread as wide as the difference leaves it inside the noise
    wide = single | {("ssd", *T, 32, 2): [0.4, 0.7, 1.0], ("s6", *T, 32, 2): [0.2, 0.5, 0.8]}
    assert _results(wide)["C4"] == ("inconclusive", "inside the noise")
    # "perfect" (C7) needs three seeds (seeds piled at 1.0 hide their spread) or a pooled spread
    one_softmax = {k: ([1.0] if k[0] == "softmax" else a) for k, a in BASE.items()}
    v = _verdicts(one_softmax)
    assert (v["C7"].outcome, v["C7"].category) == ("inconclusive", "too few seeds")
    assert "one seed and no seed-spread estimate: softmax (L=16, d=64, n=32)" in v["C7"].numbers


def test_a_level_is_not_judged_on_two_seeds_piled_at_the_bound():
    # every softmax cell ran two seeds, both at 1.0: their spread says nothing about the true spread (the
    # reason reaches() asks for three seeds), so pooling the same piled cells must not stand in for it
    two = {k: ([1.0, 1.0] if k[0] == "softmax" else a) for k, a in BASE.items()}
    assert _results(two)["C7"] == ("inconclusive", "too few seeds")


def test_verdicts_use_seeds_nan_and_missing_cells():
    acc = {("softmax", *T, 64, 32): 1.0,
           ("ssd", *T, 32, 8): [0.9, 0.5, 0.7], ("s6", *T, 32, 8): [0.6, 0.8, 0.7],  # overlap: spread decides
           ("normalized", *T, 32, 8): [0.7, float("nan"), 0.72], ("linear", *T, 32, 8): [0.5, 0.52, 0.51]}
    v = {x.claim.id: x for x in mqar.paper_verdicts("ci", _rows(acc))}
    assert (v["C4"].outcome, v["C4"].category) == ("inconclusive", "inside the noise")
    # a diverged seed is left out of the spread, and two of three seeds that learned are a majority (the
    # cell learned) - but the control "normalized learns" asks for every seed, so it fails
    assert (v["C3"].outcome, v["C3"].category) == ("inconclusive", "controls failed")
    assert "normalized learns at n=8 (L=16): FAILED" in v["C3"].controls
    assert v["C3"].seeds == "0, 1, 2" and v["C3"].device == "cpu" and v["C3"].profile == "ci"
    m = mqar.cell_measures(_rows(acc))[("normalized", 16, 4, 32, 8)]
    assert m.seeds == 2 and math.isnan(m.values[1]) and m.learned()
    # every seed learned: the comparison is decided
    v = _verdicts(acc | {("normalized", *T, 32, 8): [0.7, 0.71, 0.72]})
    assert (v["C3"].outcome, v["C3"].category) == DECIDED[0]
    # every seed of SSD diverged: its comparison is not made, its control fails
    diverged = acc | {("ssd", *T, 32, 8): [float("nan")] * 3}
    v = {x.claim.id: x for x in mqar.paper_verdicts("ci", _rows(diverged))}
    assert v["C4"].outcome == "inconclusive" and "diverged on every seed: ssd" in v["C4"].numbers
    assert "ssd learns at n=8 (L=16): FAILED" in v["C4"].controls
    # cells that were not run: the claims that need them are not tested
    assert (v["C8"].outcome, v["C8"].category) == ("not tested", "not run")
    assert v["C6"].outcome == "not tested" and v["C1"].outcome == "not tested"
    empty = mqar.paper_verdicts("ci", [])
    assert {x.outcome for x in empty} == {"not tested"} and len(empty) == 9
    with pytest.raises(ValueError, match="columns"):
        mqar.cell_measures([{"model": "s6"}])
    with pytest.raises(ValueError, match="profile"):
        mqar.paper_verdicts("gpu-huge", [])


def test_c7_uses_the_papers_grid_and_exempts_its_exception():
    from dsflib.claims import mqar as rules
    from dsflib.verdicts import Measure

    perfect, failing = (1.0, 1.0, 1.0), (0.495, 0.5, 0.505)

    def c7(cells):
        measures = {("softmax", *cell): Measure(f"softmax {cell}", values, floor=0.0, test_items=3000 * cell[1])
                    for cell, values in cells.items()}
        v = rules.c7(rules.Cells(measures, {}, {}))
        return v.outcome, v.category, v.counts

    inside = {(64, 4, 64, 32): perfect, (512, 64, 128, 64): perfect}
    assert c7(inside) == ("supported", "decided", "2/0/0 of 2")
    # failing cells outside the grid (d < 64 or n < 32) and the exception (L=512, KV=64, d=64, n=32) are left out
    outside = {(64, 4, 32, 32): failing, (64, 4, 64, 16): failing, (512, 64, 64, 32): failing}
    assert c7(inside | outside) == ("supported", "decided", "2/0/0 of 2")
    # the exception holds on its task only, and only at or below its d and n
    for cell in ((256, 16, 64, 32), (512, 64, 128, 32), (512, 64, 64, 64)):
        assert c7(inside | outside | {cell: failing}) == ("contradicted", "decided", "2/1/0 of 3"), cell
    # softmax close to perfect but its interval not above 0.99 is not decided
    assert c7(inside | {(64, 4, 128, 32): (0.985, 0.99, 0.995)})[:2] == ("inconclusive", "inside the noise")
    # two seeds piled at 1.0 show no spread: reaching a level needs three (or a pooled spread)
    assert c7(inside | {(64, 4, 128, 32): (1.0, 1.0)}) == ("inconclusive", "too few seeds", "2/0/1 of 3")
    # only cells outside the grid: not tested
    assert c7(outside)[:2] == ("not tested", "not run")


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
