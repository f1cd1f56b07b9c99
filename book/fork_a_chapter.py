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
# # Fork a chapter
#
# Every page of this book is a program you can run and change. This page is a fork, done end to end:
# it takes a question the book does not ask — *what if each state dimension forgot at its own fixed
# rate?* — writes the layer that answers it, checks that the layer is the DSF it claims to be, draws
# its $\Phi$, and trains it on a small MQAR task {cite:p}`arora2024zoology` with the same code as
# the {doc}`mqar` chapter.
#
# **Getting a chapter to fork.** Every chapter page offers itself as a notebook: the download button in
# the page header (`.ipynb`), or the link in the folded "Re-run this chapter" box under its title. In a
# clone of the repository, the chapter's source is the plain Python file `book/<name>.py` (jupytext
# percent format); `make notebook NAME=<name>` writes `book/<name>.ipynb` paired with it, so Jupyter
# saves both. `make chapter NAME=<name>` executes a chapter as the book does, and `make book` rebuilds
# everything. This page is `book/fork_a_chapter.py`.
#
# **The idea.** RetNet ({doc}`retnet`, {cite:t}`sun2023retnet`) forgets at a fixed rate
# $\gamma_h$ per *head*; GLA ({doc}`gla`, {cite:t}`yang2024gla`) forgets at an input-dependent
# rate per *key dimension*. In between lies a layer whose every key
# dimension $k$ has its own fixed, learned decay $\lambda_k \in (0, 1)$, initialised on a log scale of
# half-lives from 1 to 64 tokens, so a single head keeps both short and long memories:
#
# $$
# \begin{aligned}
# S_i &= \operatorname{diag}(\lambda)\, S_{i-1} + k_i v_i^\top, \qquad
# y_i = W_O\, S_i^\top q_i,\\
# \lambda &= \sigma(\theta) \in (0, 1)^n,
# \end{aligned}
# $$ (eq-fork-layer)
#
# with $q_i = W_Q u_i$, $k_i = W_K u_i / \sqrt{n}$ and $v_i = W_V u_i$. As a DSF ({doc}`dsf`), with the
# state stacked channel-major, $A_i = I_d \otimes \operatorname{diag}(\lambda)$ is constant (the layer
# is time-invariant in $A$, time-varying in $B_i$ and $C_i$),
#
# $$
# \begin{aligned}
# A_i &= I_d \otimes \operatorname{diag}(\lambda), \qquad B_i = (I_d \otimes k_i)\, W_V,\\
# C_i &= W_O\, (I_d \otimes q_i^\top), \qquad D_i = 0, \qquad N = n d,
# \end{aligned}
# $$ (eq-fork-dsf)
#
# so $\Phi_{ij} = W_O (I_d \otimes q_i^\top \operatorname{diag}(\lambda)^{i-j} k_j) W_V$: a
# token $j$ steps back is read through $n$ exponentials of different speeds.

# %% tags=["parameters"]
# "ci": a one-CPU-core run in seconds; "paper": a larger MQAR task (a few minutes)
profile = "ci"
seed = 0

# %%
import math
import textwrap
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.experiments import mqar
from dsflib.models import dsf_from_scan, register_mixer
from dsflib.models._common import check_mixer_args, check_mixer_input
from dsflib.plotting import book_style, caption, phi_figure, transition_heatmap
from dsflib.scan import linear_scan
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    # MQAR: L=16 with 4 key-value pairs, 64 tokens, width 16, 300 steps
    # (20 per epoch x 15 epochs)
    "ci": dict(check_d=8, check_n=4, check_heads=2, check_L=24, seq_len=16,
               num_kv_pairs=4, vocab_size=64, d_model=16, n=8, lr=3e-3, epochs=15,
               batch_size=64, num_train=1280, num_test=256),
    "paper": dict(check_d=16, check_n=8, check_heads=2, check_L=48, seq_len=64,
                  num_kv_pairs=8, vocab_size=256, d_model=64, n=16, lr=3e-3, epochs=20,
                  batch_size=64, num_train=12800, num_test=1000),
})
info = run_info(profile, seed)
label = run_label(info)
print(label)

