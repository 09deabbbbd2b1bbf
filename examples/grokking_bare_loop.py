"""A bare Hugging Face GPT-2 loop on (a + b) mod p: the reference the grokking preset was searched with
(docs/phenomena.md, "Grokking").

A seeded ``--frac`` of the p² pairs is the training set (the split is fixed: ``--split-seed``; ``--seed``
sets the initialisation and the batch order). Rows are ``a + b = c ;`` (6 tokens; vocabulary p + 3). The
loss is on the answer token only (``--loss answer``, Nanda et al. 2023) or on every next token
(``--loss all``, emergelab's causal LM). Each step takes ``--batch`` training pairs (0: all of them, full
batch). Prints train / held-out accuracy of the answer (argmax over the p numbers) at log-spaced and
every ``--every`` steps, and the first steps where they reach 0.99 and 0.9.

    python examples/grokking_bare_loop.py --p 59 --frac 0.4 --steps 3000 --wd 1 --lr 1e-3
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from emergelab.evaluate.fourier import frequency_shares, key_frequencies, progress_measures


def rows_of(pairs: np.ndarray, p: int) -> torch.Tensor:
    a, b = pairs[:, 0], pairs[:, 1]
    n = len(pairs)
    return torch.from_numpy(np.stack([a, np.full(n, p), b, np.full(n, p + 1), (a + b) % p, np.full(n, p + 2)], 1)).long()


def accuracy(model, rows: torch.Tensor, p: int) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(rows[:, :4]).logits[:, -1, :p].argmax(-1)
    model.train()
    return float((pred == rows[:, 4]).float().mean())


def answer_logits(model, p: int) -> np.ndarray:
    """[p, p, p]: the logits of the p answers at ``=`` for every prompt ``a + b =``."""
    grid = np.stack(np.meshgrid(np.arange(p), np.arange(p), indexing="ij"), -1).reshape(-1, 2)
    model.eval()
    with torch.no_grad():
        out = model(rows_of(grid, p)[:, :4]).logits[:, -1, :p].double().numpy()
    model.train()
    return out.reshape(p, p, p)


def loss_of(model, x: torch.Tensor, a: argparse.Namespace) -> torch.Tensor:
    if a.loss == "answer":
        return F.cross_entropy(model(x[:, :4]).logits[:, -1, :a.p], x[:, 4])
    logits = model(x[:, :a.seq]).logits[:, :-1]
    return F.cross_entropy(logits.flatten(0, 1), x[:, 1:a.seq].flatten())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--p", type=int, default=59)
    ap.add_argument("--frac", type=float, default=0.4)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=1.0)
    ap.add_argument("--beta2", type=float, default=0.98)
    ap.add_argument("--batch", type=int, default=0, help="0: full batch")
    ap.add_argument("--loss", choices=["answer", "all"], default="answer")
    ap.add_argument("--seq", type=int, default=6, help="--loss all: tokens of each row used (6: with ';')")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--verbose", action="store_true", help="print each evaluation as it happens")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    p = a.p
    order = np.random.default_rng(a.split_seed).permutation(p * p)
    pairs = np.stack([order // p, order % p], 1)
    n_train = round(a.frac * p * p)
    train, test = rows_of(pairs[:n_train], p), rows_of(pairs[n_train:], p)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=p + 3, n_positions=8, n_embd=a.d_model, n_layer=a.layers,
                                       n_head=a.heads, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                                       bos_token_id=None, eos_token_id=None))
    decay = [q for q in model.parameters() if q.dim() >= 2]
    rest = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, a.beta2))
    marks = sorted({0, 10, 25, 50, 100, 200, *range(a.every, a.steps + 1, a.every)})
    t0, out, first, grids = time.time(), [], {}, {}
    for step in range(a.steps + 1):
        if step in marks:
            tr, te = accuracy(model, train, p), accuracy(model, test, p)
            out.append(f"{step}:{tr:.2f}/{te:.2f}")
            if a.verbose:
                print(f"  {step}: {tr:.3f}/{te:.3f} ({time.time() - t0:.0f} s)", flush=True)
            grids[step] = answer_logits(model, p)
            for key, hit in (("train99", tr >= 0.99), ("test90", te >= 0.9)):
                if hit and key not in first:
                    first[key] = step
        if step == a.steps:
            break
        x = train if a.batch == 0 else train[rng.integers(0, len(train), a.batch)]
        loss = loss_of(model, x, a)
        loss.backward()
        opt.step()
        opt.zero_grad()
    shares = frequency_shares(grids[a.steps])
    keys = key_frequencies(shares)
    mask = np.zeros(p * p, bool)
    mask[order[:n_train]] = True
    mask = mask.reshape(p, p)
    print("key frequencies", keys, "shares", {k: round(shares[k], 3) for k in keys})
    print("restricted/excluded loss:", " ".join(
        f"{s}:{m['restricted_loss']:.2f}/{m['excluded_loss']:.2f}" for s, m in
        ((s, progress_measures(g, keys, mask)) for s, g in grids.items())))
    print(f"seed {a.seed} p{p} frac{a.frac} d{a.d_model} L{a.layers} lr{a.lr} wd{a.wd} batch{a.batch} loss={a.loss}",
          " ".join(out), f"first={first} ({time.time() - t0:.0f} s, cpu {time.process_time():.0f} s)", flush=True)


if __name__ == "__main__":
    main()
