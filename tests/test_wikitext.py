"""WikiText data: where files are found (argument, DSF_DATA_DIR, both file namings), the word vocabulary,
packing into shifted blocks, and the experiment: the paper profile's App. J.3 settings, the models, matched
widths, the learning-rate sweep, epochs to steps, the unigram perplexity, one tiny run on local text, and the gpu
profile (a larger WikiText-2 stand-in, three seeds, its budget, where its results and checkpoints go, the CLI)."""
import math
import sys

import pytest
import torch

from dsflib.data import wikitext as wt
from dsflib.experiments import wikitext as exp
from dsflib.sweep import run_id

TRAIN = ["", " = Title = ", "", "the cat sat on the mat .", "the dog sat on the log .", "a cat and a dog ."]
VALID = ["the cat saw a bird .", "zebra"]


def write_release(root, name="wikitext-103", short=False):
    folder = root / name
    folder.mkdir(parents=True)
    for split, lines in (("train", TRAIN), ("valid", VALID), ("test", VALID[::-1])):
        file_name = f"{split}.txt" if short else f"wiki.{split}.tokens"
        (folder / file_name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_data_root_prefers_argument_then_environment_then_the_repository(tmp_path, monkeypatch):
    monkeypatch.delenv(wt.ENV_VAR, raising=False)
    assert wt.data_root() == wt.REPO_ROOT / "data"
    monkeypatch.setenv(wt.ENV_VAR, str(tmp_path / "env"))
    assert wt.data_root() == tmp_path / "env"
    assert wt.data_root(tmp_path / "arg") == tmp_path / "arg"


@pytest.mark.parametrize("short", [False, True])
def test_local_files_are_read_line_by_line_under_both_namings(tmp_path, monkeypatch, short):
    write_release(tmp_path, short=short)
    monkeypatch.setenv(wt.ENV_VAR, str(tmp_path))
    splits = wt.load_wikitext("wikitext-103", ["train", "valid"])
    assert splits["train"] == TRAIN and splits["valid"] == VALID
    assert wt.available("wikitext-103", ["train", "test"]) == {"train": True, "test": True}
    assert wt.split_path("wikitext-2", "train") is None


def test_missing_data_without_datasets_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(wt.WikiTextUnavailable, match="datasets"):
        wt.load_wikitext("wikitext-103", ["train"], data_dir=tmp_path)
    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "valid.txt").write_text("a b\n")
    with pytest.raises(wt.WikiTextUnavailable, match="test"):
        wt.load_wikitext("wikitext-2", ["valid", "test"], data_dir=tmp_path, source="local")


def test_load_rejects_bad_names():
    with pytest.raises(ValueError, match="name"):
        wt.load_wikitext("wikitext-3")
    with pytest.raises(ValueError, match="split"):
        wt.load_wikitext("wikitext-2", ["training"])
    with pytest.raises(TypeError, match="splits"):
        wt.load_wikitext("wikitext-2", "train")
    with pytest.raises(ValueError, match="source"):
        wt.load_wikitext("wikitext-2", ["train"], source="web")


def test_word_vocab_orders_by_frequency_and_appends_eos_per_line():
    vocab = wt.WordVocab.build(TRAIN)
    assert vocab.words[:2] == [wt.UNK, wt.EOS]
    # "the" (4) is the most frequent word, then "." (3), then the words seen twice in character order
    assert vocab.words[2:4] == ["the", "."] and vocab.words[4:10] == ["=", "a", "cat", "dog", "on", "sat"]
    assert len(vocab) == 2 + 12  # 12 distinct words
    ids = vocab.encode(["the cat", "", "zebra"])
    assert vocab.decode(ids) == ["the", "cat", wt.EOS, wt.EOS, wt.UNK, wt.EOS]
    assert vocab.encode(TRAIN).numel() == sum(len(line.split()) + 1 for line in TRAIN)
    assert wt.WordVocab.from_json(vocab.to_json()).words == vocab.words


def test_word_vocab_cap_maps_rare_words_to_unk():
    vocab = wt.WordVocab.build(TRAIN, max_size=4)
    assert vocab.words == [wt.UNK, wt.EOS, "the", "."]
    ids = vocab.encode(["the cat ."])
    assert ids.tolist() == [2, 0, 3, 1]
    assert vocab.coverage(["the cat ."]) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="max_size"):
        wt.WordVocab.build(TRAIN, max_size=2)
    with pytest.raises(TypeError, match="lines"):
        vocab.encode("the cat")
    with pytest.raises(ValueError, match="ids"):
        vocab.decode([4])


