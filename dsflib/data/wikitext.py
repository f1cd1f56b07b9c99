"""WikiText language-modelling data: where the files are, reading the splits, tokenizing, packing.

* **Files.** :func:`data_root` is the data directory: the ``data_dir`` argument, else the environment
  variable ``DSF_DATA_DIR``, else ``<repo>/data`` (which ships WikiText-2's validation and test
  splits for the ``ci`` profile, see ``data/README.md``). A dataset lives in ``<root>/<name>/``
  (``name`` is ``"wikitext-103"`` or ``"wikitext-2"``) with the WikiText release file names
  ``wiki.{train,valid,test}.tokens`` or the short names ``{train,valid,test}.txt``.
* **Hugging Face.** Without local files, :func:`load_wikitext` falls back to
  ``datasets.load_dataset("wikitext", "<name>-v1")`` (``"-raw-v1"`` with ``raw=True``), imported only
  then; ``datasets`` is not a dependency of this project.
* **Tokenizers.** :class:`WordVocab` is the classic word-level vocabulary of WikiText language
  models: whitespace-split words plus ``<eos>`` at the end of every line, built from the training
  split only, optionally capped to the ``max_size`` most frequent words (the rest map to ``<unk>``,
  which WikiText already uses for its own rare words). :class:`GPT2BPE` wraps tiktoken's GPT-2 BPE
  (50257 tokens); tiktoken downloads the vocabulary files at first use (or reads them from
  ``TIKTOKEN_CACHE_DIR``), so it works offline only where they were fetched before.
* **Packing.** :func:`pack_blocks` concatenates token ids, cuts them into blocks of ``block_len + 1``
  and returns ``(inputs, targets)`` shifted by one position; the incomplete last block is dropped.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from .._checks import check_positive_int
from ..env import REPO_ROOT

__all__ = ["DATASETS", "SPLITS", "ENV_VAR", "UNK", "EOS", "WikiTextUnavailable", "data_root", "split_path",
           "available", "read_split", "load_wikitext", "WordVocab", "GPT2BPE", "build_tokenizer", "pack_blocks",
           "TOKENIZERS", "token_counts"]

DATASETS = ("wikitext-103", "wikitext-2")
SPLITS = ("train", "valid", "test")
ENV_VAR = "DSF_DATA_DIR"
UNK, EOS = "<unk>", "<eos>"
_FILE_NAMES = {split: (f"wiki.{split}.tokens", f"{split}.txt") for split in SPLITS}
_HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


class WikiTextUnavailable(FileNotFoundError):
    """The requested WikiText split is neither on disk nor obtainable through Hugging Face ``datasets``."""


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    return name


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: ``data_dir``, else ``$DSF_DATA_DIR``, else ``<repo>/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return REPO_ROOT / "data"


def split_path(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local file of ``split`` of dataset ``name``, or ``None`` when there is none."""
    folder = data_root(data_dir) / _check_name(name)
    for file_name in _FILE_NAMES[_check_split(split)]:
        if (folder / file_name).is_file():
            return folder / file_name
    return None


