"""Token counting for prompt budgets.

Prompts sent to LLM proposers are bounded by a token budget (`PROPOSER_CONTEXT_TOKENS` in
swarm.defaults). Counting is done with a `tiktoken.Encoding` built from BPE ranks that ship with the
package (swarm/proposers/data/prompt_bpe.tiktoken, trained by scripts/train_prompt_tokenizer.py on the Python
standard library). tiktoken's named encodings download their ranks at run time, which fails on
offline machines; this one never touches the network.

The vocabulary is small (4,096 tokens), so it counts somewhat *more* tokens than a frontier model's
tokenizer would for the same text: budgets enforced with it are conservative.

    from swarm.proposers.tokens import count_tokens, truncate_to_tokens
    n = count_tokens(text)
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path

import tiktoken

DATA_FILE = Path(__file__).resolve().parent / "data" / "prompt_bpe.tiktoken"
VOCAB_SIZE = 4096  # small file (~50 KB); over-counts a little versus model tokenizers: the safe side
# The GPT-4 split pattern (what rustbpe uses by default), written out so training and loading agree.
PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s+"""
)


def load_ranks(path: Path = DATA_FILE) -> dict[bytes, int]:
    """Read `base64 rank` lines (tiktoken's .tiktoken format) without tiktoken's downloader/cache."""
    ranks: dict[bytes, int] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The shared prompt encoding (built once per process)."""
    return tiktoken.Encoding(
        name="swarm-prompt-bpe", pat_str=PATTERN, mergeable_ranks=load_ranks(), special_tokens={}
    )


def count_tokens(text: str) -> int:
    """Number of tokens in `text` (special-token-like strings are counted as ordinary text)."""
    return len(encoding().encode_ordinary(text))


def truncate_to_tokens(text: str, max_tokens: int, marker: str = "\n[... truncated ...]\n") -> str:
    """`text` cut to at most `max_tokens` tokens, keeping the head and the tail around `marker`.

    Head and tail both matter for code and logs (imports and definitions at the top, the part that
    failed at the bottom), so the middle is what goes.
    """
    enc = encoding()
    ids = enc.encode_ordinary(text)
    if len(ids) <= max_tokens:
        return text
    keep = max(0, max_tokens - len(enc.encode_ordinary(marker)))
    head = keep // 2
    tail = keep - head
    return enc.decode(ids[:head]) + marker + (enc.decode(ids[-tail:]) if tail else "")
