"""Test configuration: Triton kernels run in the CPU interpreter unless a GPU run asks otherwise."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede any `import triton`

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
