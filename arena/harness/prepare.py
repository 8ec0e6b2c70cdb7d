"""Prepare the cache a run reads: corpus -> tokenizer -> token files, once per (corpus, vocabulary).

Layout under `cache_dir()` (env ARENA_CACHE, default ~/.cache/swarm-arena):

    raw/climbmix/shard_NNNNN.parquet         downloaded shards (climbmix only)
    <corpus>-v<vocab>/tokenizer.pkl          BPE ranks + split pattern (tiktoken.Encoding)
    <corpus>-v<vocab>/train.bin, val.bin     uint16 token ids; every document starts with BOS
    <corpus>-v<vocab>/meta.json              written last: its presence means "prepared"; holds the
                                             unigram baseline bpb on the profile's evaluation targets

Idempotent and safe when several agents prepare at once: the work happens under an exclusive
`flock` on `<corpus>-v<vocab>.lock`, every file is written to a temp name and renamed into place, and
meta.json (the commit marker) is written last, so a reader never sees half a cache.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from harness import BOS, PROFILES, cache_dir, corpus, tokenizer

TOKENIZER_MAX_CHARS = 1_000_000_000  # climbmix: train the BPE on at most ~1 GB of text
CLIMBMIX_TRAIN_SHARDS = 8  # default number of climbmix training shards (~100 MB each)


def key_dir(corpus_name: str, vocab_size: int) -> Path:
    return cache_dir() / f"{corpus_name}-v{vocab_size}"


def is_prepared(corpus_name: str, vocab_size: int) -> bool:
    return (key_dir(corpus_name, vocab_size) / "meta.json").is_file()


def _take_chars(docs: Iterable[str], limit: int) -> list[str]:
    out, n = [], 0
    for d in docs:
        out.append(d)
        n += len(d)
        if n >= limit:
            break
    return out


def _encode(enc, docs: Iterable[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    bos = enc.encode_single_token(BOS)
    parts = [np.asarray([bos, *ids], dtype=np.uint16) for ids in enc.encode_ordinary_batch(list(docs))]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def _write_array(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp")
    arr.tofile(tmp)
    tmp.replace(path)


def unigram_bpb(train_ids: np.ndarray, targets: np.ndarray, tbytes: np.ndarray) -> float:
    """Bits per byte of the best context-free model (train unigram frequencies, add-one smoothed)
    on the given validation targets: the baseline a trained model must clearly beat."""
    counts = np.bincount(train_ids.astype(np.int64), minlength=len(tbytes)).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    y = targets.reshape(-1).astype(np.int64)
    mask = tbytes[y] > 0
    return float(-logp[y][mask].sum() / (math.log(2) * tbytes[y][mask].sum()))


def prepare(
    profile: str = "cpu",
    corpus_name: str = "shakespeare",
    source: str | None = None,
    n_shards: int = CLIMBMIX_TRAIN_SHARDS,
    log: bool = True,
) -> Path:
    """Make sure the cache for (corpus, profile's vocabulary) exists; returns its directory."""
    vocab = PROFILES[profile].vocab_size
    out = key_dir(corpus_name, vocab)
    if is_prepared(corpus_name, vocab):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another agent may be preparing the same key right now
        if is_prepared(corpus_name, vocab):
            return out
        t0 = time.monotonic()
        out.mkdir(exist_ok=True)
        if corpus_name == "shakespeare":
            src = Path(source) if source else None
            train_docs = corpus.shakespeare_docs("train", src)
            val_docs = corpus.shakespeare_docs("val", src)
        elif corpus_name == "climbmix":
            shards = corpus.climbmix_shards(cache_dir() / "raw" / "climbmix", n_shards, source)
            single = shards["train"] == shards["val"]
            train_docs = list(corpus.parquet_docs(shards["train"], "train", single))
            val_docs = list(corpus.parquet_docs(shards["val"], "val", single))
        else:
            raise ValueError(f"unknown corpus {corpus_name!r} (known: shakespeare, climbmix)")
        pattern, ranks = tokenizer.train(_take_chars(train_docs, TOKENIZER_MAX_CHARS), vocab)
        name = f"arena-{corpus_name}-v{vocab}"
        tokenizer.save(out / "tokenizer.pkl", name, pattern, ranks)
        enc = tokenizer.encoding(name, pattern, ranks)
        train_ids, val_ids = _encode(enc, train_docs), _encode(enc, val_docs)
        _write_array(out / "train.bin", train_ids)
        _write_array(out / "val.bin", val_ids)
        tb = tokenizer.token_bytes(enc)
        from harness.data import eval_windows

        meta = {
            "corpus": corpus_name,
            "vocab_size": vocab,
            "train_tokens": len(train_ids),
            "val_tokens": len(val_ids),
            "train_docs": len(train_docs),
            "val_docs": len(val_docs),
            "unigram_bpb": unigram_bpb(train_ids, eval_windows(val_ids, PROFILES[profile])[:, 1:], tb),
            "source": source or "default",
            "prepared_s": round(time.monotonic() - t0, 3),
        }
        tmp = out / "meta.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(out / "meta.json")
        if log:
            print(
                f"prepared {out}: {meta['train_tokens']} train / {meta['val_tokens']} val tokens "
                f"in {meta['prepared_s']} s",
                flush=True,
            )
    return out


def load_meta(corpus_name: str, vocab_size: int) -> dict:  # type: ignore[type-arg]
    return json.loads((key_dir(corpus_name, vocab_size) / "meta.json").read_text())
