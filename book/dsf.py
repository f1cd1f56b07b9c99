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
# # The Dynamical Systems Framework
#
# A token mixer maps a sequence of $L$ vectors $u_0, \dots, u_{L-1} \in \mathbb{R}^d$ to a
# sequence $y_0, \dots, y_{L-1} \in \mathbb{R}^d$, and output $i$ may only depend on inputs
# $j \le i$. The Dynamical Systems Framework (DSF) of {cite:t}`sieber2024dsf` (§3.1, the paper's
# eq. (11)) writes every such mixer it studies as a linear system whose matrices are allowed to
# change from token to token:
#
# $$
# \begin{aligned}
# h_i &= A_i\, h_{i-1} + B_i\, u_i, \qquad h_{-1} = 0,\\
# y_i &= C_i\, h_i + D_i\, u_i,
# \end{aligned}
# $$ (eq-dsf)
#
# with hidden state $h_i \in \mathbb{R}^N$ and
#
# | matrix | shape | role |
# |---|---|---|
# | $A_i$ | $N \times N$, **diagonal** | transition: how much of each state entry survives one step |
# | $B_i$ | $N \times d$ | input matrix: how token $i$ is written into the state |
# | $C_i$ | $d \times N$ | output matrix: how the state is read out |
# | $D_i$ | $d \times d$ | feed-through: the direct path from $u_i$ to $y_i$ |
#
# The state size is $N = n\,d$; the integer $n$ is the **state expansion**: every one of the
# $d$ channels carries $n$ state entries. "Time-varying" is the point of the framework: in every
# model of interest, $A_i, B_i, C_i, D_i$ are functions of the input (of $u_i$, and for attention
# of the whole prefix $u_0, \dots, u_i$), so the map $u \mapsto y$ is linear *only once the matrices
# are fixed*. That is enough to compare architectures: the later chapters each compute the four
# matrices of one architecture for a given input, and the tools of this chapter then apply unchanged.

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import pprint
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

import dsflib
from dsflib.bench import scan_inputs, time_call
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.softmax_attention import SoftmaxAttention
from dsflib.plotting import book_style, caption, phi_figure
from dsflib.scan import linear_scan_chunked, linear_scan_recurrent
from dsflib.tables import save_table, show_table

book_style()
settings = select_profile(profile, {
    "ci": dict(batch=2, length=24, d=3, n=2, heads=3,
               timing_lengths=[64, 128, 256, 512, 1024], repeats=3),
    "paper": dict(batch=4, length=64, d=4, n=4, heads=4,
                  timing_lengths=[64, 128, 256, 512, 1024, 2048, 4096], repeats=5),
})
info = run_info(profile, seed)
label = run_label(info)
print(textwrap.fill(label, 88))
pprint.pprint(settings, width=88, compact=True)