def test_pack_blocks_shifts_targets_and_drops_the_remainder():
    ids = torch.arange(23)
    inputs, targets = wt.pack_blocks(ids, 4)
    assert inputs.shape == targets.shape == (4, 4)  # 23 // 5 = 4 blocks of 5 tokens, 3 dropped
    assert torch.equal(inputs[1], torch.tensor([5, 6, 7, 8])) and torch.equal(targets[1], torch.tensor([6, 7, 8, 9]))
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert int(targets.max()) == 19 and inputs.dtype == torch.long
    with pytest.raises(ValueError, match="block"):
        wt.pack_blocks(torch.arange(4), 4)
    with pytest.raises(ValueError, match="1-d integer"):
        wt.pack_blocks(torch.zeros(10), 2)
    with pytest.raises(TypeError, match="ids"):
        wt.pack_blocks([1, 2, 3], 1)


def test_build_tokenizer_choices():
    assert isinstance(wt.build_tokenizer("word", TRAIN, 10), wt.WordVocab)
    with pytest.raises(ValueError, match="train_lines"):
        wt.build_tokenizer("word")
    with pytest.raises(ValueError, match="kind"):
        wt.build_tokenizer("bpe")


def test_gpt2_tokenizer_when_tiktoken_has_its_files():
    pytest.importorskip("tiktoken")
    try:
        tok = wt.GPT2BPE()
    except Exception as error:  # tiktoken present but its GPT-2 files cannot be fetched offline
        pytest.skip(f"GPT-2 vocabulary not available offline: {error}")
    ids = tok.encode(["hello world"])
    assert tok.vocab_size == 50257 and tok.decode(ids) == "hello world\n"


@pytest.mark.parametrize("model", sorted(exp.MODELS))
def test_every_model_is_a_causal_lm(model):
    net = exp.build_model(model, 8, vocab_size=20, block_len=6, n=4, heads=2, n_layers=1, mlp_mult=2)
    x = torch.randint(0, 20, (2, 6))
    logits = net(x)
    assert logits.shape == (2, 6, 20)
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 20  # changing the last token must not change earlier predictions
    assert torch.allclose(net(x2)[:, :-1], logits[:, :-1], atol=1e-5)
    assert (net.pos is not None) == exp.MODELS[model][2]
    assert exp.count_parameters(model, 8, vocab_size=20, block_len=6, n=4, heads=2, n_layers=1,
                                mlp_mult=2) == net.num_parameters()


@pytest.mark.parametrize("profile", ["ci", "gpu", "paper"])
def test_matched_widths_are_within_two_percent(profile):
    widths = exp.matched_widths(profile)
    assert set(widths) == set(exp.PROFILES[profile]["models"])
    assert widths["softmax"]["d_model"] == exp.PROFILES[profile]["d_model"]
    for row in widths.values():
        assert abs(row["relative_difference"]) < 0.02
        assert row["d_model"] % exp.PROFILES[profile]["width_step"] == 0
    if profile == "paper":
        assert 65e6 < widths["softmax"]["num_parameters"] < 75e6  # "the 70M parameter Pythia architecture"
        assert {row["d_model"] for row in widths.values()} == {512}  # the three attention models at Pythia's width


def test_paper_profile_follows_appendix_j3():
    p = exp.PROFILES["paper"]
    assert p["models"] == ["softmax", "linear", "normalized"] == list(exp.PAPER_MODELS)  # "the three attention"
    assert (p["d_model"], p["heads"], p["n_layers"], p["block_len"]) == (512, 8, 6, 1024)
    assert (p["batch_size"], p["epochs"], p["steps"], p["warmup_fraction"]) == (128, 50, None, 0.1)
    assert p["lr"] == 3e-3 and tuple(p["lr_sweep"]) == (3e-4, 1e-3, 3e-3, 1e-2)
    assert p["dataset"] == "wikitext-103" and p["train_split"] == "train"
    assert all(exp.MODELS[m][2] for m in exp.PAPER_MODELS)  # positional embeddings for all three
    assert "our addition" in exp.LABELS["s6"] and "s6" in exp.PROFILES["ci"]["models"]


