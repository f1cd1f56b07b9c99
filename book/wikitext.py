# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Experiment: language modelling on WikiText
#
# MQAR ({doc}`mqar`) isolates one skill, recall from the state. The paper's last comparison asks the
# broader question: trained as ordinary causal language models at the same parameter count, how do
# linear attention, normalized attention (the paper's proposed variant, {doc}`normalized_attention`),
# softmax attention and S6 ({doc}`s6`) compare in perplexity? The paper trains models of about 70
# million parameters on WikiText-103 and reports their **training** perplexity.
#
# What we know of the paper's setup and what we do not (paper notes §4.3, §5): the model size
# (~70M) and the metric are confirmed; the exact architecture and optimizer settings are not, so the
# `paper` profile below uses the settings of the authors' follow-up repository as a **proxy**. The
# paper's perplexity numbers are **not known to us**: they are in a table of the PDF we could not
# read. This chapter therefore reports only our own numbers and never places a paper number next to
# them.
#
# Two profiles:
#
# * `paper` — WikiText-103, GPT-2 BPE tokens, blocks of 1024, 6 layers of width 512, 130k steps:
#   needs a GPU (and several, through `torchrun`, to be practical) and the dataset;
# * `ci` — a **stand-in** that runs on two CPU cores in a few minutes: the offline WikiText-2 files,
#   training on its *validation* split and evaluating on its *test* split (WikiText-2's training split
#   is not available offline), a word vocabulary, blocks of 64 tokens and 2 narrow layers. Its numbers
#   say how these tiny models compare on 0.2M tokens, not how the paper's models compare.

# %% tags=["parameters"]
profile = "ci"  # "ci": WikiText-2 stand-in on 2 CPU cores (a few minutes); "paper": WikiText-103, ~70M params (GPU)
seed = 0

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from dsflib.data import wikitext as wt
from dsflib.env import REPO_ROOT, run_info, run_label, select_profile
from dsflib.experiments import wikitext as lm_exp
from dsflib.plotting import caption
from dsflib.sweep import read_results, run_id, run_sweep
from dsflib.tables import save_table

settings = select_profile(profile, {
    "ci": dict(workers=2, run=True),
    "paper": dict(workers=1, run=torch.cuda.is_available()),
})
p = lm_exp.PROFILES[profile]
info = run_info(profile, seed)
label = run_label(info)
print(label)
print({k: p[k] for k in ("dataset", "train_split", "eval_split", "tokenizer", "max_vocab", "block_len", "steps",
                         "batch_size", "lr")})

# %% [markdown]
# ## The data
#
# `dsflib.data.wikitext` reads WikiText from the data directory (`DSF_DATA_DIR`, by default
# `../shared/data` next to the repository: `wikitext-103/wiki.{train,valid,test}.tokens` or
# `wikitext-2/{valid,test}.txt`), or, when the files are not there, through Hugging Face `datasets`.
# The word tokenizer is the classic one for WikiText: the text is already tokenized and rare words are
# already `<unk>`, so a token is a whitespace-separated word, and every line ends with `<eos>`. The
# vocabulary is built from the training split only. The `ci` profile keeps its 4096 most frequent
# words (the rest become `<unk>`) so that the embedding table does not dwarf the tiny models. The
# token stream of each split is cut into blocks of `block_len + 1` tokens: the model reads the first
# `block_len` and predicts each next one.

# %%
splits = (p["train_split"], p["eval_split"])
on_disk = wt.available(p["dataset"], splits)
have_data = all(on_disk.values())
data_note = ""
if have_data:
    start = time.perf_counter()
    train_blocks, eval_blocks, tokenizer, counts = lm_exp.prepare_data(
        p["dataset"], p["train_split"], p["eval_split"], p["tokenizer"], p["max_vocab"], p["block_len"])
    print(f"read, tokenized and packed in {time.perf_counter() - start:.1f} s from {wt.data_root() / p['dataset']}")
    rows = []
    for role, split, blocks in (("training", p["train_split"], train_blocks), ("evaluation", p["eval_split"], eval_blocks)):
        ids = torch.cat([blocks[0][:, :1], blocks[1]], 1).flatten()
        rows.append({"role": role, "split": split, "tokens": counts[split], "blocks": blocks[0].shape[0],
                     "block_len": blocks[0].shape[1], "<unk> share": f"{(ids == 0).float().mean().item():.3f}"})
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"tokenizer: {p['tokenizer']}, vocabulary {tokenizer.vocab_size}")
    assert tokenizer.vocab_size == p["vocab_size"], "the parameter counts below assume the profile's vocabulary size"
    if p["tokenizer"] == "word":
        print("first block of the training data:", " ".join(tokenizer.decode(train_blocks[0][0][:40])), "...")