# %% [markdown]
# ## Unrolling the recurrence: the matrix $\Phi$
#
# Starting from $h_{-1} = 0$ and substituting the recurrence into itself,
# $h_i = \sum_{j \le i} A_i A_{i-1} \cdots A_{j+1} B_j u_j$ (the empty product for $j = i$ is the
# identity). Reading out with $C_i$ and adding the feed-through gives $y = \Phi u$ for the stacked
# vectors $u = [u_0; \dots; u_{L-1}]$, $y = [y_0; \dots; y_{L-1}]$, where $\Phi$ is the block
# lower-triangular $Ld \times Ld$ matrix with $d \times d$ blocks
#
# $$
# \Phi_{ij} =
# \begin{cases}
# C_i\, A_i A_{i-1} \cdots A_{j+1}\, B_j & j < i,\\
# C_i B_i + D_i & j = i,\\
# 0 & j > i.
# \end{cases}
# $$ (eq-phi)
#
# $\Phi_{ij}$ is the weight with which token $j$ reaches output $i$ — exactly what the attention
# matrix is for a Transformer, but now defined for *any* model in the framework. Because every
# $A_k$ is diagonal, the product in {eq}`eq-phi` is an elementwise product of $i-j$ vectors of
# decay factors: entries of $A$ below one make old tokens fade, entries equal to one keep them.
#
# Both forms are implemented in `dsflib`: `recurrence` runs {eq}`eq-dsf` step by step with an
# $N$-dimensional state, `materialize_phi` builds the blocks of {eq}`eq-phi` and `apply_phi`
# multiplies. We build a random DSF — diagonal entries of $A_i$ drawn in $[0.75, 0.99]$, Gaussian
# $B_i, C_i, D_i$ — and compute $y$ both ways. The two functions are short enough to read in full:
#
# ```{literalinclude} ../dsflib/dsf.py
# :pyobject: recurrence
# :lines: 1-7,13-
# :caption: `dsflib/dsf.py` — the recurrence {eq}`eq-dsf`, one token at a time (docstring omitted)
# ```
#
# ```{literalinclude} ../dsflib/dsf.py
# :pyobject: materialize_phi
# :lines: 1,9-
# :caption: `dsflib/dsf.py` — the blocks of $\Phi$ in {eq}`eq-phi` (docstring omitted)
# ```

# %%
system = dsflib.random_dsf(settings["batch"], settings["length"], settings["d"],
                           settings["n"], seed=seed, dtype=torch.float64)
print(f"batch={system.batch}, L={system.length}, d={system.d}, n={system.n}, "
      f"N=n*d={system.N}")
print("A:", tuple(system.A.shape), " B:", tuple(system.B.shape),
      " C:", tuple(system.C.shape), " D:", tuple(system.D.shape))

generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(system.batch, system.length, system.d, generator=generator,
                dtype=torch.float64)

y_recurrence = dsflib.recurrence(system, u)
phi = dsflib.materialize_phi(system)
y_phi = dsflib.apply_phi(phi, u)
error64 = (y_recurrence - y_phi).abs().max().item()
print(f"max |y_recurrence - Phi u| in float64: {error64:.3e}")
assert error64 < 1e-12, error64

# %% [markdown]
# The two evaluations agree to rounding error in double precision. In single precision they
# still agree to about $10^{-6}$ relative to the size of $y$; `dsflib` accumulates the state in
# at least float32 whatever the input dtype, because the state carries a sum over the whole prefix.

# %%
system32, u32 = system.to(torch.float32), u.to(torch.float32)
y32 = dsflib.recurrence(system32, u32)
error32 = ((y32.double() - y_phi).abs().max() / y_phi.abs().max()).item()
print(f"max |y_recurrence(float32) - Phi u(float64)| / max|y|: {error32:.3e}")
assert error32 < 1e-5, error32

# %% [markdown]
# ## What $\Phi$ looks like
#
# In {numref}`fig-dsf-phi`, the left panel is the full $Ld \times Ld$ matrix $\Phi$ of the first
# sequence in the batch (one $d \times d$ block per pair of tokens). The right panel condenses each
# block to its Frobenius norm $\lVert \Phi_{ij} \rVert_F$ and shows it on a log scale: everything
# above the diagonal is zero (causality), and along each column the weight of token $j$ fades as
# the products of $A$'s accumulate — the "attention pattern" of this random system.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of a random DSF is block lower triangular (causal): left the signed Ld × Ld matrix, right the log10 Frobenius norm of each d × d block, which fades away from the diagonal as the decays A_k accumulate.", "name": "fig-dsf-phi"}, "image": {"alt": "Two heatmaps. Left: the signed matrix Phi of a random DSF, zero above the block diagonal. Right: log block norms, a lower triangle brightest on the diagonal and darker towards the bottom-left corner."}}
phi_figure(phi[0], label,
           title=f"A random DSF (L={system.length}, d={system.d}, n={system.n})")
plt.show()