def test_grid_has_one_run_per_model_and_applies_overrides():
    runs = exp.grid("ci", seed=3, steps=7)
    assert [r["model"] for r in runs] == exp.PROFILES["ci"]["models"]
    assert all(r["seed"] == 3 and r["steps"] == 7 and r["dataset"] == "wikitext-2" for r in runs)
    assert {r["train_split"] for r in runs} == {"valid"} and {r["eval_split"] for r in runs} == {"test"}
    with pytest.raises(ValueError, match="overrides"):
        exp.grid("ci", learning_rate=1)
    with pytest.raises(ValueError, match="profile"):
        exp.grid("big")
    with pytest.raises(ValueError, match="steps or epochs"):
        exp.grid("paper", epochs=None)


def test_lr_sweep_gives_one_run_per_model_and_learning_rate():
    default = exp.grid("paper")
    assert [(r["model"], r["lr"]) for r in default] == [(m, 3e-3) for m in exp.PAPER_MODELS]
    sweep = exp.grid("paper", lr_sweep=True)
    assert [(r["model"], r["lr"]) for r in sweep] == [(m, lr) for m in exp.PAPER_MODELS for lr in exp.PAPER_LR_SWEEP]
    assert {run_id(c) for c in default} <= {run_id(c) for c in sweep}  # the default run is one of the sweep's
    assert exp.grid("paper", models=["s6"])[0]["d_model"] == exp.matched_widths(
        {**exp.PROFILES["paper"], "models": ["s6"]})["s6"]["d_model"]


def test_epochs_become_steps_with_a_ten_percent_warm_up():
    paper = exp.grid("paper")[0]
    assert exp.resolve_schedule(paper, train_blocks=1000) == (50 * 7, 35)  # 1000 // 128 = 7 full batches
    ci = exp.grid("ci")[0]
    steps = exp.PROFILES["ci"]["steps"]
    assert exp.resolve_schedule(ci, train_blocks=3000) == (steps, round(steps / 10))  # steps set: epochs ignored
    with pytest.raises(ValueError, match="exceeds"):
        exp.resolve_schedule(paper, train_blocks=100)
    with pytest.raises(ValueError, match="warmup_fraction"):
        exp.resolve_schedule({**ci, "warmup_fraction": 1.0}, train_blocks=3000)


def test_unigram_perplexity_is_exp_of_the_token_entropy():
    assert exp.unigram_perplexity(torch.tensor([0, 1, 2, 3])) == pytest.approx(4.0)
    assert exp.unigram_perplexity(torch.tensor([[5, 5], [5, 5]]), vocab_size=10) == pytest.approx(1.0)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert exp.unigram_perplexity(torch.tensor([0, 0, 1, 2])) == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    with pytest.raises(TypeError, match="integer"):
        exp.unigram_perplexity(torch.zeros(3))


def test_one_tiny_run_on_local_text(tmp_path):
    lines = [" ".join(f"w{(i * 7 + j) % 13}" for j in range(12)) for i in range(60)]
    write = tmp_path / "data" / "wikitext-2"
    write.mkdir(parents=True)
    (write / "valid.txt").write_text("\n".join(lines) + "\n")
    (write / "test.txt").write_text("\n".join(lines[:20]) + "\n")
    config = exp.grid("ci", models=["linear"], steps=6, eval_every=3, checkpoint_every=3, batch_size=4,
                      block_len=8, max_vocab=32, vocab_size=32, warmup_fraction=0.3)[0]
    metrics = exp.run_wikitext(config, data_dir=str(tmp_path / "data"), out_dir=tmp_path / "out")
    assert set(exp.METRICS) <= set(metrics)
    assert metrics["steps_done"] == 6 and metrics["tokens"] == 6 * 4 * 8 and metrics["vocab_size"] == 15  # 13 words + 2
    assert metrics["valid_ppl"] == pytest.approx(math.exp(metrics["valid_loss"]))
    assert metrics["warmup_steps"] == 2 and metrics["train_blocks"] == 60 * 13 // 9  # 780 tokens in blocks of 9
    assert metrics["epochs_done"] == pytest.approx(6 * 4 / metrics["train_blocks"])
    assert 1 < metrics["train_ppl"] < metrics["unigram_ppl"] * 1.5 and metrics["unigram_ppl"] <= 15
    assert 1 < metrics["valid_ppl"] < 15 * 1.5  # finite, and not far worse than uniform over the vocabulary
    curve = (tmp_path / "out" / metrics["curve"]).read_text().splitlines()
    assert curve[0].startswith("run_id,model,peak_lr,step") and len(curve) == 3  # evaluations at steps 3 and 6
    assert (tmp_path / "out" / "checkpoints").is_dir()


