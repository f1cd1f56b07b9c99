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
# # The RG-LRU (Griffin, Hawk)
#
# The Real-Gated Linear Recurrent Unit is the recurrent block of Griffin and Hawk
# {cite:p}`de2024griffin`, built on the LRU {cite:p}`orvieto2023lru`: a
# diagonal linear recurrence whose decay is gated by the input, like the qLSTM's forget gate, with one
# addition — the input is scaled by $\sqrt{1 - a_i^2}$, a factor tied to the decay itself. In the DSF
# this is a coupling between $A_i$ and $B_i$, and it is the same kind of coupling that S6 gets from its
# step size $\Delta_i$. The DSF form of the RG-LRU is the paper's (eq. 21, App. F.1); this chapter
# states it, checks it numerically against `dsflib`'s layer, and then measures what the $\sqrt{1-a_i^2}$
# buys: a state whose variance stays bounded however long the memory.
#
# ## The paper's form (eq. 21)
#
# The DSF paper {cite:p}`sieber2024dsf` writes the RG-LRU as the recurrence $x_i = a_i \odot x_{i-1} + \sqrt{1-a_i^2} \odot (i_i \odot u_i)$,
# $y_i = x_i$, with gates $r_i = \sigma(W_a u_i)$, $i_i = \sigma(W_u u_i)$ and $a_i = e^{-c r_i \odot \mathrm{softplus}(\Lambda)}$
# and "no pre-processing of $u_i$" (eqs. 9–10), and in the DSF as
#
# $$
# \begin{aligned}
# \Lambda_i &= e^{-c\, r_i \odot \mathrm{softplus}(A)} \in \mathbb{R}^{d\times d},\\
# B_i &= \sqrt{1 - \Lambda_i^2} \odot \mathrm{diag}(\sigma(W_B u_i)) \in \mathbb{R}^{d\times d},\\
# C_i &= \mathbb{I}_d ,
# \end{aligned}
# $$ (eq-rglru-paper)
#
# "where $r_i=\mathrm{diag}(\sigma(W_R u_i))$, and the function $\sqrt{1-\Lambda_i^2}$ is applied elementwise
# to $\Lambda_i$" (eq. 21, §3.2.3; the paper writes $\Lambda_i$ for the transition this book calls $A_i$).
# Like the qLSTM, "RG-LRU does not have state expansion, i.e. $n=1$". The paper's comparison with S6: "the
# couplings in RG-LRU and S6 are performed with different nonlinearities" (§4.3).
#
# ## The layer
#
# `dsflib`'s `RGLRU` is the recurrence of Griffin without the surrounding block (its short convolution
# and its GELU gating branch). It generalises {eq}`eq-rglru-paper` in three ways: a hidden width $m = n d$
# (state expansion, as §4.3 suggests), projections $W_x$ into and $W_{out}$ out of that width, and gate
# biases. With $x_i = W_x u_i$, and per hidden channel
#
# $$
# \begin{aligned}
# r_i &= \sigma(W_r u_i + b_r), \qquad g_i = \sigma(W_g u_i + b_g) \qquad (\in (0,1)^m),\\
# a_i &= a^{c\, r_i} = \exp\!\big(-c\, r_i \odot \mathrm{softplus}(-\Lambda)\big),\\
# a &= \sigma(\Lambda),\qquad c = 8,\\
# h_i &= a_i \odot h_{i-1} + \sqrt{1 - a_i^2} \odot (g_i \odot x_i), \qquad h_{-1} = 0,\\
# y_i &= W_{out}\, h_i .
# \end{aligned}
# $$ (eq-rglru-recurrence)
#
# $r_i$ is the *recurrence gate*, $g_i$ the *input gate*, and $\Lambda \in \mathbb{R}^m$ a learned
# parameter that fixes each channel's base decay $a = \sigma(\Lambda)$. The exponent $c\,r_i \in (0, c)$
# means the gate can only *lengthen* a channel's memory: $a_i$ lies between $a^c$ (at $r_i \to 1$) and
# $1$ (at $r_i \to 0$, where the channel ignores the token and keeps its state). Griffin initialises
# $a^c$ uniformly in $[0.9, 0.999]$, and so does `RGLRU`.
#
# ## The DSF form
#
# The state is $h_i \in \mathbb{R}^m$. Every product in {eq}`eq-rglru-recurrence` is elementwise, so it
# is a diagonal matrix: $a_i \odot h_{i-1} = \mathrm{diag}(a_i) h_{i-1}$ and
# $\sqrt{1-a_i^2} \odot g_i \odot W_x u_i = \mathrm{diag}(\sqrt{1-a_i^2} \odot g_i)\, W_x u_i$. Hence
#
# $$
# \begin{aligned}
# A_i &= \mathrm{diag}(a_i), \qquad B_i = \mathrm{diag}\big(\sqrt{1-a_i^2} \odot g_i\big)\, W_x,\\
# C_i &= W_{out}, \qquad D_i = 0, \qquad N = m = n d ,
# \end{aligned}
# $$ (eq-rglru-dsf)
#
# With $n = 1$, $W_x = W_{out} = I$ and zero biases this is {eq}`eq-rglru-paper`, with the paper's
# $\mathrm{softplus}(A)$ written as $\mathrm{softplus}(-\Lambda)$ (Griffin's parametrisation $a = \sigma(\Lambda)$) and
# $W_R, W_B$ as $W_r, W_g$. And by {eq}`eq-phi`
#
# $$
# \begin{aligned}
# \Phi_{ij} &= W_{out}\, \mathrm{diag}\Big( a_i \odot \cdots \odot a_{j+1} \odot
# \sqrt{1 - a_j^2} \odot g_j \Big)\, W_x,\\
# &\qquad j \le i .
# \end{aligned}
# $$ (eq-rglru-phi)
#
# Two features stand out. The read-out $C_i = W_{out}$ does not depend on the input at all — all
# selectivity is in $A_i$ and $B_i$. And $B_i$ contains $a_i$: the same gate that sets how long a
# channel remembers also sets how much of the current token it writes.
#
# The code that ran: `_parts` computes the gates, $\log a_i$ and the factor
# $\sqrt{1-a_i^2} \odot g_i$ of {eq}`eq-rglru-recurrence`; `to_dsf` assembles {eq}`eq-rglru-dsf`.
#
# ```{literalinclude} ../dsflib/models/rglru.py
# :pyobject: RGLRU._parts
# :caption: `dsflib/models/rglru.py` — the gates and the input normalization
# ```
#
# ```{literalinclude} ../dsflib/models/rglru.py
# :pyobject: RGLRU.to_dsf
# :caption: `dsflib/models/rglru.py` — the layer's DSF form {eq}`eq-rglru-dsf`
# ```

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import math
import textwrap
from pprint import pprint

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.rglru import RGLRU
from dsflib.plotting import book_style, caption, phi_figure, transition_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(d=4, n=2, batch=2, length=24, trace_length=64, const_length=40,
               const_decays=[0.5, 0.8, 0.95], g=0.7, var_d=8, var_batch=128,
               var_length=384, impulse_length=4096,
               impulse_decays=[0.5, 0.9, 0.99, 0.998]),
    "paper": dict(d=8, n=2, batch=4, length=48, trace_length=128, const_length=80,
                  const_decays=[0.5, 0.8, 0.95, 0.99], g=0.7, var_d=8, var_batch=256,
                  var_length=1024, impulse_length=16384,
                  impulse_decays=[0.5, 0.9, 0.99, 0.998, 0.9995]),
})
info = run_info(profile, seed)
label = run_label(info)
torch.set_grad_enabled(False)  # analysis only: no training in this chapter
print(label)
pprint(settings, width=88, compact=True)



