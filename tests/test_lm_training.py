"""Causal LM training (dsflib.lm): schedule, data order, perplexity, learning, resume after SIGKILL
(same parameters as an uninterrupted run), and 2-process DistributedDataParallel on CPU (gloo) with
gradients equal to a single-process run on the same global batch."""
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.nn.functional as F

from dsflib.env import REPO_ROOT
from dsflib.lm import LMConfig, batch_indices, evaluate_lm, load_checkpoint, lr_factor, train_lm

# shared by this process and the child processes it starts: a tiny model and patterned data
SETUP = textwrap.dedent("""
    import torch
    from dsflib.data.wikitext import pack_blocks
    from dsflib.network import SequenceModel

    def make_data():
        g = torch.Generator().manual_seed(1)
        ids = (torch.arange(48 * 9) * 5) % 17 + 3 * torch.randint(0, 2, (48 * 9,), generator=g)
        return pack_blocks(ids, 8), pack_blocks(ids[:90], 8)

    def make_model():
        torch.manual_seed(0)
        return SequenceModel("linear_attention", 16, 2, vocab_size=20, max_len=8, mlp_mult=2,
                             mixer_kwargs={"n": 4})
""")
namespace: dict = {}
exec(SETUP, namespace)
make_data, make_model = namespace["make_data"], namespace["make_model"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the child processes run with one thread: same arithmetic
    yield
    torch.set_num_threads(threads)


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    config = LMConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert [lr_factor(s, config) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(60, config) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert lr_factor(110, config) == pytest.approx(0.1)
    factors = [lr_factor(s, config) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_batches_are_a_function_of_seed_and_step_and_cover_each_epoch():
    first_epoch = torch.cat([batch_indices(s, 10, 3, seed=0) for s in range(3)])  # 3 full batches per epoch
    assert len(set(first_epoch.tolist())) == 9  # no block twice in an epoch
    assert torch.equal(batch_indices(4, 10, 3, seed=0), batch_indices(4, 10, 3, seed=0))
    assert not torch.equal(batch_indices(0, 10, 3, seed=0), batch_indices(3, 10, 3, seed=0))  # reshuffled
    assert not torch.equal(batch_indices(0, 10, 3, seed=0), batch_indices(0, 10, 3, seed=1))
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(0, 2, 3, seed=0)


def test_evaluate_lm_is_exp_of_mean_token_cross_entropy():
    train, _ = make_data()
    model = make_model()
    full = evaluate_lm(model, train, batch_size=7)
    logits = model(train[0])
    ce = F.cross_entropy(logits.flatten(0, 1), train[1].flatten()).item()
    assert full["loss"] == pytest.approx(ce, rel=1e-5) and full["ppl"] == pytest.approx(math.exp(ce), rel=1e-5)
    assert full["tokens"] == train[0].numel() and full["blocks"] == 48
    part = evaluate_lm(model, train, batch_size=7, max_blocks=10)  # every 5th block: 0, 5, ..., 45
    every_fifth = F.cross_entropy(logits[::5].flatten(0, 1), train[1][::5].flatten()).item()
    assert part["blocks"] == 10 and part["loss"] == pytest.approx(every_fifth, rel=1e-5)


def test_training_lowers_perplexity_and_records_the_curve():
    train, valid = make_data()
    model = make_model()
    before = evaluate_lm(model, valid)["ppl"]
    result = train_lm(model, train, valid, LMConfig(steps=40, batch_size=8, lr=1e-2, warmup_steps=4, eval_every=10,
                                                    progress=False))
    assert [h["step"] for h in result["history"]] == [10, 20, 30, 40]
    assert result["valid_ppl"] < 0.5 * before
    assert result["train_ppl"] == pytest.approx(math.exp(result["train_loss"]))
    assert result["tokens"] == 40 * 8 * 8 and result["resumed_from"] is None
    assert 0 < result["eval_seconds"] < result["seconds"]  # the throughput counts training time only
    assert result["tokens_per_s"] == pytest.approx(result["tokens"] / (result["seconds"] - result["eval_seconds"]))


def test_bad_inputs_are_rejected():
    train, valid = make_data()
    with pytest.raises(TypeError, match="config"):
        train_lm(make_model(), train, valid, {"steps": 1})
    with pytest.raises(TypeError, match="train"):
        train_lm(make_model(), train[0], valid, LMConfig(steps=1))
    with pytest.raises(ValueError, match="targets"):
        train_lm(make_model(), (train[0], train[1][:, :4]), valid, LMConfig(steps=1))
    with pytest.raises(ValueError, match="steps"):
        LMConfig(steps=0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        LMConfig(min_lr_ratio=2.0)


CONFIG = dict(steps=16, batch_size=8, lr=5e-3, warmup_steps=3, eval_every=4, checkpoint_every=4, progress=False)

CHILD = SETUP + textwrap.dedent("""
    import sys, time
    torch.set_num_threads(1)
    from dsflib.lm import LMConfig, train_lm

    def slow_after_first_checkpoint(step, model, record):
        if step >= 4:
            time.sleep(0.5)  # leave the parent time to kill us between checkpoints

    train, valid = make_data()
    train_lm(make_model(), train, valid, LMConfig(**{config}), checkpoint_dir=sys.argv[1],
             callback=slow_after_first_checkpoint)
    print("finished")
""")


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, one_thread):
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace("{config}", repr(CONFIG)))
    ckpt = tmp_path / "ckpt"
    child = subprocess.Popen([sys.executable, str(script), str(ckpt)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline and child.poll() is None:
        state = load_checkpoint(ckpt) if (ckpt / "last.pt").exists() else None
        if state is not None and state["step"] >= 4:
            break
        time.sleep(0.05)
    assert child.poll() is None, f"the child ended before it was killed: {child.communicate()[0]!r}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 4 <= killed_at < CONFIG["steps"] and killed_at % 4 == 0

    train, valid = make_data()
    resumed_model = make_model()
    resumed = train_lm(resumed_model, train, valid, LMConfig(**CONFIG), checkpoint_dir=ckpt)
    assert resumed["resumed_from"] == killed_at and resumed["steps"] == CONFIG["steps"]
    assert load_checkpoint(ckpt)["step"] == CONFIG["steps"]  # the final state was checkpointed too

    reference_model = make_model()
    reference = train_lm(reference_model, train, valid, LMConfig(**CONFIG))
    for (name, p), q in zip(resumed_model.state_dict().items(), reference_model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), name
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in reference["history"]]
    assert resumed["valid_ppl"] == pytest.approx(reference["valid_ppl"], rel=1e-5)


def test_resuming_with_another_config_is_refused(tmp_path):
    train, valid = make_data()
    train_lm(make_model(), train, valid, LMConfig(**{**CONFIG, "steps": 4}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="another config"):
        train_lm(make_model(), train, valid, LMConfig(**{**CONFIG, "lr": 1e-3}), checkpoint_dir=tmp_path)
    resumed = train_lm(make_model(), train, valid, LMConfig(**{**CONFIG, "steps": 4}), checkpoint_dir=tmp_path)
    assert resumed["resumed_from"] == 4 and resumed["steps"] == 4  # nothing left to do


DDP_CHILD = SETUP + textwrap.dedent("""
    import sys
    torch.set_num_threads(1)
    from dsflib.distributed import init_distributed, shutdown_distributed
    from dsflib.lm import LMConfig, train_lm

    ctx = init_distributed("cpu")
    out = sys.argv[1]
    grads = {}

    def keep_first_gradients(step, model, record):
        if step == 1:
            grads.update({n: p.grad.clone() for n, p in model.named_parameters()})

    train, valid = make_data()
    model = make_model()
    result = train_lm(model, train, valid, LMConfig(steps=3, batch_size=8, lr=5e-3, warmup_steps=1, eval_every=3,
                                                    progress=False), ctx=ctx, callback=keep_first_gradients)
    torch.save({"grads": grads, "params": model.state_dict(), "valid_ppl": result["valid_ppl"],
                "world_size": ctx.world_size}, f"{out}/rank{ctx.rank}.pt")
    shutdown_distributed()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_gradients_equal_a_single_process_run(tmp_path, one_thread):
    script = tmp_path / "ddp_child.py"
    script.write_text(DDP_CHILD)
    port = free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=REPO_ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["world_size"] == 2

    grads = {}
    train, valid = make_data()
    model = make_model()
    single = train_lm(model, train, valid, LMConfig(steps=3, batch_size=8, lr=5e-3, warmup_steps=1, eval_every=3,
                                                    progress=False),
                      callback=lambda step, m, r: step == 1 and grads.update(
                          {n: p.grad.clone() for n, p in m.named_parameters()}))
    for name, g in grads.items():
        for r in range(2):
            assert torch.allclose(ranks[r]["grads"][name], g, atol=1e-6, rtol=0), (r, name)
    for name, p in model.state_dict().items():
        assert torch.allclose(ranks[0]["params"][name], p, atol=1e-5, rtol=0), name
    assert ranks[0]["valid_ppl"] == pytest.approx(single["valid_ppl"], rel=1e-5)
