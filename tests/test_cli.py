"""Every ``python -m dsflib...`` entry point answers a bad argument as argparse does: a short message
on stderr ending in an ``error:`` line, exit status 2, never a Python traceback."""
import os
import subprocess
import sys

import pytest

from dsflib.env import REPO_ROOT

BAD_ARGUMENTS = [
    ["dsflib.chapters", "execute", "no_such_chapter"],
    ["dsflib.chapters", "build", "--only", "no_such_chapter"],
    ["dsflib.chapters", "execute", "dsf", "--profile", "huge"],
    ["dsflib.data", "download", "no_such_dataset"],
    ["dsflib.data", "download", "imdb", "--data-dir", "/proc/no/such/dir"],
    ["dsflib.experiments.mqar", "--profile", "huge"],
    ["dsflib.experiments.lra", "--no-such-flag"],
    ["dsflib.experiments.wikitext", "--profile", "huge"],
    ["dsflib.gpu_check", "--dry", "--steps", "-3"],
    ["dsflib.train_bench", "--shape", "huge"],
    ["dsflib.bench", "--lengths", "x"],
    ["dsflib.kernels.bench", "--kinds", "no_such_kind"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=[" ".join(a) for a in BAD_ARGUMENTS])
def test_bad_argument_is_one_error_line_and_status_2(argv):
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-800:])
    assert "Traceback" not in proc.stderr, proc.stderr[-800:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and "error: " in lines[-1], proc.stderr
    assert all(line.startswith(("usage:", " ", "python -m", "error:")) for line in lines), proc.stderr