def logit(p):
    return math.log(p) - math.log1p(-p)


def constant_gate_rglru(decays, g):
    """n = 1, W_x = W_out = I, and gates that ignore the input: channel k decays by
    decays[k] per step and writes sqrt(1 - a^2) g u_i. An LTI RG-LRU, for checks with
    closed forms."""
    torch.manual_seed(seed)
    layer = RGLRU(len(decays), n=1).double()
    eye = torch.eye(len(decays), dtype=torch.float64)
    layer.W_x.weight.copy_(eye)
    layer.W_out.weight.copy_(eye)
    for gate in (layer.W_r, layer.W_g):
        gate.weight.zero_()
    layer.W_r.bias.zero_()  # r = 1/2
    layer.W_g.bias.fill_(logit(g))  # sigma(b_g) = g
    # sigma(Lambda)^(c/2) = a
    layer.Lambda.copy_(torch.tensor([logit(a ** (2 / layer.c)) for a in decays],
                                    dtype=torch.float64))
    return layer


# %% [markdown]
# ## The layer is its DSF
#
# `verify_layer` compares the layer's forward pass (a chunked scan) with the DSF recurrence
# {eq}`eq-dsf` and with $\Phi u$, for a random float64 layer at Griffin's initialisation:

# %%
d, n, L = settings["d"], settings["n"], settings["length"]
torch.manual_seed(seed)
layer = RGLRU(d, n=n).double()
u = dsflib.random_input(settings["batch"], L, d, seed=seed + 1)
report = verify_layer(layer, u)
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9) and report.N == n * d and report.n == n

