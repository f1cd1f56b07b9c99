"""The data the book ships: present, unchanged, licensed, and found without any path outside the repository."""
import hashlib
import subprocess

from dsflib.data import lra, wikitext
from dsflib.env import REPO_ROOT

DATA = REPO_ROOT / "data"


def test_ci_wikitext_data_ships_with_the_repository_unchanged():
    folder = DATA / "wikitext-2"
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"valid.txt", "test.txt"}
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{name} changed"
    assert "CC BY-SA 3.0" in (folder / "LICENSE.md").read_text()
    assert "Merity" in (DATA / "README.md").read_text()
    # the sizes data/README.md states: 217k and 245k tokens with one <eos> per line
    for split, tokens in (("valid", 217_646), ("test", 245_569)):
        lines = wikitext.read_split(wikitext.split_path("wikitext-2", split, DATA))
        assert sum(len(line.split()) + 1 for line in lines) == tokens


def test_loaders_default_to_the_repository_data_folder(monkeypatch):
    monkeypatch.delenv(wikitext.ENV_VAR, raising=False)
    assert wikitext.data_root() == DATA == lra.data_root()
    assert wikitext.available("wikitext-2", ["valid", "test"]) == {"valid": True, "test": True}


def test_no_tracked_file_points_outside_the_repository():
    needle = "../" + "shared"  # spelled apart so this file does not match itself
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    hits = [f for f in tracked if (REPO_ROOT / f).is_file() and (REPO_ROOT / f).stat().st_size < 5_000_000
            and needle in (REPO_ROOT / f).read_text(errors="ignore")]
    assert not hits, f"files that refer to {needle}: {hits}"