# %% [markdown]
# ## One decay per head
#
# Several architectures (linear attention, SSD, RetNet, normalized attention) use the coarsest
# diagonal transition there is: one scalar per head times the identity, $A_i = a_i I$.
# `dsflib.DSF` accepts `A` either as the full diagonal, shape `(batch, L, N)`, or as one scalar
# per head, shape `(batch, L, H)`, in which case head $h$ owns $N/H$ consecutive state entries.
# The scalar form is a special case of the diagonal one — expanding it gives the same outputs:

# %%
heads = settings["heads"]
scalar = dsflib.random_dsf(settings["batch"], settings["length"], settings["d"],
                           settings["n"], heads=heads, seed=seed, dtype=torch.float64)
expanded = dsflib.DSF(scalar.diag_A(), scalar.B, scalar.C, scalar.D)
y_scalar = dsflib.recurrence(scalar, u)
error_heads = (y_scalar - dsflib.recurrence(expanded, u)).abs().max().item()
y_scalar_phi = dsflib.apply_phi(dsflib.materialize_phi(scalar), u)
error_heads_phi = (y_scalar_phi - y_scalar).abs().max().item()
print(f"A per head {tuple(scalar.A.shape)} vs full diagonal {tuple(expanded.A.shape)}: "
      f"max diff {error_heads:.3e}")
print(f"recurrence vs Phi u with per-head A: {error_heads_phi:.3e}")
assert error_heads == 0.0 and error_heads_phi < 1e-12

# %% [markdown]
# ## Bad input is refused, not guessed
#
# A DSF whose matrices do not fit together is a bug in the caller. `dsflib` rejects it with an
# error that names the argument and the expected layout rather than broadcasting its way to a
# wrong answer:

# %%
try:
    dsflib.recurrence(system, u[..., :-1])
except ValueError as err:
    print(textwrap.fill(f"ValueError: {err}", 88))

# %% [markdown]
# ## State expansion: the state is the bottleneck
#
# Split the sequence at token $t$. Every path from a past input $u_j$ ($j < t$) to a future output
# $y_i$ ($i \ge t$) passes through the state $h_{t-1}$, and {eq}`eq-phi` factors accordingly:
#
# $$
# \Phi_{ij} = \underbrace{C_i A_i \cdots A_t}_{d \times N}\;
#              \underbrace{A_{t-1} \cdots A_{j+1} B_j}_{N \times d}, \qquad j < t \le i .
# $$ (eq-past-future)
#
# Stacked over all such $(i, j)$, the *past-to-future* block of $\Phi$ is a product of a tall and a
# wide matrix with inner dimension $N$, so its rank is at most $N = n d$, however long the sequence.
# This is what the state expansion $n$ buys: the number of independent "directions" in which the past
# can be remembered. `dsflib.past_to_future` extracts that block; its singular values drop to
# rounding error after exactly $N$ of them:

# %%
d_rank, t_split, L_rank = settings["d"], settings["length"] // 2, settings["length"]
records = []
for n_rank in (1, 2, 4):
    system_n = dsflib.random_dsf(1, L_rank, d_rank, n_rank, seed=seed,
                                 dtype=torch.float64)
    block = dsflib.past_to_future(dsflib.materialize_phi(system_n), t_split)[0]
    sv = torch.linalg.svdvals(block)
    rank = torch.linalg.matrix_rank(block).item()
    print(f"n={n_rank}: N={system_n.N:2d}, past-to-future block {tuple(block.shape)}, "
          f"rank {rank}")
    assert rank == system_n.N
    name_n = f"DSF, n={n_rank} (N={system_n.N})"
    records += [dict(index=i + 1, value=v.item(), model=name_n)
                for i, v in enumerate(sv)]

# %% [markdown]
# Softmax attention {cite:p}`vaswani2017attention` is the exception: by the paper's Lemma 1
# (§3.2.1, proof in App. C) its exponential kernel needs an infinite-dimensional feature vector,
# "i.e., in the DSF, softmax attention requires $n=\infty$" (§4.1) {cite:p}`sieber2024dsf`. So the
# same block has full rank (limited only by its size, not by a state); the chapter
# {doc}`softmax_attention` approximates it with growing finite states. {numref}`fig-dsf-rank`
# shows the singular values of all four blocks.