# %% [markdown]
# The paper's form: we set $n = 1$, $W_x = W_{out} = I$ and the gate biases to zero, build
# {eq}`eq-rglru-paper` directly from the parameters ($A = -\Lambda$, $W_R = W_r$, $W_B = W_g$) and compare
# it with the layer's DSF and output:

# %%
torch.manual_seed(seed)
paper_form = RGLRU(d, n=1).double()
for lin in (paper_form.W_x, paper_form.W_out):
    lin.weight.copy_(torch.eye(d, dtype=torch.float64))
for gate in (paper_form.W_r, paper_form.W_g):
    gate.bias.zero_()
A_param = -paper_form.Lambda  # the paper's A
r_i = torch.sigmoid(u @ paper_form.W_r.weight.T)  # diagonal of r_i
# eq. 21, the diagonal of Lambda_i
Lambda_i = torch.exp(-paper_form.c * r_i * F.softplus(A_param))
B_i = torch.diag_embed(torch.sqrt(1 - Lambda_i**2)
                       * torch.sigmoid(u @ paper_form.W_g.weight.T))
C_i = torch.eye(d, dtype=torch.float64).expand(*u.shape[:2], d, d)
paper_dsf = dsflib.DSF(Lambda_i, B_i, C_i)
layer_dsf = paper_form.to_dsf(u)
eq21_error = max((layer_dsf.A - paper_dsf.A).abs().max().item(),
                 (layer_dsf.B - paper_dsf.B).abs().max().item(),
                 (layer_dsf.C - paper_dsf.C).abs().max().item())
out_error = (paper_form(u) - dsflib.recurrence(paper_dsf, u)).abs().max().item()
print(f"n = 1: N = {paper_dsf.N} = d")
print(f"max |DSF(layer) - eq. 21|             = {eq21_error:.1e}")
print(f"max |layer(u) - recurrence(eq. 21)| = {out_error:.1e}")
assert paper_dsf.N == d and eq21_error < 1e-14 and out_error < 1e-12
assert layer_dsf.D is None

# %% [markdown]
# ## What $\Phi$ looks like
#
# At initialisation every channel remembers for at least about ten tokens ($a_i \ge a^c \ge 0.9$), so
# within $L$ tokens the blocks of $\Phi$ fade only gradually; what varies from column to column
# is how much each token is written ($\sqrt{1-a_j^2} \odot g_j$). {numref}`fig-rglru-phi` shows
# the full matrix (left) and the block norms on a log scale (right).

