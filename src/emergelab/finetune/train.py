"""The fine-tuning loop: seeded batches, AdamW with linear warm-up and decay, AdaLoRA's rank budget, early stopping.

Early stopping (given validation examples): the validation loss is measured ``N_VALIDATIONS`` times
over the planned steps; the trainable weights with the lowest loss are kept (restored at the end), and
training stops after ``patience`` validations without a lower one. The learning-rate schedule is the
planned one, so a run that stops early has not decayed to zero.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from emergelab.finetune.config import N_VALIDATIONS, FinetuneConfig
from emergelab.finetune.encode import Encoded, collate


@dataclass
class TrainStats:
    steps: int
    tokens: int
    seconds: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    best_step: int | None = None  # early stopping: the step whose weights were kept
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)


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


def param_groups(model, config: FinetuneConfig, head_names) -> list[dict]:
    """AdamW groups: the head's (and new modules') parameters at ``head_lr`` when set, the rest at ``lr``."""
    heads = set(head_names)
    body, head = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if heads & set(name.split(".")) else body).append(p)
    if config.head_lr is None or not head:
        return [{"params": body + head, "lr": config.learning_rate}]
    return [{"params": body, "lr": config.learning_rate}, {"params": head, "lr": config.head_lr}]


@torch.no_grad()
def validation_loss(model, enc: Encoded, *, pad_token_id: int, batch_size: int, device: str) -> float:
    """Mean loss over the examples (classification) of ``enc``, in eval mode."""
    model.eval()
    total, n = 0.0, 0
    for start in range(0, len(enc), batch_size):
        idx = list(range(start, min(start + batch_size, len(enc))))
        batch = {k: v.to(device) for k, v in collate(enc, idx, pad_token_id=pad_token_id).items()}
        total += float(model(**batch).loss) * len(idx)
        n += len(idx)
    model.train()
    return total / max(n, 1)


def train(model, enc: Encoded, *, config: FinetuneConfig, steps: int, seed: int, pad_token_id: int,
          device: str = "cpu", progress=None, description: str = "fine-tuning", val_enc: Encoded | None = None,
          head_names=()) -> TrainStats:
    """Train ``model``'s trainable parameters on ``enc`` for ``steps`` optimizer steps (fewer when stopping early).

    ``progress`` is an optional ``rich.progress.Progress``; one task is added and removed.
    AdaLoRA models get ``update_and_allocate(step)`` after every optimizer step (their budget schedule).
    ``val_enc``: validation examples for early stopping; ``head_names``: module names trained at ``head_lr``.
    """
    torch.manual_seed(seed)  # dropout
    generator = torch.Generator().manual_seed(seed)  # batch order
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, config, head_names), weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_fraction * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_warmup_decay(s, total=steps, warmup=warmup))
    adalora = _adalora_model(model)
    task = progress.add_task(description, total=steps) if progress is not None else None
    model.train()
    t0, tokens, losses = time.perf_counter(), 0, []
    lengths = [len(x) for x in enc.input_ids] if config.group_by_length else None
    stopper = _Stopper(model, steps, config.patience) if val_enc is not None and len(val_enc) else None
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
        if stopper is not None and stopper.due(step + 1):
            loss_val = validation_loss(model, val_enc, pad_token_id=pad_token_id, batch_size=config.eval_batch_size,
                                       device=device)
            if stopper.record(step + 1, loss_val):
                break
    if task is not None:
        progress.remove_task(task)
    if stopper is not None:
        stopper.restore()
    model.eval()
    return TrainStats(steps=len(losses), tokens=tokens, seconds=time.perf_counter() - t0,
                      final_loss=float(sum(losses[-10:]) / max(1, len(losses[-10:]))), losses=losses,
                      best_step=stopper.best_step if stopper else None, val_losses=stopper.history if stopper else [])


class _Stopper:
    """Validation every ``steps / N_VALIDATIONS`` steps; keeps the trainable weights of the best one."""

    def __init__(self, model, steps: int, patience: int):
        self.model, self.patience = model, patience
        self.every = max(1, math.ceil(steps / N_VALIDATIONS))
        self.steps = steps
        self.best, self.best_step, self.best_state, self.bad = math.inf, None, None, 0
        self.history: list[tuple[int, float]] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.steps

    def record(self, step: int, loss: float) -> bool:
        """Note a validation; True when training should stop."""
        self.history.append((step, loss))
        if loss < self.best - 1e-6:
            self.best, self.best_step, self.bad = loss, step, 0
            self.best_state = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self) -> None:
        if self.best_state is None:
            return
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                if n in self.best_state:
                    p.copy_(self.best_state[n])


def _adalora_model(model):
    """The AdaLoraModel inside a PeftModel, or None."""
    base = getattr(model, "base_model", None)
    return base if type(base).__name__ == "AdaLoraModel" else None
