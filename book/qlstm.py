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
# # The quasi-LSTM
#
# The LSTM {cite:p}`hochreiter1997lstm` is the recurrent network the DSF {cite:p}`sieber2024dsf` is
# least obviously about: its state passes through
# nonlinearities at every step. This chapter removes exactly the two nonlinearities that stand in the
# way, arrives at the *quasi-LSTM* (qLSTM) — an LSTM whose gates read only the current input — and
# writes it as a DSF — first in the paper's own form (eq. 20, state size $N = d$), then in the width-$nd$
# form of the authors' released code, which `dsflib` uses by default. The DSF form then explains the
# paper's modification of the forget gate: the transition of S6 {cite:p}`gu2023mamba`
# ({doc}`s6`) written as a reversed sigmoid raised to a learned power (eq. 23).
#
# ## From the LSTM to the qLSTM
#
# An LSTM cell with input $u_i \in \mathbb{R}^d$, cell state $c_i$ and output $y_i$ computes (the paper's
# eqs. 5–7 write the same cell with $x_i$ for the cell state and $U_\bullet$ for the recurrent weights)
#
# $$
# \begin{aligned}
# f_i &= \sigma(W_f u_i + R_f y_{i-1} + b_f), &
# \iota_i &= \sigma(W_\iota u_i + R_\iota y_{i-1} + b_\iota),\\
# o_i &= \sigma(W_o u_i + R_o y_{i-1} + b_o), &
# z_i &= \tanh(W_z u_i + R_z y_{i-1}),\\
# c_i &= f_i \odot c_{i-1} + \iota_i \odot z_i, &
# y_i &= o_i \odot \tanh(c_i).
# \end{aligned}
# $$ (eq-qlstm-lstm)
#
# Two things keep {eq}`eq-qlstm-lstm` out of the DSF {eq}`eq-dsf`. First, the recurrent weights
# $R_\bullet$: a gate that reads $y_{i-1}$ is a function of the *state*, so "$A_i$" would change with
# the very state it multiplies, and there is no input-dependent linear system to speak of. Second, the
# $\tanh$ on the cell state, which makes the read-out nonlinear in $c_i$.
#
# The **quasi-LSTM** (the paper's eq. 8) drops the recurrent weights: every gate is a function of $u_i$ alone. The cell
# update $c_i = f_i \odot c_{i-1} + \iota_i \odot z_i$ is then linear in the state with input-dependent
# coefficients — already a DSF recurrence. To write it in the DSF the paper also drops the two $\tanh$s:
# "the tanh functions in the input pre-processing (8) and output gate (5b) need to be dropped" (§3.2.3);
# the candidate becomes a linear projection and the read-out $o_i \odot c_i$. `dsflib`'s `QLSTM` is this
# layer, with a hidden width $m = n d$ and projections into and out of it. With $x_i = W_{in} u_i$,
#
# $$
# \begin{aligned}
# f_i &= \sigma(W_f u_i + b_f), \qquad \iota_i = \sigma(W_\iota u_i + b_\iota),\\
# o_i &= \sigma(W_o u_i + b_o) \qquad (f_i, \iota_i, o_i \in (0,1)^m),\\
# c_i &= f_i \odot c_{i-1} + \iota_i \odot x_i, \qquad c_{-1} = 0,\\
# y_i &= W_{out}\,(o_i \odot c_i).
# \end{aligned}
# $$ (eq-qlstm-recurrence)
#
# (The three gate projections are stored as one matrix `W_gates` $= [W_f; W_\iota; W_o]$.) The
# authors' MQAR implementation of the qLSTM has two more pieces, a short causal convolution before
# the gates and a GELU branch that multiplies the output; `QLSTM` leaves both out. The GELU branch is
# an input-dependent elementwise factor and would fold into $C_i$ like $o_i$; the convolution feeds
# the scan with past inputs and would have to be carried as extra state.
#
# ## The DSF form
#
# Take the cell state as the DSF state, $h_i = c_i \in \mathbb{R}^m$. Writing the elementwise products
# in {eq}`eq-qlstm-recurrence` as diagonal matrices, $f_i \odot c_{i-1} = \mathrm{diag}(f_i)\, c_{i-1}$
# and $\iota_i \odot W_{in} u_i = \mathrm{diag}(\iota_i) W_{in} u_i$, and
# $W_{out}(o_i \odot c_i) = W_{out}\,\mathrm{diag}(o_i)\, c_i$, we read off
#
# $$
# \begin{aligned}
# A_i &= \mathrm{diag}(f_i), \qquad B_i = \mathrm{diag}(\iota_i)\, W_{in}, \qquad
# C_i = W_{out}\,\mathrm{diag}(o_i),\\
# D_i &= 0, \qquad N = m = n d ,
# \end{aligned}
# $$ (eq-qlstm-dsf)
#
# so the state expansion $n$ is the hidden-width multiplier. Inserting {eq}`eq-qlstm-dsf` into {eq}`eq-phi`,
#
# $$
# \begin{aligned}
# \Phi_{ij} &= W_{out}\,\mathrm{diag}\big(o_i \odot f_i \odot f_{i-1} \odot \cdots
# \odot f_{j+1} \odot \iota_j\big)\, W_{in},\\
# &\qquad j \le i:
# \end{aligned}
# $$ (eq-qlstm-phi)
#
# every hidden channel is an independent scalar filter with its own input-dependent decay — $A_i$ has
# $N$ distinct diagonal entries, as rich as S6's transition — and channels mix only through $W_{in}$
# and $W_{out}$. Unlike attention there is no query–key product: the gates $\iota_j$ and $o_i$ act on
# each channel separately.
#
# The code that ran: `_parts` computes the gates ($\log f_i$, $\iota_i$ as the scan's key, $o_i$
# as its query) and `to_dsf` assembles {eq}`eq-qlstm-dsf` from them.
#
# ```{literalinclude} ../dsflib/models/qlstm.py
# :pyobject: QLSTM._parts
# :caption: `dsflib/models/qlstm.py` — the gates of {eq}`eq-qlstm-recurrence`
# ```
#
# ```{literalinclude} ../dsflib/models/qlstm.py
# :pyobject: QLSTM.to_dsf
# :caption: `dsflib/models/qlstm.py` — the layer's DSF form {eq}`eq-qlstm-dsf`
# ```
#
# ## The paper's form (eq. 20) and ours
#
# The paper writes the qLSTM with the cell state itself as the DSF state and no projection out of it
# (eq. 20, derived in App. F.2; biases are omitted from the paper's notation):
#
# $$
# \begin{aligned}
# \Lambda_i &= \mathrm{diag}(\sigma(W_f u_i)) \in \mathbb{R}^{d\times d},\\
# B_i &= \mathrm{diag}(\sigma(W_i u_i)) \odot W_u \in \mathbb{R}^{d\times d},\\
# C_i &= \mathrm{diag}(\sigma(W_o u_i)) \in \mathbb{R}^{d\times d},
# \end{aligned}
# $$ (eq-qlstm-paper)
#
# with $W_f, W_i, W_o, W_u \in \mathbb{R}^{d\times d}$ (the paper writes $\Lambda_i$ for $A_i$). The product
# in $B_i$ is the row scaling $\mathrm{diag}(\sigma(W_i u_i))\, W_u$: App. F.2 writes the update as
# $x_i = f_i x_{i-1} + (i_i \odot W_u) u_i$, which comes from $i_i \odot \bar u_i$ with $\bar u_i = W_u u_i$
# (eqs. 5, 8). Its state size is $N = d$: "For qLSTMs $n=1$, which will become relevant in further
# discussions; we refer to the fact that $n>1$ as state expansion" (§3.2.3).
#
# {eq}`eq-qlstm-paper` is {eq}`eq-qlstm-dsf` with $n = 1$, $W_{in} = W_u$ and no $W_{out}$:
# `QLSTM(d, n=1, output_projection=False)`. The default is different on purpose. The authors' released
# MQAR code for the qLSTM experiments (Fig. 3) runs the qLSTM at a hidden width of $2d$ (an expansion
# factor of 2) with projections in and out, so the layer it trains has $n = 2$ in DSF terms.
# That is also how §4.3 says state expansion enters these RNNs: "In qLSTM and RG-LRU, state expansion can
# be easily incorporated by changing the dimensions of the projections $W_f$, $W_i$, $W_o$". `QLSTM`
# keeps the released code's width ($n = 2$ by default) so that {doc}`mqar` trains the model the
# paper's figure comes from; the paper's $n = 1$ form is one argument away, and by Lemma 2 (see
# {doc}`dsf`) the width-$2d$ layer contains it.

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes (still cheap here)
seed = 0