# %%
system = layer.to_dsf(u)
phi = dsflib.materialize_phi(system)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of the RG-LRU at Griffin's initialisation for one random sequence. Left: the full Ld × Ld matrix, block lower triangular because the layer is causal. Right: the Frobenius norm of each d × d block on a log scale.", "name": "fig-rglru-phi"}, "image": {"alt": "Two heatmaps: the signed lower-triangular matrix Φ of the RG-LRU and the map of its block norms"}}
phi_figure(phi[0], label,
           title=f"RG-LRU at Griffin's initialisation "
                 f"(L={L}, d={d}, n={n}, N={system.N})",
           heatmap_title=r"$\Phi$ of the RG-LRU ($Ld \times Ld$)")
plt.show()

# %% [markdown]
# ## The transition over time
#
# $A_i$ is diagonal, so its entries are its eigenvalues. Written as in {eq}`eq-rglru-recurrence`,
# $a_i = \exp(c\, r_i \cdot (-\mathrm{softplus}(-\Lambda)))$ has exactly the form of an S6 eigenvalue
# $\exp(\Delta_i a)$: a negative, input-independent rate $-\mathrm{softplus}(-\Lambda)$ times a positive,
# input-dependent step $c\, r_i$ — a sigmoid here, a softplus in S6. We check both forms against the
# layer's DSF on a longer sequence, and that every $a_i$ lies in $[a^c, 1)$:

# %%
Lt = settings["trace_length"]
u_trace = dsflib.random_input(1, Lt, d, seed=seed + 2)
trace = layer.to_dsf(u_trace)
A_trace = trace.A[0]  # (L, N)
r = torch.sigmoid(layer.W_r(u_trace))[0]
err_power = (A_trace - torch.sigmoid(layer.Lambda) ** (layer.c * r)).abs().max().item()
err_s6 = (A_trace - torch.exp(layer.c * r * -F.softplus(-layer.Lambda))).abs().max()
err_s6 = err_s6.item()
# a^c: the shortest memory a channel can have
floor = torch.sigmoid(layer.Lambda) ** layer.c
print(f"max |A_i - sigma(Lambda)^(c r_i)|          = {err_power:.2e}")
print(f"max |A_i - exp(-c r_i softplus(-Lambda))| = {err_s6:.2e}")
print(f"a^c over channels: [{floor.min():.4f}, {floor.max():.4f}];  "
      f"A_i over tokens: [{A_trace.min():.4f}, {A_trace.max():.6f}]")
assert err_power < 1e-14 and err_s6 < 1e-14
assert (A_trace >= floor).all() and (A_trace < 1).all()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The eigenvalues of the RG-LRU's A_i along one random sequence. Top: all diagonal entries (colour scale from 0 to 1). Bottom: the channels with the lowest and the highest base decay a^c; the dotted lines are their floors a^c, which the gated decay never crosses.", "name": "fig-rglru-transition"}, "image": {"alt": "A heatmap of the diagonal of A_i over tokens, and two line plots of single entries with dotted horizontal floors"}}
fig, axes = plt.subplots(2, 1, figsize=(8, 6.6))
transition_heatmap(trace, axes[0], title=r"RG-LRU: diagonal of $A_i$")
entries = [int(floor.argmin()), int(floor.argmax())]
frame = pd.DataFrame([dict(token=i, value=A_trace[i, k].item(),
                           entry=f"entry {k} ($a^c$={floor[k]:.3f})")
                      for k in entries for i in range(Lt)])
sns.lineplot(frame, x="token", y="value", hue="entry", ax=axes[1])
for k in entries:
    axes[1].axhline(floor[k].item(), color="grey", lw=0.8, ls=":")
axes[1].set(xlabel="token i", ylabel="eigenvalue of $A_i$",
            title=r"two entries of $A_i$ and their floors $a^c$")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# In {numref}`fig-rglru-transition` the heatmap's colour scale runs from 0 to 1, and at
