"""The checkpoints a study analyses, whichever kind its ladder is: trained or external.

A trained ladder's are ``runs/<run>/checkpoints/step-N`` (their manifests say step, tokens, FLOPs and
weights sha256); an external suite's are the records the suite stage wrote to ``suite_audit.json``
(a duplicate of another checkpoint's weights is left out: it is analysed once). Evaluate, probe and
finetune see one ``Checkpoint`` either way, load it verified through ``load_model``, and record its
weights sha256 in their parts exactly alike.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from emergelab.errors import UserError
from emergelab.io import read_json
from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.spec import StudySpec
from emergelab.stages.base import Unit


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint to analyse: the rung (or suite entry) and replicate seed it belongs to, its step and facts."""

    rung: str
    seed: int
    step: int
    run: str  # the directory name of parts: ``<rung>`` or ``<rung>@seed<k>``
    weights_sha256: str
    external: dict | None = None  # the suite audit's record (source, ref, revision, path); None: trained here

    def unit(self, stage: str) -> Unit:
        return Unit(stage, (self.rung, self.seed, self.step), self.run, {"checkpoint": self.weights_sha256})


def _suite_records(lay: Layout) -> list[dict]:
    if not lay.suite_audit.exists():
        return []
    return _read_records(str(lay.suite_audit), lay.suite_audit.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_records(path: str, mtime_ns: int) -> list[dict]:
    """The audit's records, read once per version of the file (a suite may have thousands of checkpoints)."""
    try:
        return read_json(Path(path))["checkpoints"]
    except (ValueError, KeyError):
        return []


def study_checkpoints(spec: StudySpec, lay: Layout) -> list[Checkpoint]:
    """Every checkpoint there is to analyse, largest rung first, grouped by run (cheap: manifests or the audit)."""
    if spec.is_suite:
        order = {e.name: i for i, e in enumerate(spec.rungs_by_size())}
        recs = sorted((r for r in _suite_records(lay) if r.get("duplicate_of") is None and r["rung"] in order),
                      key=lambda r: (order[r["rung"]], r["step"]))
        return [Checkpoint(r["rung"], spec.seed, r["step"], r["rung"], r["weights_sha256"], r) for r in recs]
    out = []
    for rung, seed in spec.runs():
        run = spec.run_name(rung.name, seed)
        have = ckpt.list_checkpoints(lay.checkpoints(run))
        for step in spec.checkpoint_steps():
            if step in have and (have[step] / "checkpoint.json").exists():
                sha = ckpt.read_manifest(have[step]).get("weights_sha256", "")
                out.append(Checkpoint(rung.name, seed, step, run, sha))
    return out


def checkpoint_units(spec: StudySpec, lay: Layout, stage: str) -> list[Unit]:
    """One unit ``(rung, seed, step)`` per checkpoint; its input is the checkpoint's weights sha256."""
    return [c.unit(stage) for c in study_checkpoints(spec, lay)]


def find(spec: StudySpec, lay: Layout, rung: str, seed: int, step: int) -> Checkpoint | None:
    return next((c for c in study_checkpoints(spec, lay) if (c.rung, c.seed, c.step) == (rung, seed, step)), None)


def checkpoint_of(spec: StudySpec, lay: Layout, unit: Unit) -> Checkpoint:
    c = find(spec, lay, *unit.key)
    if c is None:
        raise UserError(f"no checkpoint {unit.key[0]} at step {unit.key[2]}; run the train (or suite) stage first")
    return c


def local_path(ck: Checkpoint, lay: Layout) -> Path:
    """The checkpoint's folder, verified: a trained one against its manifest, an external one (fetched again
    through the Hub cache, so ``HF_HOME`` may have moved) against the sha256 the audit recorded."""
    if ck.external is None:
        path = lay.checkpoint(ck.run, ck.step)
        ckpt.verify_checkpoint(path)
        return path
    from emergelab.models.hub import Source, fetch
    from emergelab.models.local import weights_sha256

    ext = ck.external
    path = fetch(Source(ext["ref"], ext["revision"], ext["local"]))
    if weights_sha256(path) != ck.weights_sha256:
        raise UserError(f"{ext['source']} changed since the suite was audited (weights sha256 differs); "
                        f"delete {lay.suite_audit} and re-run to audit it again")
    return path


def facts(ck: Checkpoint, lay: Layout) -> dict:
    """n_params, tokens and FLOPs of a checkpoint, as its measurement rows carry them."""
    if ck.external is not None:
        return {k: ck.external[k] for k in ("n_params", "tokens", "flops")}
    man = ckpt.read_manifest(lay.checkpoint(ck.run, ck.step))
    return {"n_params": man["n_params"], "tokens": man["tokens_seen"], "flops": man["flops"]}


def entry_of(spec: StudySpec, ck: Checkpoint):
    return next(e for e in spec.ladder if e.name == ck.rung)


def load_model(ck: Checkpoint, spec: StudySpec, path: Path, *, eager: bool = False):
    """The model of a verified checkpoint folder: an emergelab one as trained; an external one with
    ``from_pretrained`` (safetensors only; its entry's dtype, device_map and trust_remote_code)."""
    if ck.external is None:
        return ckpt.load_model(path, verify=False, eager=eager)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining

    from emergelab.models.local import load_pretrained

    ckpt.quiet_transformers()
    entry = entry_of(spec, ck)
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=entry.trust_remote_code)
    archs = list(getattr(config, "architectures", None) or [])
    cls = AutoModelForCausalLM if spec.causal else (
        AutoModelForPreTraining if any(a.endswith("ForPreTraining") for a in archs) else AutoModelForMaskedLM)
    kw = {"attn_implementation": "eager"} if eager else {}
    if entry.device_map is not None:
        kw["device_map"] = entry.device_map
    model = load_pretrained(cls, path, trust_remote_code=entry.trust_remote_code, what=ck.external["source"],
                            dtype=getattr(torch, entry.dtype), **kw)
    model.eval()
    return model
