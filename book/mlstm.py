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
# # The matrix LSTM (mLSTM)
#
# xLSTM's mLSTM {cite:p}`beck2024xlstm` keeps the LSTM's gates but stores a matrix memory written with
# key–value outer products, like linear attention ({doc}`linear_attention`), and reads it out through a normalizer. Per head
# (key dimension $n$, value dimension $d/H$), with scalar gates per head and writing the memory as
# $M_i$ and the normalizer state as $\nu_i$ (xLSTM's $C_i$ and $n_i$; $C_i$ is the DSF's here):
#
# $$
# \begin{aligned}
# f_i &= \sigma(W_f u_i + b_f), \quad \iota_i = \sigma(W_\iota u_i + b_\iota), \quad
# o_i = \sigma(W_o u_i + b_o),\\
# q_i &= W_Q u_i, \quad k_i = W_K u_i/\sqrt{n}, \quad v_i = W_V u_i,\\
# M_i &= f_i M_{i-1} + \iota_i\, v_i k_i^\top, \qquad \nu_i = f_i \nu_{i-1} + \iota_i k_i,\\
# y_i &= W_O\Big(o_i \odot \frac{M_i q_i}{\max(|\nu_i^\top q_i|, 1)}\Big).
# \end{aligned}
# $$ (eq-mlstm-recurrence)
#
# (`dsflib`'s `MLSTM` uses a sigmoid input gate instead of xLSTM's exponential one, so that no
# running-max stabiliser — which is not a linear map of the state — is needed.) The memory is the
# state; the normalizer $\nu_i$ runs its own recurrence but is driven by the input only, so for a given
# input $\max(|\nu_i^\top q_i|, 1)$ is a known number per token and head. It therefore belongs to the
# read-out:
#
# $$
# \begin{aligned}
# A_i &= f_i I \ \text{(per head)}, \qquad
# B_i = \mathrm{blockdiag}_h\big(\iota^{(h)}_i\, I_{d/H} \otimes k^{(h)}_i\big) W_V,\\
# C_i &= W_O\, \mathrm{diag}(o_i)\, \mathrm{blockdiag}_h\Big(\frac{I_{d/H} \otimes
# q^{(h)\top}_i}{\max(|\nu^{(h)\top}_i q^{(h)}_i|, 1)}\Big),\\
# D_i &= 0, \qquad N = n d .
# \end{aligned}
# $$ (eq-mlstm-dsf)
#
# The distinguishing property is where the normalization sits. Linear and softmax attention divide by
# $\eta_i$, and in the paper's DSF form (App. B of {cite:t}`sieber2024dsf`, {doc}`linear_attention`)
# that normalization enters the *transition*, $A_i = (\eta_{i-1}/\eta_i) I$, and
# $B_i \propto 1/\eta_i$. The mLSTM leaves $A_i = f_i I$ a pure forget gate and puts its
# normalizer in $C_i$ — clamped so that it only ever *shrinks* the read-out.
#
# The code that ran: `_parts` runs one scan for the memory and the normalizer (a value channel of
# ones carries $\nu_i$), and `to_dsf` folds $o_i$ and the clamped normalizer into $C_i$ as in
# {eq}`eq-mlstm-dsf`.
#
# ```{literalinclude} ../dsflib/models/mlstm.py
# :pyobject: MLSTM._parts
# :caption: `dsflib/models/mlstm.py` — gates, memory and normalizer in one scan
# ```
#
# ```{literalinclude} ../dsflib/models/mlstm.py
# :pyobject: MLSTM.to_dsf
# :caption: `dsflib/models/mlstm.py` — the layer's DSF form {eq}`eq-mlstm-dsf`
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
from dsflib.models.mlstm import MLSTM
from dsflib.plotting import book_style, caption, phi_heatmap
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(d=4, n=4, heads=2, batch=2, length=24, trace_length=64),
    "paper": dict(d=8, n=8, heads=4, batch=4, length=48, trace_length=256),
})
info = run_info(profile, seed)
label = run_label(info)
torch.set_grad_enabled(False)  # analysis only
print(label)
pprint(settings, width=88, compact=True)

d, n, H, L = settings["d"], settings["n"], settings["heads"], settings["length"]
torch.manual_seed(seed)
layer = MLSTM(d, n=n, heads=H).double()
generator = torch.Generator().manual_seed(seed + 1)
u = torch.randn(settings["batch"], L, d, generator=generator, dtype=torch.float64)

# %% [markdown]
# **The layer is its DSF**, and its $\Phi$ ({numref}`fig-mlstm-phi`):

# %%
report = verify_layer(layer, u)
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9) and report.N == n * d
system = layer.to_dsf(u)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of an untrained mLSTM layer for one random sequence: block lower triangular because the layer is causal.", "name": "fig-mlstm-phi"}, "image": {"alt": "A signed heatmap of the lower-triangular matrix Φ of the mLSTM"}}
fig, ax = plt.subplots(figsize=(5.6, 4.8))
phi_heatmap(dsflib.materialize_phi(system)[0], ax,
            title=rf"$\Phi$ of the mLSTM (L={L}, d={d}, n={n}, H={H})")
