"""Run a task on a model at each k: score its requests, compute the paired metrics, aggregate to rows.

Every output type yields a discontinuous metric beside continuous ones, per example, then a mean
with a bootstrap standard error (the same resamples for every metric of a task and k — paired):

* ``loglikelihood`` — exact_match (every continuation token is the argmax: greedy decoding would
  produce it), token_accuracy, target_logprob (Σ log p, nats), target_logprob_per_token, brier
  (mean over the continuation's positions of Σ_v (p_v − 1[v = token])²).
* ``generate`` — the same teacher-forced metrics of ``target_delimiter + target``, except that
  exact_match compares the greedy generation (cut at a stop string; text trimmed) with the target,
  plus edit_distance (token Levenshtein distance of the generation to the target).
* ``multiple_choice`` — mc_accuracy (the gold choice has the highest log-likelihood), brier over the
  choices (p = softmax of their log-likelihoods), and the gold choice's exact_match, token_accuracy,
  target_logprob(_per_token); mc_accuracy_norm (lm-eval's acc_norm) when asked in metric_list.
* ``cloze`` (masked models) — the answer masked at once: exact_match (every mask's argmax is right),
  token_accuracy, target_logprob(_per_token), brier; plus target_pll (pseudo-log-likelihood) for
  answers longer than one token.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from emergelab.evaluate import metrics as M
from emergelab.evaluate.docs import TaskData
from emergelab.evaluate.masked import pseudo_loglik, score_masked
from emergelab.evaluate.model import LanguageModel
from emergelab.evaluate.requests import Item, build_items, resolve_output_type
from emergelab.evaluate.scoring import TokenScores, greedy_generate, score_continuations
from emergelab.evaluate.taskspec import TaskSpec
from emergelab.measurements import CHANCE_PREFIX


def continuation_metrics(s: TokenScores) -> dict[str, float]:
    return {"exact_match": M.exact_match(s.greedy), "token_accuracy": M.token_accuracy(s.greedy),
            "target_logprob": M.target_logprob(s.logp), "target_logprob_per_token": float(np.mean(s.logp)),
            "brier": float(np.mean(s.brier))}


def choice_metrics(scores: list[TokenScores], item: Item, norm: bool) -> dict[str, float]:
    sums = np.array([s.logp.sum() for s in scores])
    out = {**continuation_metrics(scores[item.gold]), "mc_accuracy": M.mc_accuracy(sums, item.gold),
           "brier": M.choice_brier(sums, item.gold)}
    if norm:
        chars = np.array(item.choice_chars or [len(c) for c in item.choices], dtype=float)
        out["mc_accuracy_norm"] = M.mc_accuracy(sums / chars, item.gold)
    return out


def _stopper(lm: LanguageModel, until: list[str]) -> Callable[[int, list[int]], bool]:
    def stop(i: int, toks: list[int]) -> bool:
        text = lm.tokenizer.decode(toks)
        return any(u and u in text for u in until)
    return stop


def _cut_at_stop(text: str, until: list[str]) -> str:
    for u in until:
        if u and u in text:
            text = text.split(u)[0]
    return text


def score_items(lm: LanguageModel, spec: TaskSpec, items: list[Item], output_type: str, *,
                batch_size: int) -> list[dict[str, float]]:
    """Per-example paired metrics of ``items``."""
    kw = {"batch_size": batch_size, "pad_id": lm.pad_id}
    norm = any(m.metric == "acc_norm" for m in spec.metric_list or [])
    if output_type == "multiple_choice":
        scored = lm.score_choices(items, batch_size=batch_size)
        return [choice_metrics(s, it, norm) for s, it in zip(scored, items)]
    if output_type == "cloze":
        trip = [(it.left, it.target, it.right) for it in items]
        per = [continuation_metrics(s) for s in score_masked(lm.model, trip, mask_id=lm.mask_id, **kw)]
        if max(len(it.target) for it in items) > 1:
            for p, s in zip(per, pseudo_loglik(lm.model, trip, mask_id=lm.mask_id, **kw)):
                p["target_pll"] = M.target_logprob(s.logp)
        return per
    per = [continuation_metrics(s) for s in score_continuations(lm.model, [(it.context, it.target) for it in items], **kw)]
    if output_type == "generate":
        token_task = spec.dataset_path == "world"
        until = [] if token_task else spec.until()
        max_new = [min(len(it.target) if token_task else spec.max_gen_toks(), lm.max_length - len(it.gen_context))
                   for it in items]  # never past the model's positions
        gens = greedy_generate(lm.model, [it.gen_context for it in items], max_new, batch_size=batch_size, pad_id=lm.pad_id,
                               eos_id=None if token_task else lm.tokenizer.eos_token_id,
                               stop=_stopper(lm, until) if until else None)
        opts = spec.metric_options()
        for p, it, g in zip(per, items, gens):
            if token_task:
                p["exact_match"] = float(g == it.target)
                p["edit_distance"] = float(M.edit_distance(g, it.target))
            else:
                norm_kw = dict(ignore_case=opts.ignore_case, ignore_punctuation=opts.ignore_punctuation,
                               regexes_to_ignore=opts.regexes_to_ignore)
                text = _cut_at_stop(lm.tokenizer.decode(g), until)
                p["exact_match"] = float(M.normalise_answer(text, **norm_kw) == M.normalise_answer(it.target_text, **norm_kw))
                enc = lambda s: lm.tokenizer.encode(s.strip(), add_special_tokens=False)  # noqa: E731
                p["edit_distance"] = float(M.edit_distance(enc(text), enc(it.target_text)))
    return per


def aggregate(per: list[dict[str, float]], *, n_boot: int, seed: int) -> list[dict]:
    """One row per metric: mean, bootstrap standard error (paired resamples: same seed and n), n."""
    rows = []
    for metric in per[0]:
        vals = np.array([p[metric] for p in per], dtype=float)
        rows.append({"metric": metric, "value": float(vals.mean()), "stderr": M.bootstrap_stderr(vals, n_boot, seed),
                     "n": len(vals)})
    return rows


def uniform_chance(items: list[Item], output_type: str, vocab_size: int) -> dict[str, float]:
    """Chance levels of a uniform guesser: over the choices, or over the vocabulary at each token."""
    if output_type == "multiple_choice":
        n = np.array([len(it.choices) for it in items], dtype=float)
        lens = np.array([len(it.choices[it.gold]) for it in items], dtype=float)
    else:
        n, lens = None, np.array([len(it.target) for it in items], dtype=float)
    v = float(vocab_size)
    out = {"token_accuracy": 1 / v, "target_logprob_per_token": -np.log(v), "target_logprob": float(-np.log(v) * lens.mean()),
           "exact_match": float(np.mean(v ** -lens)), "brier": 1 - 1 / v}
    if n is not None:
        out.update({"mc_accuracy": float(np.mean(1 / n)), "brier": float(np.mean(1 - 1 / n))})
    return out


def plan_task(lm: LanguageModel, spec: TaskSpec, data: TaskData, shots: list[int]) -> tuple[str, dict[int, tuple[list[Item], int]]]:
    """(output type, k -> (items, prompts cut)): every request built, so bad input is reported before
    anything is scored."""
    has_choices = spec.doc_to_choice is not None or (spec.dataset_path == "world" and "choices" in data.docs[0])
    output_type = resolve_output_type(spec, lm, has_choices)
    if output_type == "cloze" and has_choices:
        output_type = "multiple_choice"  # a masked model scores candidate fillers: masked probability / PLL
    return output_type, {k: build_items(spec, data, lm, k, output_type) for k in shots}


def run_plan(lm: LanguageModel, spec: TaskSpec, data: TaskData, plan, *, batch_size: int = 32, n_boot: int = 200,
             seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(metric rows per k, task rows: chance levels and answer length) of a planned task."""
    output_type, built = plan
    rows = []
    for k, (items, cut) in built.items():
        if cut:
            lm.warnings.append(f"task {spec.task}, {k}-shot: {cut} prompt(s) cut from the left to fit the model's {lm.max_length} tokens")
        per = score_items(lm, spec, items, output_type, batch_size=batch_size)
        rows += [{"task": spec.task, "k_shot": k, **r} for r in aggregate(per, n_boot=n_boot, seed=seed)]
    return rows, task_rows(spec, data, next(iter(built.values()))[0], output_type, lm.vocab_size)


def evaluate_task(lm: LanguageModel, spec: TaskSpec, data: TaskData, shots: list[int], *, batch_size: int = 32,
                  n_boot: int = 200, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """:func:`plan_task` then :func:`run_plan`."""
    return run_plan(lm, spec, data, plan_task(lm, spec, data, shots), batch_size=batch_size, n_boot=n_boot, seed=seed)


def task_rows(spec: TaskSpec, data: TaskData, items: list[Item], output_type: str, vocab_size: int) -> list[dict]:
    """``chance/<metric>`` rows (the world's stated levels over a uniform guesser's) and the
    ``answer_length`` row (the world's, else the mean gold answer length in tokens)."""
    chance = uniform_chance(items, output_type, vocab_size)
    lengths = [len(it.choices[it.gold]) if it.choices else len(it.target) for it in items]
    length = float(np.mean(lengths))
    if data.world_info is not None:
        chance.update(data.world_info.get("chance", {}))
        length = float(data.world_info.get("answer_length", length))
    rows = [{"task": spec.task, "metric": CHANCE_PREFIX + m, "value": float(v)} for m, v in sorted(chance.items())]
    return rows + [{"task": spec.task, "metric": "answer_length", "value": length}]
