"""Positive controls per cell, the seeds replication, the --seeds option and the cpu profile's cost estimate."""
import math

import pytest

import dsflib.sweep
from dsflib.claims import replication
from dsflib.experiments import lra, mqar, wikitext
from dsflib.verdicts import Measure, control, failed_controls, make_verdict, untestable

T = (16, 4)


def _rows(acc, lrs=(3e-3,)):
    """MQAR result rows: ``acc`` maps (model, d, n) -> per-seed accuracies on the ci task."""
    return [dict(model=m, seq_len=T[0], num_kv_pairs=T[1], d_model=d, n=n, lr=lr, seed=s, num_test=500,
                 vocab_size=128, accuracy=a, device="cpu")
            for (m, d, n), values in acc.items() for s, a in enumerate(values) for lr in lrs]


def _by(table, model, what):
    hit = table[(table["model"] == model) & table["control"].str.contains(what)]
    assert len(hit) == 1, (model, what, table)
    return hit.iloc[0]


def test_mqar_control_table_per_model_and_width():
    acc = {("softmax", 64, 2): [0.999, 1.0, 0.998], ("softmax", 64, 32): [1.0, 1.0, 1.0],
           ("linear", 64, 2): [0.55, 0.56, 0.57], ("linear", 64, 32): [0.90, 0.91, 0.92],
           ("ssd", 64, 2): [0.80, 0.81, 0.82], ("ssd", 64, 8): [0.95, 0.96, 0.34],  # one seed on the plateau
           ("qlstm", 32, 2): [0.33, 0.34, 0.35]}
    t = mqar.control_table("ci", _rows(acc))
    assert list(t.columns) == ["model", "L", "KV", "d", "n", "control", "seeds", "passes"]
    assert _by(t, "softmax", "solves")["passes"] == True
    assert _by(t, "linear", "learns")["passes"] == True and _by(t, "linear", "binds")["passes"] == True
    assert _by(t, "linear", "binds")["seeds"].endswith("supported")
    ssd = _by(t, "ssd", "learns")
    assert ssd["passes"] == False and ssd["seeds"] == "2/3"  # every seed must leave the plateau
    assert _by(t, "qlstm", "learns")["passes"] == False
    assert "binds" not in " ".join(t[t["model"] == "qlstm"]["control"])  # one n: nothing to bind
    # softmax short of 0.99 on one seed at one n fails "solves at every n"
    short = mqar.control_table("ci", _rows(acc | {("softmax", 64, 2): [0.95, 1.0, 1.0]}))
    assert _by(short, "softmax", "solves")["passes"] == False and "n=2: 2/3" in _by(short, "softmax", "solves")["seeds"]
    assert mqar.control_table("ci", []).empty


def test_lra_and_wikitext_control_tables():
    rows = [dict(task="listops", model=m, seed=s, lr=1e-3, accuracy=a, num_test_examples=500, source="generated",
                 majority_rate=0.12)
            for m, accs in (("softmax", (0.30, 0.31, 0.29)), ("s6", (0.30, 0.11, 0.31))) for s, a in enumerate(accs)]
    t = lra.control_table("ci", rows)
    assert list(t.columns) == ["task", "model", "control", "seeds", "passes"]
    assert t.set_index("model").loc["softmax", "passes"] == True
    assert t.set_index("model").loc["s6", "passes"] == False and "2 of 3" in t.set_index("model").loc["s6", "seeds"]
    lm = [dict(model=m, seed=s, lr=3e-3, train_ppl=p, unigram_ppl=300.0, device="cpu")
          for m, ppls in (("softmax", (60, 61, 62)), ("linear", (80, 81, 82)), ("normalized", (70, 71, 72)))
          for s, p in enumerate(ppls)]
    w = wikitext.control_table("ci", lm)
    assert w["passes"].tolist() == [True, True, True, True]
    swapped = [dict(r, train_ppl=r["train_ppl"] + (40 if r["model"] == "softmax" else 0)) for r in lm]
    assert wikitext.control_table("ci", swapped)["passes"].tolist() == [True, True, True, False]


