"""A bare Hugging Face GPT-2 training loop on repeated random blocks: the reference the induction preset
was checked against (docs/phenomena.md, "The search").

Each step draws a fresh batch of ``--batch`` sequences of ``--seq-len`` tokens: a block of ``--min-period``
to ``--max-period`` symbols (distinct, or drawn with replacement) repeated to fill the sequence. Every 50
steps it prints the copying accuracy on tokens 2–6 of the first repeat of 256 held-out sequences.

    python examples/induction_bare_loop.py --seed 0 --layers 2 --replacement            # jumps near step 150
    python examples/induction_bare_loop.py --seed 0 --layers 2 --replacement --unused 7 # does not
    python examples/induction_bare_loop.py --seed 0 --layers 2 --replacement --unused 7 --mask-unused  # jumps
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel


def blocks(rng: np.random.Generator, n: int, a: argparse.Namespace) -> tuple[torch.Tensor, np.ndarray]:
    periods = rng.integers(a.min_period, a.max_period + 1, size=n)
    if a.replacement:
        sym = rng.integers(0, a.vocab, (n, a.max_period))
    else:
        sym = np.argsort(rng.random((n, a.vocab)), axis=1)[:, :a.max_period]
    pos = np.arange(a.seq_len)[None, :] % periods[:, None]
    return torch.from_numpy(np.take_along_axis(sym, pos, 1) + a.offset).long(), periods


def copying(model, ex: torch.Tensor, periods: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(ex).logits.argmax(-1)
    model.train()
    return float(np.mean([(pred[i, p + 1:p + 6] == ex[i, p + 2:p + 7]).float().mean().item()
                          for i, p in enumerate(periods)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=64, help="symbols used in the data")
    ap.add_argument("--offset", type=int, default=0, help="unused ids before the symbols (emergelab: 7 specials)")
    ap.add_argument("--unused", type=int, default=0, help="unused ids after the symbols")
    ap.add_argument("--mask-unused", action="store_true", help="the loss's softmax over the used ids only")
    ap.add_argument("--replacement", action="store_true", help="block symbols drawn with replacement")
    ap.add_argument("--min-period", type=int, default=8)
    ap.add_argument("--max-period", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(a.seed)
    torch.manual_seed(a.seed)
    total = a.offset + a.vocab + a.unused
    model = GPT2LMHeadModel(GPT2Config(vocab_size=total, n_positions=a.seq_len, n_embd=a.d_model, n_layer=a.layers,
                                       n_head=a.heads, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                                       bos_token_id=None, eos_token_id=None))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    ex, periods = blocks(np.random.default_rng(999), 256, a)
    used = torch.arange(a.offset, a.offset + a.vocab)
    t0, out = time.time(), []
    for step in range(a.steps + 1):
        if step % 50 == 0:
            out.append(f"{step}:{copying(model, ex, periods):.2f}")
        if step == a.steps:
            break
        x, _ = blocks(rng, a.batch, a)
        if a.mask_unused:
            logits = model(x).logits[:, :-1][..., used]
            loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten() - a.offset)
        else:
            loss = model(x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    print(f"seed {a.seed} L{a.layers}", " ".join(out), f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
