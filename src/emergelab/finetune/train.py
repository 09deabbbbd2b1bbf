"""The fine-tuning loop: seeded batches, AdamW with linear warm-up and decay, AdaLoRA's rank budget."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from emergelab.finetune.config import FinetuneConfig
from emergelab.finetune.encode import Encoded, collate


@dataclass
class TrainStats:
    steps: int
    tokens: int
    seconds: float
    final_loss: float
    losses: list[float] = field(default_factory=list)


def linear_warmup_decay(step: int, *, total: int, warmup: int) -> float:
    """step/warmup during warm-up, then (total - step)/(total - warmup) down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def batch_order(n: int, *, batch_size: int, steps: int, generator: torch.Generator, lengths=None):
    """Index batches for ``steps`` steps: epochs of seeded permutations (the last batch of an epoch may be short).

    With ``lengths``, each run of 50 batches of the permutation is sorted by length before it is cut
    into batches, and the batches are then shuffled (transformers' ``group_by_length``): similar
    lengths share a batch, so less compute goes into padding.
    """
    done = 0
    while True:
        perm = torch.randperm(n, generator=generator).tolist()
        if lengths is not None:
            mega = 50 * batch_size
            perm = [i for s in range(0, n, mega) for i in sorted(perm[s : s + mega], key=lambda i: lengths[i])]
        batches = [perm[s : s + batch_size] for s in range(0, n, batch_size)]
        if lengths is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        for batch in batches:
            if done == steps:
                return
            yield batch
            done += 1


def train(model, enc: Encoded, *, config: FinetuneConfig, steps: int, seed: int, pad_token_id: int,
          device: str = "cpu", progress=None, description: str = "fine-tuning") -> TrainStats:
    """Train ``model``'s trainable parameters on ``enc`` for ``steps`` optimizer steps.

    ``progress`` is an optional ``rich.progress.Progress``; one task is added and removed.
    AdaLoRA models get ``update_and_allocate(step)`` after every optimizer step (their budget schedule).
    """
    torch.manual_seed(seed)  # dropout
    generator = torch.Generator().manual_seed(seed)  # batch order
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_fraction * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_warmup_decay(s, total=steps, warmup=warmup))
    adalora = _adalora_model(model)
    task = progress.add_task(description, total=steps) if progress is not None else None
    model.train()
    t0, tokens, losses = time.perf_counter(), 0, []
    lengths = [len(x) for x in enc.input_ids] if config.group_by_length else None
    for step, idx in enumerate(batch_order(len(enc), batch_size=config.batch_size, steps=steps, generator=generator,
                                           lengths=lengths)):
        batch = {k: v.to(device) for k, v in collate(enc, idx, pad_token_id=pad_token_id).items()}
        loss = model(**batch).loss  # AdaLoRA adds its orthogonality penalty here
        loss.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        opt.step()
        sched.step()
        if adalora is not None:
            adalora.update_and_allocate(step)  # needs the gradients: before zero_grad
        opt.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
        losses.append(float(loss.detach()))
        if task is not None:
            progress.update(task, advance=1, description=f"{description} loss {losses[-1]:.3f}")
    if task is not None:
        progress.remove_task(task)
    model.eval()
    return TrainStats(steps=len(losses), tokens=tokens, seconds=time.perf_counter() - t0,
                      final_loss=float(sum(losses[-10:]) / max(1, len(losses[-10:]))), losses=losses)


def _adalora_model(model):
    """The AdaLoraModel inside a PeftModel, or None."""
    base = getattr(model, "base_model", None)
    return base if type(base).__name__ == "AdaLoraModel" else None