def test_failed_controls_name_the_untestable_claims():
    m = Measure("x", (0.9, 0.91, 0.92), floor=0.3, test_items=2000)
    from dsflib.verdicts import reaches

    ok = make_verdict("C7", [reaches(m, 0.5)], "cells", "numbers", controls=[control("a", True)], profile="ci")
    bad = make_verdict("C7", [reaches(m, 0.5)], "cells", "numbers", profile="ci",
                       controls=[control("softmax solves L=16", False, "1 of 3"), control("b", True)])
    assert failed_controls(ok) == [] and failed_controls(bad) == ["softmax solves L=16"]
    assert untestable([ok, bad]) == ["C7: untestable in profile ci - failed: softmax solves L=16"]
    with pytest.raises(TypeError, match="Verdict"):
        failed_controls("C7")


def test_replication_paths_comparison_and_flips():
    assert replication.replication_path("mqar").name == "mqar-ci-seeds-3-4-5.csv"
    assert replication.replication_path("wikitext").parts[-2:] == ("wikitext-ci-seeds-3-4-5", "runs.csv")
    with pytest.raises(ValueError, match="experiment"):
        replication.replication_path("imagenet")
    assert replication.is_flip("supported", "contradicted") and not replication.is_flip("supported", "inconclusive")
    a = mqar.paper_verdicts("ci", _rows({("softmax", 64, 32): [1.0, 1.0, 1.0]}))
    rows = replication.comparison(a, a)
    assert [r["claim"] for r in rows] == [v.claim.id for v in a] and not any(r["flip"] for r in rows)
    with pytest.raises(ValueError, match="same claim order"):
        replication.comparison(a, a[::-1])


def test_sweep_cli_runs_a_grid_at_other_seeds(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(dsflib.sweep, "run_sweep", lambda configs, fn, path, **kw: calls.append(configs) or [])
    assert mqar.main(["--profile", "ci", "--seeds", "3", "4", "--out", str(tmp_path / "r.csv")]) == 0
    assert {c["seed"] for c in calls[-1]} == {3, 4} and len(calls[-1]) == 2 * len(mqar.grid("ci", seed=0))
    with pytest.raises(SystemExit) as info:
        mqar.main(["--profile", "ci", "--seeds", "3", "3", "--estimate-only"])
    assert info.value.code == 2 and "--seeds must be distinct" in capsys.readouterr().err


def test_cpu_profile_estimate_rests_on_measured_runs(capsys):
    configs = mqar.grid("cpu")
    assert {c["vocab_size"] for c in configs} == {mqar.CPU_VOCAB} and {c["recipe"] for c in configs} == {"text"}
    assert {(c["seq_len"], c["num_kv_pairs"]) for c in configs} == {(64, 4), (128, 8)}
    assert len({c["lr"] for c in configs}) >= 2 and sorted({c["seed"] for c in configs}) == [0, 1, 2]
    measured = [dict(model="softmax", steps=100, batch_size=64, seq_len=64, d_model=64, wall_seconds=26.2144,
                     vocab_size=mqar.CPU_VOCAB),
                dict(model="linear", steps=100, batch_size=64, seq_len=64, d_model=64, wall_seconds="nan",
                     vocab_size=mqar.CPU_VOCAB),
                dict(model="linear", steps=100, batch_size=64, seq_len=64, d_model=64, wall_seconds=1.0,
                     vocab_size=8192)]  # another vocabulary: not used
    one = dict(model="softmax", epochs=1, num_train=6400, batch_size=64, seq_len=64, d_model=64,
               vocab_size=mqar.CPU_VOCAB)
    seconds, basis = mqar.cpu_core_seconds([one], measured)
    assert basis == 1 and seconds == pytest.approx(26.2144)  # 100 steps at the measured rate
    seconds, _ = mqar.cpu_core_seconds([dict(one, model="linear")], measured)  # not measured: the median
    assert seconds == pytest.approx(26.2144)
    assert math.isnan(mqar.cpu_core_seconds([one], [])[0])
    assert mqar.main(["--profile", "cpu", "--estimate-only"]) == 0
    assert "core-hours" in capsys.readouterr().out


def test_show_controls_counts_and_marks_each_control(capsys):
    import pandas as pd

    from dsflib.tables import show_controls

    show_controls(pd.DataFrame({"control": ["a", "b", "c"], "passes": [True, False, None]}), "Controls")
    out = capsys.readouterr().out
    assert "1 of 3 controls pass" in out and "| NO" in out and "n/a" in out and "yes" in out
    show_controls(pd.DataFrame({"control": [], "passes": []}), "Controls")
    assert "no control can be checked" in capsys.readouterr().out
