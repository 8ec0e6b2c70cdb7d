"""Train the small BPE vocabulary that `swarm.tokens` uses to count prompt tokens, and write it to
swarm/proposers/data/prompt_bpe.tiktoken (one `base64(token_bytes) rank` line per token, tiktoken's format).

The corpus is the Python standard library's own sources (code + docstrings), which every machine with
Python has, so the file is reproducible offline. Run once by a developer; the output is committed and
nothing trains at run time:

    .venv/bin/python scripts/train_prompt_tokenizer.py
"""

from __future__ import annotations

import base64
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import rustbpe

from swarm.proposers.tokens import DATA_FILE, PATTERN, VOCAB_SIZE

MAX_FILE_BYTES = 200_000  # skip the few huge generated tables; they skew merges toward hex digits


def corpus() -> Iterator[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        yield path.read_text(encoding="utf-8", errors="replace")


def main() -> None:
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(corpus(), VOCAB_SIZE, pattern=PATTERN)
    ranks = tok.get_mergeable_ranks()
    items = sorted(((bytes(b), int(r)) for b, r in ranks), key=lambda x: x[1])
    lines = [f"{base64.b64encode(b).decode()} {r}" for b, r in items]
    DATA_FILE.write_text("\n".join(lines) + "\n", encoding="ascii")
    print(f"wrote {DATA_FILE} tokens: {len(items)} size_bytes: {DATA_FILE.stat().st_size}")


if __name__ == "__main__":
    main()