# %% [markdown]
# ## Step 1: the layer, defined here
#
# A mixer is an `nn.Module` from `(batch, L, d)` to `(batch, L, d)` with two methods: `forward`, the
# fast path, hands $(q, k, v, \log\lambda)$ to `dsflib.scan.linear_scan` (per-key log-decays of shape
# `(batch, L, heads, n)` are allowed), and `to_dsf` builds {eq}`eq-fork-dsf` from the same four
# ingredients with `dsf_from_scan`. `F.logsigmoid` keeps every log-decay $\le 0$.

# %%
class MultiScaleDecayAttention(nn.Module):
    """Linear attention whose state forgets at a fixed, learned rate per key dimension
    (log-spaced half-lives)."""

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1,
                 max_half_life: float = 64.0, backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)
        # (heads, n)
        half_lives = torch.logspace(0.0, math.log10(max_half_life), n).repeat(heads, 1)
        decay = 0.5 ** (1.0 / half_lives)  # lambda with lambda**half_life = 1/2
        self.decay_logit = nn.Parameter(torch.log(decay / (1.0 - decay)))

    @property
    def decays(self) -> torch.Tensor:
        """The per-(head, key dimension) decays lambda, shape ``(heads, n)``."""
        return torch.sigmoid(self.decay_logit.detach())

    def _scan_inputs(self, u):
        u = check_mixer_input(u, self.d_model)
        b, L, _ = u.shape
        q = self.W_Q(u).reshape(b, L, self.heads, self.n)
        k = self.W_K(u).reshape(b, L, self.heads, self.n) / math.sqrt(self.n)
        v = self.W_V(u).reshape(b, L, self.heads, self.d_model // self.heads)
        log_decay = F.logsigmoid(self.decay_logit).to(u.dtype)
        log_decay = log_decay.expand(b, L, self.heads, self.n)
        return q, k, v, log_decay

    def forward(self, u):
        q, k, v, log_decay = self._scan_inputs(u)
        y = linear_scan(q, k, v, log_decay, backend=self.backend)
        return self.W_O(y.reshape(u.shape))

    def to_dsf(self, u):
        q, k, _, log_decay = self._scan_inputs(u)
        b, L, d = u.shape
        return dsf_from_scan(q, k, log_decay,
                             value_map=self.W_V.weight.expand(b, L, d, d),
                             output_map=self.W_O.weight.expand(b, L, d, d))


# %% [markdown]
# ## Step 2: its DSF, checked
#
# `dsflib.verify.verify_layer` evaluates one input three ways — `forward`, the recurrence on
# `to_dsf(u)`, and $\Phi u$ — in float64. A disagreement above rounding error would mean that
# {eq}`eq-fork-dsf` or the code is wrong.

# %%
torch.manual_seed(seed)
layer = MultiScaleDecayAttention(settings["check_d"], n=settings["check_n"],
                                 heads=settings["check_heads"]).double()
u = torch.randn(2, settings["check_L"], settings["check_d"], dtype=torch.float64)
report = verify_layer(layer, u)
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9), report

# %% [markdown]
# ## Step 3: its $\Phi$, drawn
#
# In {numref}`fig-fork-a-chapter-phi` the left panel is $\Phi$ of one sequence; the right panel, the size of
# each $d \times d$ block $\Phi_{ij}$, shows the memory fading with $i - j$ — not as one
# exponential (RetNet's straight bands on a log scale) but as the sum of $n$ of them. The
# transition heatmap ({numref}`fig-fork-a-chapter-transition`) shows $A_i$'s diagonal: constant in time, one
# row per state dimension.

# %% mystnb={"figure": {"caption": "Φ of the multi-scale decay attention layer for one random sequence. Left: the full matrix, block lower triangular because the layer is causal. Right: the Frobenius norm of each d × d block on a log scale.", "name": "fig-fork-a-chapter-phi"}, "image": {"alt": "Two heatmaps: the signed lower-triangular matrix Φ and the map of its block norms"}}
system = layer.to_dsf(u)
phi = dsflib.materialize_phi(system)[0]
phi_figure(phi, label, title="multi-scale decay attention: one sequence")
plt.show()