else:
    data_note = f"{p['dataset']} files not found in this execution"
    print(f"The {p['dataset']} files for the splits {list(splits)} are not on disk under {wt.data_root()}/"
          f"{p['dataset']}/ ({on_disk}). Nothing is trained here; the rest of the chapter shows stored results "
          f"only. Place the files there (or set {wt.ENV_VAR}), or run the CLI with Hugging Face `datasets` "
          "installed and network access.")

# %%
if profile == "ci":
    data_note = "WikiText-2 stand-in: trained on valid.txt, evaluated on test.txt" + (f"; {data_note}" if data_note else "")
print(data_note)

# %% [markdown]
# ## The models, at matched parameter counts
#
# Every model is the same network around a different token mixer: token embedding, `n_layers`
# pre-norm residual blocks of (mixer, 4× GELU MLP), a final norm and the output layer. Softmax and
# linear attention get learned position embeddings; normalized attention (as in the follow-up
# configs) and S6 get none. The state size $n$ is the feature size per head of linear and normalized
# attention and the per-channel state of S6. Softmax attention keeps the profile's width; every other
# model gets the width whose parameter count comes closest to softmax attention's
# (`dsflib.experiments.wikitext.matched_widths`, counting on PyTorch's `meta` device). Both profiles:

# %%
count_rows, widths = [], {name: lm_exp.matched_widths(name) for name in lm_exp.PROFILES}
for name, q in lm_exp.PROFILES.items():
    for model, row in widths[name].items():
        count_rows.append({"profile": name, "model": lm_exp.LABELS[model], "mixer": lm_exp.MODELS[model][0],
                           "d_model": row["d_model"], "n": q["n"].get(model, "-"), "heads": q["heads"] if model != "s6" else "-",
                           "layers": q["n_layers"], "vocab": q["vocab_size"], "parameters": f"{row['num_parameters']:,}",
                           "vs softmax": f"{100 * row['relative_difference']:+.2f}%"})
counts_table = pd.DataFrame(count_rows)
print(counts_table.to_string(index=False))
save_table(counts_table, "parameter_counts")
worst = max(abs(r["relative_difference"]) for per_model in widths.values() for r in per_model.values())
assert worst < 0.02, "parameter counts are not matched"
print(f"largest difference to softmax attention: {100 * worst:.2f}%")
for name, q in lm_exp.PROFILES.items():
    embedding = q["vocab_size"] * q["d_model"] * (1 if q["tie_embeddings"] else 2)
    total = widths[name]["softmax"]["num_parameters"]
    print(f"{name}: the {'tied' if q['tie_embeddings'] else 'untied input and output'} embeddings of softmax attention "
          f"hold {embedding:,} of its {total:,} parameters ({100 * embedding / total:.0f}%)")

# %% [markdown]
# In both profiles the embeddings hold most of the parameters (printed above). Matching the totals is
# therefore easy, and the mixers' own parameters differ more than the totals suggest.
#
# ## Training
#
# `dsflib.lm.train_lm` trains each model for a fixed number of steps: AdamW (betas 0.9/0.95, weight
# decay 0.1 on matrices), linear warm-up then cosine decay to a tenth of the learning rate, gradient
# clipping at 1.0, and an evaluation every `eval_every` steps (on evenly spread evaluation blocks; the
# last evaluation uses all of them). Perplexity is $\exp$ of the mean token cross-entropy. The
# *training* perplexity (the paper's metric) is $\exp$ of the mean training loss over the steps since
# the previous evaluation. Each run checkpoints every `checkpoint_every` steps, so a killed run resumes
# from its last checkpoint; its final row goes to `_build/results/wikitext-<profile>/runs.csv` with the
# config, seed, device and commit, its curve to a CSV next to it.