# %%
import math
import textwrap
from dataclasses import asdict
from pprint import pprint

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F

import dsflib
from dsflib.env import run_info, run_label, select_profile
from dsflib.models.qlstm import QLSTM
from dsflib.plotting import book_style, caption, phi_figure, transition_heatmap
from dsflib.tables import show_table
from dsflib.verify import verify_layer

book_style()
settings = select_profile(profile, {
    "ci": dict(d=4, n=2, batch=2, length=24, trace_length=64, stats_d=8, stats_batch=4,
               stats_length=256, alpha=2.0, alphas=[0.25, 1.0, 4.0]),
    "paper": dict(d=8, n=2, batch=4, length=48, trace_length=128, stats_d=16,
                  stats_batch=16, stats_length=1024, alpha=2.0,
                  alphas=[0.25, 0.5, 1.0, 2.0, 4.0]),
})
info = run_info(profile, seed)
label = run_label(info)
torch.set_grad_enabled(False)  # analysis only: no training in this chapter
print(label)
pprint(settings, width=88, compact=True)


def qlstm(d, reversed_sigmoid=False, alpha=None):
    """A float64 QLSTM with the chapter's seed; for eq. 23 with exponent alpha."""
    torch.manual_seed(seed)
    layer = QLSTM(d, n=settings["n"], reversed_sigmoid=reversed_sigmoid).double()
    if alpha is not None:
        # alpha = softplus(alpha_param)
        layer.alpha_param.fill_(math.log(math.expm1(alpha)))
    return layer



