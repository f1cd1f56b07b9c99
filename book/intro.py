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
# # The Dynamical Systems Framework, annotated
#
# Attention, state space models and recurrent networks look like three different families of
# token mixers. Sieber, Amo Alonso, Didier, Zeilinger and Orvieto {cite:p}`sieber2024dsf`
# ("Understanding the Differences in Foundation Models: Attention, State Space Models, and
# Recurrent Neural Networks", NeurIPS 2024, [arXiv:2405.15731](https://arxiv.org/abs/2405.15731))
# show that all of them can be written as one object, a **linear time-varying system** whose matrices depend on the input:
#
# $$
# h_i = A_i\, h_{i-1} + B_i\, u_i, \qquad y_i = C_i\, h_i + D_i\, u_i, \qquad
# h_i \in \mathbb{R}^{N},\ N = n\,d,
# $$
#
# with diagonal transitions $A_i$. They call it the **Dynamical Systems Framework (DSF)**. In this
# form the differences between architectures become differences in a few concrete choices: how
# $A_i$ depends on the input, how $A_i$ and $B_i$ are coupled (normalization), and how large the
# state is (the *state expansion* $n$). Unrolling the recurrence gives $y = \Phi u$, and the
# lower-triangular matrix $\Phi$ plays the role of the attention matrix for every model, not
# only for attention.
#
# This book derives the DSF form of each architecture in prose and mathematics and checks every
# claim numerically, on the spot, with the companion library `dsflib`.
#
# ## At a glance
#
# Every architecture in the book, from the model registry of `dsflib` (`dsflib.models.mixer_names()`,
# each layer class stating its own $A_i$ and $N$): its transition $A_i$ and its state size $N$ (in
# terms of the state expansion $n$, the width $d$ and the number of heads $H$), with the default $n$
# of its layer class and a link to its chapter. Softmax attention's state is infinite; its chapter
# builds finite approximations with $N = n d$ ($n$ features). {numref}`fig-intro-phi`, below
# the table, draws $\Phi$ of four of them for the same random input: the block norms
# $\|\Phi_{ij}\|_F$ of one sequence, output token $i$ down, input token $j$ across.

# %% tags=["parameters"]
profile = "ci"  # "ci" and "paper" draw the same small figure (it takes seconds)
seed = 0

# %%
import inspect

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

import dsflib
from dsflib.chapters import list_chapters
from dsflib.env import run_info, run_label, select_profile
from dsflib.models import build_mixer, mixer_class, mixer_names
from dsflib.plotting import book_style, caption, phi_block_norms
from dsflib.tables import markdown_table

book_style()
settings = select_profile(profile, {
    "ci": dict(length=24, d=4, n=2,
               shown=["softmax_attention", "linear_attention", "s6", "qlstm"]),
    "paper": dict(length=32, d=4, n=4,
                  shown=["softmax_attention", "linear_attention", "s6", "qlstm"]),
})
info = run_info(profile, seed)
label = run_label(info)


def default_n(cls) -> str:
    parameter = inspect.signature(cls).parameters.get("n")
    if parameter is None or parameter.default is None:
        return "—"
    return str(parameter.default)


book_order = [chapter.name for chapter in list_chapters()]
rows = []
for name in sorted(mixer_names(), key=lambda n: book_order.index(n) if n in book_order
                   else len(book_order)):
    cls = mixer_class(name)
    rows.append({
        "architecture": f"{{doc}}`{name} <{name}>`",
        "$A_i$": f"${cls.dsf_transition}$",
        "state size $N$": f"${cls.dsf_state_size}$",
        "default $n$": default_n(cls),
    })
overview = pd.DataFrame(rows)
display(Markdown(markdown_table(overview)))

# %% mystnb={"figure": {"caption": "Φ of four untrained token mixers for the same random input, drawn as block norms log₁₀‖Φ_ij‖_F of one sequence (output token i down, input token j across): softmax attention, linear attention, S6 and the qLSTM. All four are lower triangular: each mixer is causal.", "name": "fig-intro-phi"}, "image": {"alt": "Four lower-triangular heatmaps of the block norms of Φ for softmax attention, linear attention, S6 and the qLSTM"}}
torch.manual_seed(seed)
u = dsflib.random_input(1, settings["length"], settings["d"], seed=seed)
fig, axes = plt.subplots(2, 2, figsize=(8.4, 7.4))
for ax, name in zip(axes.flat, settings["shown"]):
    layer = build_mixer(name, settings["d"], n=settings["n"]).double()
    with torch.no_grad():
        phi = (layer.phi(u) if hasattr(layer, "phi")
               else dsflib.materialize_phi(layer.to_dsf(u)))
    phi_block_norms(phi[0], ax, title=name.replace("_", " "))
    ax.set(xlabel="input token j", ylabel="output token i")
fig.suptitle(f"$\\log_{{10}}\\|\\Phi_{{ij}}\\|_F$ of four untrained token mixers "
             f"for one input (L={settings['length']}, d={settings['d']}, "
             f"n={settings['n']})", fontsize=10)
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# ## How to read it
#
# Each chapter is a notebook: the equations come first, then a short code cell that tests them.
# The code cells only *call* `dsflib` — the models, their DSF matrices and the evaluation
# algorithms live in the library, where they are unit-tested, so what a chapter checks is exactly
# what you would import in your own experiments. Every number and figure was computed when the
# book was built; its caption or printout names the **profile** (`ci`: small sizes that run on a
# laptop CPU in minutes; `paper`: the sizes of the paper, for a GPU), the seed, the device and
# the commit it came from.
#
# ## How to re-run it
#
# From a clone of the repository, one command creates the virtual environment, executes every
# chapter and builds this book into `_build/html`:
#
# ```bash
# make book
# ```
#
# To re-run a single chapter, for instance with the `paper` profile on a GPU machine:
#
# ```bash
# make chapter NAME=dsf PROFILE=paper
# ```
#
# which calls `python -m dsflib.chapters execute dsf --profile paper` and writes the executed
# notebook to `_build/executed/paper/book/dsf.ipynb`. Chapters are plain Python files
# (`book/<name>.py`, jupytext percent format): open them in Jupyter as notebooks, or fork one and
# change the cell tagged `parameters`. Every chapter page opens with a box "Re-run this chapter"
# that gives the exact commands for both profiles (with `make` and with papermill), says which
# profile, device and commit built the page, and links the chapter's results tables as CSV files
# to compare a fork against. {doc}`reproducibility` explains the environment, the seeds and how
# results are stored and resumed.
