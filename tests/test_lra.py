"""LRA loaders on tiny files written here in the real formats (LRA release TSVs and Pathfinder PNGs +
metadata, aclImdb, cifar-10-batches-py pickles); tokenizers; the data-directory override; clear errors
for missing data and a missing `datasets` package."""
import pickle
import sys

import numpy as np
import pytest
import torch

from dsflib.data import lra
from dsflib.data.listops import VOCAB


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def release(tmp_path):
    """A tiny LRA release, nested once as lra_release.gz unpacks (lra_release/lra_release/...)."""
    root = tmp_path / "lra_release" / "lra_release"
    for split, rows in {"train": [("( ( [MAX 2 ) 9 ) ]", 9), ("[SM 5 [MIN 6 7 ] ]", 1)],
                        "val": [("[MED 1 9 4 ]", 4)], "test": [("( [MIN 3 8 ) ]", 3)]}.items():
        _write(root / "listops-1000" / f"basic_{split}.tsv",
               "Source\tTarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    for split in ("train", "eval", "test"):
        _write(root / "tsv_data" / f"new_aan_pairs.{split}.tsv",
               "1\tid_a\tid_b\tab\tcd\n0.0\tid_c\tid_d\tx \"quoted\" y\tz\u00e9\n")
    return tmp_path


def test_data_directory_override(tmp_path, monkeypatch):
    monkeypatch.delenv(lra.DATA_ENV, raising=False)
    assert lra.data_root().name == "data"  # <repository>/data by default
    monkeypatch.setenv(lra.DATA_ENV, str(tmp_path / "env"))
    assert lra.data_root() == tmp_path / "env"
    assert lra.data_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins


def test_listops_tsv(release):
    x, y = lra.load_listops("train", release, seq_len=8)
    assert y.tolist() == [9, 1] and x.shape == (2, 8) and x.dtype == torch.long
    assert x[0].tolist() == [0] * 4 + [VOCAB[t] for t in ("[MAX", "2", "9", "]")]  # parentheses dropped, left pad
    x, y = lra.load_listops("test", release, seq_len=5)
    assert y.tolist() == [3] and x[0, 0].item() == 0


def test_listops_via_environment_variable(release, monkeypatch):
    monkeypatch.setenv(lra.DATA_ENV, str(release))
    assert lra.load_task("listops", "val")[1].tolist() == [4]
    assert lra.available("listops") and lra.available("retrieval") and not lra.available("pathfinder")
    assert not lra.available("text") and not lra.available("image")  # no local copy
    monkeypatch.setitem(sys.modules, "datasets", None)  # find_spec then reports the package missing
    assert not lra.available("text", allow_download=True)


def test_retrieval_tsv_pairs(release):
    x, y = lra.load_retrieval("val", release, doc_len=6)
    assert y.tolist() == [1, 0] and x.shape == (2, 13)
    assert x[0].tolist() == [0, 0, 0, 0, ord("a") + 1, ord("b") + 1, lra.SEP, 0, 0, 0, 0, ord("c") + 1, ord("d") + 1]
    # quotes are text (no CSV quoting), UTF-8 bytes, truncation keeps the first doc_len bytes
    assert bytes((x[1, :6] - 1).tolist()) == b'x "quo'
    assert bytes((x[1, 7:][x[1, 7:] > 0] - 1).tolist()) == "z\u00e9".encode()


def test_pathfinder_pngs_and_metadata(tmp_path):
    Image = pytest.importorskip("PIL.Image")  # Pillow comes with matplotlib (the book extra)

    base = tmp_path / "lra_release" / "pathfinder32" / "curv_baseline"
    rng = np.random.default_rng(0)
    pixels, lines = {}, {0: [], 1: []}
    for k in (0, 1):
        (base / "imgs" / str(k)).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 256, (32, 32), dtype=np.uint8)
            Image.fromarray(img).save(base / "imgs" / str(k) / f"sample_{i}.png")
            label = (i + k) % 2
            pixels[(k, i)] = (img, label)
            lines[k].append(f"imgs/{k} sample_{i}.png 0 {label} 0.0 1 2 3\n")
    (base / "imgs" / "0" / "sample_9.png").write_bytes(b"")  # the release holds an empty file: skipped
    (base / "metadata").mkdir()
    for k in (0, 1):
        (base / "metadata" / f"{k}.npy").write_text("".join(lines[k]))
    splits = {s: lra.load_pathfinder(s, tmp_path) for s in ("train", "val", "test")}
    assert [len(splits[s][1]) for s in ("train", "val", "test")] == [15, 1, 3]  # 19 usable images, 80/10/10
    known = {tuple(img.reshape(-1).tolist()): label for (k, i), (img, label) in pixels.items() if (k, i) != (0, 9)}
    seen = set()
    for x, y in splits.values():
        assert x.shape[1] == 1024 and x.dtype == torch.long
        for row, label in zip(x.tolist(), y.tolist()):
            assert known[tuple(row)] == label  # pixels row-major, label from metadata field 3
            seen.add(tuple(row))
    assert len(seen) == 19  # the splits are disjoint and cover every image
    assert torch.equal(lra.load_pathfinder("test", tmp_path)[0], splits["test"][0])  # seeded split
    assert lra.available("pathfinder", tmp_path)


