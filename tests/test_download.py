"""The dataset downloaders (dsflib.data.download) on small fabricated archives, never on the network.

Archives with the real layout are served from a Range-capable HTTP server thread on 127.0.0.1 or from
``file://`` URLs; the loaders of dsflib.data.lra and dsflib.data.wikitext then read what was unpacked.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import types
import urllib.error
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dsflib.data import download as dl
from dsflib.data import lra, wikitext
from dsflib.env import REPO_ROOT


# --------------------------------------------------------------------------- fixtures

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    log: list[tuple[str, str | None]] = []
    honour_range = True

    def do_GET(self):  # noqa: N802 - the base class's name
        body = self.files.get(self.path)
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server (127.0.0.1 only) serving ``server.files``; ``server.log`` records (path, Range)."""
    handler = type("Handler", (_Handler,), {"files": {}, "log": [], "honour_range": True})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _png(label: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32), 200 * label, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _lra_release() -> bytes:
    """A miniature lra_release.gz: the release's own nesting (lra_release/lra_release/...)."""
    base = "lra_release/lra_release"
    listops = "Source\tTarget\n" + "".join(f"( [MAX {i} 2 ] )\t{max(i, 2)}\n" for i in range(4))
    aan = "".join(f"{i % 2}\tid{i}\tid{i + 1}\tfirst paper {i}\tsecond paper {i}\n" for i in range(4))
    files = {f"{base}/listops-1000/basic_{s}.tsv": listops.encode() for s in ("train", "val", "test")}
    files |= {f"{base}/tsv_data/new_aan_pairs.{s}.tsv": aan.encode() for s in ("train", "eval", "test")}
    pf = f"{base}/pathfinder32/curv_baseline"
    files[f"{pf}/metadata/0.npy"] = "".join(
        f"imgs/0 sample_{i}.png 0 {i % 2} 0\n" for i in range(10)).encode()
    files |= {f"{pf}/imgs/0/sample_{i}.png": _png(i % 2) for i in range(10)}
    return _tar_gz(files)


def _cifar() -> bytes:
    rng = np.random.default_rng(0)
    files = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        files[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch)
    return _tar_gz(files)


def _wikitext103() -> bytes:
    return _zip({f"wikitext-103/wiki.{s}.tokens": f" = {s} = \n the cat sat on the <unk> \n".encode()
                 for s in ("train", "valid", "test")})


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def _serve(monkeypatch, server, name: str, payload: bytes, checksum: str | None = "auto"):
    path = f"/{dl.DATASETS[name].filename}"
    server.files[path] = payload
    monkeypatch.setitem(dl.DATASETS, name, replace(dl.DATASETS[name], url=server.base + path,
                                                   checksum=_md5(payload) if checksum == "auto" else checksum))
    return path


# --------------------------------------------------------------------------- archives into the loaders' layout

def test_lra_release_lands_where_the_lra_loaders_read_it(monkeypatch, server, tmp_path, capsys):
    payload = _lra_release()
    _serve(monkeypatch, server, "lra", payload, checksum=None)  # no published checksum
    folder = dl.download("lra", tmp_path, progress=False)
    assert folder == tmp_path / "lra_release"
    for task in ("listops", "retrieval", "pathfinder"):
        assert lra.available(task, tmp_path), task
    inputs, labels = lra.load_listops("train", tmp_path, seq_len=32)
    assert inputs.shape == (4, 32) and labels.tolist() == [2, 2, 2, 3]
    assert lra.load_pathfinder("train", tmp_path)[0].shape == (8, 1024)
    # the SHA-256 of the first download is recorded, the archive is gone, nothing is left half-done
    record = (tmp_path / "lra_release.gz.sha256").read_text().split()
    assert record == [hashlib.sha256(payload).hexdigest(), "lra_release.gz"]
    assert "recorded SHA-256" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lra_release", "lra_release.gz.sha256"]
    # a second call finds the data and downloads nothing
    requests = len(server.log)
    dl.download("lra", tmp_path, progress=False)
    assert len(server.log) == requests


def test_lra_redownload_is_checked_against_the_recorded_sha256(monkeypatch, server, tmp_path):
    _serve(monkeypatch, server, "lra", _lra_release(), checksum=None)
    dl.download("lra", tmp_path, progress=False)
    server.files["/lra_release.gz"] = _lra_release() + b"tampered"
    with pytest.raises(dl.ChecksumError, match="sha256"):
        dl.download("lra", tmp_path, progress=False, force=True)
    assert (tmp_path / "lra_release" / "lra_release" / "listops-1000").is_dir()  # the good copy stays


def test_wikitext103_zip_from_the_default_data_root(monkeypatch, server, tmp_path):
    monkeypatch.setenv(wikitext.ENV_VAR, str(tmp_path))  # data_root() decides where the files go
    _serve(monkeypatch, server, "wikitext-103", _wikitext103())
    dl.download("wikitext-103", progress=False, keep_archive=True)
    assert (tmp_path / "wikitext-103-v1.zip").exists()
    lines = wikitext.load_wikitext("wikitext-103", ("train", "test"), source="local")
    assert lines["train"] == [" = train = ", " the cat sat on the <unk> "]