# initialisation every entry sits at or above $a^c \ge 0.9$ (printed above): the RG-LRU starts
# with long memories everywhere. On the right, the channels with the shortest
# ($a^c$ lowest) and longest base memory; the dotted lines are their floors $a^c$, which the gate never
# crosses.
#
# ## The input normalization $\sqrt{1 - a_i^2}$
#
# Why the factor? Take constant gates, $a_i = a$ and $g_i = g$, one channel, $W_x = W_{out} = 1$, and
# white input of unit variance. Then $h_i = \sum_{j \le i} \Phi_{ij} u_j$ has variance
#
# $$
# \begin{aligned}
# \mathrm{Var}(h_i) = \sum_{j \le i} \Phi_{ij}^2
# &= g^2 (1 - a^2) \sum_{k=0}^{i} a^{2k}\\
# &= g^2 \big(1 - a^{2(i+1)}\big) \le g^2 ,
# \end{aligned}
# $$ (eq-rglru-variance)
#
# whatever the decay. Without the factor the same sum is $g^2 (1 - a^{2(i+1)})/(1 - a^2)$, which
# grows without bound as $a \to 1$: exactly the long-memory channels would blow up. We build RG-LRUs
# whose gates ignore the input (zero gate weights; one channel per decay) and compare the row sums of
# $\Phi^2$ with {eq}`eq-rglru-variance`. The un-normalized system is the same DSF with
# $\sqrt{1-a_i^2}$ divided out of $B_i$.

# %%
decays, g, Lc = settings["const_decays"], settings["g"], settings["const_length"]
lti = constant_gate_rglru(decays, g)
# the gates ignore the input: any input gives the same DSF
lti_dsf = lti.to_dsf(dsflib.random_input(1, Lc, len(decays), seed=seed + 3))
A = lti_dsf.A
unnormalized = dsflib.DSF(A, lti_dsf.B / torch.sqrt(1 - A**2)[..., None],
                          lti_dsf.C, lti_dsf.D)
i = torch.arange(Lc, dtype=torch.float64)[:, None]
a = torch.tensor(decays, dtype=torch.float64)
rows = []
closed_form = g**2 * (1 - a ** (2 * (i + 1)))
exact = []
for name, dsf_, expected in [("with sqrt(1-a^2)", lti_dsf, closed_form),
                             ("without", unnormalized, closed_form / (1 - a**2))]:
    # (L, L, d, d), diagonal blocks: channels do not mix
    phi_c = dsflib.materialize_phi(dsf_)[0]
    diagonal = torch.diagonal(phi_c, dim1=-2, dim2=-1)
    assert (phi_c - torch.diag_embed(diagonal)).abs().max() == 0
    var = (diagonal**2).sum(dim=1)  # sum_j Phi_ij^2, (L, channels)
    error = (var - expected).abs().max().item()
    exact.append({"B_i": name, "max |sum_j Phi_ij^2 - closed form|": error,
                  **{f"a={ak}: Var(h) at i={Lc - 1}": v
                     for ak, v in zip(decays, var[-1].tolist())}})
    assert error < 1e-12
    rows += [dict(token=t, variance=var[t, k].item(), decay=f"a = {ak}",
                  normalization=name)
             for k, ak in enumerate(decays) for t in range(Lc)]
show_table(pd.DataFrame(exact), digits=3)
assert max(r["variance"] for r in rows
           if r["normalization"] == "with sqrt(1-a^2)") <= g**2 + 1e-15

# %% [markdown]
# With input-dependent gates there is no closed form, so we measure: a layer at Griffin's
# initialisation (random gate weights, $n = 1$, $W_x = W_{out} = I$ so that the output *is* the state),
# a batch of white unit-variance sequences, and the variance of $h_i$ across the batch at every token
# — once for the layer and once for the same DSF without the factor.