# %%
torch.manual_seed(seed)
softmax_layer = SoftmaxAttention(d_rank).double().eval()
u_rank = torch.randn(1, L_rank, d_rank, dtype=torch.float64)
block = dsflib.past_to_future(softmax_layer.phi(u_rank), t_split)[0]
rank = torch.linalg.matrix_rank(block).item()
print(f"softmax attention: past-to-future block {tuple(block.shape)}, rank {rank} "
      f"(full rank: {min(block.shape)})")
assert rank > 4 * d_rank
records += [dict(index=i + 1, value=v.item(), model="softmax attention")
            for i, v in enumerate(torch.linalg.svdvals(block))]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Singular values of the past-to-future block of Φ (split at the middle token): for a DSF with state size N = nd they drop to rounding error after exactly N values; for softmax attention they do not drop (full rank).", "name": "fig-dsf-rank"}, "image": {"alt": "Line plot, log scale: singular values against their index for three random DSFs with n = 1, 2, 4 and for softmax attention; each DSF curve falls off a cliff after N values, the softmax curve decays smoothly."}}
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.lineplot(pd.DataFrame(records), x="index", y="value", hue="model", marker="o",
             ax=ax)
ax.set(yscale="log", xlabel="singular value index", ylabel="singular value",
       title=f"past-to-future block of $\\Phi$ (split at t={t_split}, d={d_rank})")
caption(fig, label)
plt.show()

# %% [markdown]
# ## Lemma 2: a larger state can always recover a smaller one
#
# The rank bound says what a small state cannot do. The paper's Lemma 2 (§4.1)
# {cite:p}`sieber2024dsf` is the converse direction (the paper writes $\Lambda_i$ for the transition
# this book calls $A_i$, and "(11)" is its number for {eq}`eq-dsf`): "For two dynamical systems (11) with hidden state dimensions $N$ and $\bar N$ with
# $N \leq \bar N$, the dynamical system of state dimension $\bar N$ can always recover the dynamical system
# with state dimension $N$." The proof (App. D) appends the extra states below the old ones,
#
# $$
# \begin{aligned}
# \Lambda^{\bar N}_i &= \begin{bmatrix} \Lambda^N_i & 0 \\ \bar\Lambda & \hat\Lambda \end{bmatrix}, &
# B^{\bar N}_i &= \begin{bmatrix} B^N_i \\ \bar B \end{bmatrix},\\
# C^{\bar N}_i &= \begin{bmatrix} C^N_i & 0 \end{bmatrix}, & D^{\bar N}_i &= D^N_i ,
# \end{aligned}
# $$ (eq-lemma2)
#
# so that "the $N$ first states of the system with dimension $\bar N$ propagate equivalently to the states
# of the system of dimension $N$", while the additional states "evolve independently given any matrices
# $\bar\Lambda, \hat\Lambda, \bar B$ of appropriate dimension and do not affect the output" (App. D). The
# paper's conclusion: "the expressivity of a model is non-decreasing with increasing state expansion $n$
# (and state dimension $N=nd$), if the rest of the architecture is held constant" (§4.1).
#
# `dsflib.equivalences.expand_state` builds {eq}`eq-lemma2` for a given DSF, with random
# $\hat\Lambda_i$ and $\bar B_i$ (and $\bar\Lambda = 0$, since DSF transitions are diagonal). We expand
# random DSFs and compare $\Phi$, the outputs, the first $N$ states and the rank of the past-to-future
# block (in the table: $\Delta\Phi$, $\Delta y$ and $\Delta h_{:N}$ are the largest differences
# between the expanded and the original system, $\lvert h_{N:} \rvert$ the largest extra state):

# %%
from dsflib.equivalences import expand_state

