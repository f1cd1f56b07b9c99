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
# # Build your own
#
# Every chapter of this book follows the same recipe: write a layer, write down its DSF, check that
# the two agree, and read the architecture off $A_i, B_i, C_i, D_i$. This chapter is that recipe as a
# template. Fork it (`book/build_your_own.py` is a plain Python file; open it as a notebook with
# jupytext), replace the example layer with yours, and you get the same checks and pictures as the
# built-in architectures — plus a trainable model in the experiment wrapper.
#
# The example is deliberately small: **linear attention with a forget gate**. Take the
# {doc}`linear_attention` layer {cite:p}`katharopoulos2020linear`, drop its normalizer $\eta_i$,
# and let each head forget its state at a rate chosen by the current token:
#
# $$
# \begin{aligned}
# S_i &= f_i\, S_{i-1} + \phi(k_i)\, v_i^\top, \qquad y_i = W_O\, S_i^\top \phi(q_i),\\
# f_i &= \sigma(w_f^\top u_i + b_f) \in (0, 1),
# \end{aligned}
# $$ (eq-byo-layer)
#
# with $\phi = \mathrm{elu} + 1$, $q_i = W_Q u_i$, $k_i = W_K u_i$, $v_i = W_V u_i$. Stacking the
# columns of $S_i$ channel-major (as in {doc}`dsf`), this is a DSF {cite:p}`sieber2024dsf` with
#
# $$
# \begin{aligned}
# A_i &= f_i\, I_{nd}, \qquad B_i = (I_d \otimes \phi(k_i))\, W_V,\\
# C_i &= W_O\, (I_d \otimes \phi(q_i)^\top), \qquad D_i = 0, \qquad N = n d .
# \end{aligned}
# $$ (eq-byo-dsf)
#
# It sits between linear attention (no forgetting) and SSD ({doc}`ssd`, {cite:t}`dao2024mamba2`;
# a forget gate, but tied to the input matrix through $\Delta_i$): exactly the kind of point in the
# design space the DSF makes easy to try.

# %% tags=["parameters"]
profile = "ci"  # "ci": small sizes for a CPU; "paper": larger sizes
seed = 0

# %%
import textwrap

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from dsflib.env import run_info, run_label, select_profile
from dsflib.models import dsf_from_scan, register_mixer
from dsflib.models._common import check_mixer_args, check_mixer_input
from dsflib.network import SequenceModel
from dsflib.plotting import book_style, caption, phi_figure, transition_heatmap
from dsflib.scan import linear_scan
from dsflib.verify import verify_layer
import dsflib

book_style()
settings = select_profile(profile, {
    "ci": dict(d=8, n=4, heads=2, length=48, train_steps=80, vocab=16),
    "paper": dict(d=32, n=16, heads=4, length=256, train_steps=400, vocab=64),
})
info = run_info(profile, seed)
label = run_label(info)
print(label)

# %% [markdown]
# ## Step 1: the layer
#
# Two methods matter. `forward` is the fast path: it hands $(\phi(q), \phi(k), v, \log f)$ to
# `dsflib.scan.linear_scan`, which runs the chunked algorithm on a CPU and the Triton kernels on a GPU,
# and is differentiable. `to_dsf` returns the DSF of {eq}`eq-byo-dsf` for a given input; the helper
# `dsf_from_scan` builds $A_i, B_i, C_i$ from the same four ingredients plus the input map $W_V$ and
# the output map $W_O$. Log-decays must be $\le 0$ — `F.logsigmoid` guarantees it without ever
# forming $\log$ of a rounded sigmoid.

# %%
class ForgetfulLinearAttention(nn.Module):
    """Linear attention (elu+1 features, no normalizer) with a per-head forget gate
    f_i = sigmoid(W_f u_i)."""

    def __init__(self, d_model: int, *, n: int = 16, heads: int = 1,
                 backend: str = "auto"):
        super().__init__()
        check_mixer_args(d_model, n, heads, backend)
        self.d_model, self.n, self.heads, self.backend = d_model, n, heads, backend
        self.W_Q = nn.Linear(d_model, heads * n, bias=False)
        self.W_K = nn.Linear(d_model, heads * n, bias=False)
        self.W_V = nn.Linear(d_model, d_model, bias=False)
        self.W_O = nn.Linear(d_model, d_model, bias=False)
        self.W_f = nn.Linear(d_model, heads)
        nn.init.constant_(self.W_f.bias, 3.0)  # start remembering: f ~ 0.95

    def _scan_inputs(self, u):
        u = check_mixer_input(u, self.d_model)
        b, L, _ = u.shape
        q = (F.elu(self.W_Q(u)) + 1).reshape(b, L, self.heads, self.n)
        k = (F.elu(self.W_K(u)) + 1).reshape(b, L, self.heads, self.n)
        v = self.W_V(u).reshape(b, L, self.heads, self.d_model // self.heads)
        log_f = F.logsigmoid(self.W_f(u))  # (b, L, heads), <= 0
        return q, k, v, log_f

    def forward(self, u):
        q, k, v, log_f = self._scan_inputs(u)
        y = linear_scan(q, k, v, log_f, backend=self.backend)
        return self.W_O(y.reshape(u.shape))

    def to_dsf(self, u):
        q, k, _, log_f = self._scan_inputs(u)
        b, L, d = u.shape
        return dsf_from_scan(q, k, log_f, value_map=self.W_V.weight.expand(b, L, d, d),
                             output_map=self.W_O.weight.expand(b, L, d, d))


# %% [markdown]
# ## Step 2: check that the layer is its DSF
#
# `verify_layer` evaluates the same input three ways — the layer's `forward`, the recurrence
# {eq}`eq-dsf` on `to_dsf(u)`, and $\Phi u$ with $\Phi$ from {eq}`eq-phi` — in float64, where any
# disagreement above rounding error is a bug in one of your two methods.

# %%
torch.manual_seed(seed)
d, n, heads, L = settings["d"], settings["n"], settings["heads"], settings["length"]
layer = ForgetfulLinearAttention(d, n=n, heads=heads).double()
u = torch.randn(2, L, d, dtype=torch.float64)
report = verify_layer(layer, u)
print(textwrap.fill(str(report), width=88))
assert report.ok(1e-9)

# %% [markdown]
# The fast path has several backends (chunked, parallel prefix scan, step-by-step recurrence); they
# must agree in value *and* gradient, since training uses the chunked one:

# %%
def outputs_and_grads(backend):
    layer.zero_grad()
    layer.backend = backend
    x = u.clone().requires_grad_()
    y = layer(x)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * weights).sum().backward()
    return [y.detach(), x.grad] + [p.grad.clone() for p in layer.parameters()]

