"""Run labels and profile selection."""
import re

import pytest

from dsflib.env import PROFILES, git_commit, run_info, run_label, select_profile


def test_select_profile_returns_the_profile_settings():
    settings = {"ci": {"L": 8}, "paper": {"L": 512}}
    assert select_profile("ci", settings) == {"L": 8}
    assert select_profile("paper", settings) == {"L": 512}


@pytest.mark.parametrize(
    "profile,settings,exc,match",
    [
        ("gpu", {"ci": {}, "paper": {}}, ValueError, r"profile must be one of \('ci', 'paper'\), got 'gpu'"),
        (1, {"ci": {}, "paper": {}}, TypeError, "profile must be a str"),
        ("ci", {"ci": {}}, ValueError, r"missing \['paper'\]"),
    ],
)
def test_select_profile_rejects(profile, settings, exc, match):
    with pytest.raises(exc, match=match):
        select_profile(profile, settings)


def test_run_info_labels_profile_seed_device_commit_date():
    info = run_info("ci", 3, device="cpu")
    assert info["profile"] == "ci" and info["seed"] == "3"
    assert info["device"].startswith("cpu (")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", info["date"])
    assert info["commit"] == git_commit()
    label = run_label(info)
    assert label.startswith("profile=ci · seed=3 · device=cpu (") and "commit=" in label
    assert set(PROFILES) == {"ci", "paper"}
    assert run_label(run_info("ci", [0, 1, 2], device="cpu")).startswith("profile=ci · seed=0,1,2 · ")


def test_run_label_fits_a_page_column():
    info = {"profile": "ci", "seed": "0,1,2", "device": "cpu (x86_64, 2 threads) " + "x" * 30,
            "commit": "2f7a3f38", "date": "2026-11-29 10:00 UTC"}
    label = run_label(info)
    lines = label.split("\n")
    assert len(lines) >= 2 and all(len(line) <= 88 for line in lines), lines
    assert label.replace(" ·\n", " · ") == run_label(info, width=None)
    assert "\n" not in run_label(info, width=None)
    with pytest.raises(ValueError, match="width"):
        run_label(info, width=5)


def test_code_fingerprint_follows_the_code_not_the_install_layout(tmp_path):
    """A regular install (kernels nested in the package) of this checkout has the editable install's
    fingerprint; one changed byte gives another."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from dsflib.env import code_fingerprint

    repo = Path(__file__).resolve().parents[1]
    site = tmp_path / "site"
    shutil.copytree(repo / "dsflib", site / "dsflib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo / "kernels", site / "dsflib" / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    probe = "import dsflib.env as e; print(e.__file__); print(e.code_fingerprint())"

    def fingerprint_of_copy() -> str:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path,
                             env={**__import__("os").environ, "PYTHONPATH": str(site)}).stdout.split()
        assert out[0] == str(site / "dsflib" / "env.py")  # the copy was imported, not the checkout
        return out[1]

    assert re.fullmatch(r"[0-9a-f]{12}", code_fingerprint())
    assert fingerprint_of_copy() == code_fingerprint()
    kernel = site / "dsflib" / "kernels" / "api.py"
    kernel.write_text(kernel.read_text() + "\n# edited\n")
    assert fingerprint_of_copy() != code_fingerprint()