def test_gpu_profile_is_a_larger_stand_in_within_its_budget():
    gpu, ci = exp.PROFILES["gpu"], exp.PROFILES["ci"]
    assert (gpu["dataset"], gpu["train_split"], gpu["eval_split"]) == ("wikitext-2", "valid", "test")  # shipped files
    assert gpu["models"] == list(exp.PAPER_MODELS) and exp.seeds_of("gpu") == [0, 1, 2]
    assert exp.seeds_of("ci") == [0, 1] and exp.seeds_of("paper") == [0]
    assert gpu["d_model"] > ci["d_model"] and gpu["n_layers"] > ci["n_layers"]
    tokens = {name: q["steps"] * q["batch_size"] * q["block_len"] for name, q in (("gpu", gpu), ("ci", ci))}
    assert tokens["gpu"] > 2 * tokens["ci"]  # more training tokens per run
    assert gpu["block_len"] > ci["block_len"] and gpu["lr"] == 3e-3 and gpu["warmup_fraction"] == 0.1
    widths = exp.matched_widths("gpu")
    assert widths["softmax"]["num_parameters"] > 10 * exp.matched_widths("ci")["softmax"]["num_parameters"]
    runs = [c for seed in exp.seeds_of("gpu") for c in exp.grid("gpu", seed=seed)]
    assert len(runs) == 9 and {(r["model"], r["seed"]) for r in runs} == {
        (m, s) for m in exp.PAPER_MODELS for s in (0, 1, 2)}
    assert len({run_id(c) for c in runs}) == 9
    assert exp.estimate_seconds(runs) <= 2 * 60  # the profile's budget
    assert exp.estimate_seconds(runs) > exp.estimate_seconds(runs[:3]) > 0 == exp.estimate_seconds([])
    with pytest.raises(ValueError, match="steps"):
        exp.run_seconds(exp.grid("paper")[0])
    # the stored results: runs.csv and curves tracked in book/results/, checkpoints always in _build/
    assert exp.results_path("gpu").parts[-4:] == ("book", "results", "wikitext-gpu", "runs.csv")
    assert exp.checkpoints_dir("gpu").parts[-4:] == ("_build", "results", "wikitext-gpu", "checkpoints")
    assert exp.results_path("ci").parts[-4:] == ("_build", "results", "wikitext-ci", "runs.csv")
    assert exp.checkpoints_dir("ci") == exp.results_dir("ci") / "checkpoints"  # ci: where it always was
    with pytest.raises(ValueError, match="profile"):
        exp.checkpoints_dir("gpu-huge")


def test_gpu_runs_keep_their_checkpoints_out_of_the_book(tmp_path, monkeypatch):
    lines = [" ".join(f"w{(i * 5 + j) % 11}" for j in range(10)) for i in range(40)]
    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    (data / "valid.txt").write_text("\n".join(lines) + "\n")
    (data / "test.txt").write_text("\n".join(lines[:10]) + "\n")
    monkeypatch.setattr(exp, "REPO_ROOT", tmp_path / "repo")
    config = exp.grid("gpu", models=["softmax"], steps=2, eval_every=2, checkpoint_every=2, batch_size=2,
                      block_len=8, max_vocab=16, vocab_size=16, d_model=16, width_step=2, heads=2, n_layers=1)[0]
    metrics = exp.run_wikitext(dict(config, device="cpu"), data_dir=str(tmp_path / "data"))
    book = tmp_path / "repo" / "book" / "results" / "wikitext-gpu"
    assert (book / metrics["curve"]).is_file() and not (book / "checkpoints").exists()
    assert any((tmp_path / "repo" / "_build" / "results" / "wikitext-gpu" / "checkpoints").iterdir())


def test_cli_prints_the_estimate_and_refuses_the_gpu_profile_without_cuda(capsys):
    assert exp.main(["--profile", "gpu", "--estimate-only"]) == 0
    out = capsys.readouterr().out
    assert "WikiText gpu: 9 runs" in out and "stand-in" in out and "seeds [0, 1, 2]" in out and "estimated" in out
    assert exp.main(["--profile", "ci", "--estimate-only"]) == 0
    assert "WikiText ci: 8 runs" in capsys.readouterr().out  # 4 models x 2 seeds
    assert exp.main(["--profile", "paper", "--estimate-only"]) == 0
    assert "no time estimate" in capsys.readouterr().out  # epochs: the steps follow from the data
    if not torch.cuda.is_available():
        assert exp.main(["--profile", "gpu"]) == 2
        captured = capsys.readouterr()
        assert "needs a CUDA GPU" in captured.err and "estimated" in captured.out  # the estimate comes first


