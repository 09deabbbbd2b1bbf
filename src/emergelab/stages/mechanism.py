"""The mechanism stage: along every link of the mechanism map, remove the signal and re-score the capability.

One unit per checkpoint (trained), its part (``parts/mechanism/<run>/step-N.parquet``) recording the
checkpoint's weights sha256, like evaluate's and probe's. For each link ``(task, signal)`` of the data
manifest's ``mechanisms`` (the world's and the spec's):

- ``heads/<score>``: the top ``mechanism.k_heads`` heads by that head score at this checkpoint (the probe
  stage's ``source="heads"`` rows) are mean- (or zero-) ablated; the control ablates as many random
  other heads of the same layers;
- a latent: LEACE erases it at its best layer (highest probe selectivity at this checkpoint), fitted on
  the latent's labelled sequences; the control erases a random subspace of the same rank.

The capability is re-scored with the evaluate stage's code (``evaluate.runner.plan_task`` and
``score_items``: the same prompts, metrics and bootstrap) and compared example by example with the
unablated model: rows ``drop``, ``control_drop`` and ``specificity`` per metric and k
(``measurements.mechanism_metric``; ``docs/interventions.md``).
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.measurements import HEADS_PREFIX
from emergelab.spec import StudySpec
from emergelab.stages.base import Stage, Unit, part_is_current
from emergelab.stages.checkpoints import Checkpoint, checkpoint_of, facts, load_model, local_path
from emergelab.stages.evaluate import checkpoint_units, part_of


def study_links(spec: StudySpec, lay: Layout) -> list[dict]:
    """The links the stage can test (cheap: the data manifest): tasks the study evaluates, signals it
    measures — latents of the world, head scores of a causal model whose heads are scored."""
    if spec.world is None or not spec.mechanism.enabled or not lay.data_dir.exists():
        return []
    man = lay.data_dir.manifest()
    return testable_links(spec, man.get("mechanisms") or [], set(man.get("tasks", {})), set(man.get("latents", {})))


def testable_links(spec: StudySpec, links: list[dict], tasks: set[str], latents: set[str]) -> list[dict]:
    """The links (deduplicated) whose task the study evaluates and whose signal it measures: a latent it
    probes, or a head score of a causal model whose heads are scored."""
    evaluated = set(spec.eval.tasks or tasks)
    out = []
    for m in links:
        sig = m["signal"]
        heads_ok = sig.startswith(HEADS_PREFIX) and spec.causal and spec.probe.heads  # a score without rows is skipped in run
        latent_ok = sig in latents and (spec.probe.latents is None or sig in spec.probe.latents)
        if m["task"] in evaluated and (heads_ok or latent_ok) and m not in out:
            out.append(m)
    return out


def _note(spec: StudySpec) -> str | None:
    if not spec.mechanism.enabled:
        return "mechanism.enabled is false"
    return None


# ------------------------------------------------------------------ one checkpoint

def _probe_rows(lay: Layout, ck: Checkpoint):
    import pandas as pd

    path = lay.part("probe", ck.run, ck.step)
    if not path.exists():
        raise UserError(f"no probe rows for {ck.run} at step {ck.step} ({path}); run the probe stage first "
                        "(`emergelab study` runs it before the mechanism stage)")
    return pd.read_parquet(path)


def _rng(spec: StudySpec, ck: Checkpoint, signal: str) -> np.random.Generator:
    return np.random.default_rng([spec.seed, zlib.crc32(signal.encode()), zlib.crc32(ck.rung.encode()), ck.seed, ck.step])


def _head_conditions(model, probe, signal: str, spec, rng, means) -> tuple | None:
    """(ablation, control, the lowest layer of the ablated heads) for a head-score link, or None."""
    from emergelab.intervene.heads import ablate_heads, control_heads, top_heads
    from emergelab.intervene.sites import head_sites

    d = probe[(probe.source == "heads") & (probe.task == signal[len(HEADS_PREFIX):]) & probe.metric.str.startswith("head_")]
    d = d[np.isfinite(d.value)]
    if d.empty:
        return None
    scores = {(int(r.layer), int(r.metric[len("head_"):])): float(r.value) for r in d.itertuples()}
    if len(scores) <= spec.mechanism.k_heads:  # no other heads to draw a control from: the link is not tested here
        return None
    chosen = top_heads(scores, spec.mechanism.k_heads)
    sites = head_sites(model)
    control = control_heads(chosen, sites[0].n_head, len(sites), rng)
    how = spec.mechanism.ablation
    ref = (lambda: means()) if how == "mean" else (lambda: None)  # noqa: E731  (zero ablation needs no means)
    return (lambda: ablate_heads(model, chosen, how=how, means=ref()),
            lambda: ablate_heads(model, control, how=how, means=ref()), min(chosen))


def _latent_conditions(model, probe, signal: str, spec, lay: Layout, rng) -> tuple | None:
    """(erasure, control, residual site) for a latent link at its best layer, or None."""
    from emergelab.intervene.erase import erase_at, fit_leace, random_eraser, record_site

    d = probe[(probe.source == "probe") & (probe.task == signal) & (probe.metric == "selectivity")]
    d = d[np.isfinite(d.value)]
    if d.empty:
        return None
    best = int(d.sort_values(["value", "layer"], ascending=[False, True]).iloc[0].layer)
    z = lay.data_dir.latent(signal)
    acts = record_site(model, best, z["input_ids"])  # [N, T, d]
    labels = z["labels"]
    if labels.ndim == 1:  # a sequence-level latent: every position carries its sequence's label
        labels = np.broadcast_to(labels[:, None], acts.shape[:2])
    seq, pos = np.nonzero(labels >= 0)
    if len(seq) > spec.mechanism.n_tokens:
        keep = np.sort(rng.choice(len(seq), size=spec.mechanism.n_tokens, replace=False))
        seq, pos = seq[keep], pos[keep]
    x, y = acts[seq, pos], labels[seq, pos]
    if len(np.unique(y)) < 2:
        return None
    eraser = fit_leace(x, y)
    control = random_eraser(x, eraser.rank, rng)
    return (lambda: erase_at(model, best, eraser), lambda: erase_at(model, best, control), best)


def _first(plan: tuple, n: int) -> tuple:
    """A planned task cut to its first ``n`` examples at every k (the evaluate stage's prompts, fewer of them)."""
    output_type, built = plan
    return output_type, {k: (items[:n], cut) for k, (items, cut) in built.items()}


def _score(lm, plans: dict, task: str, batch_size: int) -> dict[int, list[dict]]:
    """Per k, the per-example metrics of the task (the evaluate stage's scoring)."""
    from emergelab.evaluate.runner import score_items

    ts, (output_type, built) = plans[task]
    return {k: score_items(lm, ts, items, output_type, batch_size=batch_size) for k, (items, _) in built.items()}


def compare_rows(base: dict[int, list[dict]], hit: dict[int, list[dict]], ctrl: dict[int, list[dict]], signal: str,
                 *, n_boot: int, boot_seed: int, **fields) -> list[dict]:
    """``drop``, ``control_drop`` and ``specificity`` rows per k and metric, each the mean over examples of
    the paired difference (oriented so that losing the capability is positive), with a bootstrap stderr."""
    from emergelab.evaluate.metrics import bootstrap_stderr
    from emergelab.measurements import METRICS, mechanism_metric

    rows = []
    for k, per in base.items():
        for metric in per[0]:
            sign = 1.0 if METRICS.get(metric, (True, ""))[0] else -1.0
            b, h, c = (np.array([p[metric] for p in x[k]], dtype=float) for x in (base, hit, ctrl))
            for quantity, vals in (("drop", sign * (b - h)), ("control_drop", sign * (b - c)), ("specificity", sign * (c - h))):
                rows.append({**fields, "k_shot": k, "metric": mechanism_metric(quantity, metric, signal),
                             "value": float(vals.mean()), "stderr": bootstrap_stderr(vals, n_boot, boot_seed), "n": len(vals)})
    return rows


def mechanism_checkpoint(ck: Checkpoint, spec, lay: Layout, tasks: dict, links: list[dict]) -> list[dict]:
    """Mechanism rows of one checkpoint: every link's intervention and control, scored against the model."""
    import functools

    import torch

    from emergelab.evaluate.runner import plan_task
    from emergelab.intervene.heads import head_means
    from emergelab.intervene.sites import state_hash
    from emergelab.stages.evaluate import _study_model, context_length, study_tokenizer

    path = local_path(ck, lay)
    tok = study_tokenizer(spec, lay, path)
    model = load_model(ck, spec, path)
    lm = _study_model(model, tok, spec, f"{ck.rung}/step-{ck.step}", context_length(spec, ck, path, tok))
    probe = _probe_rows(lay, ck)
    weights = state_hash(model)
    plans = {t: (ts, _first(plan_task(lm, ts, data, shots), spec.mechanism.n_examples)) for t, (ts, data, shots) in tasks.items()}
    base_fields = {"study": spec.name, "rung": ck.rung, "step": ck.step, **facts(ck, lay), "seed": ck.seed, "source": "mechanism"}
    bs, boot = spec.eval.batch_size, dict(n_boot=spec.eval.n_bootstrap, boot_seed=spec.seed)
    means = functools.cache(lambda: head_means(model, np.asarray(lay.data_dir.blocks("heldout")[:spec.mechanism.n_reference])))
    scored: dict[str, dict] = {}
    conds: dict[str, tuple | None] = {}  # per signal: a signal linked to several tasks is set up once
    rows = []
    with torch.inference_mode():
        for link in links:
            task, signal = link["task"], link["signal"]
            if signal not in conds:
                rng = _rng(spec, ck, signal)
                conds[signal] = (_head_conditions(model, probe, signal, spec, rng, means) if signal.startswith(HEADS_PREFIX)
                                 else _latent_conditions(model, probe, signal, spec, lay, rng))
            cond = conds[signal]
            if cond is None:
                continue
            hit_ctx, ctrl_ctx, layer = cond
            if task not in scored:
                scored[task] = _score(lm, plans, task, bs)
            with hit_ctx():
                hit = _score(lm, plans, task, bs)
            with ctrl_ctx():
                ctrl = _score(lm, plans, task, bs)
            rows += compare_rows(scored[task], hit, ctrl, signal, **boot, **base_fields, task=task, layer=layer)
    if state_hash(model) != weights:  # hooks only: a changed weight is a bug, never a result
        raise RuntimeError(f"an intervention changed the weights of {ck.run} step {ck.step}")
    return rows


# ------------------------------------------------------------------ the stage contract

def _part(spec: StudySpec, lay: Layout, unit: Unit) -> Path:
    return part_of(spec, lay, "mechanism", unit)


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    if not study_links(spec, lay):
        return []
    return [u for u in checkpoint_units(spec, lay, "mechanism") if not part_is_current(_part(spec, lay, u), u.inputs)]


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    import torch  # the work's imports (torch, transformers, pandas) stay out of the cheap ``todo`` path
    from threadpoolctl import threadpool_limits

    from emergelab.measurements import write_part
    from emergelab.stages.evaluate import study_tasks

    torch.set_num_threads(spec.train.threads)
    links = study_links(spec, lay)
    linked = {m["task"] for m in links}
    tasks = {ts.task: (ts, data, shots) for ts, data, shots in study_tasks(spec, lay) if ts.task in linked}
    with threadpool_limits(limits=spec.train.threads):
        for i, u in enumerate(units):
            write_part(_part(spec, lay, u), mechanism_checkpoint(checkpoint_of(spec, lay, u), spec, lay, tasks, links), u.inputs)
            if progress is not None:
                progress(u.group, i + 1, len(units))
    return len(units)


STAGE = Stage("mechanism", todo, run, note=_note)