u_lemma = dsflib.random_input(settings["batch"], L_rank, d_rank, seed=seed + 7)
lemma_rows = []
for n_small, n_big in [(1, 2), (2, 4), (2, 7)]:
    small = dsflib.random_dsf(settings["batch"], L_rank, d_rank, n_small,
                              seed=seed + n_small, dtype=torch.float64)
    big = expand_state(small, n_big * d_rank, seed=seed)
    phi_small, phi_big = dsflib.materialize_phi(small), dsflib.materialize_phi(big)
    y_small, h_small = dsflib.recurrence(small, u_lemma, return_final_state=True)
    y_big, h_big = dsflib.recurrence(big, u_lemma, return_final_state=True)
    row = dict(N=small.N, N_bar=big.N,
               max_phi_diff=(phi_big - phi_small).abs().max().item(),
               max_output_diff=(y_big - y_small).abs().max().item(),
               max_first_N_state_diff=(
                   h_big[:, : small.N] - h_small).abs().max().item(),
               max_extra_state=h_big[:, small.N :].abs().max().item(),
               past_future_rank=torch.linalg.matrix_rank(
                   dsflib.past_to_future(phi_big, t_split)[0]).item())
    lemma_rows.append(row)
    assert max(row["max_phi_diff"], row["max_output_diff"],
               row["max_first_N_state_diff"]) < 1e-14
    assert row["max_extra_state"] > 1e-2 and row["past_future_rank"] == small.N
show_table(pd.DataFrame(lemma_rows).rename(columns={
    "N_bar": "$\\bar N$", "max_phi_diff": "max $\\lvert\\Delta\\Phi\\rvert$",
    "max_output_diff": "max $\\lvert\\Delta y\\rvert$",
    "max_first_N_state_diff": "max $\\lvert\\Delta h_{:N}\\rvert$",
    "max_extra_state": "max $\\lvert h_{N:}\\rvert$",
    "past_future_rank": "past-to-future rank"}), digits=3,
    caption="Lemma 2: expanded states reproduce the small system");

# %% [markdown]
# The expanded systems reproduce $\Phi$, the outputs and the first $N$ states to rounding error, although
# their extra states are far from zero; and the past-to-future rank stays $N$: the extra states carry
# information that never reaches the output. Lemma 2 is therefore an inclusion — every model with state
# $N$ is one with state $\bar N$ — not a statement that a larger state *is* used; whether training finds a
# use for it is what the paper's MQAR experiments on state expansion probe (Fig. 1 and App. L).
#
# ## Three ways to evaluate the same map
#
# The recurrence {eq}`eq-dsf` and the matrix {eq}`eq-phi` are two algorithms for one function, with
# opposite costs. Take one head of the structured form every model in this book reduces to
# ({mod}`dsflib.scan`): a $d_k \times d_v$ matrix state $S_i = a_i S_{i-1} + k_i v_i^\top$, read out as
# $y_i = S_i^\top q_i$ (linear attention {cite:p}`katharopoulos2020linear`, SSD {cite:p}`dao2024mamba2`, RetNet
# {cite:p}`sun2023retnet`; $N = d_k d_v$).
#
# The *quadratic* ("attention" or convolution) form builds $\Phi$ as $(q_i^\top k_j)\prod a$ and
# multiplies; the *chunked* form is quadratic inside chunks of $C$ tokens and recurrent across them.
#
# | evaluation | time | memory | sequential steps |
# |---|---|---|---|
# | recurrent | $O(L\, d_k d_v)$ | $O(d_k d_v)$ | $L$ |
# | quadratic | $O(L^2 (d_k + d_v))$ | $O(L^2)$ | $1$ |
# | chunked | $O(L C (d_k + d_v) + L d_k d_v)$ | $O(L C + \tfrac{L}{C} d_k d_v)$ | $L / C$ |
#
# The recurrence does the least arithmetic but cannot use parallel hardware; the quadratic form is all
# matrix products but grows as $L^2$; the chunked form interpolates, and it is what `dsflib` runs on a
# CPU (`dsflib.scan.linear_scan`; Triton kernels {cite:p}`tillet2019triton` take over on a GPU).
# Inside `dsflib` the quadratic form is simply the chunked algorithm with one chunk of length $L$.
# Measured on the machine that built this page (named in the run label):