def test_ci_profile_runs_the_four_models_at_two_seeds_and_labels_the_stand_in():
    ci = exp.PROFILES["ci"]
    assert ci["models"] == [*exp.PAPER_MODELS, "s6"] and ci["lr"] == 3e-3 and ci["warmup_fraction"] == 0.1
    assert (ci["dataset"], ci["train_split"], ci["eval_split"]) == ("wikitext-2", "valid", "test")
    assert ci["steps"] > 400 and ci["threads"] == 1  # more steps than the former one-seed profile
    runs = [c for seed in exp.seeds_of("ci") for c in exp.grid("ci", seed=seed)]
    per_model = {m: sorted(r["seed"] for r in runs if r["model"] == m) for m in ci["models"]}
    assert per_model == {m: [0, 1] for m in ci["models"]}
    assert len({run_id(c) for c in runs}) == 8  # the seeds are different runs
    assert {r["steps"] for r in runs} == {ci["steps"]}
    assert ci["steps"] // ci["eval_every"] >= 4  # a curve with several points


def test_resolve_seeds_defaults_to_the_profile_and_checks_its_argument():
    assert exp.resolve_seeds("ci") == [0, 1] and exp.resolve_seeds("gpu") == [0, 1, 2]
    assert exp.resolve_seeds("paper") == [0] and exp.resolve_seeds("ci", (3,)) == [3]
    with pytest.raises(TypeError, match="seeds"):
        exp.resolve_seeds("ci", 0)
    for bad in ([], [0, 0], [-1], [1.0], [True]):
        with pytest.raises(ValueError, match="seeds"):
            exp.resolve_seeds("ci", bad)
    with pytest.raises(ValueError, match="profile"):
        exp.resolve_seeds("big", [0])


def run_rows():
    """Synthetic runs: three models at two seeds, linear also at a second learning rate; s6 seed 1 diverged."""
    rows = []
    for model, lr, seed, train, valid in [
        ("softmax", 3e-3, 0, 200.0, 150.0), ("softmax", 3e-3, 1, 204.0, 154.0),
        ("linear", 3e-3, 0, 300.0, 250.0), ("linear", 3e-3, 1, 310.0, 258.0),
        ("linear", 1e-2, 0, 280.0, 240.0), ("linear", 1e-2, 1, float("nan"), float("nan")),
        ("s6", 3e-3, 0, 150.0, 120.0), ("s6", 3e-3, 1, float("nan"), float("nan")),
    ]:
        rows.append({"model": model, "lr": lr, "seed": seed, "train_ppl": train, "valid_ppl": valid})
    return rows


def test_best_per_seed_keeps_the_best_learning_rate_of_each_model_and_seed():
    best = exp.best_per_seed(run_rows())
    assert list(zip(best["model"], best["seed"])) == [("softmax", 0), ("softmax", 1), ("linear", 0), ("linear", 1),
                                                      ("s6", 0), ("s6", 1)]  # MODELS order, then seed
    linear = best[best["model"] == "linear"].set_index("seed")
    assert linear.loc[0, "lr"] == 1e-2 and linear.loc[0, "train_ppl"] == 280.0  # the better lr for seed 0
    assert linear.loc[1, "lr"] == 3e-3 and linear.loc[1, "train_ppl"] == 310.0  # 1e-2 diverged for seed 1
    assert math.isnan(best[(best["model"] == "s6") & (best["seed"] == 1)]["train_ppl"].item())  # kept, diverged
    with pytest.raises(ValueError, match="train_ppl"):
        exp.best_per_seed([{"model": "linear", "seed": 0, "lr": 3e-3}])
    with pytest.raises(ValueError, match="model"):
        exp.best_per_seed([{"model": "gpt", "seed": 0, "lr": 3e-3, "train_ppl": 3.0}])
    with pytest.raises(ValueError, match="seed"):
        exp.best_per_seed([{"model": "linear", "seed": "", "lr": 3e-3, "train_ppl": 3.0}])


