"""The arena harness, for real on CPU: preparation, a short training run, bits-per-byte arithmetic,
and every cheat the issue lists (each run on a copy of the arena with a cheating train.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.experiment.manifest import harness_mismatches, load_manifest

REPO = Path(__file__).resolve().parents[1]
ARENA = REPO / "arena"
sys.path.insert(0, str(ARENA))  # the harness is its own package, imported here only for unit tests

from harness import evaluate, tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def arena_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One prepared cpu cache for the whole session, shared by every arena test.

    The runs use one torch thread: on a shared 2-core machine two spinning OpenMP threads per run
    slow a step down tenfold when other processes compete, and the cheat tests use 3 s budgets."""
    cache = tmp_path_factory.mktemp("arena-cache")
    old = os.environ.get("ARENA_CACHE"), os.environ.get("ARENA_THREADS")
    os.environ["ARENA_CACHE"], os.environ["ARENA_THREADS"] = str(cache), "1"
    subprocess.run(
        [sys.executable, "-m", "harness", "prepare", "--profile", "cpu"],
        cwd=ARENA,
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield cache
    for name, value in zip(("ARENA_CACHE", "ARENA_THREADS"), old, strict=True):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def copy_arena(dst: Path, train_py: str | None = None) -> Path:
    shutil.copytree(ARENA, dst, ignore=shutil.ignore_patterns("__pycache__"))
    if train_py is not None:
        (dst / "train.py").write_text(train_py)
    return dst


def run_arena(arena: Path, out: Path, budget: float = 3, seed: int = 0) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--profile",
            "cpu",
            "--budget",
            str(budget),
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        cwd=arena,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    assert "---" in proc.stdout
    res = json.loads(out.read_text())
    assert set(res) >= {
        "status",
        "val_bpb",
        "training_s",
        "total_s",
        "setup_s",
        "eval_s",
        "steps",
        "tokens",
        "params",
        "peak_mem_mb",
        "mfu",
        "device",
        "track",
        "seed",
        "profile",
        "budget_s",
        "harness_hash",
        "error",
    }
    return res


def patched_train(old: str, new: str) -> str:
    text = (ARENA / "train.py").read_text()
    assert old in text
    return text.replace(old, new)


# --- manifest ---------------------------------------------------------------------------------------


def test_manifest_loads_and_pins_match() -> None:
    m = load_manifest(ARENA)
    assert m.arena.editable == ["train.py"]
    assert m.metric.name == "val_bpb" and m.metric.direction == "minimize"
    assert {"cpu", "gpu"} <= set(m.profiles)
    assert "data/shakespeare.jsonl.xz" in m.arena.harness
    assert all(p in m.arena.harness for p in (f"harness/{f.name}" for f in (ARENA / "harness").glob("*.py")))
    assert harness_mismatches(ARENA, m) == []


# --- bits per byte ----------------------------------------------------------------------------------


def test_bits_per_byte_hand_computed_with_partial_utf8() -> None:
    import torch

    # vocab: "a" (1 byte), b"\xe2" and b"\x82\xac" (the two halves of "€": partial UTF-8), BOS (0 bytes)
    tb = torch.tensor([1, 1, 2, 0])
    p = torch.tensor(
        [
            [0.25, 0.25, 0.25, 0.25],
            [1 / 8, 1 / 8, 1 / 4, 1 / 2],
            [1 / 8, 1 / 8, 1 / 4, 1 / 2],
            [0.25, 0.25, 0.25, 0.25],
        ]
    )
    logits = p.double().log() + 3.0  # any shift: the harness normalizes
    targets = torch.tensor([0, 1, 2, 3])
    nats, nbytes = evaluate.bits_per_byte(logits, targets, tb)
    # bits: 2 ("a" at 1/4) + 3 (b"\xe2" at 1/8) + 2 (b"\x82\xac" at 1/4); BOS excluded; bytes 1 + 1 + 2
    assert nbytes == 4
    assert evaluate.finish(nats, nbytes) == pytest.approx(7 / 4, abs=1e-12)


def test_token_bytes_count_raw_bytes_of_partial_tokens() -> None:
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"\xe2\x82"] = 256  # a token holding 2 of the 3 bytes of "€"
    enc = tokenizer.encoding("t", r"""[^\s]+|\s+""", ranks)
    tb = tokenizer.token_bytes(enc)
    ids = enc.encode_ordinary("€€")
    assert len(ids) == 4  # b"\xe2\x82" b"\xac" twice
    assert int(tb[ids].sum()) == len("€€".encode())  # 6, not 4 x 3 bytes of U+FFFD
    assert tb[256] == 2 and tb[enc.encode_single_token("<|bos|>")] == 0