# %% [markdown]
# ## The layer is its DSF
#
# `QLSTM.to_dsf(u)` returns {eq}`eq-qlstm-dsf` for an input $u$. `verify_layer` evaluates the layer
# three ways — its own forward pass (a chunked scan), the DSF recurrence {eq}`eq-dsf` and $\Phi u$ —
# and reports the largest disagreement. We check both forget gates: the sigmoid of
# {eq}`eq-qlstm-recurrence` and the reversed sigmoid of eq. 23 (introduced below), with its exponent
# moved away from its initial value 1 so that the exponent is exercised.

# %%
d, n, L = settings["d"], settings["n"], settings["length"]
u = dsflib.random_input(settings["batch"], L, d, seed=seed + 1)
reversed_name = f"reversed sigmoid, alpha={settings['alpha']}"
layers = {"sigmoid forget gate": qlstm(d),
          reversed_name: qlstm(d, True, settings["alpha"])}
reports = {name: verify_layer(layer, u) for name, layer in layers.items()}
show_table(pd.DataFrame([{"forget gate": name, **asdict(report)}
                         for name, report in reports.items()]),
           digits=3, caption="largest disagreements of the three evaluations (float64)")
for report in reports.values():
    assert report.ok(1e-9) and report.N == n * d and report.n == n

# %% [markdown]
# The paper's form, `QLSTM(d, n=1, output_projection=False)`, passes the same check, with state size
# $N = d$; its DSF matrices are exactly {eq}`eq-qlstm-paper`, built here from the layer's parameters:

