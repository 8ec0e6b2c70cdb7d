"""The fixed arena harness: data, tokenizer, clock, evaluation and result writing for `train.py`.

Everything that decides the number lives in this package and is pinned by sha256 in `arena.toml`;
`train.py` (the one editable file) only builds a model and trains it on the batches handed to it.
Run it from the arena directory: `python -m harness prepare|run|noise|check|track|pin`.

This module holds the per-profile settings the harness owns (vocabulary, context length, validation
size, dtype, setup cap). train.py owns the model and optimizer constants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ARENA_DIR = Path(__file__).resolve().parents[1]  # the arena root: arena.toml, train.py, data/
MANIFEST = ARENA_DIR / "arena.toml"
TRAIN_FILE = ARENA_DIR / "train.py"
CORPUS_FILE = ARENA_DIR / "data" / "shakespeare.jsonl.xz"  # the shipped offline corpus
BOS = "<|bos|>"  # the one special token: starts every document, never a prediction target


@dataclass(frozen=True)
class Settings:
    """What the harness fixes per profile, so every run on a track measures the same thing."""

    vocab_size: int  # BPE vocabulary including the BOS special token
    context_len: int  # tokens per training / evaluation sequence
    val_tokens: int  # evaluation size (capped by what the validation split holds, same for every run)
    dtype: str  # "float32" or "bfloat16" autocast for forward passes
    setup_cap_s: float  # child start -> first batch; longer is a timeout (no untimed training)
    eval_batch: int  # sequences per evaluation forward pass (memory bound for float64 log-softmax)


PROFILES: dict[str, Settings] = {
    # ~1M-parameter models on a 2-core laptop: 16K validation tokens evaluate in about a second
    "cpu": Settings(
        vocab_size=2048,
        context_len=256,
        val_tokens=64 * 256,
        dtype="float32",
        setup_cap_s=30.0,
        eval_batch=16,
    ),
    # H100-class, following the published autoresearch setup (context 2048, vocab 8192, bf16);
    # a generous setup cap covers torch.compile
    "gpu": Settings(
        vocab_size=8192,
        context_len=2048,
        val_tokens=2048 * 2048,
        dtype="bfloat16",
        setup_cap_s=180.0,
        eval_batch=8,
    ),
}

CORPORA = ("shakespeare", "climbmix")


def cache_dir() -> Path:
    """Root of prepared data: env ARENA_CACHE, default ~/.cache/swarm-arena."""
    return Path(os.environ.get("ARENA_CACHE") or Path.home() / ".cache" / "swarm-arena")
