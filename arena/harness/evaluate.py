"""Harness-side evaluation: the causality probe and bits per byte, computed from the model's logits.

The model is only asked for logits; the loss is computed here, in float64:

    val_bpb = sum over targets of -log p(target)   /   (ln 2 * sum over targets of bytes(target))

where bytes(target) is the raw byte length of the target token (partial UTF-8 tokens count the
bytes they hold) and special-token targets (BOS) are excluded from both sums.

The probe: for a batch of real validation tokens, replace every token from a cut position on with
random tokens; the logits at positions before the cut must not change. A model that lets position i
see tokens after i fails it (status `invalid`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

PROBE_ATOL = 1e-4  # float32 logits of the same prefix agree to ~1e-6; bf16 gets 50x more slack
PROBE_CUTS = 3  # cut positions tried per probe (the middle, and two random ones)


def bits_per_byte(logits: torch.Tensor, targets: torch.Tensor, token_bytes: torch.Tensor) -> tuple[float, int]:
    """(total nats, total bytes) of the targets under the logits, special targets excluded.

    logits (N, V) any float dtype, targets (N,) int64, token_bytes (V,) int64. Summing across batches
    and dividing by ln 2 gives bits per byte: see `finish`.
    """
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    nll = -logp.gather(1, targets[:, None]).squeeze(1)
    nbytes = token_bytes[targets]
    mask = nbytes > 0
    return float(nll[mask].sum().item()), int(nbytes[mask].sum().item())


def finish(total_nats: float, total_bytes: int) -> float:
    return total_nats / (math.log(2) * total_bytes) if total_bytes else float("nan")


def _logits(model: torch.nn.Module, x: torch.Tensor, autocast) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad(), autocast():
        out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or tuple(out.shape[:2]) != tuple(x.shape):
        raise ValueError(
            f"model(idx) must return logits of shape (B, T, vocab); got {getattr(out, 'shape', type(out))}"
        )
    return out.float()


def causality_probe(
    model: torch.nn.Module,
    x: torch.Tensor,
    vocab_size: int,
    seed: int,
    autocast,  # type: ignore[no-untyped-def]
    low_precision: bool,
) -> str | None:
    """None when the model is causal on x (B, T); otherwise a one-line reason."""
    t = x.shape[1]
    gen = torch.Generator().manual_seed(seed)
    cuts = [t // 2] + [int(c) for c in torch.randint(1, t, (PROBE_CUTS - 1,), generator=gen)]
    base = _logits(model, x, autocast)
    if not torch.isfinite(base).all():
        return None  # diverged weights: the evaluation reports a non-finite loss (crash), not a peek
    atol = PROBE_ATOL * (50 if low_precision else 1)
    scale = max(1.0, float(base.abs().max()))
    for cut in cuts:
        x2 = x.clone()
        x2[:, cut:] = torch.randint(0, vocab_size, x2[:, cut:].shape, generator=gen).to(x.device)
        diff = float((_logits(model, x2, autocast)[:, :cut] - base[:, :cut]).abs().max())
        if not diff <= atol * scale:
            return (
                f"causality probe failed: changing tokens from position {cut} on changed earlier logits "
                f"by {diff:.3g} (tolerance {atol * scale:.3g}); the model reads future tokens"
            )
    return None


def evaluate(
    model: torch.nn.Module, windows: np.ndarray, token_bytes: np.ndarray, device: str, batch: int, autocast
) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """val_bpb of the model on the fixed windows (n, T+1); returns (val_bpb, target tokens)."""
    tb = torch.from_numpy(token_bytes).to(device)
    nats, nbytes, count = 0.0, 0, 0
    for i in range(0, len(windows), batch):
        w = torch.from_numpy(windows[i : i + batch]).to(device)
        x, y = w[:, :-1], w[:, 1:]
        logits = _logits(model, x, autocast)
        a, b = bits_per_byte(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), tb)
        nats, nbytes, count = nats + a, nbytes + b, count + y.numel()
    return finish(nats, nbytes), count
