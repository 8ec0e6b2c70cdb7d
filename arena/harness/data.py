"""What train.py is handed: the `Arena` context, the harness-owned batch iterator and the clock.

    def build_model(arena) -> torch.nn.Module      # logits = model(idx): (B, T) -> (B, T, vocab)
    def train(model, arena) -> None                # for x, y in arena.batches(B): ...; arena.progress()

The clock starts when the first batch is taken (setup before that is timed separately and capped by
the supervisor), `progress()` runs from 0 to 1 over the budget for learning-rate schedules, and the
batch iterator simply stops at the budget. The supervisor process, not this object, decides whether
the run kept to its budget (see harness.run).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness import PROFILES, Settings


def eval_windows(val_ids: np.ndarray, s: Settings) -> np.ndarray:
    """The fixed validation set: the first n non-overlapping (T+1)-token windows, shape (n, T+1),
    n = min(val_tokens // T, what the split holds). The same for every run on a corpus + profile."""
    t = s.context_len
    n = min(s.val_tokens // t, (len(val_ids) - 1) // t)
    idx = np.arange(n)[:, None] * t + np.arange(t + 1)[None, :]
    return val_ids[idx].astype(np.int64)


@dataclass
class Arena:
    """The harness side of a run, as train.py sees it."""

    profile: str
    device: str
    seed: int
    budget_s: float
    cache: Path | None = None  # prepared cache dir; None in the evaluation process
    signal_fd: int | None = None  # pipe to the supervisor: "S" at the first batch, "." at each later one
    settings: Settings = field(init=False)
    steps: int = 0
    tokens: int = 0
    _t0: float | None = None

    def __post_init__(self) -> None:
        self.settings = PROFILES[self.profile]

    # -- what the harness fixes ------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.settings.vocab_size

    @property
    def context_len(self) -> int:
        return self.settings.context_len

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.settings.dtype == "bfloat16" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast on the gpu profile, a no-op on cpu."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.dtype)

    # -- the clock -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def progress(self) -> float:
        """Fraction of the training budget used, in [0, 1]: drive warmup/warmdown from this."""
        return min(1.0, self.elapsed() / self.budget_s)

    def _start_clock(self) -> None:
        self._t0 = time.monotonic()
        self._beat(b"S")

    def _beat(self, byte: bytes) -> None:
        """One byte to the supervisor per batch handed out: it times training and step length."""
        if self.signal_fd is not None:
            try:
                os.write(self.signal_fd, byte)
            except OSError:  # the supervisor is gone or stopped listening: nothing to tell
                self.signal_fd = None

    # -- the data --------------------------------------------------------------------------------
    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Random (T+1)-token windows of the training split as (x, y) int64 tensors of shape
        (batch_size, T) on the device; stops when the budget is spent."""
        if self.cache is None:
            raise RuntimeError("no training data in the evaluation process")
        ids = np.fromfile(self.cache / "train.bin", dtype=np.uint16)
        t = self.context_len
        rng = np.random.default_rng(self.seed)
        offsets = np.arange(t + 1)[None, :]
        cuda = self.device.startswith("cuda")
        while True:
            starts = rng.integers(0, len(ids) - t - 1, size=batch_size)
            win = torch.from_numpy(ids[starts[:, None] + offsets].astype(np.int64))
            if cuda:
                win = win.pin_memory().to(self.device, non_blocking=True)
            elif self.device != "cpu":
                win = win.to(self.device)
            if self._t0 is None:
                self._start_clock()
            elif self.elapsed() >= self.budget_s:
                return
            else:
                self._beat(b".")
            self.steps += 1
            self.tokens += batch_size * t
            yield win[:, :-1], win[:, 1:]