# %%
shape = dict(batch=4, heads=2, dk=32, dv=32, per_key=False)
timings = []
for length in settings["timing_lengths"]:
    q, k, v, log_a = scan_inputs(shape, length, seed=seed)
    methods = {
        "recurrent": lambda: linear_scan_recurrent(q, k, v, log_a),
        "quadratic (one chunk)": lambda: linear_scan_chunked(q, k, v, log_a,
                                                             chunk_size=length),
        "chunked (C=32)": lambda: linear_scan_chunked(q, k, v, log_a, chunk_size=32),
    }
    reference = methods["recurrent"]()
    for name, fn in methods.items():
        assert torch.allclose(fn(), reference, rtol=1e-4, atol=1e-4), name
        with torch.no_grad():
            ms = 1e3 * time_call(fn, settings["repeats"])
            timings.append(dict(L=length, method=name, ms=ms))
timing_table = pd.DataFrame(timings).pivot(index="L", columns="method", values="ms")
save_table(timing_table, "scan_timings")
show_table(timing_table.reset_index(), digits=3,
           caption=f"Forward time [ms], median of {settings['repeats']} runs (batch="
                   f"{shape['batch']}, heads={shape['heads']}, dk=dv={shape['dk']})");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Forward time of the three algorithms for one scan against the sequence length L, both axes logarithmic (CPU, float32; the machine is named in the run label). The conclusions drawn from these numbers are printed below the figure.", "name": "fig-dsf-timing"}, "image": {"alt": "Log-log line plot of forward time in milliseconds against sequence length for the recurrent, quadratic (one chunk) and chunked (C = 32) evaluations of the same scan."}}
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.lineplot(pd.DataFrame(timings), x="L", y="ms", hue="method", marker="o", ax=ax)
ax.set(xscale="log", yscale="log", xlabel="sequence length L",
       ylabel="forward time [ms]", title="one map, three algorithms (CPU, float32)")
caption(fig, label)
plt.show()

# %% [markdown]
# The cost table predicts the slope of each curve in the log-log plot of {numref}`fig-dsf-timing`:
# one for the recurrent and chunked forms, two for the quadratic one — once $L$ is large enough for
# the arithmetic to dominate fixed per-call overheads, which flatten the curves at small $L$. Which
# algorithm is fastest depends on the machine (how many cores, how much other work shares them):
# the lines printed below — fitted slopes and the ranking at the longest $L$ — are computed from
# the measured table, for the machine that built this page. Rerun the chapter to measure yours.

# %%
log_L = np.log(timing_table.index.to_numpy(dtype=float))
for method in timing_table.columns:
    slope = np.polyfit(log_L, np.log(timing_table[method].to_numpy()), 1)[0]
    print(f"{method:>22}: fitted slope of log(time) against log(L) = {slope:.2f}")
longest = timing_table.index.max()
order = timing_table.loc[longest].sort_values()
print(f"at L = {longest}, fastest to slowest:")
for rank_, (method, ms) in enumerate(order.items(), start=1):
    print(f"  {rank_}. {method} ({ms:.3g} ms)")

# %% [markdown]
#
# ## Where this goes next
#
# {eq}`eq-dsf` and {eq}`eq-phi` are all the machinery the rest of the book needs. Each
# architecture chapter computes $A_i, B_i, C_i, D_i$ from a layer's weights and input, checks that
# the layer's own forward pass equals the DSF recurrence and $\Phi u$, and then reads the
# architecture's character off the matrices: whether $A_i$ is a scalar or a full diagonal, how it is
# coupled to $B_i$ (normalization), and how large $n$ must be (state expansion).
