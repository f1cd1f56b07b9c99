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
# # Gated linear attention (GLA)
#
# GLA {cite:p}`yang2024gla` gives linear attention ({doc}`linear_attention`) a data-dependent
# forget gate with one value per *key dimension*. Per head (key dimension $n$, value dimension
# $d/H$),
#
# $$
# \begin{aligned}
# q_i &= W_Q u_i / \sqrt{n}, \quad k_i = W_K u_i, \quad v_i = W_V u_i,\\
# \alpha_i &= \sigma\big(W_{\alpha,\mathrm{up}} W_{\alpha,\mathrm{down}} u_i + b\big)^{1/\tau}
# \in (0, 1)^n,\\
# S_i &= \mathrm{diag}(\alpha_i)\, S_{i-1} + k_i v_i^\top, \qquad
# y_i = W_O \big[S_i^\top q_i\big]_h ,
# \end{aligned}
# $$ (eq-gla-recurrence)
#
# with a low-rank gate projection and a temperature $\tau = 16$ that pulls the gates towards one
# ($\sigma(0)^{1/16} \approx 0.958$). (`dsflib`'s `GLA` omits GLA's output gate and group norm.) Row
# $k$ of the $n \times d/H$ state $S_i$ — everything stored under key dimension $k$ — decays by
# $\alpha_{i,k}$. Stacking the state by (head, value channel, key), every value channel sees the same
# $n$ gates, so
#
# $$
# \begin{aligned}
# A_i &= \mathrm{blockdiag}_h\big(I_{d/H} \otimes \mathrm{diag}(\alpha^{(h)}_i)\big), \qquad
# B_i = \mathrm{blockdiag}_h\big(I_{d/H} \otimes k^{(h)}_i\big) W_V,\\
# C_i &= W_O\, \mathrm{blockdiag}_h\big(I_{d/H} \otimes q^{(h)\top}_i\big), \qquad D_i = 0,
# \qquad N = n d,
# \end{aligned}
# $$ (eq-gla-dsf)
#
# and for one head
#
# $$
# \Phi_{ij} = \big(q_i^\top \mathrm{diag}(\alpha_i \odot \cdots \odot \alpha_{j+1})\, k_j\big)
# W_O W_V, \qquad j \le i:
# $$ (eq-gla-phi)
#
# the decay acts *inside* the query–key product, dimension by dimension. The property that places
# GLA in the family is the **richness of its transition**: $H n$ distinct decays per token, between
# the one scalar per head ($H$) of SSD ({doc}`ssd`, {cite:t}`dao2024mamba2`) and the full diagonal
# ($n d$) of S6 ({doc}`s6`, {cite:t}`gu2023mamba`).
#
# The code that ran: `log_gate` computes $\log \alpha_i$ of {eq}`eq-gla-recurrence` and `to_dsf`
# assembles {eq}`eq-gla-dsf`.
#
# ```{literalinclude} ../dsflib/models/gla.py
# :pyobject: GLA.log_gate
# :caption: `dsflib/models/gla.py` — the gates $\alpha_i$, in log space
# ```
#
# ```{literalinclude} ../dsflib/models/gla.py
# :pyobject: GLA.to_dsf
# :caption: `dsflib/models/gla.py` — the layer's DSF form {eq}`eq-gla-dsf`
# ```

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import textwrap
from pprint import pprint

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.gla import GLA
from dsflib.models.s6 import S6
from dsflib.models.ssd import SSD
from dsflib.plotting import book_style, caption, phi_heatmap, transition_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(d=4, n=4, heads=2, batch=2, length=24, trace_length=48),
    "paper": dict(d=8, n=8, heads=2, batch=4, length=48, trace_length=128),
})
info = run_info(profile, seed)
label = run_label(info)
torch.set_grad_enabled(False)  # analysis only
print(label)
pprint(settings, width=88, compact=True)

d, n, H, L = settings["d"], settings["n"], settings["heads"], settings["length"]


def build(cls, **kwargs):
    torch.manual_seed(seed)
    return cls(d, n=n, **kwargs).double()



# %% [markdown]
# **The layer is its DSF**, and its $\Phi$ ({numref}`fig-gla-phi`; one sequence; the
# $d \times d$ blocks are dense because $W_V$ and $W_O$ mix channels):

