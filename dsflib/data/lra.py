"""Loaders for the five Long Range Arena tasks (Tay et al. 2021) from their real data, with tokenizers.

Every loader returns ``(inputs, labels)``: token ids ``(examples, L)`` int64 and class ids
``(examples,)`` int64, ready for :func:`dsflib.train.train_model`.

| task | data | tokens | L | classes |
|---|---|---|---|---|
| ``listops`` | LRA release ``listops-1000/basic_{train,val,test}.tsv`` | :mod:`dsflib.data.listops` ids | 2000 | 10 |
| ``text`` | IMDB: ``aclImdb/`` or HF ``datasets`` ``"imdb"`` | bytes | 4096 | 2 |
| ``retrieval`` | LRA release ``tsv_data/new_aan_pairs.{train,eval,test}.tsv`` | bytes, two documents | 2 x 4000 + 1 | 2 |
| ``image`` | CIFAR-10: ``cifar-10-batches-py/`` or HF ``datasets`` ``"cifar10"`` | 8-bit gray pixels | 1024 | 10 |
| ``pathfinder`` | LRA release ``pathfinder32/curv_baseline/`` | 8-bit pixels | 1024 | 2 |

**Where the data live.** The data directory is the ``data_dir`` argument, else the environment
variable ``DSF_DATA_DIR``, else ``<repository>/data``. Under it the loaders look for the LRA
release (``lra_release/`` as unpacked from ``lra_release.gz``; a doubly nested
``lra_release/lra_release/`` also works), ``aclImdb/`` and ``cifar-10-batches-py/``. Text and Image
fall back to HuggingFace ``datasets`` (``pip install datasets``, downloads on first use) when their
directory is absent; the other three tasks exist only in the LRA release. A missing file or
package raises an error that says what to install or where to put the files.

**Tokenization.**

* Bytes (Text, Retrieval): id = byte + 1 (UTF-8), 0 = padding, 257 = the separator between the two
  Retrieval documents (vocabulary :data:`BYTE_VOCAB_SIZE` = 258). A document is truncated to its
  first ``L`` bytes and padded on the **left**, so the last position of a causal model has read it all.
* Retrieval: the model classifies a *pair* of documents; the pair is one sequence
  ``doc1 (4000) <sep> doc2 (4000)`` (length 8001), each document left-padded to 4000 bytes: one
  :class:`dsflib.network.SequenceModel` reads both (LRA's own baselines encode the two separately
  and combine the encodings; the concatenation is our simpler choice).
* Image: CIFAR-10 in grayscale, ``round(0.2989 R + 0.5870 G + 0.1140 B)`` (the ITU-R 601 weights of
  ``tf.image.rgb_to_grayscale`` that LRA uses), one pixel = one token 0..255, row-major (L = 1024).
* Pathfinder: the PNG's 8-bit pixel values as tokens (L = 1024). Its metadata files
  ``metadata/<k>.npy`` are text despite their suffix: one image per line, whitespace-separated
  fields ``imgs/<k> sample_<i>.png <...> <label> ...`` (image folder, file name, label at index 3).
  LRA ships no split: the images are split 80/10/10 into train/val/test by a seeded permutation.
  Empty image files (the release holds one) are skipped.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._checks import check_positive_int
from . import listops

__all__ = ["DATA_ENV", "TASKS", "BYTE_VOCAB_SIZE", "SEP", "data_root", "lra_release_dir", "encode_bytes",
           "encode_pairs", "grayscale", "load_listops", "load_text", "load_retrieval", "load_image",
           "load_pathfinder", "load_task", "available", "DataMissingError"]

DATA_ENV = "DSF_DATA_DIR"
PAD, SEP = 0, 257
BYTE_VOCAB_SIZE = 258
# task -> (classes, default sequence length, vocabulary size)
TASKS = {
    "listops": (10, 2000, listops.VOCAB_SIZE),
    "text": (2, 4096, BYTE_VOCAB_SIZE),
    "retrieval": (2, 2 * 4000 + 1, BYTE_VOCAB_SIZE),
    "image": (10, 1024, 256),
    "pathfinder": (2, 1024, 256),
}
SPLITS = ("train", "val", "test")
LRA_URL = "https://storage.googleapis.com/long-range-arena/lra_release.gz"


class DataMissingError(FileNotFoundError):
    """The data of a task are not where the loader looks (the message says where to put them)."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir``, else ``$DSF_DATA_DIR``, else ``<repository>/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    from ..env import REPO_ROOT

    return REPO_ROOT / "data"


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def lra_release_dir(data_dir=None) -> Path:
    """The unpacked LRA release under the data directory (``lra_release/``, possibly nested once)."""
    root = data_root(data_dir)
    for candidate in (root / "lra_release" / "lra_release", root / "lra_release", root):
        if (candidate / "listops-1000").is_dir() or (candidate / "tsv_data").is_dir() \
                or any(candidate.glob("pathfinder*")):
            return candidate
    raise DataMissingError(
        f"the LRA release was not found under {root} (looked for lra_release/ with listops-1000/, tsv_data/ or "
        f"pathfinder32/). Download {LRA_URL}, unpack it there (tar -xzf lra_release.gz), or point "
        f"data_dir= / ${DATA_ENV} at the directory that holds lra_release/.")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataMissingError(f"{what} not found: {path} is missing (data directory: set data_dir= or ${DATA_ENV}; "
                               f"LRA release: {LRA_URL})")
    return path


