"""A small GPT and its training loop: the one file of the arena an experiment may edit.

The harness (fixed, pinned) calls two functions:

    build_model(arena) -> nn.Module   model(idx) maps token ids (B, T) to logits (B, T, vocab)
    train(model, arena) -> None       trains on `arena.batches(B)` until the iterator stops

`arena` carries what the harness fixes: profile ("cpu" or "gpu"), device, vocab_size, context_len,
autocast(), progress() in [0, 1] over the time budget, and batches(batch_size). The harness times
the run, saves the weights after train() returns and measures val_bpb itself, in another process.
The model must be causal: logits at position t may depend only on tokens 0..t.

Tunable constants follow. Shape constants differ per profile ({"cpu": ..., "gpu": ...}).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

DEPTH = {"cpu": 4, "gpu": 8}                  # transformer blocks
WIDTH = {"cpu": 128, "gpu": 512}              # model dimension (residual stream width)
HEADS = {"cpu": 4, "gpu": 4}                  # [2, 16] pow2: attention heads; head dimension is WIDTH / HEADS
BATCH_SIZE = {"cpu": 8, "gpu": 64}            # sequences per optimizer step
COMPILE = {"cpu": 0, "gpu": 1}                # 1: torch.compile the model (worth it on CUDA only)
MLP_RATIO = 4                                 # MLP hidden width / model width
ROPE_BASE = 10000.0                           # rotary embedding base frequency
INIT_STD = 0.02                               # std of the embedding and hidden weight init
LR = 6e-3                                     # AdamW peak learning rate (output head)
MUON_LR = 0.02                                # Muon peak learning rate (matrices inside the blocks)
MUON_MOMENTUM = 0.95                          # Muon Nesterov momentum
NS_STEPS = 5                                  # Newton-Schulz iterations that orthogonalize a Muon update
EMBED_LR = 3e-2                               # peak learning rate of the token embedding
WEIGHT_DECAY = 0.1                            # AdamW decoupled weight decay (output head only)
BETA1 = 0.9                                   # AdamW first-moment decay
BETA2 = 0.95                                  # AdamW second-moment decay
GRAD_CLIP = 1.0                               # max global gradient norm (0 disables)
WARMUP = 0.03                                 # fraction of the budget spent warming the LR up
WARMDOWN = 0.4                                # fraction of the budget spent decaying the LR at the end
FINAL_LR_FRAC = 0.05                          # LR at the end of warmdown, as a fraction of peak
LOG_EVERY = 25                                # [fixed] steps between progress lines (for humans only)


# --- model ----------------------------------------------------------------------------------------

def rms_norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len, head_dim, device):
    """cos/sin tables of rotary position embeddings, shape (T, head_dim / 2)."""
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate pairs (x1, x2) of each head's channels by a position-dependent angle. x: (B, H, T, D)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[: x.size(2)].to(x.dtype), sin[: x.size(2)].to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(rms_norm(q), cos, sin), apply_rotary(rms_norm(k), cos, sin)  # QK-norm, then RoPE
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, MLP_RATIO * width, bias=False)
        self.proj = nn.Linear(MLP_RATIO * width, width, bias=False)

    def forward(self, x):
        return self.proj(F.relu(self.fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = Attention(width, heads)
        self.mlp = MLP(width)

    def forward(self, x, cos, sin):
        x = x + self.attn(rms_norm(x), cos, sin)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, context_len, depth, width, heads):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.head = nn.Linear(width, vocab_size, bias=False)
        cos, sin = rotary_tables(context_len, width // heads, "cpu")
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.zeros_(p)  # each block starts as the identity: stable early training
            else:
                nn.init.normal_(p, std=INIT_STD)

    def forward(self, idx):
        x = rms_norm(self.embed(idx))
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(rms_norm(x))


def build_model(arena):
    p = arena.profile
    return GPT(arena.vocab_size, arena.context_len, DEPTH[p], WIDTH[p], HEADS[p])


# --- training -------------------------------------------------------------------------------------

def lr_multiplier(progress):
    """Linear warmup, constant, then linear warmdown to FINAL_LR_FRAC, as a function of budget used."""
    if progress < WARMUP:
        return (progress + 1e-3) / (WARMUP + 1e-3)
    if progress < 1 - WARMDOWN:
        return 1.0
    return FINAL_LR_FRAC + (1 - FINAL_LR_FRAC) * (1 - progress) / WARMDOWN


def orthogonalize(g, steps):
    """Approximately replace g = U S V^T by U V^T (all singular values near 1) with a quintic
    Newton-Schulz iteration; the coefficients push small singular values up fast."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Momentum SGD whose update for each weight matrix is orthogonalized (Muon)."""

    def __init__(self, params, lr, momentum):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                g = p.grad.add(buf, alpha=group["momentum"])  # Nesterov
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.add_(orthogonalize(g.float(), NS_STEPS).to(p.dtype), alpha=-group["lr"] * scale)


def make_optimizers(model, cuda):
    """Muon for the matrices inside the blocks, AdamW for the embedding and the output head."""
    muon = Muon([p for p in model.blocks.parameters() if p.dim() == 2], lr=MUON_LR, momentum=MUON_MOMENTUM)
    muon.param_groups[0]["peak_lr"] = MUON_LR
    adam = torch.optim.AdamW(
        [
            {"params": list(model.head.parameters()), "lr": LR, "peak_lr": LR, "weight_decay": WEIGHT_DECAY},
            {"params": list(model.embed.parameters()), "lr": EMBED_LR, "peak_lr": EMBED_LR, "weight_decay": 0.0},
        ],
        betas=(BETA1, BETA2),
        fused=cuda,
    )
    return [muon, adam]


def train(model, arena):
    p = arena.profile
    cuda = arena.device.startswith("cuda")
    model.to(arena.device).train()
    step_fn = torch.compile(model) if COMPILE[p] and cuda else model
    optimizers = make_optimizers(model, cuda)
    for step, (x, y) in enumerate(arena.batches(BATCH_SIZE[p])):
        mult = lr_multiplier(arena.progress())
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["peak_lr"] * mult
        with arena.autocast():
            logits = step_fn(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        model.zero_grad(set_to_none=True)
        loss.backward()
        if GRAD_CLIP:
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        for opt in optimizers:
            opt.step()
        if step % LOG_EVERY == 0:
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}")
            print(f"step {step:5d}  loss {value:.4f}  lr x{mult:.2f}  progress {arena.progress():.2f}")