# %%
dv, Lv = settings["var_d"], settings["var_length"]
torch.manual_seed(seed)
griffin = RGLRU(dv, n=1).double()
griffin.W_x.weight.copy_(torch.eye(dv, dtype=torch.float64))
griffin.W_out.weight.copy_(torch.eye(dv, dtype=torch.float64))
u_var = dsflib.random_input(settings["var_batch"], Lv, dv, seed=seed + 4)
g_dsf = griffin.to_dsf(u_var)
g_raw = dsflib.DSF(g_dsf.A, g_dsf.B / torch.sqrt(1 - g_dsf.A**2)[..., None],
                   g_dsf.C, g_dsf.D)
var_norm = griffin(u_var).var(dim=0)  # (L, channels)
var_raw = dsflib.recurrence(g_raw, u_var).var(dim=0)
a_c = torch.sigmoid(griffin.Lambda) ** griffin.c
print(f"{settings['var_batch']} sequences x {Lv} tokens, {dv} channels, "
      f"a^c in [{a_c.min():.3f}, {a_c.max():.3f}]")
print("max over tokens and channels of Var(h_i):")
print(f"  with sqrt(1-a^2): {var_norm.max():.3f} "
      f"({'below' if var_norm.max() < 1 else 'not below'} one)")
print(f"  without:          {var_raw.max():.2f} "
      f"({var_raw.max() / var_norm.max():.1f} times the normalized maximum)")
assert var_norm.max() < 1.0 and var_raw.max() > 10 * var_norm.max()
empirical = pd.DataFrame([dict(token=t, variance=v, normalization=name)
                          for name, var in [("with sqrt(1-a^2)", var_norm),
                                            ("without", var_raw)]
                          for t, v in enumerate(var.mean(dim=1).tolist())])

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Variance of the RG-LRU's state with and without the factor √(1 − a²). Top: constant gates, the exact row sums of Φ² for several decays a (solid: with the factor; dashed: without). Bottom: input-dependent gates at Griffin's initialisation, the variance measured across a batch of white-noise sequences, averaged over channels. Log scale.", "name": "fig-rglru-variance"}, "image": {"alt": "Two log-scale line plots of the state variance over tokens, with and without the input normalization"}}
fig, axes = plt.subplots(2, 1, figsize=(8, 7.4))
sns.lineplot(pd.DataFrame(rows), x="token", y="variance", hue="decay",
             style="normalization", ax=axes[0])
axes[0].set(yscale="log", xlabel="token i",
            ylabel=r"$\mathrm{Var}(h_i) = \sum_j \Phi_{ij}^2$",
            title=f"constant gates (g = {g}): exact")
