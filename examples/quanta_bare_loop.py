"""A bare Hugging Face GPT-2 loop on multitask sparse parity (the `parity` world): the search behind the
quanta preset (docs/phenomena.md, "Quanta").

Each step draws a fresh batch of ``--batch`` examples ``t_i b_1 … b_n = y ;`` from the world (one example
per row, subtasks Zipf-distributed), trains the causal LM loss on every position with the softmax over the
world's symbols (the study's ``train.loss_vocab: seen``), or on the answer only (``--answer-only``). Every
``--eval-every`` steps it prints the accuracy of each subtask on 256 held-out examples (greedy argmax at
``=``), the frequency-weighted average and the mean answer loss.

    python examples/quanta_bare_loop.py --n-tasks 6 --n-bits 10 --k 1 --d-model 32 --answer-tokens  # learned in order
    python examples/quanta_bare_loop.py --n-tasks 6 --n-bits 10 --k 1 --d-model 32                  # at chance
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from emergelab.worlds import make_world


def arrange(rows: np.ndarray, layout: str, n_tasks: int = 0) -> np.ndarray:
    """The world's rows ``t bits = y ;`` rearranged to ``layout``; the answer stays second to last. With
    ``n_tasks`` > 0, bit j of value b becomes token 4 + n_tasks + 2j + b."""
    if n_tasks:
        rows = rows.copy()
        n = rows.shape[1] - 4
        rows[:, 1:n + 1] += 4 + n_tasks + 2 * np.arange(n)
    if layout == "first":
        return rows
    n = rows.shape[1] - 4
    cols = list(range(1, n + 1)) + [0] + ([n + 1] if layout == "last" else []) + [n + 2, n + 3]
    return rows[:, cols]


def held_out(world, n: int, layout: str, nt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_tasks, n, width] rows of each subtask, fixed across the run."""
    rng = np.random.default_rng(12345)
    rows = [arrange(world._examples(rng, n, task=i)[0], layout, nt) for i in range(world.params.n_tasks)]
    x = torch.from_numpy(np.stack(rows)).long()
    return x, x[:, :, -2]  # a view: shifting the answer column shifts the targets


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-subtask accuracy and answer loss (nats) at the '=' position."""
    model.eval()
    with torch.no_grad():
        logits = model(x.flatten(0, 1)[:, :-2]).logits[:, -1]
    model.train()
    acc = (logits.argmax(-1) == y.flatten()).float().view(y.shape).mean(1).numpy()
    loss = F.cross_entropy(logits, y.flatten(), reduction="none").view(y.shape).mean(1).numpy()
    return acc, loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--world-seed", type=int, default=0, help="the world's seed (the subtasks' bit subsets)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--n-tasks", type=int, default=8)
    ap.add_argument("--n-bits", type=int, default=12)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--answer-only", action="store_true", help="the loss on the answer token only")
    ap.add_argument("--bit-tokens", action="store_true",
                    help="bit j with value b is its own token (4 + n_tasks + 2j + b): the position is in the token")
    ap.add_argument("--untied", action="store_true", help="an output head separate from the input embeddings")
    ap.add_argument("--answer-tokens", action="store_true",
                    help="the answer is its own pair of tokens (not the bit tokens '0'/'1')")
    ap.add_argument("--layout", choices=["first", "last", "last-noeq"], default="first",
                    help="the subtask token first (the world's rows), after the bits (before '='), or after the "
                         "bits with no '=' (the answer predicted at the subtask token)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    world = make_world("parity", {"n_tasks": a.n_tasks, "n_bits": a.n_bits, "k": a.k, "alpha": a.alpha}, a.world_seed)
    width = a.n_bits + 4 - (a.layout == "last-noeq")
    vocab = 4 + a.n_tasks + 2 * a.n_bits * a.bit_tokens + 2 * a.answer_tokens
    shift = (vocab - 2) if a.answer_tokens else 0  # answer b becomes token vocab - 2 + b
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=width, n_embd=a.d_model, n_layer=a.layers,
                                       n_head=a.heads, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                                       bos_token_id=None, eos_token_id=None, tie_word_embeddings=not a.untied))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / a.warmup) if a.warmup else 1.0)
    x_eval, y_eval = held_out(world, 256, a.layout, a.n_tasks if a.bit_tokens else 0)
    x_eval[:, :, -2] += shift  # y_eval is a view of this column
    p = world.frequencies
    rng = np.random.default_rng(a.seed)
    print(f"seed {a.seed} n_tasks {a.n_tasks} n_bits {a.n_bits} k {a.k} alpha {a.alpha} L{a.layers}-d{a.d_model} "
          f"batch {a.batch} lr {a.lr} layout {a.layout} bit_tokens {a.bit_tokens} untied {a.untied} answer_tokens {a.answer_tokens} params {sum(t.numel() for t in model.parameters())}")
    print("freq " + " ".join(f"{q:.3f}" for q in p))
    t0 = time.time()
    for step in range(a.steps + 1):
        if step % a.eval_every == 0:
            acc, loss = accuracy(model, x_eval, y_eval)
            print(f"{step:6d} avg {float(p @ acc):.3f} loss {float(p @ loss):.3f} | "
                  + " ".join(f"{v:.2f}" for v in acc), flush=True)
        if step == a.steps:
            break
        x = torch.from_numpy(arrange(world._examples(rng, a.batch)[0], a.layout, a.n_tasks if a.bit_tokens else 0)).long()
        x[:, -2] += shift
        logits = model(x).logits[:, :-1]
        if a.answer_only:
            loss = F.cross_entropy(logits[:, -2], x[:, -2])
        else:
            loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    print(f"({time.time() - t0:.0f} s wall, {time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