# %% mystnb={"figure": {"caption": "The diagonal of A_i over one random sequence: constant in time, one row per state dimension, with the decays λ fixed at their log-spaced initial values.", "name": "fig-fork-a-chapter-transition"}, "image": {"alt": "A heatmap of constant rows: the decays of A_i over tokens"}}
ax = transition_heatmap(system)
caption(ax.figure, label)
plt.show()
half_lives = (math.log(0.5) / layer.decays.log()).flatten()
first_head = half_lives[:settings["check_n"]].tolist()
print(f"initial half-lives (tokens): {', '.join(f'{h:.1f}' for h in first_head)}")

# %% [markdown]
# ## Step 4: a small MQAR run
#
# `register_mixer` makes the class available by name to `dsflib.network.SequenceModel`. The MQAR
# experiment takes a new model through `dsflib.experiments.mqar.register_model` (model name → mixer,
# its extra arguments, whether to add learned position embeddings); one call, and
# `dsflib.experiments.mqar.run_mqar` trains it exactly like the {doc}`mqar` chapter's models. Beside it
# runs the library's linear attention ({doc}`linear_attention`) on the same data, same width and state
# size: the closest built-in model (no forgetting at all).
#
# The `ci` task is tiny — 300 steps on one CPU core, far from the MQAR chapter's 2000-step budget — so
# it shows the pipeline working end to end and where a model stands after a short run; it cannot rank
# mixers. Chance level is about $1/\mathrm{KV}$ (a model that learned only to answer with *some* value of
# the context); the `paper` profile runs a larger task.

# %%
register_mixer("multiscale_decay_attention", MultiScaleDecayAttention)
# learned positions, like the attention models
if "multiscale_decay" not in mqar.MODELS:
    mqar.register_model("multiscale_decay", "multiscale_decay_attention",
                        positions=True, label="multi-scale decay attention (this page)")

task_keys = ("seq_len", "num_kv_pairs", "vocab_size", "d_model", "n", "lr", "epochs",
             "batch_size", "num_train", "num_test")
task = {key: settings[key] for key in task_keys}
rows = []
for model in ("multiscale_decay", "linear"):
    start = time.perf_counter()
    result = mqar.run_mqar({"model": model, **task, "seed": seed, "threads": 1,
                            "device": "cpu"})
    rows.append({"model": mqar.LABELS[model], "accuracy": result["accuracy"],
                 "test loss": result["test_loss"], "steps": result["steps"],
                 "parameters": result["num_parameters"],
                 "seconds": time.perf_counter() - start})
table = pd.DataFrame(rows)
show_table(table, digits=3)
chance = 1 / settings["num_kv_pairs"]
ours = rows[0]["accuracy"]
display(Markdown(
    f"MQAR with L = {settings['seq_len']}, {settings['num_kv_pairs']} key-value pairs, "
    f"a vocabulary of {settings['vocab_size']}, d = {settings['d_model']}, "
    f"n = {settings['n']}, {rows[0]['steps']} steps ({profile} profile). "
    f"Multi-scale decay attention reaches accuracy {ours:.3f} "
    f"({'above' if ours > chance + 0.05 else 'near'} the 1/KV level of {chance:.2f}); "
    f"linear attention {rows[1]['accuracy']:.3f}."))
assert all(math.isfinite(r["test loss"]) for r in rows), rows

# %% [markdown]
# ## Step 5: from a fork to a chapter
#
# * **Keep the experiment.** The layer and the MQAR entry above live in this page only; a new chapter
#   `book/<name>.py` with the same header, a cell tagged `parameters` (`profile = "ci"`), listed in
#   `_toc.yml`, is executed by `make chapter NAME=<name>` and by `make book` like every other page. The
#   "Re-run this chapter" box and the notebook download appear on its page automatically.
# * **Make it a library model.** Move the class to `dsflib/models/<name>.py`, add it to
#   `dsflib.models.MIXERS`, and test it with the shared checks of `tests/contract.py` (see
#   {doc}`build_your_own`). `mqar.register_model` puts it on the MQAR grid.
# * **Compare against the book.** Each page's result tables are linked from its re-run box as CSV,
#   and the {doc}`mqar` chapter's sweep is resumable: new rows are added, finished runs are skipped.