# %%
configs = lm_exp.grid(profile, seed=seed)
results_path = lm_exp.results_dir(profile) / "runs.csv"
stored = {r["run_id"] for r in read_results(results_path)}
pending = [c for c in configs if run_id(c) not in stored]
print(f"{results_path.relative_to(REPO_ROOT)}: {len(configs) - len(pending)} of {len(configs)} runs stored, "
      f"{len(pending)} to run")
if settings["run"] and have_data:
    start = time.perf_counter()
    ordered = sorted(configs, key=lambda c: c["model"] != "s6")  # the slowest run first (CPU workers)
    rows = run_sweep(ordered, lm_exp.run_wikitext, results_path, workers=settings["workers"],
                     desc=f"WikiText {profile}")
    print(f"wall time of the runs in this execution: {(time.perf_counter() - start) / 60:.1f} min ({len(pending)} runs)")
else:
    wanted = {run_id(c) for c in configs}
    rows = [r for r in read_results(results_path) if r["run_id"] in wanted]
    reason = "no data" if not have_data else "no GPU is available"
    print(f"Not trained here ({reason}); showing the {len(rows)} stored runs of this profile.")
have_results = len(rows) > 0
if not have_results:
    print("No results are stored for this profile: there are no curves or perplexities to show below. "
          "The paper profile is run with, e.g., `torchrun --nproc_per_node=8 -m dsflib.experiments.wikitext "
          "--profile paper`.")

# %%
numeric = ["d_model", "num_parameters", "train_loss", "train_ppl", "valid_loss", "valid_ppl", "steps_done", "tokens",
           "tokens_per_s", "train_seconds", "wall_seconds", "vocab_size", "world_size"]
runs = pd.DataFrame(rows)
if have_results:
    for column in numeric:
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    runs["label"] = runs["model"].map(lm_exp.LABELS)
    assert (runs["valid_ppl"] > 1).all() and (runs["train_ppl"] > 1).all()
    print(f"{len(runs)} runs on {sorted(set(runs['device']))}, commit(s) {sorted(set(runs['commit']))}; summed "
          f"run time {runs['wall_seconds'].sum() / 60:.1f} min")
    curves = pd.concat([pd.read_csv(results_path.parent / name) for name in runs["curve"]], ignore_index=True)
    curves["label"] = curves["model"].map(lm_exp.LABELS)
    save_table(curves, "curves")

# %% [markdown]
# ## Loss curves
#
# Training perplexity (mean over each evaluation interval) and evaluation perplexity against the
# number of training tokens. Intermediate evaluations use an evenly spread subset of the evaluation
# blocks, the last one all of them, so the final point of the evaluation curve can step a little.

# %%
if have_results:
    long = curves.melt(id_vars=["label", "tokens"], value_vars=["train_ppl", "valid_ppl"], var_name="metric",
                       value_name="perplexity")
    long["metric"] = long["metric"].map({"train_ppl": "training", "valid_ppl": f"evaluation ({p['eval_split']} split)"})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (metric, part) in zip(axes, long.groupby("metric", sort=False)):
        sns.lineplot(data=part, x="tokens", y="perplexity", hue="label", marker="o", markersize=4, ax=ax,
                     hue_order=[lm_exp.LABELS[m] for m in lm_exp.MODELS if m in set(runs["model"])])
        ax.set(yscale="log", title=f"{metric} perplexity", xlabel="training tokens")
        ax.legend(fontsize=8, title=None)
    fig.suptitle(f"WikiText LM, profile={profile}" + (f" ({data_note})" if data_note else ""), fontsize=9)
    fig.tight_layout()
    caption(fig, label)
    plt.show()

# %% [markdown]
# ## Perplexities