# --------------------------------------------------------------------------- tokenizers

def encode_bytes(texts: Sequence[str | bytes], seq_len: int) -> torch.Tensor:
    """Byte ids ``(len(texts), seq_len)`` int64: byte + 1, the first ``seq_len`` bytes, left-padded with 0."""
    check_positive_int("seq_len", seq_len)
    out = torch.full((len(texts), seq_len), PAD, dtype=torch.long)
    for row, text in enumerate(texts):
        if isinstance(text, str):
            text = text.encode("utf-8")
        if not isinstance(text, (bytes, bytearray)):
            raise TypeError(f"texts[{row}] must be str or bytes, got {type(text).__name__}")
        ids = np.frombuffer(bytes(text[:seq_len]), dtype=np.uint8).astype(np.int64) + 1
        if len(ids):
            out[row, seq_len - len(ids):] = torch.from_numpy(ids)
    return out


def encode_pairs(first: Sequence[str | bytes], second: Sequence[str | bytes], doc_len: int = 4000) -> torch.Tensor:
    """Document pairs as one sequence each: ``doc1 <SEP> doc2``, ``(n, 2 * doc_len + 1)`` int64."""
    if len(first) != len(second):
        raise ValueError(f"first and second must hold as many documents, got {len(first)} and {len(second)}")
    sep = torch.full((len(first), 1), SEP, dtype=torch.long)
    return torch.cat([encode_bytes(first, doc_len), sep, encode_bytes(second, doc_len)], dim=1)


def grayscale(rgb) -> torch.Tensor:
    """8-bit RGB ``(n, H, W, 3)`` -> 8-bit gray ``(n, H, W)`` uint8 (ITU-R 601 weights, rounded)."""
    rgb = torch.as_tensor(np.asarray(rgb))
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (n, H, W, 3), got {tuple(rgb.shape)}")
    if rgb.dtype != torch.uint8:
        raise TypeError(f"rgb must be uint8, got {rgb.dtype}")
    weights = torch.tensor([0.2989, 0.5870, 0.1140], dtype=torch.float64)
    return (rgb.double() @ weights).round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- LRA release tasks