# %%
torch.manual_seed(seed)
paper_form = QLSTM(d, n=1, output_projection=False).double()
# the paper omits biases; any bias is folded into W_f, W_i, W_o
paper_form.W_gates.bias.normal_(0.0, 0.5)
report = verify_layer(paper_form, u)
print("paper form (eq. 20):")
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9) and report.N == d and report.n == 1 and paper_form.W_out is None
paper_dsf = paper_form.to_dsf(u)
gates = torch.sigmoid(paper_form.W_gates(u))  # [f; i; o], each (batch, L, d)
f_g, i_g, o_g = gates[..., :d], gates[..., d : 2 * d], gates[..., 2 * d :]
eq20_error = max((paper_dsf.A - f_g).abs().max().item(),
                 (paper_dsf.B - torch.diag_embed(i_g) @ paper_form.W_in.weight)
                 .abs().max().item(),
                 (paper_dsf.C - torch.diag_embed(o_g)).abs().max().item())
print(f"N = {paper_dsf.N} = d; D_i = {paper_dsf.D}")
print(f"max deviation from eq. 20 (Lambda_i, B_i, C_i): {eq20_error:.1e}")
# the same gate pre-activations as the layer's: B_i and C_i are the same products;
# Lambda_i = exp(logsigmoid) differs from sigmoid by a few roundings, i.e. eps's
eps = torch.finfo(torch.float64).eps
assert paper_dsf.N == d and eq20_error < 8 * eps and paper_dsf.D is None

# %% [markdown]
# ## What $\Phi$ looks like
#
# In {numref}`fig-qlstm-phi` the left panel is the full $Ld \times Ld$ matrix $\Phi$ of one
# sequence for the sigmoid-gated
# layer at its initialisation; the right panel shows the Frobenius norm of each $d \times d$ block on a
# log scale. The forget gates start close to one (the bias makes $f \in [0.9, 0.95]$ at zero input),
# so old tokens fade slowly; the gates $\iota_j$ and $o_i$ modulate columns and rows token by token,
# which is what makes the pattern uneven rather than a clean Toeplitz decay.

# %%
sigmoid_layer = layers["sigmoid forget gate"]
system = sigmoid_layer.to_dsf(u)
phi = dsflib.materialize_phi(system)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Φ of the sigmoid-gated qLSTM at initialisation for one random sequence. Left: the full Ld × Ld matrix, block lower triangular because the layer is causal. Right: the Frobenius norm of each d × d block on a log scale.", "name": "fig-qlstm-phi"}, "image": {"alt": "Two heatmaps: a signed lower-triangular matrix and a lower-triangular map of block norms of the qLSTM's Φ"}}
phi_figure(phi[0], label,
           title=f"qLSTM, sigmoid forget gate (L={L}, d={d}, n={n}, N={system.N})",
           heatmap_title=r"$\Phi$ of the qLSTM ($Ld \times Ld$)")
plt.show()

# %% [markdown]
# ## The transition over time
#
# $A_i$ is diagonal, so its diagonal entries *are* its eigenvalues; for the qLSTM they are the forget
# gates $f_i$ themselves. {numref}`fig-qlstm-transition` shows all $N$ of them along one longer
# random sequence (top) and three selected entries as curves (bottom). They are input-dependent — each token moves every gate — but
# always strictly inside $(0, 1)$: the system is stable for every input.

# %%
Lt = settings["trace_length"]
u_trace = dsflib.random_input(1, Lt, d, seed=seed + 2)
trace = sigmoid_layer.to_dsf(u_trace)
A_trace = trace.A[0]  # (L, N): the full diagonal, one column per state entry
print(f"A_i entries over {Lt} tokens: min {A_trace.min():.4f}, "
      f"median {A_trace.median():.4f}, max {A_trace.max():.4f}")