def test_seed_summary_gives_mean_std_and_n_seeds_per_model():
    summary = exp.seed_summary(exp.best_per_seed(run_rows())).set_index("model")
    assert list(summary.index) == ["softmax", "linear", "s6"] and tuple(summary.reset_index().columns) == exp.SUMMARY_COLUMNS
    assert summary.loc["softmax", "n_seeds"] == 2 and summary.loc["softmax", "diverged"] == 0
    assert summary.loc["softmax", "train_ppl_mean"] == pytest.approx(202.0)
    assert summary.loc["softmax", "train_ppl_std"] == pytest.approx(4 / math.sqrt(2))  # sample std of two values
    assert summary.loc["softmax", "valid_ppl_mean"] == pytest.approx(152.0)
    assert (summary.loc["linear", "train_ppl_min"], summary.loc["linear", "train_ppl_max"]) == (280.0, 310.0)
    assert summary.loc["linear", "lrs"] == "0.01/0.003"
    assert summary.loc["s6", "n_seeds"] == 1 and summary.loc["s6", "diverged"] == 1
    assert summary.loc["s6", "train_ppl_mean"] == 150.0 and math.isnan(summary.loc["s6", "train_ppl_std"])
    with pytest.raises(TypeError, match="best"):
        exp.seed_summary(run_rows())
    with pytest.raises(ValueError, match="valid_ppl"):
        exp.seed_summary(exp.best_per_seed(run_rows()).drop(columns="valid_ppl"))


def test_ordering_uses_the_means_and_ties_differences_inside_the_seed_spread():
    import pandas as pd

    def summary(values):  # model -> per-seed training perplexities
        rows = [{"model": m, "lr": 3e-3, "seed": s, "train_ppl": v, "valid_ppl": v}
                for m, vs in values.items() for s, v in enumerate(vs)]
        return exp.seed_summary(exp.best_per_seed(pd.DataFrame(rows)))

    apart = exp.ordering(summary({"linear": [300.0, 302.0], "softmax": [200.0, 202.0], "s6": [250.0, 252.0]}))
    assert apart == "softmax attention 201.0 ± 1.4 < S6 (our addition) 251.0 ± 1.4 < linear attention 301.0 ± 1.4"
    close = summary({"linear": [200.0, 230.0], "softmax": [205.0, 215.0]})  # means 215 and 210, std 21.2 and 7.1
    assert exp.ordering(close) == "softmax attention 210.0 ± 7.1 ≈ linear attention 215.0 ± 21.2"
    assert exp.ordering(close, "valid_ppl").startswith("softmax attention 210.0")
    one = summary({"linear": [204.0], "softmax": [200.0], "s6": [300.0]})  # one seed: the 3 % reading aid
    assert exp.ordering(one) == ("softmax attention 200.0 (one seed) ≈ linear attention 204.0 (one seed) "
                                 "< S6 (our addition) 300.0 (one seed)")
    with pytest.raises(ValueError, match="metric"):
        exp.ordering(close, "train_loss")
    with pytest.raises(ValueError, match="summary"):
        exp.ordering(close.drop(columns="train_ppl_std"))


def test_record_result_writes_the_row_run_sweep_writes(tmp_path):
    """The torchrun path (one writer, no run_sweep) stores a run as a sweep does."""
    from dsflib.sweep import read_results, row_contents, run_sweep

    config, metrics = {"model": "softmax", "seed": 0}, {"train_ppl": 3.0, "device": "cpu (test)"}
    exp.record_result(tmp_path / "cli.csv", config, metrics, 1.5)
    run_sweep([config], lambda c: dict(metrics), tmp_path / "sweep.csv", progress=False)
    assert row_contents(read_results(tmp_path / "cli.csv")) == row_contents(read_results(tmp_path / "sweep.csv"))


def test_cli_runs_only_what_the_results_table_lacks(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    configs = exp.grid("ci", seed=0)
    ran = []
    monkeypatch.setattr(exp, "results_path", lambda profile: path)
    monkeypatch.setattr(exp, "run_wikitext", lambda config, **kw: ran.append(config["model"]) or {"x": 1})
    monkeypatch.setattr(exp, "record_result", lambda *a, **kw: None)
    monkeypatch.setattr(exp, "read_results", lambda p: [{"run_id": run_id(configs[0])}])
    monkeypatch.setattr(exp, "init_distributed", lambda device: type("Ctx", (), {"is_main": False})())
    assert exp.main(["--profile", "ci", "--seed", "0"]) == 0
    assert ran == [c["model"] for c in configs[1:]]  # the first one is stored: not run again