def available(name: str, splits: Sequence[str], data_dir: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which of ``splits`` of ``name`` are on disk (Hugging Face is not consulted)."""
    return {split: split_path(name, split, data_dir) is not None for split in splits}


def read_split(path: str | os.PathLike) -> list[str]:
    """The lines of a WikiText file, without their line breaks (empty lines kept)."""
    path = Path(path)
    if not path.is_file():
        raise WikiTextUnavailable(f"no WikiText file at {path}")
    with path.open(encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


def _from_hub(name: str, splits: Sequence[str], raw: bool) -> dict[str, list[str]]:
    try:
        import datasets  # noqa: PLC0415 - optional, heavy
    except ImportError as error:
        raise WikiTextUnavailable(
            f"{name} is not on disk under {data_root()}/{name}/ and the Hugging Face `datasets` package is not "
            f"installed; place wiki.{{train,valid,test}}.tokens there (or set {ENV_VAR}) or `pip install datasets`"
        ) from error
    config = f"{name}-raw-v1" if raw else f"{name}-v1"
    loaded = datasets.load_dataset("wikitext", config)
    return {split: [t.rstrip("\n") for t in loaded[_HF_SPLITS[split]]["text"]] for split in splits}


def load_wikitext(
    name: str = "wikitext-103",
    splits: Sequence[str] = SPLITS,
    *,
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    raw: bool = False,
) -> dict[str, list[str]]:
    """The lines of each split in ``splits``.

    ``source``: ``"local"`` reads the files under :func:`data_root`, ``"hf"`` loads through Hugging Face
    ``datasets`` (the ``-raw-v1`` configuration with ``raw=True``), ``"auto"`` reads local files when
    every requested split is there and asks Hugging Face otherwise. Raises
    :class:`WikiTextUnavailable` when the data cannot be had.
    """
    _check_name(name)
    if isinstance(splits, str) or not splits:
        raise TypeError(f"splits must be a non-empty sequence of split names from {SPLITS}, got {splits!r}")
    for split in splits:
        _check_split(split)
    if source not in ("auto", "local", "hf"):
        raise ValueError(f"source must be 'auto', 'local' or 'hf', got {source!r}")
    paths = {split: split_path(name, split, data_dir) for split in splits}
    if source == "local" or (source == "auto" and all(paths.values())):
        missing = [s for s, p in paths.items() if p is None]
        if missing:
            raise WikiTextUnavailable(f"{name}: no file for split(s) {missing} under {data_root(data_dir) / name}/ "
                                      f"(expected one of {[_FILE_NAMES[s] for s in missing]})")
        return {split: read_split(path) for split, path in paths.items()}
    return _from_hub(name, splits, raw)


def _words(lines: Iterable[str]):
    for line in lines:
        yield from line.split()
        yield EOS


class WordVocab:
    """Word-level vocabulary: id 0 is ``<unk>``, id 1 ``<eos>``, then words by decreasing frequency
    (ties in alphabetical order). Encoding appends ``<eos>`` to every line and maps unknown words to
    ``<unk>``."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if words[:2] != [UNK, EOS]:
            raise ValueError(f"words must start with {UNK!r}, {EOS!r}, got {words[:2]}")
        if len(set(words)) != len(words):
            raise ValueError("words must be distinct")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, lines: Iterable[str], max_size: int | None = None) -> "WordVocab":
        """Count the words of ``lines`` (the training split) and keep the ``max_size`` most frequent
        entries in total, ``<unk>`` and ``<eos>`` included (``None``: keep every word)."""
        if isinstance(lines, str):
            raise TypeError("lines must be a sequence of lines, not one str")
        if max_size is not None and check_positive_int("max_size", max_size) < 3:
            raise ValueError(f"max_size must be >= 3 (<unk>, <eos> and one word), got {max_size}")
        counts = Counter(w for w in _words(lines) if w not in (UNK, EOS))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([UNK, EOS, *ranked])

    def __len__(self) -> int:
        return len(self.words)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, lines: Iterable[str]) -> torch.Tensor:
        """Token ids (int64) of ``lines`` with ``<eos>`` after every line."""
        if isinstance(lines, str):
            raise TypeError("lines must be a sequence of lines, not one str")
        get = self.index.get
        return torch.tensor([get(w, 0) for w in _words(lines)], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """The words of ``ids``."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not 0 <= i < len(self.words)]
        if bad:
            raise ValueError(f"ids must lie in [0, {len(self.words)}), got e.g. {bad[0]}")
        return [self.words[i] for i in ids]

    def coverage(self, lines: Iterable[str]) -> float:
        """Fraction of the tokens of ``lines`` (``<eos>`` included) that are not ``<unk>``."""
        ids = self.encode(lines)
        return float((ids != 0).float().mean()) if ids.numel() else float("nan")

    def to_json(self) -> str:
        return json.dumps(self.words)

    @classmethod
    def from_json(cls, text: str) -> "WordVocab":
        return cls(json.loads(text))


class GPT2BPE:
    """GPT-2's byte-level BPE through tiktoken (optional; vocabulary downloaded by tiktoken at first use).

    Lines are joined with newlines and encoded as one text; ``<|endoftext|>`` is never emitted.
    """

    def __init__(self):
        try:
            import tiktoken  # noqa: PLC0415 - optional
        except ImportError as error:
            raise ImportError("the gpt2 tokenizer needs `pip install tiktoken` (and its GPT-2 files: downloaded "
                              "at first use, or cached under TIKTOKEN_CACHE_DIR)") from error
        self._encoding = tiktoken.get_encoding("gpt2")

    @property
    def vocab_size(self) -> int:
        return self._encoding.n_vocab

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, lines: Iterable[str]) -> torch.Tensor:
        if isinstance(lines, str):
            raise TypeError("lines must be a sequence of lines, not one str")
        return torch.tensor(self._encoding.encode_ordinary("\n".join(lines) + "\n"), dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        return self._encoding.decode(ids.tolist() if isinstance(ids, torch.Tensor) else list(ids))


TOKENIZERS = ("word", "gpt2")


def build_tokenizer(kind: str, train_lines: Sequence[str] | None = None, max_vocab: int | None = None):
    """``"word"``: a :class:`WordVocab` built from ``train_lines`` (capped at ``max_vocab``);
    ``"gpt2"``: :class:`GPT2BPE` (``train_lines`` and ``max_vocab`` unused)."""
    if kind == "word":
        if train_lines is None:
            raise ValueError("the word tokenizer needs train_lines to build its vocabulary from")
        return WordVocab.build(train_lines, max_vocab)
    if kind == "gpt2":
        return GPT2BPE()
    raise ValueError(f"kind must be one of {TOKENIZERS}, got {kind!r}")


def pack_blocks(ids: torch.Tensor, block_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the token stream ``ids`` ``(T,)`` into ``T // (block_len + 1)`` blocks of ``block_len + 1``
    tokens; return ``(inputs, targets)``, both ``(blocks, block_len)``, with ``targets`` the inputs
    shifted left by one. The tokens after the last complete block are dropped."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a torch.Tensor of shape (T,), got {type(ids).__name__}")
    if ids.ndim != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"ids must be a 1-d integer tensor (T,), got shape {tuple(ids.shape)} and dtype {ids.dtype}")
    check_positive_int("block_len", block_len)
    blocks = ids.shape[0] // (block_len + 1)
    if blocks == 0:
        raise ValueError(f"ids has {ids.shape[0]} tokens, fewer than one block of block_len + 1 = {block_len + 1}")
    chunks = ids[: blocks * (block_len + 1)].long().view(blocks, block_len + 1)
    return chunks[:, :-1].contiguous(), chunks[:, 1:].contiguous()


def token_counts(splits: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Number of tokens per split (for the chapter's data table)."""
    return {name: int(ids.numel()) for name, ids in splits.items()}