assert (A_trace > 0).all() and (A_trace < 1).all()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The eigenvalues of the qLSTM's A_i are its forget gates f_i. Top: all N diagonal entries along one random sequence (colour: value). Bottom: three of them as curves. Every entry lies strictly inside (0, 1).", "name": "fig-qlstm-transition"}, "image": {"alt": "A heatmap of the forget gates over tokens and state entries, and three line plots of individual gates over tokens"}}
fig, axes = plt.subplots(2, 1, figsize=(8, 6.6))
transition_heatmap(trace, axes[0],
                   title=r"qLSTM: diagonal of $A_i$ = forget gates $f_i$")
entries = [0, trace.N // 2, trace.N - 1]
frame = pd.DataFrame([dict(token=i, value=A_trace[i, k].item(),
                           entry=f"state entry {k}")
                      for k in entries for i in range(Lt)])
sns.lineplot(frame, x="token", y="value", hue="entry", ax=axes[1])
axes[1].set(xlabel="token i", ylabel="eigenvalue of $A_i$",
            title="three entries of $A_i$ over time")
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# ## The reversed-sigmoid forget gate (paper eq. 23)
#
# The DSF puts the qLSTM and S6 side by side: both have a full diagonal, input-dependent $A_i$. In S6
# every eigenvalue is $\exp(\Delta_i a)$ with $a < 0$ and a step $\Delta_i = \mathrm{softplus}(z_i)$,
# $z_i$ a linear function of $u_i$. For any $a > 0$ and real $z$,
#
# $$
# \exp\!\big(-a\,\mathrm{softplus}(z)\big) = (1 + e^{z})^{-a} = \sigma(-z)^{a},
# $$ (eq-qlstm-identity)
#
# so an S6 eigenvalue is a *reversed* sigmoid of a linear function of the input, raised to a learned
# power. This is the paper's eq. 23 (§4.3, derived in App. I "assuming $A=a\cdot\mathbb{I}_{nd}$"):
# $\Lambda_i = \mathrm{diag}(\sigma_{\mathrm{rev}}(\bar W_\Delta u_i)^a) \otimes \mathbb{I}_n$ with
# $\sigma_{\mathrm{rev}}(x) = \frac{1}{1+e^x} = \sigma(-x)$. With $n = 1$, "this expression almost coincides
# with the qLSTM state transition (20a), with the only difference that (I) it uses the reversed sigmoid
# function instead of a sigmoid for the forget gate, and (II) there is an additional learnt parameter $a$
# in the exponent" (§4.3). The paper's qLSTM variant replaces the forget gate by (23):
#
# $$
# A_i = \mathrm{diag}(f_i), \qquad f_i = \sigma\big(-(W_f u_i + b_f)\big)^{\alpha}, \qquad \alpha > 0,
# $$ (eq-qlstm-eq23)
#
# with one learned exponent $\alpha$ for all channels (`QLSTM(reversed_sigmoid=True)`; the module
# keeps $\alpha = \mathrm{softplus}(\alpha_{param}) > 0$ and starts at $\alpha = 1$). First the
# identity {eq}`eq-qlstm-identity`, on a grid of $z$ and $a$:

# %%
z = torch.linspace(-20.0, 20.0, 2001, dtype=torch.float64)
identity_error = max(
    (torch.exp(-a * F.softplus(z)) - torch.sigmoid(-z) ** a).abs().max().item()
    for a in (0.1, 0.5, 1.0, 2.0, 8.0))
print("over z in [-20, 20] and a in {0.1, ..., 8}:")
print(f"max |exp(-a softplus(z)) - sigmoid(-z)^a| = {identity_error:.2e}")
assert identity_error < 1e-14

# %% [markdown]
# and the layer's transition, read from its DSF, against both sides of {eq}`eq-qlstm-identity` with
# $z_i = W_f u_i + b_f$ taken from the layer's parameters:

# %%
rev_layer = layers[reversed_name]
m = rev_layer.width
z_f = u @ rev_layer.W_gates.weight[:m].T + rev_layer.W_gates.bias[:m]
A_rev = rev_layer.to_dsf(u).A
alpha = rev_layer.alpha.item()
err_eq23 = (A_rev - torch.sigmoid(-z_f) ** alpha).abs().max().item()
err_s6 = (A_rev - torch.exp(-alpha * F.softplus(z_f))).abs().max().item()
print(f"alpha = {alpha:.3f}")
print(f"max |A_i - sigmoid(-z_i)^alpha|          = {err_eq23:.2e}")
print(f"max |A_i - exp(-alpha softplus(z_i))| = {err_s6:.2e}")
assert err_eq23 < 1e-14 and err_s6 < 1e-14

# %% [markdown]
# ### What actually changes: the exponent
#
# At $\alpha = 1$, $\sigma(-(W_f u + b_f))$ is an ordinary sigmoid gate with the weights $-W_f, -b_f$:
# the two variants describe the same set of forget gates. In general, if the reversed layer uses the
# negated weights of a sigmoid-gated layer with gate $f^{\sigma}_i$, then
#
# $$
# f_i = \big(f^{\sigma}_i\big)^{\alpha}, \qquad \log f_i = \alpha \log f^{\sigma}_i ,
# $$ (eq-qlstm-power)
#
# so what eq. 23 adds is a single learned factor on every log-decay — S6's $a$, with
# $\mathrm{softplus}(z_i)$ in the role of $\Delta_i$. Its effect is on the **effective memory**
# $\tau = 1/(1 - f)$: the gate $f$ shrinks a stored value by a factor $e$ in about $\tau$ steps
# when $f$ is near one, and since $1 - f^{\alpha} \approx \alpha (1 - f)$ there,
# $\tau_\alpha \approx \tau_1 / \alpha$: $\alpha < 1$ lengthens every long memory, $\alpha > 1$
# shortens it.
#
# We check {eq}`eq-qlstm-power` on a batch of random sequences: one sigmoid-gated layer, and reversed
# layers with the same weights ($W_f$ negated; the module already initialises $b_f$ mirrored, so that
# both variants start with $f \in [0.9, 0.95]$ at zero input) at several $\alpha$.

# %%
ds = settings["stats_d"]
u_stats = dsflib.random_input(settings["stats_batch"], settings["stats_length"], ds,
                              seed=seed + 3)
base = qlstm(ds)
A_sig = base.to_dsf(u_stats).A
rows, summary = [], []
for a in settings["alphas"]:
    layer = qlstm(ds, True, a)
    mw = layer.width
    layer.W_gates.weight[:mw] = -base.W_gates.weight[:mw]
    # mirrored init of b_f
    assert torch.equal(layer.W_gates.bias[:mw], -base.W_gates.bias[:mw])
    A_a = layer.to_dsf(u_stats).A
    power_error = (A_a.log() - a * A_sig.log()).abs().max().item()
    assert power_error < 1e-12, power_error
    tau_sig, tau_a = 1 / (1 - A_sig), 1 / (1 - A_a)
    near_one = A_sig > 0.95
    ratio = (a * tau_a / tau_sig)[near_one]
    summary.append(dict(alpha=a, max_log_error=power_error,
                        median_gate=A_a.median().item(),
                        median_memory=tau_a.median().item(),
                        alpha_tau_ratio_min=ratio.min().item(),
                        alpha_tau_ratio_max=ratio.max().item()))
    # a tau_a / tau_1 = a (1-f) / (1 - f^a) = 1 + (a-1)(1-f)/2 + O((1-f)^2): the
    # first-order term, with 10% room for the higher orders at 1 - f <= 0.05
    first_order = abs(a - 1) * (1 - A_sig[near_one]) / 2
    assert ((ratio - 1).abs() <= 1.1 * first_order + 1e-12).all()
    variant = rf"$\alpha$ = {a:g}" + (" (= sigmoid gate)" if a == 1 else "")
    rows.append(pd.DataFrame({"variant": variant, "gate": A_a.flatten().numpy(),
                              "memory": tau_a.flatten().numpy()}))
summary = pd.DataFrame(summary).set_index("alpha")
print(f"{A_sig.numel()} gate values per variant")
print(f"sigmoid gate: median {A_sig.median():.4f}, "
      f"median memory {(1 / (1 - A_sig)).median():.2f} tokens")
show_table(summary.reset_index().rename(columns={
    "max_log_error": "max log error", "median_gate": "median f",
    "median_memory": "median τ",
    "alpha_tau_ratio_min": "min ατ/τ₁", "alpha_tau_ratio_max": "max ατ/τ₁"}), digits=4)
medians = summary["median_memory"].tolist()
assert all(x > y for x, y in zip(medians, medians[1:]))  # larger alpha: shorter memory
# alpha = 1: the sigmoid gate, bit for bit
assert summary.loc[1.0, "max_log_error"] == 0.0

# %% [markdown]
# The log-gates agree with {eq}`eq-qlstm-power` to rounding error, and for every gate above $0.95$
# the memory ratio $\alpha\,\tau_\alpha / \tau_1$ is one up to the first correction,
# $1 + (\alpha - 1)(1-f)/2$ (asserted with 10% room for the higher orders); at $\alpha = 1$ the
# reversed gate *is* the sigmoid gate, bit for bit. {numref}`fig-qlstm-alpha` shows the
# distribution of all gate values of the batch: since $f \mapsto f^{\alpha}$ is monotone,
# $\alpha < 1$ moves the gates towards one and $\alpha > 1$ towards zero, and on a log axis of
# the memory $\tau \approx \tau_1/\alpha$ the distribution moves almost rigidly, by about
# $\log(1/\alpha)$.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Forget gates of the reversed-sigmoid qLSTM at several exponents α, on the same input and weights. Top: the distribution of the gate values f. Bottom: the empirical distribution function of the effective memory τ = 1/(1 − f), on a log axis.", "name": "fig-qlstm-alpha"}, "image": {"alt": "Step histograms of forget-gate values and cumulative distributions of the effective memory for each exponent alpha"}}
frame = pd.concat(rows, ignore_index=True)
fig, axes = plt.subplots(2, 1, figsize=(8, 7))
sns.histplot(frame, x="gate", hue="variant", element="step", fill=False,
             stat="density", common_norm=False, bins=60, ax=axes[0])
axes[0].set(xlabel="forget gate $f$ (entry of $A_i$)",
            title="distribution of forget-gate values")
sns.move_legend(axes[0], "upper left", title="reversed sigmoid")
sns.ecdfplot(frame, x="memory", hue="variant", log_scale=True, ax=axes[1],
             legend=False)
axes[1].set(xlabel=r"effective memory $\tau = 1/(1-f)$ [tokens]",
            ylabel="fraction of gates",
            title=r"memory: $\alpha$ shifts it by $\approx 1/\alpha$")
fig.suptitle(f"qLSTM forget gates on the same input and weights (d={ds}, n={n}, "
             f"{settings['stats_batch']}x{settings['stats_length']} tokens)",
             fontsize=10)
fig.tight_layout()
caption(fig, label)
plt.show()

# %% [markdown]
# Whether the learned exponent helps is an empirical question. The paper's claim (§4.3, Fig. 3) is that
# "the reversed sigmoid state transition outperforms the original state transition on all three
# benchmark tasks" (the three shorter MQAR tasks); that is a training result, tested in {doc}`mqar`,
# not something this chapter measures. What the DSF view
# adds is where to look: the two variants share their $B_i$, $C_i$ and, at $\alpha = 1$, their $A_i$,
# so any difference comes from the one exponent that rescales all decays, as $a$ does in S6.
#
# ## Related chapters
#
# - {doc}`dsf` — the framework, $\Phi$ and the state-size bottleneck.
# - {doc}`s6` — the selective SSM whose transition $\exp(\Delta_i a)$ motivates eq. 23.
# - {doc}`rglru` — Griffin's RG-LRU, another gated diagonal recurrence, with an input normalization.
# - {doc}`mlstm` — xLSTM's matrix LSTM: the LSTM gates on an attention-like matrix state.
