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
# # RetNet: retention
#
# RetNet's retention {cite:p}`sun2023retnet` is linear attention ({doc}`linear_attention`) with a
# fixed exponential decay per head. Per head $h$, with key dimension $n$ and value dimension $d/H$,
#
# $$
# \begin{aligned}
# q_i &= W_Q u_i, \quad k_i = W_K u_i/\sqrt{n}, \quad v_i = W_V u_i,\\
# S_i &= \gamma_h S_{i-1} + k_i v_i^\top, \qquad y_i = W_O \big[S_i^\top q_i\big]_h ,
# \end{aligned}
# $$ (eq-retnet-recurrence)
#
# i.e. $y_i = W_O \sum_{j \le i} \gamma_h^{i-j} (q_i^\top k_j)\, v_j$, with RetNet's default
# $\gamma_h = 1 - 2^{-5-h}$. (`dsflib`'s `Retention` omits RetNet's xPos rotation, group norm and
# swish gate.) Stacking the $d/H$ columns of each head's $n \times d/H$ state as in linear attention,
# the DSF is
#
# $$
# \begin{aligned}
# A_i &= \gamma_h I \ \text{(per head)}, \qquad
# B_i = \mathrm{blockdiag}_h\big(I_{d/H} \otimes k_i^{(h)}\big) W_V,\\
# C_i &= W_O\, \mathrm{blockdiag}_h\big(I_{d/H} \otimes q_i^{(h)\top}\big), \qquad
# D_i = 0, \qquad N = n d .
# \end{aligned}
# $$ (eq-retnet-dsf)
#
# The one property that sets RetNet apart:
# **$A_i$ does not depend on the input, nor on $i$.** All selectivity lives in $B_i$ and $C_i$, and by
# {eq}`eq-phi` (one head)
#
# $$
# \Phi_{ij} = \gamma^{\,i-j}\, (q_i^\top k_j)\, W_O W_V, \qquad j \le i:
# $$ (eq-retnet-phi)
#
# the attention pattern of unnormalized linear attention times a fixed Toeplitz mask $\gamma^{i-j}$.
#
# The code that ran: `_parts` builds $q_i$, $k_i$ and the constant $\log \gamma_h$ of
# {eq}`eq-retnet-recurrence`; `to_dsf` assembles {eq}`eq-retnet-dsf` from them.
#
# ```{literalinclude} ../dsflib/models/retnet.py
# :pyobject: Retention._parts
# :caption: `dsflib/models/retnet.py` — queries, keys and the fixed decays
# ```
#
# ```{literalinclude} ../dsflib/models/retnet.py
# :pyobject: Retention.to_dsf
# :caption: `dsflib/models/retnet.py` — the layer's DSF form {eq}`eq-retnet-dsf`
# ```

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import textwrap
from pprint import pprint

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.retnet import Retention
from dsflib.plotting import book_style, caption, phi_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(d=4, n=4, heads=2, batch=2, length=24, trace_heads=4, trace_length=64),
    "paper": dict(d=8, n=8, heads=4, batch=4, length=48, trace_heads=4,
                  trace_length=256),
})
info = run_info(profile, seed)
label = run_label(info)
torch.set_grad_enabled(False)  # analysis only
print(label)
pprint(settings, width=88, compact=True)


def retention(d, heads, gammas=None):
    torch.manual_seed(seed)
    return Retention(d, n=settings["n"], heads=heads, gammas=gammas).double()



# %% [markdown]
# **The layer is its DSF.** Forward pass, DSF recurrence and $\Phi u$ agree for a random two-head layer:

# %%
d, n, L = settings["d"], settings["n"], settings["length"]
u = dsflib.random_input(settings["batch"], L, d, seed=seed + 1)
layer = retention(d, settings["heads"])
report = verify_layer(layer, u)
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9) and report.N == n * d

# %% [markdown]
# **$\Phi_{ij} \propto \gamma^{i-j}$.** Build the same single-head layer twice — with RetNet's $\gamma$
# and with $\gamma = 1$ (no decay) — and divide their $\Phi$ blockwise. By {eq}`eq-retnet-phi` every
# block of the ratio must be the scalar $\gamma^{i-j}$, whatever the input ({numref}`fig-retnet-phi`):

