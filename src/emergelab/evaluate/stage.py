"""The evaluate stage of a study: every task × k-shot on every checkpoint of every rung."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from emergelab.corpus.prepare import load_blocks, load_task
from emergelab.evaluate import metrics as M
from emergelab.evaluate.scoring import heldout_loss, score_targets
from emergelab.io import read_json
from emergelab.layout import Layout
from emergelab.measurements import CHANCE_PREFIX, write_part
from emergelab.train import checkpoint as ckpt


def example_metrics(res: dict) -> dict[str, float]:
    """The paired metrics of one scored example."""
    out = {
        "exact_match": M.exact_match(res["correct"]),
        "token_accuracy": M.token_accuracy(res["correct"]),
        "target_logprob": M.target_logprob(res["logp"]),
        "target_logprob_per_token": float(np.mean(res["logp"])),
    }
    if res.get("probs") is not None:
        out["brier"] = M.brier(res["probs"], res["target"])
    return out


def evaluate_checkpoint(path: Path, spec, lay: Layout, rung: str, step: int) -> list[dict]:
    """Measurement rows for one checkpoint (all tasks, k-shots and the held-out loss)."""
    man = ckpt.verify_checkpoint(path)
    model = ckpt.load_model(path, verify=False)
    data_manifest = read_json(lay.data / "manifest.json")
    base = {"study": spec.name, "rung": rung, "n_params": man["n_params"], "step": step,
            "tokens": man["tokens_seen"], "flops": man["flops"], "source": "eval", "seed": spec.seed}
    rows = []
    for task in spec.eval.tasks or list(data_manifest["tasks"]):
        examples = load_task(lay.data, task)
        for k in spec.eval.k_shot:
            scored = score_targets(model, examples)
            per = [example_metrics(r) for r in scored]
            for metric in per[0]:
                vals = np.array([p[metric] for p in per])
                rows.append({**base, "task": task, "k_shot": k, "metric": metric, "value": float(vals.mean()),
                             "stderr": M.bootstrap_stderr(vals, spec.eval.n_bootstrap, spec.seed), "n": len(vals)})
    held = load_blocks(lay.data, "heldout")
    rows.append({**base, "task": "heldout", "metric": "loss", "value": heldout_loss(model, held),
                 "n": int(held.shape[0] * (held.shape[1] - 1))})
    return rows


def chance_rows(spec, lay: Layout) -> list[dict]:
    """One row per task and metric with the chance level, and one with the answer length."""
    data_manifest = read_json(lay.data / "manifest.json")
    rows = []
    for task, info in data_manifest["tasks"].items():
        for metric, value in info["chance"].items():
            rows.append({"study": spec.name, "step": -1, "source": "eval", "task": task,
                         "metric": CHANCE_PREFIX + metric, "value": value})
        rows.append({"study": spec.name, "step": -1, "source": "eval", "task": task,
                     "metric": "answer_length", "value": info["answer_length"]})
    return rows


def evaluate_rung(root: str, rung: str, progress=None) -> int:
    """Evaluate every checkpoint of ``rung`` that has no eval part yet; returns how many were done."""
    from emergelab.study import load_resolved_spec

    lay = Layout(Path(root))
    spec = load_resolved_spec(lay)
    torch.set_num_threads(spec.train.threads)
    done = 0
    ckpts = ckpt.list_checkpoints(lay.checkpoints(rung))
    for i, (step, path) in enumerate(ckpts.items()):
        part = lay.part("eval", rung, step)
        if not part.exists():
            write_part(part, evaluate_checkpoint(path, spec, lay, rung, step))
            done += 1
        if progress is not None:
            progress(rung, i + 1, len(ckpts), None)
    return done