def _read_tsv(path: Path) -> list[list[str]]:
    csv.field_size_limit(2**31 - 1)
    with path.open(newline="", encoding="utf-8") as fh:
        return [row for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def load_listops(split: str, data_dir=None, seq_len: int = 2000):
    """LRA ListOps ``basic_<split>.tsv`` (header ``Source<TAB>Target``): ``(inputs, labels)``."""
    _check_split(split)
    path = _need(lra_release_dir(data_dir) / "listops-1000" / f"basic_{split}.tsv", "LRA ListOps")
    rows = _read_tsv(path)
    if rows and rows[0][:2] == ["Source", "Target"]:
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows) if len(r) < 2]
    if bad:
        raise ValueError(f"{path}: row {bad[0] + 2} has fewer than 2 tab-separated columns (Source, Target)")
    inputs = listops.encode([r[0] for r in rows], seq_len)
    return inputs, torch.tensor([int(r[1]) for r in rows], dtype=torch.long)


def load_retrieval(split: str, data_dir=None, doc_len: int = 4000):
    """LRA AAN ``new_aan_pairs.<split>.tsv`` (no header; label, id1, id2, text1, text2; ``val`` reads
    the ``eval`` file): ``(inputs (n, 2 doc_len + 1), labels)``."""
    name = {"train": "train", "val": "eval", "test": "test"}[_check_split(split)]
    path = _need(lra_release_dir(data_dir) / "tsv_data" / f"new_aan_pairs.{name}.tsv", "LRA Retrieval (AAN)")
    rows = _read_tsv(path)
    bad = [i for i, r in enumerate(rows) if len(r) < 5]
    if bad:
        raise ValueError(f"{path}: row {bad[0] + 1} has fewer than 5 tab-separated columns (label, id1, id2, text1, text2)")
    labels = torch.tensor([int(float(r[0])) for r in rows], dtype=torch.long)
    return encode_pairs([r[3] for r in rows], [r[4] for r in rows], doc_len), labels


def _pathfinder_index(base: Path) -> list[tuple[Path, int]]:
    samples = []
    for meta in sorted((base / "metadata").glob("*.npy"), key=lambda p: (len(p.stem), p.stem)):
        for line in meta.read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            samples.append((base / fields[0] / fields[1], int(fields[3])))
    return samples


def load_pathfinder(split: str, data_dir=None, resolution: int = 32, difficulty: str = "curv_baseline",
                    seed: int = 0):
    """LRA Pathfinder images (``pathfinder<resolution>/<difficulty>/``) as pixel tokens:
    ``(inputs (n, resolution**2), labels)``; a seeded 80/10/10 split (see the module docstring)."""
    _check_split(split)
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow comes with matplotlib
        raise ImportError("load_pathfinder needs Pillow to read PNG files: pip install pillow") from err
    base = _need(lra_release_dir(data_dir) / f"pathfinder{resolution}" / difficulty, "LRA Pathfinder")
    samples = [(p, y) for p, y in _pathfinder_index(base) if p.exists() and p.stat().st_size > 0]
    if not samples:
        raise DataMissingError(f"no Pathfinder images listed in {base / 'metadata'}/*.npy were found")
    order = np.random.default_rng(seed).permutation(len(samples))
    n_train, n_val = int(0.8 * len(samples)), int(0.1 * len(samples))
    part = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}[split]
    images = np.zeros((len(part), resolution * resolution), dtype=np.int64)
    for row, i in enumerate(part):
        with Image.open(samples[i][0]) as img:
            pixels = np.asarray(img.convert("L"), dtype=np.uint8)
        if pixels.shape != (resolution, resolution):
            raise ValueError(f"{samples[i][0]} has shape {pixels.shape}, expected ({resolution}, {resolution})")
        images[row] = pixels.reshape(-1)
    labels = torch.tensor([samples[i][1] for i in part], dtype=torch.long)
    return torch.from_numpy(images), labels


# --------------------------------------------------------------------------- IMDB and CIFAR-10