reference = outputs_and_grads("recurrent")
for backend in ("chunked", "parallel"):
    worst = max((a - b).abs().max().item()
                for a, b in zip(outputs_and_grads(backend), reference))
    print(f"{backend:9s} vs recurrent: max difference over output and all gradients "
          f"= {worst:.2e}")
    assert worst < 1e-9
layer.backend = "auto"

# %% [markdown]
# ## Step 3: read the architecture off its matrices
#
# The same figures as every other chapter: the $\Phi$ of one sequence ({numref}`fig-build-your-own-phi`), and
# the eigenvalues of $A_i$ over time ({numref}`fig-build-your-own-transition`; one per head, since
# $A_i = f_i I$ — the heads forget at token-dependent rates).

# %% mystnb={"figure": {"caption": "Φ of the forgetful linear attention layer for one random sequence. Left: the full matrix, block lower triangular because the layer is causal. Right: the Frobenius norm of each d × d block on a log scale.", "name": "fig-build-your-own-phi"}, "image": {"alt": "Two heatmaps: the signed lower-triangular matrix Φ and the map of its block norms"}}
system = layer.to_dsf(u)
phi = dsflib.materialize_phi(system)[0]
phi_figure(phi, label)
plt.show()

# %% mystnb={"figure": {"caption": "The eigenvalues of A_i = f_i I over one random sequence: one forget gate per head and token.", "name": "fig-build-your-own-transition"}, "image": {"alt": "A heatmap of the forget gate of each head over tokens"}}
ax = transition_heatmap(system)
caption(ax.figure, label)
plt.show()
print(f"forget gates f_i: min {system.A.min().item():.3f}, "
      f"mean {system.A.mean().item():.3f}, max {system.A.max().item():.3f}")

# %% [markdown]
# ## Step 4: train it
#
# `register_mixer` makes the class available by name to `dsflib.network.SequenceModel`, the wrapper
# used by the experiment chapters (embedding, pre-norm residual blocks, tied LM head). A short run on a
# toy task — predict the token seen two steps earlier, which needs memory (learned position
# embeddings help it count) — tests that the layer learns: the lines printed below state how far
# the training loss fell, and the cell asserts that it fell below a quarter of its first value.

# %%
register_mixer("forgetful_linear_attention", ForgetfulLinearAttention)
torch.manual_seed(seed)
V = settings["vocab"]
model = SequenceModel("forgetful_linear_attention", 2 * d, 2, vocab_size=V,
                      max_len=32, mixer_kwargs={"n": n, "heads": heads})
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
tokens = torch.randint(0, V, (64, 32))
target = torch.roll(tokens, 2, dims=1)
target[:, :2] = -100  # nothing to recall yet
losses = []
for step in range(settings["train_steps"]):
    loss = F.cross_entropy(model(tokens).flatten(0, 1), target.flatten(),
                           ignore_index=-100)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
chance = torch.log(torch.tensor(float(V))).item()
print(f"{model.num_parameters()} parameters; loss {losses[0]:.3f} -> {losses[-1]:.3f} "
      f"after {len(losses)} steps (chance: ln {V} = {chance:.3f})")
print(f"final loss = {losses[-1] / losses[0]:.1%} of the first "
      f"({'below' if losses[-1] < 0.25 * losses[0] else 'not below'} 25%)")
assert losses[-1] < 0.25 * losses[0]

# %% mystnb={"figure": {"caption": "Training loss of the two-layer model with the forgetful linear attention mixer on the recall-2 toy task, per step.", "name": "fig-build-your-own-loss"}, "image": {"alt": "A line plot of the training loss over steps"}}
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses)
ax.set(xlabel="step", ylabel="training loss", title="recall-2 toy task")
caption(fig, label)
plt.show()

# %% [markdown]
# ## Step 5: make it permanent
#
# To turn the example into a library model, move the class to `dsflib/models/<name>.py`, add it to
# `dsflib.models.MIXERS`, and write `tests/test_<name>.py` with the shared checks of
# `tests/contract.py` (layer == DSF on ragged lengths in float64, backends agree in value and gradient,
# float32 close to float64, bad input rejected with a clear error). Then a chapter `book/<name>.py`
# like this one, listed in `_toc.yml`, and the book builds it with everything else.
