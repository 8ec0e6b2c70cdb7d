"""The fixed harness of the synthetic arena: score = (X-0.7)^2 + (Y-0.3)^2 + 1 + noise.

Env SYNTH_NOISE sets the noise standard deviation (default 0.002), SYNTH_FAIL=crash|hang makes
the run crash or ignore its budget (fault tests).
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--budget", type=float, default=0.5)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open("train.py", encoding="utf-8") as f:
    code = f.read()
scope: dict = {}
exec(compile(code, "train.py", "exec"), scope)
fail = os.environ.get("SYNTH_FAIL", "") or scope.get("FAIL", "")
if fail == "crash":
    raise RuntimeError("synthetic crash")
secs = args.budget * (1000 if fail == "hang" else 1)
end = time.monotonic() + secs
while time.monotonic() < end:
    time.sleep(min(0.05, max(0.0, end - time.monotonic())))
noise = float(os.environ.get("SYNTH_NOISE", "0.002"))
digest = hashlib.sha256(f"{args.seed}:{code}".encode()).hexdigest()
rng = random.Random(int(digest[:16], 16))
score = (scope["X"] - 0.7) ** 2 + (scope["Y"] - 0.3) ** 2 + 1.0 + rng.gauss(0.0, noise)
secret = {k: v for k, v in os.environ.items() if any(w in k for w in ("KEY", "REDIS", "PASSWORD", "TOKEN"))}
with open(args.out, "w", encoding="utf-8") as f:
    json.dump({"status": "ok", "score": score, "training_s": secs, "steps": 1, "seen_env": sorted(secret),
               "home": os.environ.get("HOME", "")}, f)
print(f"score: {score}")
sys.exit(0)