def test_cifar10_from_a_file_url(monkeypatch, tmp_path):
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(_cifar())
    monkeypatch.setitem(dl.DATASETS, "cifar10", replace(dl.DATASETS["cifar10"], checksum=_md5(archive.read_bytes())))
    root = tmp_path / "data"
    dl.download("cifar10", root, url=archive.as_uri(), progress=False)
    inputs, labels = lra.load_image("train", root)
    assert inputs.shape == (20, 1024) and labels.tolist() == [0, 1, 2, 3] * 5


def test_hf_source_writes_the_loaders_layout(monkeypatch, tmp_path):
    from PIL import Image

    rows = {"train": (["good film", "bad film", "great"], [1, 0, 1]), "test": (["meh"], [0])}
    images = [Image.fromarray(np.full((32, 32, 3), i, dtype=np.uint8)) for i in range(6)]

    def load_dataset(name, config=None, split=None):
        if name == "imdb":
            texts, labels = rows[split]
            return {"text": texts, "label": labels}
        if name == "cifar10":
            return {"img": images, "label": list(range(6))}
        raise AssertionError(name)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    dl.download("imdb", tmp_path, source="hf")
    inputs, labels = lra.load_text("train", tmp_path, seq_len=16)
    assert sorted(labels.tolist()) == [0, 1, 1] and inputs.shape == (3, 16)
    dl.download("cifar10", tmp_path, source="hf")
    inputs, labels = lra.load_image("test", tmp_path)
    assert labels.tolist() == list(range(6)) and inputs[:, 0].tolist() == list(range(6))
    with pytest.raises(dl.DownloadError, match="not on Hugging Face"):
        dl.download("lra", tmp_path, source="hf")


# --------------------------------------------------------------------------- fetch: resume, checksum, offline

def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    payload = bytes(range(256)) * 64
    server.files["/blob"] = payload
    dest = tmp_path / "blob"
    (tmp_path / "blob.part").write_bytes(payload[:5000])  # an interrupted earlier run
    dl.fetch(server.base + "/blob", dest, "sha256:" + hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload and not (tmp_path / "blob.part").exists()
    assert server.log == [("/blob", "bytes=5000-")]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    payload = b"x" * 3000
    server.files["/blob"] = payload
    server.honour_range = False
    (tmp_path / "blob.part").write_bytes(b"junk")
    dl.fetch(server.base + "/blob", tmp_path / "blob", _md5(payload), progress=False)
    assert (tmp_path / "blob").read_bytes() == payload


def test_complete_part_file_gets_416_and_is_kept(server, tmp_path):
    payload = b"y" * 100
    server.files["/blob"] = payload
    (tmp_path / "blob.part").write_bytes(payload)
    dl.fetch(server.base + "/blob", tmp_path / "blob", _md5(payload), progress=False)
    assert (tmp_path / "blob").read_bytes() == payload


def test_checksum_mismatch_deletes_the_partial_file(server, tmp_path):
    server.files["/blob"] = b"not what was published"
    with pytest.raises(dl.ChecksumError, match=r"md5 is [0-9a-f]{32}, expected 0{32}"):
        dl.fetch(server.base + "/blob", tmp_path / "blob", "md5:" + "0" * 32, progress=False)
    assert not (tmp_path / "blob").exists() and not (tmp_path / "blob.part").exists()


def test_http_error_names_the_file_and_where_to_put_it(server, tmp_path):
    with pytest.raises(dl.DownloadError, match=r"HTTP 404 .* place blob in"):
        dl.fetch(server.base + "/missing", tmp_path / "blob", progress=False)


def test_offline_says_where_to_place_the_files(monkeypatch, tmp_path, capsys):
    def offline(request, timeout=None):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(dl, "_open", offline)
    with pytest.raises(dl.NoNetworkError, match=rf"^no network: place the files in {tmp_path}"):
        dl.download("imdb", tmp_path, progress=False)
    assert dl.main(["download", "cifar10", "--data-dir", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"error: no network: place the files in {tmp_path} (cifar-10-python.tar.gz" in err
    assert not list(tmp_path.glob("*.part"))


def test_archive_member_outside_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar_gz({"../escaped.txt": b"x"}))
    with pytest.raises(dl.DownloadError, match="outside"):
        dl.extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


# --------------------------------------------------------------------------- command line

def test_unknown_name_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "dsflib.data", "download", "imagenet"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown dataset 'imagenet'; known: cifar10, imdb, lra, wikitext-103"]


def test_list_names_every_dataset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(wikitext.ENV_VAR, str(tmp_path))
    assert dl.main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path}" in out
    for name in dl.DATASETS:
        assert name in out


def test_published_checksums_and_urls():
    """The archive sources: official URLs, the checksums their maintainers publish (none for LRA)."""
    assert dl.DATASETS["lra"].url == lra.LRA_URL and dl.DATASETS["lra"].checksum is None
    for name in ("wikitext-103", "imdb", "cifar10"):
        algorithm, digest = dl.DATASETS[name].checksum.split(":")
        assert algorithm == "md5" and len(digest) == 32
