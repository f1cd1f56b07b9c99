"""The GPU check script: its dry mode runs end to end on the CPU; without CUDA it refuses clearly."""
import csv
import os
import subprocess
import sys

import pytest
import torch

from dsflib import gpu_check
from dsflib.env import REPO_ROOT


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dsflib.gpu_check", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, "TRITON_INTERPRET": "1", **(env or {})}, timeout=300)


def test_dry_mode_checks_kernels_and_every_model(tmp_path):
    pytest.importorskip("triton")
    out = tmp_path / "gpu_check.csv"
    proc = _run("--dry", "--steps", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = list(csv.DictReader(out.open()))
    from dsflib.experiments import mqar

    assert [r["name"] for r in rows] == ["kernel_chunked", "kernel_diag", "kernel_gla", "kernel_s6_compact", *mqar.MODELS]
    assert all("call 3 (autotune)" in r["detail"] for r in rows if r["part"] == "kernel")
    assert {r["status"] for r in rows} == {"ok"}
    assert all(r["commit"] and r["torch"] == torch.__version__ and r["device"].startswith("cpu") for r in rows)
    assert all(float(r["ms_per_step"]) > 0 for r in rows if r["part"] == "train")


def test_a_non_finite_loss_fails_the_check(monkeypatch):
    from dsflib.experiments import mqar

    real = mqar.build_model

    def poisoned(*args, **kwargs):
        model = real(*args, **kwargs)
        with torch.no_grad():
            model.embed.weight.fill_(float("nan"))
        return model

    monkeypatch.setattr(mqar, "build_model", poisoned)
    (row,) = gpu_check.check_training(True, torch.device("cpu"), 2, models=["softmax"])
    assert row["status"] == "FAILED" and "non-finite" in row["detail"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_refuses_without_cuda_unless_dry():
    proc = _run()
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    proc = _run("--dry", "--steps", "0")
    assert proc.returncode == 2 and "--steps must be >= 1" in proc.stderr