def _hf_split(name: str, split: str):
    try:
        import datasets
    except ImportError as err:
        raise ImportError(f"the {name!r} data are not in the data directory, and loading them from HuggingFace needs "
                          f"the `datasets` package: pip install datasets (or put the offline files under the data "
                          f"directory, see dsflib.data.lra)") from err
    return datasets.load_dataset(name, split=split)


def _imdb_local(root: Path, split: str) -> tuple[list[bytes], list[int]]:
    texts, labels = [], []
    for label, polarity in ((0, "neg"), (1, "pos")):
        folder = _need(root / split / polarity, "IMDB (aclImdb)")
        for path in sorted(folder.glob("*.txt")):
            texts.append(path.read_bytes())
            labels.append(label)
    return texts, labels


def load_text(split: str, data_dir=None, seq_len: int = 4096):
    """IMDB reviews as bytes: ``(inputs (n, seq_len), labels)``; ``aclImdb/`` if present, else HF ``imdb``.
    IMDB has no validation split: ``val`` is the test split (as in LRA)."""
    _check_split(split)
    name = "train" if split == "train" else "test"
    local = data_root(data_dir) / "aclImdb"
    if local.is_dir():
        texts, labels = _imdb_local(local, name)
    else:
        ds = _hf_split("imdb", name)
        texts, labels = list(ds["text"]), list(ds["label"])
    return encode_bytes(texts, seq_len), torch.tensor(labels, dtype=torch.long)


def _cifar_local(root: Path, split: str) -> tuple[np.ndarray, list[int]]:
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in files:
        with _need(root / name, "CIFAR-10 (cifar-10-batches-py)").open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)  # (n, 3072): 1024 R, 1024 G, 1024 B
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels += list(batch[b"labels"])
    return np.concatenate(images), labels


def load_image(split: str, data_dir=None):
    """CIFAR-10 in 8-bit grayscale as pixel tokens: ``(inputs (n, 1024), labels)``;
    ``cifar-10-batches-py/`` if present, else HF ``cifar10``. ``val`` is the test split (as in LRA)."""
    _check_split(split)
    name = "train" if split == "train" else "test"
    local = data_root(data_dir) / "cifar-10-batches-py"
    if local.is_dir():
        rgb, labels = _cifar_local(local, name)
    else:
        ds = _hf_split("cifar10", name)
        rgb = np.stack([np.asarray(img.convert("RGB"), dtype=np.uint8) for img in ds["img"]])
        labels = list(ds["label"])
    return grayscale(rgb).flatten(1).long(), torch.tensor(labels, dtype=torch.long)


def load_task(task: str, split: str, data_dir=None, **kwargs):
    """``(inputs, labels)`` of ``split`` of the LRA task ``task`` (a key of :data:`TASKS`)."""
    loaders = {"listops": load_listops, "text": load_text, "retrieval": load_retrieval, "image": load_image,
               "pathfinder": load_pathfinder}
    if task not in loaders:
        raise ValueError(f"task must be one of {sorted(loaders)}, got {task!r}")
    return loaders[task](split, data_dir, **kwargs)


def available(task: str, data_dir=None, *, allow_download: bool = False) -> bool:
    """Whether ``task``'s data can be loaded: local files present, or (``allow_download``, Text and
    Image only) the ``datasets`` package installed to fetch them from HuggingFace."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    root = data_root(data_dir)
    if task in ("text", "image"):
        local = (root / ("aclImdb" if task == "text" else "cifar-10-batches-py")).is_dir()
        return local or (allow_download and importlib.util.find_spec("datasets") is not None)
    try:
        release = lra_release_dir(data_dir)
    except DataMissingError:
        return False
    return {"listops": release / "listops-1000" / "basic_train.tsv",
            "retrieval": release / "tsv_data" / "new_aan_pairs.train.tsv",
            "pathfinder": release / "pathfinder32" / "curv_baseline" / "metadata"}[task].exists()