# %%
gamma = retention(d, 1).gammas[0].item()
phi = dsflib.materialize_phi(retention(d, 1).to_dsf(u))[0]
phi_nodecay = dsflib.materialize_phi(retention(d, 1, gammas=[1.0]).to_dsf(u))[0]
i, j = torch.tril_indices(L, L)
expected = gamma ** (i - j).double()[:, None, None] * phi_nodecay[i, j]
error = (phi[i, j] - expected).abs().max().item()
print(f"gamma = {gamma}; max |Phi| = {phi.abs().max():.2e}")
print(f"max |Phi_ij - gamma^(i-j) Phi_ij(gamma=1)| = {error:.2e}")
assert error < 1e-14

ratio = np.full((L, L), np.nan)
norms = phi.flatten(-2).norm(dim=-1)
norms_nodecay = phi_nodecay.flatten(-2).norm(dim=-1)
ratio[i, j] = torch.log10(norms[i, j] / norms_nodecay[i, j]).numpy()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Retention's Φ is linear attention's times a fixed Toeplitz decay. Left: Φ of one head for one random sequence. Right: the log ratio of each block's norm to that of the same layer with γ = 1; it depends only on i − j, (i − j) log₁₀ γ, constant along every diagonal.", "name": "fig-retnet-phi"}, "image": {"alt": "A signed heatmap of Φ for one retention head and a heatmap of the log norm ratio that is constant along diagonals"}}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
phi_heatmap(phi, axes[0], title=rf"$\Phi$, one head, $\gamma$ = {gamma}")
sns.heatmap(ratio, ax=axes[1], cmap="viridis", square=True, xticklabels=4,
            yticklabels=4, cbar_kws={"shrink": 0.8})
axes[1].set(title=r"$\log_{10}(\|\Phi_{ij}\| \,/\, \|\Phi^{\gamma=1}_{ij}\|)"
                  r" = (i-j)\log_{10}\gamma$",
            xlabel="input token j", ylabel="output token i")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# **The transition.** $A_i$ is diagonal (one scalar per head times the identity), so its entries are
# its eigenvalues — here the constants $\gamma_h$, identical for every token and every input. For four
# heads, RetNet's defaults give memories $1/(1-\gamma_h) = 2^{5+h}$ = 32 to 256 tokens (table
# below, {numref}`fig-retnet-transition`):

# %%
H, Lt = settings["trace_heads"], settings["trace_length"]
wide = retention(4 * H, H)
u1 = dsflib.random_input(1, Lt, 4 * H, seed=seed + 2)
u2 = dsflib.random_input(1, Lt, 4 * H, seed=seed + 3)
A1, A2 = wide.to_dsf(u1).A[0], wide.to_dsf(u2).A[0]  # (L, H): one scalar per head
memory = [round(1 / (1 - g)) for g in A1[0].tolist()]
show_table(pd.DataFrame({"head": range(H), "A_i = gamma_h": A1[0].tolist(),
                         "memory 1/(1-gamma_h)": memory}), digits=6)
# input- and time-invariant
assert torch.equal(A1, A2) and torch.equal(A1, A1[:1].expand_as(A1))
# A = exp(log gamma): rounded twice, a few eps
eps = torch.finfo(torch.float64).eps
assert torch.allclose(A1[0], wide.gammas, rtol=8 * eps, atol=0)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "RetNet's transition is the same for every token and every input: the eigenvalue γ_h of A_i of each of four heads along one random sequence is a constant line.", "name": "fig-retnet-transition"}, "image": {"alt": "Four horizontal lines, one per head, showing constant eigenvalues of A_i over tokens"}}
frame = pd.DataFrame([dict(token=t, value=A1[t, h].item(),
                           head=f"head {h}: memory {1 / (1 - A1[0, h].item()):.0f}")
                      for h in range(H) for t in range(Lt)])
fig, ax = plt.subplots(figsize=(7, 3.4))
sns.lineplot(frame, x="token", y="value", hue="head", ax=ax)
ax.set(xlabel="token i", ylabel=r"eigenvalue of $A_i$ ($\gamma_h$)",
       title="RetNet: the same $A_i$ for every token and every input")
sns.move_legend(ax, "center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
caption(fig, label)
plt.show()

# %% [markdown]
# A fixed $A_i$ makes RetNet the DSF counterpart of a time-invariant SSM in its transition, while its
# input and output matrices are those of linear attention: it is linear attention without the
# normalization $\eta_i$ and with a position-only decay. Compare {doc}`linear_attention` (the same
# $B_i, C_i$, with $A_i = \eta_{i-1}/\eta_i\, I$), {doc}`gla` (the decay made input-dependent, per key
# dimension) and {doc}`ssd` (input-dependent, one scalar per head).