def test_imdb_offline_layout(tmp_path):
    for split in ("train", "test"):
        _write(tmp_path / "aclImdb" / split / "pos" / "0_9.txt", "great film")
        _write(tmp_path / "aclImdb" / split / "neg" / "1_2.txt", "dull")
    x, y = lra.load_text("train", tmp_path, seq_len=6)
    assert sorted(zip(y.tolist(), map(tuple, x.tolist()))) == [
        (0, (0, 0, *[b + 1 for b in b"dull"])), (1, tuple(b + 1 for b in b"great "))]
    assert lra.load_text("val", tmp_path, seq_len=6)[0].shape == (2, 6)  # val = the test split


def test_cifar_offline_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        batches[name] = data
        with (folder / name).open("wb") as fh:
            pickle.dump({b"data": data, b"labels": [3, 7]}, fh)
    x, y = lra.load_image("train", tmp_path)
    assert x.shape == (10, 1024) and y.tolist() == [3, 7] * 5
    d = batches["data_batch_1"][0].astype(float)
    r, g, b = d[:1024], d[1024:2048], d[2048:]  # CIFAR stores channel planes
    assert x[0].tolist() == np.round(0.2989 * r + 0.5870 * g + 0.1140 * b).astype(int).tolist()
    assert lra.load_image("test", tmp_path)[0].shape == (2, 1024)


def test_tokenizers():
    assert lra.encode_bytes(["ab", b"\x00\xff"], 3).tolist() == [[0, 98, 99], [0, 1, 256]]
    assert lra.encode_pairs(["a"], ["b"], 2).tolist() == [[0, 98, lra.SEP, 0, 99]]
    gray = lra.grayscale(np.array([[[[255, 255, 255], [0, 0, 0]]]], dtype=np.uint8))
    assert gray.tolist() == [[[255, 0]]] and gray.dtype == torch.uint8
    with pytest.raises(TypeError, match="uint8"):
        lra.grayscale(np.zeros((1, 2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        lra.grayscale(np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="str or bytes"):
        lra.encode_bytes([3], 4)
    with pytest.raises(ValueError, match="as many documents"):
        lra.encode_pairs(["a"], [], 4)


def test_missing_data_and_package_give_clear_errors(tmp_path, monkeypatch, release):
    with pytest.raises(lra.DataMissingError, match="lra_release.gz"):
        lra.load_listops("train", tmp_path / "empty")
    with pytest.raises(lra.DataMissingError, match="LRA Pathfinder not found"):
        lra.load_pathfinder("train", release)  # a release without pathfinder32/
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` fails
    with pytest.raises(ImportError, match="pip install datasets"):
        lra.load_text("train", tmp_path / "empty")
    with pytest.raises(ImportError, match="pip install datasets"):
        lra.load_image("test", tmp_path / "empty")
    with pytest.raises(ValueError, match="split must be one of"):
        lra.load_listops("dev", release)
    with pytest.raises(ValueError, match="task must be one of"):
        lra.load_task("pathx", "train", release)