caption(fig, label)
plt.show()

# %% [markdown]
# **The normalizer is at least one, and it lives in $C_i$.** We read $\max(|\nu_i^\top q_i|, 1)$ from
# the layer (`MLSTM.normalizer`) and rebuild $C_i$ of {eq}`eq-mlstm-dsf` from it, the gates and
# $q_i$; the DSF's $C_i$ must match, while its $A_i$ is the bare forget gate:

# %%
norm = layer.normalizer(u)  # (batch, L, H)
clamped = (norm == 1.0).double().mean().item()
print(f"normalizer: min {norm.min():.4f}, max {norm.max():.4f}")
print(f"clamped at 1 for {100 * clamped:.0f}% of (token, head)")
# both branches of the max occur
assert (norm >= 1.0).all() and 0.0 < clamped < 1.0

dv = d // H
q = layer.W_Q(u).reshape(settings["batch"], L, H, n)
o = torch.sigmoid(layer.W_o(u))
eye = torch.eye(dv, dtype=torch.float64)
C_expected = torch.stack([torch.stack([
    layer.W_O.weight @ torch.diag(o[b, i]) @ torch.block_diag(
        *[torch.kron(eye, q[b, i, h][None]) / norm[b, i, h] for h in range(H)])
    for i in range(L)]) for b in range(settings["batch"])])
c_error = (system.C - C_expected).abs().max().item()
a_error = (system.A - torch.sigmoid(layer.W_f(u))).abs().max().item()
print(f"max |C_i - W_O diag(o_i) blockdiag(I (x) q_i^T / norm_i)| = {c_error:.2e}")
print(f"max |A_i - f_i| = {a_error:.2e}")
# A_i = exp(logsigmoid(.)) against sigmoid(.) of the same numbers: a few roundings
assert c_error < 1e-14 and a_error < 8 * torch.finfo(torch.float64).eps

# %% [markdown]
# **The transition and the normalizer over time.** $A_i$ is one scalar per head times the identity,
# so its eigenvalue is $f_i$ itself. Top, the forget gates of each head on one sequence: $b_f$ starts
# in $[3, 6]$ across heads as in xLSTM ($f \approx 0.95$–$0.998$ at zero input), and the input moves
# each gate around that level ({numref}`fig-mlstm-trace`). Bottom, the normalizer: flat at one while
# $|\nu_i^\top q_i| < 1$, a token-dependent divisor above. A head with a longer memory accumulates
# more keys in $\nu_i$ and so can leave the clamp more often.

# %%
Lt = settings["trace_length"]
u_trace = torch.randn(1, Lt, d, generator=torch.Generator().manual_seed(seed + 2),
                      dtype=torch.float64)
# (L, H) each
f_trace, norm_trace = layer.to_dsf(u_trace).A[0], layer.normalizer(u_trace)[0]
assert (f_trace > 0).all() and (f_trace < 1).all() and (norm_trace >= 1).all()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The mLSTM along one random sequence, per head. Top: the forget gate f_i, which is the eigenvalue of A_i. Bottom: the normalizer max(|ν_iᵀ q_i|, 1) that scales C_i; by construction it never falls below the dotted line at 1.", "name": "fig-mlstm-trace"}, "image": {"alt": "Two line plots over tokens: forget gates per head, and normalizers per head bounded below by one"}}
frame = pd.DataFrame([dict(token=t, head=f"head {h}", f=f_trace[t, h].item(),
                           norm=norm_trace[t, h].item())
                      for h in range(H) for t in range(Lt)])
fig, axes = plt.subplots(2, 1, figsize=(8, 6.4))
sns.lineplot(frame, x="token", y="f", hue="head", ax=axes[0])
axes[0].set(xlabel="token i", ylabel="eigenvalue of $A_i$ ($f_i$)",
            title="forget gate = transition, per head")
sns.lineplot(frame, x="token", y="norm", hue="head", ax=axes[1], legend=False)
axes[1].axhline(1.0, color="grey", lw=0.8, ls=":")
axes[1].set(xlabel="token i", ylabel=r"$\max(|\nu_i^\top q_i|, 1)$",
            title="normalizer: in $C_i$, never below 1")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# In the DSF the mLSTM is RetNet with its fixed decay replaced by a learned scalar gate
# ({doc}`retnet`), an input gate folded into $B_i$, and an input-dependent, bounded read-out scale in
# $C_i$. Compare {doc}`linear_attention` and {doc}`normalized_attention` (normalization in $A_i$ and
# $B_i$), {doc}`gla` (a per-key gate) and {doc}`qlstm` (the LSTM gates on a diagonal state).