# --- real runs --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_short_run_beats_unigram_baseline(arena_cache: Path, tmp_path: Path) -> None:
    meta = json.loads((arena_cache / "shakespeare-v2048" / "meta.json").read_text())
    res = run_arena(ARENA, tmp_path / "r.json", budget=20)
    assert res["status"] == "ok", res["error"]
    assert math.isfinite(res["val_bpb"])
    assert res["val_bpb"] < meta["unigram_bpb"] - 0.1  # the unigram model of the same targets
    assert res["steps"] > 0 and res["tokens"] == res["steps"] * 8 * 256
    assert 20 <= res["training_s"] < 20 + 5 + 2 + 2
    assert res["track"].startswith("cpu:") and res["track"].endswith("c")
    assert res["params"] > 500_000


def test_printed_fake_metric_is_ignored(arena_cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(
        tmp_path / "a",
        patched_train("def train(model, arena):\n", "def train(model, arena):\n    print('val_bpb: 0.000100')\n"),
    )
    res = run_arena(arena, tmp_path / "r.json")
    assert res["status"] == "ok"
    assert res["val_bpb"] > 1.0
    assert "val_bpb: 0.000100" in (tmp_path / "r.log").read_text()  # printed, but only into the log


def test_model_reading_future_tokens_is_invalid(arena_cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(tmp_path / "a", patched_train("is_causal=True", "is_causal=False"))
    res = run_arena(arena, tmp_path / "r.json")
    assert res["status"] == "invalid"
    assert res["val_bpb"] is None
    assert "causality" in res["error"]


def test_loop_ignoring_the_deadline_times_out(arena_cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(
        tmp_path / "a",
        patched_train(
            "        if step % LOG_EVERY == 0:\n",
            "        while True:  # never stop\n            x.sum()\n        if step % LOG_EVERY == 0:\n",
        ),
    )
    res = run_arena(arena, tmp_path / "r.json", budget=2)
    assert res["status"] == "timeout"
    assert res["val_bpb"] is None
    assert res["total_s"] < 30


def test_edited_harness_file_is_refused(arena_cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(tmp_path / "a")
    with open(arena / "harness" / "evaluate.py", "a") as f:
        f.write("\n# a harmless-looking edit\n")
    res = run_arena(arena, tmp_path / "r.json")
    assert res["status"] == "invalid"
    assert "harness/evaluate.py" in res["error"]
    assert res["steps"] is None  # refused before training


def test_nan_loss_is_a_crash(arena_cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(
        tmp_path / "a",
        patched_train("        loss = F.cross_entropy(", "        loss = float('nan') * F.cross_entropy("),
    )
    res = run_arena(arena, tmp_path / "r.json")
    assert res["status"] == "crash"
    assert "loss is nan" in res["error"]


def test_diverged_weights_are_a_crash(arena_cache: Path, tmp_path: Path) -> None:
    """Even when train.py does not check its loss, NaN weights end as a crash, not a number."""
    arena = copy_arena(
        tmp_path / "a",
        patched_train(
            "        if step % LOG_EVERY == 0:\n",
            "        with torch.no_grad():\n            model.head.weight.fill_(float('nan'))\n        if False:\n",
        ),
    )
    res = run_arena(arena, tmp_path / "r.json")
    assert res["status"] == "crash"
    assert "not finite" in res["error"]


def test_exception_is_a_crash_with_traceback_tail(arena_cache: Path, tmp_path: Path) -> None:
    arena = copy_arena(
        tmp_path / "a",
        patched_train(
            "    optimizers = make_optimizers(model, cuda)\n",
            "    optimizers = make_optimizers(model, cuda)\n    raise ValueError('boom from train.py')\n",
        ),
    )
    res = run_arena(arena, tmp_path / "r.json")
    assert res["status"] == "crash"
    assert "Traceback" in res["error"] and "ValueError: boom from train.py" in res["error"]
    assert len(res["error"]) <= 2000


def test_check_command(arena_cache: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "harness", "check", "--profile", "cpu", "--device", "cpu"],
        cwd=ARENA,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "pins: ok" in ok.stdout and "causality: ok" in ok.stdout
    arena = copy_arena(tmp_path / "a", patched_train("is_causal=True", "is_causal=False"))
    bad = subprocess.run(
        [sys.executable, "-m", "harness", "check", "--profile", "cpu", "--device", "cpu"],
        cwd=arena,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "reads future tokens" in bad.stdout
    track = subprocess.run(
        [sys.executable, "-m", "harness", "track", "--profile", "cpu", "--device", "cpu"],
        cwd=ARENA,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ARENA_THREADS": "2"},
    )
    assert track.stdout.strip() == "cpu:2c"


# --- preparation ------------------------------------------------------------------------------------


def test_climbmix_prepare_from_local_parquet(tmp_path: Path) -> None:
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    words = [f"{a}{b}{c}" for a in "bcdfghklmnprst" for b in "aeiou" for c in ("", "n", "r", "st", "ck")]
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(50, 400))) + "." for _ in range(600)]
    docs[3] = "naïve café — “quotes” and € signs"  # non-ASCII text survives the round trip
    src = tmp_path / "shard.parquet"
    pq.write_table(pa.table({"text": docs, "id": list(range(len(docs)))}), src)
    env = {**os.environ, "ARENA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "prepare",
            "--profile",
            "cpu",
            "--corpus",
            "climbmix",
            "--source",
            str(src),
        ],
        cwd=ARENA,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "cache" / "climbmix-v2048"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["train_docs"] == 540 and meta["val_docs"] == 60  # the pinned 90/10 row split of one file
    enc = tokenizer.load(d / "tokenizer.pkl")
    assert enc.decode(enc.encode_ordinary(docs[3])) == docs[3]
    assert (tmp_path / "cache" / "raw" / "climbmix" / "local.parquet").is_file()
    assert not list((tmp_path / "cache").rglob("*.part")) and not list(d.glob("*.tmp"))


def test_concurrent_prepare_is_safe(tmp_path: Path) -> None:
    env = {**os.environ, "ARENA_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "harness", "prepare", "--profile", "cpu"]
    procs = [
        subprocess.Popen(cmd, cwd=ARENA, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    d = tmp_path / "cache" / "shakespeare-v2048"
    assert sum(b"prepared " in o for o, _ in outs) == 1  # exactly one did the work, under the lock
    meta = json.loads((d / "meta.json").read_text())
    assert (d / "val.bin").stat().st_size == 2 * meta["val_tokens"]


# --- the swarm CLI ----------------------------------------------------------------------------------


def test_swarm_arena_run_json(arena_cache: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-c", "from swarm.cli import main; main()", "arena"]
    proc = subprocess.run(
        [
            *cli,
            "run",
            "--arena",
            str(ARENA),
            "--profile",
            "cpu",
            "--device",
            "cpu",
            "--budget",
            "3",
            "--seed",
            "7",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["status"] == "ok" and res["seed"] == 7 and res["val_bpb"] > 0
    bad = subprocess.run(
        [*cli, "check", "--arena", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 6
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


def test_train_constants_are_one_numeric_line_each_with_an_aligned_comment() -> None:
    """The classical optimizer parses and edits exactly these lines: keep their shape."""
    import ast
    import re

    num = r"-?[0-9][0-9_.e+-]*"
    shape = re.compile(rf'^([A-Z][A-Z0-9_]*) = (\{{"cpu": {num}, "gpu": {num}\}}|{num}) +# \S.*$')
    lines = [ln for ln in (ARENA / "train.py").read_text().splitlines() if re.match(r"^[A-Z][A-Z0-9_]* = ", ln)]
    assert len(lines) >= 10
    assert all(shape.match(ln) for ln in lines), [ln for ln in lines if not shape.match(ln)]
    assert len({ln.index("#") for ln in lines}) == 1  # comments aligned
    for ln in lines:
        value = ast.literal_eval(shape.match(ln).group(2))  # type: ignore[union-attr]
        assert isinstance(value, (int, float)) or set(value) == {"cpu", "gpu"}


def test_stop_grace_follows_the_median_step() -> None:
    """Beats every 0.3 s: the grace after the budget is 5 s + 4 median steps (not the 10% floor)."""
    import threading
    import time

    from harness import run as harness_run

    r, w = os.pipe()

    def child() -> None:
        for _ in range(6):
            time.sleep(0.3)
            os.write(w, b".")
        os.close(w)

    t = threading.Thread(target=child)
    t0 = time.monotonic()
    t.start()
    grace = harness_run._watch_steps(r, t0, budget=3.0, deadline=t0 + 60)  # the child closes first
    t.join()
    assert grace == pytest.approx(5.0 + 4 * 0.3, abs=0.25)
    assert harness_run._watch_steps(*_closed_pipe(), budget=100, deadline=time.monotonic() + 60) == 5.0 + 10.0


def _closed_pipe() -> tuple[int, float]:
    import time

    r, w = os.pipe()
    os.close(w)  # a child that took one batch and exited: no beats, the fixed grace
    return r, time.monotonic()