# %%
layer = build(GLA, heads=H)
u = dsflib.random_input(settings["batch"], L, d, seed=seed + 1)
report = verify_layer(layer, u)
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9) and report.N == n * d
system = layer.to_dsf(u)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of an untrained GLA layer for one random sequence: block lower triangular because the layer is causal, with dense d × d blocks because W_V and W_O mix channels.", "name": "fig-gla-phi"}, "image": {"alt": "A signed heatmap of the lower-triangular matrix Φ of GLA"}}
fig, ax = plt.subplots(figsize=(5.6, 4.8))
phi_heatmap(dsflib.materialize_phi(system)[0], ax,
            title=rf"$\Phi$ of GLA (L={L}, d={d}, n={n}, H={H})")
caption(fig, label)
plt.show()

# %% [markdown]
# **The Kronecker structure of $A_i$.** Reshaping the diagonal of $A_i$ (its eigenvalues, since it is
# diagonal) as (head, value channel, key), it must be constant along the value channel and equal the
# gates $\alpha_i$ (`GLA.log_gate`):

# %%
A = system.A.reshape(settings["batch"], L, H, d // H, n)
alpha = layer.log_gate(u).exp()  # (batch, L, H, n)
kron_error = (A - alpha[:, :, :, None, :]).abs().max().item()
print(f"max |A_i - I (x) diag(alpha_i)| = {kron_error:.2e}")
print(f"alpha in [{alpha.min():.4f}, {alpha.max():.4f}]")
assert kron_error < 1e-15 and (alpha > 0).all() and (alpha < 1).all()

# %% [markdown]
# **Between SSD and S6.** We build SSD, GLA and S6 with the same $d$, $n$ (and $H$ for the two that
# have heads), feed them one input, and count the distinct eigenvalues of $A_i$ per token
# ({numref}`fig-gla-richness` draws them):

# %%
u_trace = dsflib.random_input(1, settings["trace_length"], d, seed=seed + 2)
models = {"SSD": build(SSD, heads=H), "GLA": build(GLA, heads=H), "S6": build(S6)}
expected = {"SSD": H, "GLA": H * n, "S6": n * d}
systems, counts = {}, []
for name, model in models.items():
    s = systems[name] = model.to_dsf(u_trace)
    eig = s.A[0] if s.scalar_A else s.diag_A()[0]  # (L, H) or (L, N)
    distinct = [len(torch.unique(eig[t])) for t in range(eig.shape[0])]
    counts.append(dict(model=name, A_shape=str(tuple(s.A.shape)), N=s.N,
                       distinct_per_token=max(distinct), expected=expected[name]))
    assert min(distinct) == max(distinct) == expected[name]
show_table(pd.DataFrame(counts))
assert [c["distinct_per_token"] for c in counts] == [expected[m] for m in models]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The eigenvalues of A_i along one random sequence for SSD (one scalar per head), GLA (one gate per head and key dimension) and S6 (a full diagonal), built with the same d and n: the number of distinct decays per token grows from H to H n to n d.", "name": "fig-gla-richness"}, "image": {"alt": "Three heatmaps of the eigenvalues of A_i over tokens, with H, H·n and n·d rows for SSD, GLA and S6"}}
fig, axes = plt.subplots(3, 1, figsize=(8, 8.4))
transition_heatmap(systems["SSD"], axes[0], title=f"SSD: {H} scalars (one per head)")
# (H n, L): the distinct entries
gates = systems["GLA"].A.reshape(1, -1, H, d // H, n)[0, :, :, 0, :].flatten(1).T
sns.heatmap(gates.numpy(), ax=axes[1], cmap="magma", vmin=0.0, vmax=1.0,
            yticklabels=False, xticklabels=max(1, gates.shape[1] // 8),
            cbar_kws={"label": "eigenvalue of $A_i$"})
axes[1].set(xlabel="token i", ylabel=f"(head, key) ({H * n} shown)",
            title=f"GLA: {H}x{n} gates $\\alpha_i$")
transition_heatmap(systems["S6"], axes[2], title=f"S6: {n * d} entries (n x d)")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# Each head of GLA has $n$ time scales, shared by all $d/H$ value channels of the head; SSD has one,
# S6 has a separate set for every channel. What GLA does *not* have is any normalization: its $B_i$ is
# independent of $A_i$, like RetNet's and unlike S6's ($\Delta_i$) or attention's ($\eta_i$). See
# {doc}`ssd`, {doc}`s6`, {doc}`retnet` (the same layer with a fixed scalar decay) and {doc}`mlstm`.
