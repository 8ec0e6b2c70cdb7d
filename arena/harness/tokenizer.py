"""The arena tokenizer: byte-level BPE trained locally with rustbpe, used through tiktoken.

`train(docs, vocab_size)` learns vocab_size - 1 byte-level BPE tokens (GPT-4 split pattern) and the
BOS special token takes the last id. `load(path)` rebuilds the `tiktoken.Encoding` from the saved
ranks; no named tiktoken encoding (they download at runtime) is ever used.

`token_bytes(enc)` is each token's length in raw bytes, the denominator of bits per byte: a token
holding part of a multi-byte UTF-8 character counts the bytes it holds (decoding it alone would
give U+FFFD, 3 bytes, the original's bug); the BOS special token counts 0 and is never a target.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tiktoken

from harness import BOS


def train(docs: Iterable[str], vocab_size: int) -> tuple[str, dict[bytes, int]]:
    """(split pattern, mergeable ranks) of a BPE with vocab_size - 1 tokens learned from docs."""
    import rustbpe

    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(iter(docs), vocab_size - 1)
    ranks = {bytes(b): int(r) for b, r in tok.get_mergeable_ranks()}
    return tok.get_pattern(), ranks


def encoding(name: str, pattern: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens={BOS: len(ranks)})


def save(path: Path, name: str, pattern: str, ranks: dict[bytes, int]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps({"name": name, "pattern": pattern, "ranks": ranks}))
    tmp.replace(path)


def load(path: Path) -> tiktoken.Encoding:
    d = pickle.loads(path.read_bytes())
    return encoding(d["name"], d["pattern"], d["ranks"])


def token_bytes(enc: tiktoken.Encoding) -> np.ndarray:
    """Raw byte length of every token id (int64); special tokens are 0."""
    special = {enc.encode_single_token(s) for s in enc.special_tokens_set}
    return np.array(
        [0 if i in special else len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)],
        dtype=np.int64,
    )
