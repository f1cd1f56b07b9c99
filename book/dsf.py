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
# $j \le i$. The Dynamical Systems Framework (DSF) writes every such mixer studied in the paper
# as a linear system whose matrices are allowed to change from token to token:
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
import matplotlib.pyplot as plt
import seaborn as sns
import torch

import dsflib
from dsflib.env import run_info, run_label, select_profile

settings = select_profile(profile, {
    "ci": dict(batch=2, length=24, d=3, n=2, heads=3),
    "paper": dict(batch=4, length=64, d=4, n=4, heads=4),
})
info = run_info(profile, seed)
label = run_label(info)
print(label)
print(settings)

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
# $B_i, C_i, D_i$ — and compute $y$ both ways.

# %%
system = dsflib.random_dsf(settings["batch"], settings["length"], settings["d"], settings["n"],
                           seed=seed, dtype=torch.float64)
print(f"batch={system.batch}, L={system.length}, d={system.d}, n={system.n}, N=n*d={system.N}")
print("A:", tuple(system.A.shape), " B:", tuple(system.B.shape), " C:", tuple(system.C.shape),
      " D:", tuple(system.D.shape))

generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(system.batch, system.length, system.d, generator=generator, dtype=torch.float64)

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
# Below, the left panel is the full $Ld \times Ld$ matrix $\Phi$ of the first sequence in the
# batch (one $d \times d$ block per pair of tokens). The right panel condenses each block to its
# Frobenius norm $\lVert \Phi_{ij} \rVert_F$ and shows it on a log scale: everything above the
# diagonal is zero (causality), and along each column the weight of token $j$ fades as the
# products of $A$'s accumulate — the "attention pattern" of this random system.

# %%
full = dsflib.phi_matrix(phi)[0]
block_norm = phi[0].flatten(-2).norm(dim=-1)
masked = torch.where(block_norm > 0, block_norm, torch.nan).log10()

fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
bound = full.abs().max().item()
sns.heatmap(full.numpy(), ax=axes[0], cmap="RdBu_r", center=0.0, vmin=-bound, vmax=bound,
            square=True, xticklabels=False, yticklabels=False, cbar_kws={"shrink": 0.8})
axes[0].set(title=r"$\Phi$ ($Ld \times Ld$)", xlabel="input index (token, channel)",
            ylabel="output index (token, channel)")
sns.heatmap(masked.numpy(), ax=axes[1], cmap="viridis", square=True, cbar_kws={"shrink": 0.8,
            "label": r"$\log_{10} \|\Phi_{ij}\|_F$"}, xticklabels=4, yticklabels=4)
axes[1].set(title=r"block norms $\|\Phi_{ij}\|_F$", xlabel="input token j", ylabel="output token i")
fig.suptitle(f"A random DSF (L={system.length}, d={system.d}, n={system.n})\n{label}", fontsize=9)
fig.tight_layout(rect=(0, 0, 1, 0.93))
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
scalar = dsflib.random_dsf(settings["batch"], settings["length"], settings["d"], settings["n"],
                           heads=heads, seed=seed, dtype=torch.float64)
expanded = dsflib.DSF(scalar.diag_A(), scalar.B, scalar.C, scalar.D)
error_heads = (dsflib.recurrence(scalar, u) - dsflib.recurrence(expanded, u)).abs().max().item()
error_heads_phi = (dsflib.apply_phi(dsflib.materialize_phi(scalar), u) - dsflib.recurrence(scalar, u)).abs().max().item()
print(f"A per head {tuple(scalar.A.shape)} vs full diagonal {tuple(expanded.A.shape)}: max diff {error_heads:.3e}")
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
    print("ValueError:", err)

# %% [markdown]
# ## Where this goes next
#
# {eq}`eq-dsf` and {eq}`eq-phi` are all the machinery the rest of the book needs. Each
# architecture chapter computes $A_i, B_i, C_i, D_i$ from a layer's weights and input, checks that
# the layer's own forward pass equals the DSF recurrence and $\Phi u$, and then reads the
# architecture's character off the matrices: whether $A_i$ is a scalar or a full diagonal, how it is
# coupled to $B_i$ (normalization), and how large $n$ must be (state expansion).