sns.move_legend(axes[0], "center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
sns.lineplot(empirical, x="token", y="variance", hue="normalization", ax=axes[1])
axes[1].set(yscale="log", xlabel="token i",
            ylabel="Var$(h_i)$, mean over channels",
            title="input-dependent gates, Griffin init: measured")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# With the factor, the exact variance saturates at $g^2$ ({numref}`fig-rglru-variance`, top,
# solid; asserted above); without it, it grows towards $g^2/(1 - a^2)$. The lines printed above
# the figure state how the measured variance with input-dependent gates (bottom) compares, with
# and without the factor, over the tokens measured here. A channel with a constant
# decay $a = 0.999$, the top of Griffin's range, would settle at $g^2/(1 - a^2) \approx 500\, g^2$.
#
# ## The same idea as S6's $\Delta$, with another norm
#
# S6 couples its matrices through the step size: $A_i = \exp(\Delta_i a)$ and $B_i \propto \Delta_i$.
# With $a = -1$ that is $B_i \propto -\log A_i \approx 1 - A_i$ for $A_i$ near one. The RG-LRU couples
# them through $B_i \propto \sqrt{1 - A_i^2} \approx \sqrt{2(1 - A_i)}$. Both say: a channel that
# remembers ($A_i \to 1$) writes little. They differ in *what* they hold fixed. For a constant decay
# $a$, the impulse response $\Phi_{i,i-k} = b\, a^k$ has
#
# $$
# \begin{aligned}
# \text{S6 } (b = -\log a):&\quad \sum_k \Phi_{i,i-k} = \frac{-\log a}{1-a} \to 1,\\
# \text{RG-LRU } (b = \sqrt{1-a^2}):&\quad \sum_k \Phi_{i,i-k}^2 = 1 ,
# \end{aligned}
# $$ (eq-rglru-coupling)
#
# in the limit of long sequences: S6 keeps the **gain** for a constant input near one (an average
# over the remembered window), the RG-LRU keeps the **energy** for white input at one (the variance
# above). Each then lets the other quantity drift: S6's $\sum_k \Phi^2 \approx (1-a)/2 \to 0$,
# the RG-LRU's $\sum_k \Phi \to \sqrt{(1+a)/(1-a)} \to \infty$. We measure both from impulse
# responses: the RG-LRU's from a constant-gate layer ($g \approx 1$), S6's from the DSF with the same
# $A$ and $B = -\log a$.

# %%
decays_imp, Li = settings["impulse_decays"], settings["impulse_length"]
rg = constant_gate_rglru(decays_imp, 1.0 - 1e-12)
impulse = torch.zeros(1, Li, len(decays_imp), dtype=torch.float64)
impulse[:, 0] = 1.0
response_rg = rg(impulse)[0]  # (L, channels): Phi_{k,0} = sqrt(1 - a^2) a^k
A_imp = rg.to_dsf(impulse).A
# A = a, B = -log a (S6 with a = -1, Delta = -log a), C = I
eye = torch.eye(len(decays_imp), dtype=torch.float64).expand(1, Li, -1, -1)
s6_like = dsflib.DSF(A_imp, torch.diag_embed(-torch.log(A_imp)), eye, None)
response_s6 = dsflib.recurrence(s6_like, impulse)[0]
coupling = pd.DataFrame({
    "a": decays_imp,
    "S6: sum Phi": response_s6.sum(0).tolist(),
    "S6: sum Phi^2": (response_s6**2).sum(0).tolist(),
    "RG-LRU: sum Phi": response_rg.sum(0).tolist(),
    "RG-LRU: sum Phi^2": (response_rg**2).sum(0).tolist(),
}).set_index("a")
print(f"impulse responses over {Li} tokens\n{label}")
show_table(coupling.reset_index(), digits=4)
assert ((coupling["RG-LRU: sum Phi^2"] - 1).abs() < 1e-3).all()
# -log(a)/(1-a): 1.39 at a = 0.5, -> 1 as a -> 1
assert ((coupling["S6: sum Phi"] - 1).abs() < 0.4).all()
assert coupling["RG-LRU: sum Phi"].is_monotonic_increasing
assert coupling["S6: sum Phi^2"].is_monotonic_decreasing

# %% [markdown]
# The table is {eq}`eq-rglru-coupling` in numbers: across two orders of magnitude of memory length,
# the RG-LRU's squared sum stays at one while its plain sum grows, and S6's plain sum stays near one
# while its squared sum shrinks. Neither coupling is "the" right one — they are two normalizations of
# the same DSF structure, in the same spirit as attention's normalization $\eta_i$
# ({doc}`linear_attention`), which couples
# $A_i$ and $B_i$ through the query and all past keys instead.
#
# ## Related chapters
#
# - {doc}`dsf` — the framework and $\Phi$.
# - {doc}`s6` — the step size $\Delta_i$ that couples $A_i$ and $B_i$ in Mamba.
# - {doc}`qlstm` — the gated diagonal recurrence without an input normalization, and the paper's
#   reversed-sigmoid forget gate.
# - {doc}`linear_attention` and {doc}`normalized_attention` — normalization as a coupling through $\eta_i$.
