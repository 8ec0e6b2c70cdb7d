"""One timed experiment: a supervisor process runs training and evaluation as separate children.

    supervisor (this module, `python -m harness run`)
      |- verify pins -> refused (status invalid) when a harness file differs
      |- training child (own process group, sandboxed): build_model, train(model, arena), save weights
      |     the first batch writes one byte to a pipe: training time starts there, as the
      |     supervisor sees it; setup before it is capped; at budget + grace the group is SIGKILLed
      |- evaluation child (own process group, sandboxed): build_model, load weights, causality probe,
      |     val_bpb from the logits with harness code
      '- result JSON to --out (always), the `---` block on stdout

Nothing train.py prints is read: children write to a log file next to the result (its tail becomes
`error` on failure). Times and the deadline are the supervisor's; val_bpb is computed in harness
code. Each child runs in its own sandbox (harness.sandbox: no network, its own PID namespace, a
read-only filesystem but for its output dir and a private /tmp; the training child never sees the
validation tokens); `--sandbox none` runs them bare. What this does and does not protect against:
docs/arena.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import itertools
import json
import math
import os
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from harness import ARENA_DIR, PROFILES, TRAIN_FILE, cache_dir, pins, sandbox

ERROR_TAIL_CHARS = 2000
STOP_GRACE_S = 5.0  # after the budget: time to finish the current step and save the weights ...
STOP_GRACE_FRAC = 0.1  # ... plus this fraction of the budget, or STOP_GRACE_STEPS median steps if longer:
STOP_GRACE_STEPS = 4  # a loaded machine slows every step; a few steps' time is all a cheat could win ...
STOP_GRACE_MAX_FRAC = 0.5  # ... and never more than half the budget
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}  # dense bf16
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|REDIS|CREDENTIAL", re.I)

RESULT_KEYS = (
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
    "sandbox",
    "prestarted",
    "error",
)


# --- hardware ---------------------------------------------------------------------------------------


def threads() -> int | None:
    """Torch threads for the children: env ARENA_THREADS, else None (torch's default)."""
    value = os.environ.get("ARENA_THREADS")
    return int(value) if value else None


def resolve(profile: str, device: str) -> tuple[str, str]:
    """Concrete (profile, device) for "auto": cuda, then mps, then cpu; the gpu profile needs a GPU."""
    if profile != "auto" and device not in ("auto", "cuda", "mps") and not device.startswith("cuda:"):
        return profile, device
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if profile == "auto":
        profile = "gpu" if device.startswith("cuda") else "cpu"
    return profile, device


def track(profile: str, device: str) -> str:
    """profile:hardware, e.g. gpu:NVIDIA-H100-80GB-HBM3 or cpu:2c (the torch thread count)."""
    if device.startswith("cuda"):
        import torch

        return f"{profile}:{torch.cuda.get_device_name(device).replace(' ', '-')}"
    if device == "mps":
        return f"{profile}:mps"
    n = threads()
    if n is None:
        import torch

        n = torch.get_num_threads()
    return f"{profile}:{n}c"


def peak_flops(track_name: str) -> float | None:
    return next((f for k, f in PEAK_FLOPS.items() if k in track_name), None)


# --- the children --------------------------------------------------------------------------------------


def load_train_module(path: Path = TRAIN_FILE) -> ModuleType:
    """train.py as the module `train`; its directory first on sys.path, so the arena's other editable
    files import from the same copy."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train"] = module
    spec.loader.exec_module(module)
    return module


def _seed_everything(seed: int, n_threads: int | None) -> None:
    import numpy as np
    import torch

    if n_threads:
        torch.set_num_threads(n_threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _die_with_parent() -> None:
    """SIGKILL when the parent (the supervisor, or bwrap's init) dies: a bare child of a killed
    supervisor must not train on, nor wait forever for a run."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child(role: str, warm: dict[str, Any]) -> int:
    """Entry of a child (`python -m harness _train|_eval WARM_JSON`). It warms up with harness code only:
    torch, numpy and the harness imported (the evaluation child also loads the validation windows and
    the token bytes); the training child then reports `R` + its track on the beat pipe. Then it waits
    for its run: one JSON line on stdin (seed, budget). Only then does it load the experiment's code,
    which the supervisor copied into `warm["code"]` when the run started. EOF instead (the supervisor
    is gone, or this child was never used): exit, having run nothing."""
    _die_with_parent()
    import numpy as np
    import torch

    from harness import data, evaluate, tokenizer  # noqa: F401

    prepared: dict[str, Any] = {}
    if role == "_train":
        # torch's first optimizer imports torch._dynamo (about 1 s): a throwaway one here, not in the run
        weight = torch.nn.Parameter(torch.zeros(2))
        torch.optim.AdamW([weight]).step()
        ready = {"track": track(warm["profile"], warm["device"])}
        os.write(warm["signal_fd"], b"R" + json.dumps(ready).encode() + b"\n")
    else:
        cache = Path(warm["cache"])
        prepared["windows"] = data.eval_windows(
            np.fromfile(cache / "val.bin", dtype=np.uint16), PROFILES[warm["profile"]]
        )
        prepared["token_bytes"] = tokenizer.token_bytes(tokenizer.load(cache / "tokenizer.pkl"))
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    spec = {**warm, **json.loads(line)}
    if role == "_train":
        train_child(spec)
    else:
        eval_child(spec, **prepared)
    # outputs are written and closed: skip the interpreter's teardown (0.3-0.5 s with torch loaded)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def train_child(spec: dict[str, Any]) -> None:
    """The training run: build, train until the batches stop, save weights and counters."""
    import torch

    from harness.data import Arena

    _seed_everything(spec["seed"], spec["threads"])
    work = Path(spec["outdir"])  # the one place it may write (in the sandbox)
    module = load_train_module(Path(spec["code"]) / TRAIN_FILE.name)
    arena = Arena(
        spec["profile"],
        spec["device"],
        spec["seed"],
        spec["budget_s"],
        cache=Path(spec["cache"]),
        signal_fd=spec["signal_fd"],
    )
    model = module.build_model(arena)
    model.to(arena.device)
    module.train(model, arena)
    if arena.steps == 0:
        raise RuntimeError("train() returned without taking a batch from arena.batches()")
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    torch.save(state, work / "weights.tmp")
    (work / "weights.tmp").replace(work / "weights.pt")
    peak = torch.cuda.max_memory_allocated() / 2**20 if arena.device.startswith("cuda") else None
    stats = {"steps": arena.steps, "tokens": arena.tokens, "peak_mem_mb": peak, "rss_mb": _peak_rss_mb()}
    (work / "train.json").write_text(json.dumps(stats))


def eval_child(spec: dict[str, Any], windows: Any, token_bytes: Any) -> None:
    """The evaluation, in a process that never ran train(): rebuild the model, load the weights,
    probe, measure val_bpb on the validation windows."""
    import torch

    from harness import evaluate
    from harness.data import Arena

    _seed_everything(spec["seed"], spec["threads"])
    work = Path(spec["outdir"])
    module = load_train_module(Path(spec["code"]) / TRAIN_FILE.name)
    arena = Arena(spec["profile"], spec["device"], spec["seed"], spec["budget_s"])
    model = module.build_model(arena)
    params = sum(p.numel() for p in model.parameters())
    model.load_state_dict(torch.load(spec["weights"], weights_only=True))
    model.to(arena.device).eval()
    out: dict[str, Any] = {"params": params}
    low = arena.dtype != torch.float32
    reason = evaluate.causality_probe(
        model,
        torch.from_numpy(windows[:2, :-1]).to(arena.device),
        arena.vocab_size,
        spec["seed"],
        arena.autocast,
        low,
    )
    if reason:
        out.update(status="invalid", error=reason)
    else:
        t0 = time.monotonic()
        bpb, _ = evaluate.evaluate(model, windows, token_bytes, arena.device, arena.settings.eval_batch, arena.autocast)
        out.update(eval_s=time.monotonic() - t0)
        if math.isfinite(bpb):
            out.update(status="ok", val_bpb=bpb)
        else:
            out.update(status="crash", error=f"validation loss is not finite ({bpb}): the weights diverged (NaN/inf)")
    out["rss_mb"] = _peak_rss_mb()
    (work / "eval.json").write_text(json.dumps(out))


def _peak_rss_mb() -> float:
    """This child's peak resident memory (and its own children's). Measured in the child: a sandboxed
    child is reaped inside its PID namespace, so the supervisor's RUSAGE_CHILDREN never sees it."""
    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


# --- the supervisor -------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    """The children's environment: no secrets (API keys, Redis URLs); the arena on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_ENV.search(k)}
    env["PYTHONPATH"] = str(ARENA_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # the whole group, also after the leader exited: stray workers and grandchildren
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(log: Path) -> str:
    try:
        data = log.read_bytes()[-4 * ERROR_TAIL_CHARS :].decode("utf-8", errors="replace")
    except OSError:
        return ""
    return data[-ERROR_TAIL_CHARS:]


class _Stop(Exception):
    """A run ended early with a status (crash / timeout / invalid) and an error line."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def run(
    profile: str,
    budget_s: float | None,
    seed: int,
    out: Path,
    device: str = "auto",
    corpus_name: str = "shakespeare",
    sandbox_mode: str = "auto",
    wait: IO[str] | None = None,
) -> dict[str, Any] | None:
    """Run one experiment and write its result JSON to `out` (log next to it as .log); each child in
    the sandbox `sandbox_mode` asks for (harness.sandbox.MODES).

    With `wait` (a stream), the supervisor first gets ready without the experiment: pins hashed, the
    sandbox decided, both children started and warming up. Then it reads the run from `wait`, one JSON
    line `{"seed": N}`, and only then starts the clock, checks the pins again by file identity, copies
    the editable files for the children and hands them the run. EOF instead: nothing ran, no result is
    written, None is returned."""
    t_start = time.monotonic()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    log.write_bytes(b"")
    res: dict[str, Any] = dict.fromkeys(RESULT_KEYS)
    res.update(seed=seed, prestarted=False)
    workdir = Path(tempfile.mkdtemp(prefix="arena-run-"))
    procs: list[subprocess.Popen[bytes]] = []
    unused = False  # a waiting supervisor that got no run: no result to write

    def get_ready(n: int, ahead: bool) -> dict[str, Any]:
        """Everything before the experiment's code: pins, sandbox, data, the training child warming up,
        and the evaluation child too when this is `ahead` of the run (started cold, the evaluation child
        is started at the first batch instead: it would compete with the training child's setup)."""
        from harness.prepare import prepare

        ids = pins.identities()  # first: whatever changes after this is seen at the run's start
        m = pins.manifest()
        res["harness_hash"] = pins.harness_hash(m)
        prof_name, dev = resolve(profile, device)
        if prof_name not in PROFILES or prof_name not in m["profiles"]:
            raise ValueError(f"unknown profile {prof_name!r} (known: {', '.join(PROFILES)})")
        prof = m["profiles"][prof_name]
        budget = float(budget_s or prof["budget_s"])
        res.update(profile=prof_name, device=dev, budget_s=budget)
        bad = pins.mismatches(m)
        if bad:
            raise _Stop("invalid", f"harness files differ from their pins in arena.toml: {', '.join(bad)}; refused")
        bwrap, why_bare = sandbox.resolve(sandbox_mode)
        res["sandbox"] = "bwrap" if bwrap else "none"
        cache = prepare(prof_name, corpus_name, log=False)
        if bwrap is None:
            with open(log, "a") as f:
                f.write(f"sandbox: none ({why_bare})\n")
        base = workdir / f"ready-{n}"
        code, trained, evaluated = base / "code", base / "train", base / "eval"  # each child's own output dir
        for d in (code, trained, evaluated):
            d.mkdir(parents=True)
        warm = {"profile": prof_name, "device": dev, "cache": str(cache), "threads": threads(), "code": str(code)}
        harness_files = [ARENA_DIR / "harness", ARENA_DIR / "arena.toml"]
        # what each child reads besides the system, Python and the harness: the run's code (copied in
        # when the run starts), its data, and for the evaluation the training child's output dir
        reads = {
            "_train": [code, cache / "train.bin"],
            "_eval": [code, cache / "val.bin", cache / "tokenizer.pkl", trained],
        }
        hidden = sandbox.hidden_paths(cache_dir(), ARENA_DIR)

        def launch(entry: str, extra: dict[str, Any], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
            cmd = [sys.executable, "-m", "harness", entry, json.dumps({**warm, **extra})]
            if bwrap is not None:
                cmd = sandbox.wrap(
                    cmd,
                    bwrap=bwrap,
                    cwd=ARENA_DIR,
                    ro=[*harness_files, *reads[entry]],
                    rw=[Path(extra["outdir"])],
                    hidden=hidden,
                    gpu=dev.startswith("cuda"),
                )
            with open(log, "ab") as f:
                proc = subprocess.Popen(
                    cmd,
                    cwd=ARENA_DIR,
                    env=_child_env(),
                    stdin=subprocess.PIPE,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=pass_fds,
                )
            procs.append(proc)
            return proc

        r, w = os.pipe()  # the training child's beats: "R" + its track when warm, "S" at the first batch, "."
        try:
            trainer = launch("_train", {"signal_fd": w, "outdir": str(trained)}, pass_fds=(w,))
        finally:
            os.close(w)

        def evaluator() -> subprocess.Popen[bytes]:
            return launch("_eval", {"outdir": str(evaluated), "weights": str(trained / "weights.pt")})

        return {
            "ids": ids, "m": m, "prof": prof, "budget": budget, "code": code, "trained": trained,
            "evaluated": evaluated, "trainer": trainer, "evaluator": evaluator() if ahead else evaluator,
            "beats": r,
        }  # fmt: skip

    def failed(proc: subprocess.Popen[bytes], what: str) -> _Stop:
        return _Stop("crash", f"{what} exited with code {proc.returncode}\n{_tail(log)}")

    def drop(ready: dict[str, Any]) -> None:
        for key in ("trainer", "evaluator"):
            if isinstance(ready[key], subprocess.Popen):
                _kill_group(ready[key])
        os.close(ready.pop("beats"))

    ready: dict[str, Any] | None = None
    try:
        held: Exception | None = None  # a waiting supervisor reports what went wrong as the run's result
        try:
            ready = get_ready(0, ahead=wait is not None)
        except Exception as exc:
            if wait is None:
                raise
            held = exc
        if wait is not None:
            line = wait.readline()
            if not line.strip():
                unused = True
                return None
            t_start = time.monotonic()  # the run starts now: its clock, its deadline
            try:
                res["seed"] = seed = int(json.loads(line)["seed"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _Stop(
                    "crash", f'harness error: the run line on stdin is not {{"seed": N}}: {line[:200]!r}'
                ) from exc
            if held is not None:
                raise held
            assert ready is not None
            res["prestarted"] = True
            if pins.identities() != ready["ids"]:  # a harness file changed since the children imported it
                drop(ready)
                ready = None
                res["prestarted"] = False
                ready = get_ready(1, ahead=False)
        assert ready is not None
        prof, budget, trained, evaluated = ready["prof"], ready["budget"], ready["trained"], ready["evaluated"]
        deadline = t_start + prof["timeout_s"] - prof["budget_s"] + budget  # hard deadline of the whole run
        for rel in ready["m"]["arena"]["editable"]:  # the code under test, as it is now
            if (ARENA_DIR / rel).is_file():
                (ready["code"] / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ARENA_DIR / rel, ready["code"] / rel)

        # training: setup (capped, from the run's start) until the first batch, then the budget plus a
        # little grace
        child, r = ready["trainer"], ready["beats"]
        setup_cap = PROFILES[res["profile"]].setup_cap_s
        cap_at = min(t_start + setup_cap, deadline)
        info = _read_line(r, cap_at)
        if info is None:  # the pipe closed: the child died warming up
            child.wait()
            raise failed(child, "training")
        if not info.endswith(b"\n"):
            _kill_group(child)
            raise _Stop("timeout", f"setup took longer than {setup_cap:.0f} s before the first batch")
        res["track"] = json.loads(info[1:])["track"]  # "R" + what the child reported when warm
        _hand(child, {"seed": seed, "budget_s": budget})
        ready_r, _, _ = select.select([r], [], [], max(0.0, cap_at - time.monotonic()))
        started = os.read(r, 1) == b"S" if ready_r else False
        t_first = time.monotonic()
        res["setup_s"] = round(t_first - t_start, 3)
        if not isinstance(ready["evaluator"], subprocess.Popen) and started:
            ready["evaluator"] = ready["evaluator"]()  # started cold: it warms up while the run trains
        if not started:
            if not ready_r:
                _kill_group(child)
                raise _Stop("timeout", f"setup took longer than {setup_cap:.0f} s before the first batch")
            child.wait()
            raise failed(child, "training") if child.returncode else _Stop("crash", "train() took no batch")
        grace = _watch_steps(r, t_first, budget, deadline)
        try:
            child.wait(timeout=max(0.0, min(t_first + budget + grace, deadline) - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(child)
            res["training_s"] = round(time.monotonic() - t_first, 3)
            raise _Stop(
                "timeout", f"training did not stop at the budget ({budget:.0f} s + {grace:.1f} s grace); killed"
            ) from None
        res["training_s"] = round(time.monotonic() - t_first, 3)
        _kill_group(child)  # stray grandchildren of an exited child
        if child.returncode:
            raise failed(child, "training")
        if not (trained / "train.json").is_file() or not (trained / "weights.pt").is_file():
            raise _Stop("crash", f"training exited before its weights were saved\n{_tail(log)}")
        stats = json.loads((trained / "train.json").read_text())
        res.update(steps=stats["steps"], tokens=stats["tokens"])

        # evaluation: a fresh process that never ran train(), warm since the run began
        ev = ready["evaluator"]
        _hand(ev, {"seed": seed, "budget_s": budget})
        try:
            ev.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(ev)
            raise _Stop("timeout", "evaluation did not finish before the run's hard deadline; killed") from None
        _kill_group(ev)
        if ev.returncode:
            raise failed(ev, "evaluation")
        if not (evaluated / "eval.json").is_file():
            raise _Stop("crash", f"evaluation exited without a result\n{_tail(log)}")
        result = json.loads((evaluated / "eval.json").read_text())
        res.update(status=result["status"], params=result["params"], error=result.get("error"))
        if result["status"] == "ok":
            res.update(val_bpb=result["val_bpb"], eval_s=round(result["eval_s"], 3))
        peak = stats.get("peak_mem_mb")  # the GPU's; on CPU the largest resident set of the children
        rss = [stats.get("rss_mb") or 0, result.get("rss_mb") or 0]
        rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)  # bare children
        res["peak_mem_mb"] = round(peak if peak is not None else max(rss), 1)
        flops = peak_flops(res["track"] or "")
        if flops and res["training_s"]:
            res["mfu"] = round(6 * res["params"] * res["tokens"] / res["training_s"] / flops, 4)
    except _Stop as stop:
        res.update(status=stop.status, error=stop.error[-ERROR_TAIL_CHARS:])
    except sandbox.SandboxError as exc:  # asked for a sandbox this host cannot build: nothing ran
        res.update(status="crash", error=f"sandbox: {exc}"[-ERROR_TAIL_CHARS:])
    finally:
        for p in procs:
            _kill_group(p)
        if ready is not None and "beats" in ready:
            os.close(ready.pop("beats"))
        shutil.rmtree(workdir, ignore_errors=True)
        if not unused:
            if res["track"] is None and res["device"] is not None:
                res["track"] = track(res["profile"], res["device"])
            res["total_s"] = round(time.monotonic() - t_start, 3)
            if res["status"] is None:  # the harness itself failed: still leave a result behind
                res.update(status="crash", error=f"harness error: {sys.exc_info()[1]!r}"[-ERROR_TAIL_CHARS:])
            tmp = out.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(res, indent=2))
            tmp.replace(out)
    return None if unused else res


def _read_line(fd: int, until: float) -> bytes | None:
    """One line from `fd` by the monotonic time `until`, with its newline; without one when the time
    ran out first; None at EOF. (Nothing else is written to the pipe before this line is answered.)"""
    buf = b""
    while not buf.endswith(b"\n") and (left := until - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data = os.read(fd, 4096)
            if not data:
                return None
            buf += data
    return buf


def _hand(proc: subprocess.Popen[bytes], run: dict[str, Any]) -> None:
    """Give a waiting child its run (one JSON line on its stdin). A child that died warming up has
    closed its end: its exit is reported when it is waited for."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(json.dumps(run).encode() + b"\n")
        proc.stdin.close()


def _watch_steps(r: int, t_first: float, budget: float, deadline: float) -> float:
    """Read the per-batch beats until the budget ends (or the child closes the pipe); return the grace
    the child gets to stop: fixed, or a few median steps on a slow machine."""
    beats = [t_first]
    while (wait := min(t_first + budget, deadline) - time.monotonic()) > 0:
        ready, _, _ = select.select([r], [], [], wait)
        if not ready:
            continue
        data = os.read(r, 4096)
        if not data:
            break
        beats += [time.monotonic()] * data.count(b".")
    steps = sorted(b - a for a, b in itertools.pairwise(beats) if b > a)
    median = steps[len(steps) // 2] if steps else 0.0
    extra = min(max(STOP_GRACE_FRAC * budget, STOP_GRACE_STEPS * median), STOP_GRACE_MAX_FRAC * budget)
    return STOP_GRACE_S + extra


def summary(res: dict[str, Any]) -> str:
    """The conventional `---` block of `key: value` lines."""
    lines = ["---"]
    for k in RESULT_KEYS:
        v = res.get(k)
        if k == "error":
            v = (v or "").strip().splitlines()[-1] if v else None
        lines.append(f"{k + ':':<14}{'' if v is None else (f'{v:.6f}' if isinstance(v, float) else v)}")
    return "\n".join(lines)
