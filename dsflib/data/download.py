"""Download the real datasets of the ``paper`` profile into the data root, in the loaders' layout.

``python -m dsflib.data download NAME [--data-dir D] [--source archive|hf]`` (``make data NAME=...``)
fetches one dataset into :func:`dsflib.data.wikitext.data_root` (``<repo>/data`` unless ``$DSF_DATA_DIR``
or ``--data-dir`` says otherwise), where :mod:`dsflib.data.wikitext` and :mod:`dsflib.data.lra` read it:

| NAME | archive (``--source archive``, the default) | checksum | lands in |
|---|---|---|---|
| ``wikitext-103`` | ``wikitext-103-v1.zip`` (Salesforce's S3 bucket) | MD5, as published by torchtext | ``wikitext-103/wiki.*.tokens`` |
| ``imdb`` | ``aclImdb_v1.tar.gz`` (Stanford) | MD5, as published by torchtext | ``aclImdb/{train,test}/{neg,pos}/`` |
| ``cifar10`` | ``cifar-10-python.tar.gz`` (Toronto) | MD5, as published on the CIFAR page and by torchvision | ``cifar-10-batches-py/`` |
| ``lra`` | ``lra_release.gz`` (the LRA bucket, ~7.7 GB) | none published: SHA-256 recorded at first download | ``lra_release/`` |

``--source hf`` takes WikiText-103, IMDB and CIFAR-10 from Hugging Face ``datasets`` instead (imported
only then, ``pip install -e ".[data]"``) and writes them in the same layout, so the loaders read them
without the network afterwards. The LRA release exists only as the archive.

An archive download is **resumable** (an interrupted download stays in ``<file>.part`` and continues
with an HTTP ``Range`` request), shows a tqdm progress bar, is **checksummed** before use (a mismatch
deletes the partial file and raises :class:`ChecksumError`), and becomes the final file by an atomic
rename. The archive is unpacked into a temporary folder beside the target (members that would land
outside it are refused) and moved into place, then deleted unless ``--keep-archive``. Without network
the command fails with ``no network: place the files in <path>`` (:class:`NoNetworkError`).
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["Dataset", "DATASETS", "DownloadError", "NoNetworkError", "ChecksumError", "fetch", "extract",
           "download", "file_checksum", "is_present", "main"]

CHUNK = 1 << 20
TIMEOUT = 60


class DownloadError(RuntimeError):
    """A download could not be completed (the message says why and what to do)."""


class NoNetworkError(DownloadError):
    """The server could not be reached at all."""


class ChecksumError(DownloadError):
    """The downloaded file does not have the expected checksum (the partial file is deleted)."""


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    filename: str  # the archive's file name in the data root
    checksum: str | None  # "md5:<hex>" or "sha256:<hex>"; None: record the SHA-256 at first download
    target: str  # the folder (relative to the data root) the archive unpacks to
    present: tuple[str, ...]  # files (relative to the data root) whose presence means "already there"
    about: str
    hf: str | None = None  # Hugging Face dataset for --source hf (None: archive only)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("wikitext-103", "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
            "wikitext-103-v1.zip", "md5:9ddaacaf6af0710eda8c456decff7832", "wikitext-103",
            tuple(f"wikitext-103/wiki.{s}.tokens" for s in ("train", "valid", "test")),
            "WikiText-103 (Merity et al. 2016, CC BY-SA 3.0), word level, 181 MB zip", hf="wikitext"),
    Dataset("imdb", "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz", "aclImdb_v1.tar.gz",
            "md5:7c2ac02c03563afcf9b574c7e56c153a", "aclImdb", ("aclImdb/train/pos", "aclImdb/test/neg"),
            "IMDB reviews (Maas et al. 2011), LRA Text, 84 MB", hf="imdb"),
    Dataset("cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
            "md5:c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
            ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
            "CIFAR-10 (Krizhevsky 2009), LRA Image, 163 MB", hf="cifar10"),
    # The LRA authors publish no checksum for lra_release.gz (README of google-research/long-range-arena):
    # the first download records its SHA-256 in <data root>/lra_release.gz.sha256 and later ones check it.
    Dataset("lra", "https://storage.googleapis.com/long-range-arena/lra_release.gz", "lra_release.gz", None,
            "lra_release", ("lra_release",),
            "Long Range Arena release (Tay et al. 2021): ListOps, Retrieval/AAN, Pathfinder; 7.7 GB"),
)}


def _data_root(data_dir) -> Path:
    from .wikitext import data_root

    return data_root(data_dir)


def _open(request: urllib.request.Request, timeout: float = TIMEOUT):
    """Open ``request`` (an indirection the tests replace to simulate a machine without network)."""
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) and file URLs only


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _split_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, digest = checksum.partition(":")
    if algorithm not in ("md5", "sha256") or not digest:
        raise ValueError(f"checksum must be 'md5:<hex>' or 'sha256:<hex>', got {checksum!r}")
    return algorithm, digest.lower()


def _no_network(url: str, place, err) -> NoNetworkError:
    return NoNetworkError(f"no network: place the files in {place} (could not reach {url}: {err})")


def fetch(url: str, dest: Path, checksum: str | None = None, *, place: str | Path | None = None,
          progress: bool = True, opener: Callable | None = None) -> Path:
    """Download ``url`` to ``dest``: resumable through ``dest.part``, checked against ``checksum``
    (``"md5:<hex>"``/``"sha256:<hex>"``; ``None``: no check), renamed into place atomically.

    ``place`` is the folder named in the offline error (default: ``dest``'s folder). A finished ``dest``
    that matches ``checksum`` is not downloaded again.
    """
    from .._progress import tqdm

    dest = Path(dest)
    place = place if place is not None else dest.parent
    open_url = opener or _open
    if checksum is not None:
        algorithm, expected = _split_checksum(checksum)
    if dest.exists() and (checksum is None or file_checksum(dest, algorithm) == expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "dsflib-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = open_url(request)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part file already holds the whole file
            response = None
        else:
            raise DownloadError(f"HTTP {err.code} ({err.reason}) for {url}: download it by hand and place "
                                f"{dest.name} in {place}") from None
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as err:
        raise _no_network(url, place, getattr(err, "reason", err)) from None
    if response is not None:
        with response:
            status = getattr(response, "status", None) or response.getcode()
            resumed = offset and status == 206
            if offset and not resumed:
                offset = 0  # the server (or a file:// URL) ignored the Range header: start over
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            mode = "ab" if resumed else "wb"
            try:
                with open(part, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                   unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
                    TimeoutError) as err:
                raise _no_network(url, place, f"connection lost after {part.stat().st_size} bytes, rerun to "
                                              f"resume: {err}") from None
    if checksum is not None:
        actual = file_checksum(part, algorithm)
        if actual != expected:
            part.unlink()
            raise ChecksumError(f"{dest.name}: {algorithm} is {actual}, expected {expected}; the partial download "
                                f"was deleted, rerun to download it again")
    os.replace(part, dest)
    return dest


def _safe_members(names: Sequence[str], into: Path) -> None:
    base = into.resolve()
    for name in names:
        target = (base / name).resolve()
        if target != base and base not in target.parents:
            raise DownloadError(f"refusing to unpack {name!r}: it would land outside {into}")


def extract(archive: Path, into: Path) -> None:
    """Unpack a zip or tar (any compression) archive into ``into``, refusing members outside it."""
    archive = Path(archive)
    into.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _safe_members(zf.namelist(), into)
            zf.extractall(into)
        return
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            _safe_members([m.name for m in members], into)
            bad = [m.name for m in members if m.issym() or m.islnk() or m.isdev()]
            if bad:
                raise DownloadError(f"refusing to unpack links or devices from {archive.name}: {bad[:3]}")
            if hasattr(tarfile, "data_filter"):
                tf.extractall(into, filter="data")
            else:  # pragma: no cover - Python without the extraction filters
                tf.extractall(into)
    except tarfile.ReadError as err:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive: {err}") from None


def is_present(dataset: Dataset, root: Path) -> bool:
    return all((root / rel).exists() for rel in dataset.present)


def _move_into_place(tmp: Path, root: Path, target: str) -> None:
    """Move the unpacked ``target`` folder from ``tmp`` to ``root`` (replacing an older copy)."""
    found = tmp / target
    if not found.exists():
        inside = sorted(p.name for p in tmp.iterdir())
        raise DownloadError(f"the archive did not contain {target}/ (it holds {inside})")
    final = root / target
    if final.exists():
        old = root / f".{target}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(found, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(found, final)


def _recorded_checksum(dataset: Dataset, root: Path) -> str | None:
    if dataset.checksum is not None:
        return dataset.checksum
    record = root / f"{dataset.filename}.sha256"
    if record.exists():
        return "sha256:" + record.read_text().split()[0]
    return None


def _download_archive(dataset: Dataset, root: Path, *, keep_archive: bool, progress: bool,
                      url: str | None = None) -> None:
    archive = root / dataset.filename
    checksum = _recorded_checksum(dataset, root)
    place = f"{root} ({dataset.filename}, or its unpacked {dataset.target}/ folder)"
    fetch(url or dataset.url, archive, checksum, place=place, progress=progress)
    if checksum is None:
        digest = file_checksum(archive)
        (root / f"{dataset.filename}.sha256").write_text(f"{digest}  {dataset.filename}\n")
        print(f"[data] {dataset.filename}: no published checksum; recorded SHA-256 {digest} in "
              f"{root / (dataset.filename + '.sha256')} (later downloads are checked against it)")
    with tempfile.TemporaryDirectory(prefix=f".{dataset.name}-", dir=root) as tmp:
        print(f"[data] unpacking {archive.name} into {root / dataset.target}", flush=True)
        extract(archive, Path(tmp))
        _move_into_place(Path(tmp), root, dataset.target)
    if not keep_archive:
        archive.unlink()


# --------------------------------------------------------------------------- Hugging Face datasets

def _import_datasets():
    try:
        import datasets  # noqa: PLC0415 - optional, heavy
    except ImportError:
        raise DownloadError('--source hf needs the Hugging Face `datasets` package: pip install -e ".[data]" '
                            "(or use the default --source archive)") from None
    return datasets


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _hf_wikitext(tmp: Path) -> None:
    loaded = _import_datasets().load_dataset("wikitext", "wikitext-103-v1")
    for split, hf_split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        lines = [t if t.endswith("\n") else t + "\n" for t in loaded[hf_split]["text"]]
        _write_text(tmp / "wikitext-103" / f"wiki.{split}.tokens", "".join(lines))


def _hf_imdb(tmp: Path) -> None:
    datasets = _import_datasets()
    for split in ("train", "test"):
        ds = datasets.load_dataset("imdb", split=split)
        for i, (text, label) in enumerate(zip(ds["text"], ds["label"])):
            _write_text(tmp / "aclImdb" / split / ("pos" if int(label) == 1 else "neg") / f"{i}.txt", text)


def _hf_cifar10(tmp: Path) -> None:
    import pickle

    import numpy as np

    datasets = _import_datasets()
    folder = tmp / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        ds = datasets.load_dataset("cifar10", split=split)
        rgb = np.stack([np.asarray(img.convert("RGB"), dtype=np.uint8) for img in ds["img"]])
        data = rgb.transpose(0, 3, 1, 2).reshape(len(rgb), -1)  # CIFAR's layout: 1024 R, 1024 G, 1024 B
        labels = [int(y) for y in ds["label"]]
        for name, part in zip(files, np.array_split(np.arange(len(rgb)), len(files))):
            with open(folder / name, "wb") as fh:
                pickle.dump({b"data": data[part], b"labels": [labels[i] for i in part]}, fh)


_HF_WRITERS = {"wikitext-103": _hf_wikitext, "imdb": _hf_imdb, "cifar10": _hf_cifar10}


def _download_hf(dataset: Dataset, root: Path) -> None:
    if dataset.hf is None:
        raise DownloadError(f"{dataset.name} is not on Hugging Face; use --source archive")
    with tempfile.TemporaryDirectory(prefix=f".{dataset.name}-", dir=root) as tmp:
        try:
            _HF_WRITERS[dataset.name](Path(tmp))
        except OSError as err:  # requests' and datasets' connection errors are OSErrors
            if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
                raise
            raise _no_network(f"huggingface.co/datasets/{dataset.hf}", root, err) from None
        _move_into_place(Path(tmp), root, dataset.target)


# --------------------------------------------------------------------------- entry points

def download(name: str, data_dir=None, *, source: str = "archive", force: bool = False,
             keep_archive: bool = False, progress: bool = True, url: str | None = None) -> Path:
    """Download dataset ``name`` (a key of :data:`DATASETS`) into the data root; return its folder.

    ``url`` replaces the dataset's URL (a mirror, or a local ``file://`` copy); its checksum still applies.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if source not in ("archive", "hf"):
        raise ValueError(f"source must be 'archive' or 'hf', got {source!r}")
    dataset = DATASETS[name]
    root = _data_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    if is_present(dataset, root) and not force:
        print(f"[data] {name}: already in {root / dataset.target} (--force to download again)")
        return root / dataset.target
    if source == "hf":
        _download_hf(dataset, root)
    else:
        _download_archive(dataset, root, keep_archive=keep_archive, progress=progress, url=url)
    if not is_present(dataset, root):
        raise DownloadError(f"{name}: unpacked, but {[p for p in dataset.present if not (root / p).exists()]} "
                            f"are missing under {root}")
    print(f"[data] {name}: ready in {root / dataset.target}")
    return root / dataset.target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsflib.data",
                                     description="Download the real datasets into the data root.")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list the datasets, their sources and whether they are present")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    dl = sub.add_parser("download", help="download one dataset into the data root")
    dl.add_argument("name", help=f"one of {', '.join(sorted(DATASETS))}")
    dl.add_argument("--data-dir", default=None, help="data root (default: $DSF_DATA_DIR, else <repo>/data)")
    dl.add_argument("--source", default="archive", choices=("archive", "hf"),
                    help="the original archive (default) or Hugging Face datasets (not for lra)")
    dl.add_argument("--url", default=None, help="a mirror or local file:// copy of the archive (same checksum)")
    dl.add_argument("--force", action="store_true", help="download again even if the data are present")
    dl.add_argument("--keep-archive", action="store_true", help="keep the archive after unpacking it")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "list":
        root = _data_root(None)
        rows = [{"name": d.name, "present": is_present(d, root), "url": d.url, "checksum": d.checksum or "none published",
                 "hf": d.hf or "-", "about": d.about} for d in DATASETS.values()]
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print(f"data root: {root}")
            for r in rows:
                print(f"{r['name']:13s} {'present' if r['present'] else 'missing':8s} {r['about']}")
        return 0
    if args.name not in DATASETS:
        print(f"error: unknown dataset {args.name!r}; known: {', '.join(sorted(DATASETS))}", file=sys.stderr)
        return 2
    if args.data_dir is not None:
        root = Path(args.data_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a bad argument: one line and status 2, like argparse
            print(f"error: --data-dir {args.data_dir!r} cannot be used as the data root: {err.strerror}",
                  file=sys.stderr)
            return 2
    try:
        download(args.name, args.data_dir, source=args.source, force=args.force, keep_archive=args.keep_archive,
                 progress=not args.no_progress, url=args.url)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