# %%
if have_results:
    runs["n"] = runs["n"].replace("", "-").fillna("-")
    table = runs.sort_values("valid_ppl")[["label", "d_model", "n", "num_parameters", "train_ppl", "valid_ppl",
                                           "steps_done", "tokens", "tokens_per_s", "train_seconds", "device"]]
    table = table.rename(columns={"label": "model", "num_parameters": "parameters", "train_ppl": "train ppl",
                                  "valid_ppl": f"{p['eval_split']} ppl", "tokens_per_s": "tokens/s",
                                  "train_seconds": "seconds (with eval)", "steps_done": "steps"})
    print(f"profile={profile}, seed={seed}" + (f", {data_note}" if data_note else ""))
    print(table.round({"train ppl": 1, f"{p['eval_split']} ppl": 1, "tokens/s": 0, "seconds (with eval)": 1}).to_string(index=False))
    save_table(table, "perplexities")
    print(label)

# %% [markdown]
# Two things to keep in mind when comparing the two columns. The training perplexity is averaged over
# the last evaluation interval while the model is still improving, whereas the evaluation perplexity is
# measured with the final weights. And on the stand-in the two splits differ: the `<unk>` share printed
# in the data table differs between them, and `<unk>` — one frequent token standing for every rare
# word — is easier to predict than the words it replaces, so perplexities on different splits are not
# comparable with each other; only the ordering of the models within one column is.
#
# ## Our ordering of the models
#
# Ordered by the final evaluation perplexity (lower is better) and, separately, by the final training
# perplexity (the paper's metric). One seed per model and no repeated runs: two perplexities within a
# few percent of each other should be read as a tie, and we mark neighbours closer than 3% as such.

# %%
def ordering(column: str) -> str:
    ranked = runs.sort_values(column)
    parts = [f"{ranked.iloc[0]['label']} ({ranked.iloc[0][column]:.1f})"]
    for prev, cur in zip(ranked.iloc[:-1].itertuples(), ranked.iloc[1:].itertuples()):
        sep = " ≈ " if getattr(cur, column) < 1.03 * getattr(prev, column) else " < "
        parts.append(f"{sep}{cur.label} ({getattr(cur, column):.1f})")
    return "".join(parts)


if have_results:
    where = "on this stand-in" if profile == "ci" else f"on {p['dataset']} (profile {profile})"
    passes = f" = {runs['tokens'].iloc[0] / counts[p['train_split']]:.1f} passes over the training split" if have_data else ""
    print(f"Scale: {runs['num_parameters'].mean() / 1e6:.2f}M parameters per model, {runs['tokens'].iloc[0]:,} "
          f"training tokens seen{passes}.")
    print(f"By {p['eval_split']}-split perplexity, {where}, the ordering is: {ordering('valid_ppl')}.")
    print(f"By training perplexity, {where}, the ordering is: {ordering('train_ppl')}.")
    print(label)

# %% [markdown]
# Reading this ordering: the `ci` stand-in trains tiny models (size and data printed above) for a few
# hundred steps, so it measures how fast each model starts to learn at this scale, with one seed. It is not
# a reproduction of the paper's comparison, which only the `paper` profile on a GPU could attempt —
# and even that with proxy settings.
#
# ## The paper's numbers
#
# The paper reports WikiText-103 training perplexities for linear, normalized and softmax attention and
# S6 at about 70M parameters. **These numbers are not known to us** (paper notes §5: the table could
# not be read), so none is shown here and no claim of agreement or disagreement with them is made.
#
# ## Running the `paper` profile
#
# On a machine with the dataset (or `datasets` and network access), tiktoken's GPT-2 files and GPUs:
#
# ```bash
# torchrun --nproc_per_node=8 -m dsflib.experiments.wikitext --profile paper          # all four models
# python -m dsflib.experiments.wikitext --profile paper --models s6 --steps 2000      # a short single-GPU run
# ```
#
# Each process takes its share of every global batch (DistributedDataParallel averages the
# gradients, so the result is the single-process run's up to rounding), rank 0 writes the checkpoints
# and `_build/results/wikitext-paper/runs.csv`, and an interrupted run resumes from its last checkpoint
# when started again. `--tokenizer word` replaces GPT-2 BPE with a word vocabulary capped at 50257
# words when tiktoken's files are not available. This chapter, executed with `profile = "paper"`,
# then shows the stored runs.
