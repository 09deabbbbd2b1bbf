"""A suite of external checkpoints resolved: each ladder entry's checkpoints, with steps, sizes and the audit.

``resolve_entry`` finds an entry's checkpoints (fetching Hub revisions into the cache), reads each one's
step and checks that they share one architecture; ``audit_suite`` hashes and compares them. Both are
the suite stage's work; the records they return (``suite_audit.json``) are what the analysis stages read.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from emergelab.errors import UserError
from emergelab.models import audit
from emergelab.models.hub import Source, entry_sources, fetch, recorded_step
from emergelab.models.local import weights_sha256
from emergelab.spec.suite import step_from_name


@dataclass(frozen=True)
class Found:
    """One checkpoint of an entry, found and checked (not yet hashed)."""

    rung: str
    step: int
    source: Source
    path: Path


def step_of(entry, i: int, src: Source, path: Path | None) -> int:
    """The entry's ``steps``, else a recorded step (checkpoint.json, trainer_state.json: when the folder
    is at hand), else the name's."""
    if entry.steps is not None:
        return entry.steps[i]
    step = recorded_step(path) if path is not None else None
    step = step if step is not None else step_from_name(src.name)
    if step is None:
        raise UserError(f"ladder entry {entry.name}: cannot tell the training step of {src.label} (no stepN/checkpoint-N "
                        "in its name, no trainer_state.json or checkpoint.json); give steps: [...] in the entry")
    return step


def resolve_entry(entry, base: Path | None = None) -> list[Found]:
    """The entry's checkpoints in step order; one line for an empty glob, a missing revision or model, no
    safetensors, an unknown or repeated step, or checkpoints of different architectures."""
    sources = entry_sources(entry, base)
    if entry.steps is not None and len(entry.steps) != len(sources):
        raise UserError(f"ladder entry {entry.name}: {len(entry.steps)} steps for {len(sources)} checkpoints")
    found = [Found(entry.name, step_of(entry, i, s, p), s, p) for i, s in enumerate(sources) for p in [fetch(s)]]
    steps = [f.step for f in found]
    if len(set(steps)) != len(steps):
        dup = next(s for s in steps if steps.count(s) > 1)
        raise UserError(f"ladder entry {entry.name}: two checkpoints claim step {dup} "
                        f"({', '.join(f.source.label for f in found if f.step == dup)}); give steps: [...] in the entry")
    first = audit.architecture(audit.read_config(found[0].path))
    for f in found[1:]:
        other = audit.architecture(audit.read_config(f.path))
        if other != first:
            key = next(k for k in sorted(set(first) | set(other)) if first.get(k) != other.get(k))
            raise UserError(f"ladder entry {entry.name}: {f.source.label} has {key}={other.get(key)!r} but "
                            f"{found[0].source.label} has {first.get(key)!r}; one entry is one architecture: split it")
    return sorted(found, key=lambda f: f.step)


def _size(config: dict) -> tuple[int, int, int]:
    """(n_layer, d_model, context length) from a Hugging Face config."""
    get = lambda *keys: next((int(config[k]) for k in keys if isinstance(config.get(k), int)), 0)  # noqa: E731
    return (get("num_hidden_layers", "n_layer"), get("hidden_size", "n_embd", "d_model"),
            get("n_positions", "max_position_embeddings", "n_ctx"))


def record(f: Found, tokens_per_step: int | None) -> dict:
    """What the analysis stages need of one checkpoint: where it is, its step, size, tokens, FLOPs and sha256."""
    n, n_ne = audit.param_counts(f.path)
    n_layer, d_model, ctx = _size(audit.read_config(f.path))
    tokens = f.step * tokens_per_step if tokens_per_step else 0
    fpt = 6.0 * n_ne + 6.0 * n_layer * ctx * d_model  # models.build.flops_per_token (Kaplan et al. 2020)
    return {"rung": f.rung, "step": f.step, "source": f.source.label, **asdict(f.source), "path": str(f.path),
            "weights_sha256": weights_sha256(f.path), "n_params": n, "n_params_nonembedding": n_ne,
            "tokens": tokens, "flops": fpt * tokens, "duplicate_of": None}


def audit_family(records: list[dict], found: list[Found]) -> list[dict]:
    """Norm and cosine continuity along one family's steps (records in step order, filled in place) and its
    config changes; returns the family's flags."""
    flags = []
    for i, (rec, f) in enumerate(zip(records, found)):
        rec["weight_norm"] = audit.weight_norm(f.path)
        rec["cosine_to_previous"] = audit.cosine(found[i - 1].path, f.path) if i else None
        rec["cosine_previous_to_next"] = audit.cosine(found[i - 1].path, found[i + 1].path) if 0 < i < len(found) - 1 else None
        if i:
            changed = audit.config_changes(audit.read_config(found[i - 1].path), audit.read_config(f.path))
            if changed:
                flags.append({"kind": "config_change", "rung": f.rung, "step": f.step, "previous_step": found[i - 1].step,
                              "keys": changed})
    steps = [r["step"] for r in records]
    for i in audit.norm_outliers(steps, [r["weight_norm"] for r in records]):
        flags.append({"kind": "norm_outlier", "rung": records[i]["rung"], "step": steps[i],
                      "weight_norm": records[i]["weight_norm"]})
    for i in audit.out_of_place([r["cosine_to_previous"] for r in records], [r["cosine_previous_to_next"] for r in records]):
        flags.append({"kind": "out_of_place", "rung": records[i]["rung"], "step": steps[i],
                      "cosine_to_previous": records[i]["cosine_to_previous"],
                      "cosine_previous_to_next": records[i]["cosine_previous_to_next"]})
    return flags


def mark_duplicates(records: list[dict]) -> list[dict]:
    """Identical weights under different names: every later one points at the first (and is analysed once)."""
    first: dict[str, dict] = {}
    flags = []
    for rec in records:
        seen = first.setdefault(rec["weights_sha256"], rec)
        if seen is not rec:
            rec["duplicate_of"] = seen["source"]
            flags.append({"kind": "duplicate", "rung": rec["rung"], "step": rec["step"], "source": rec["source"],
                          "same_as": seen["source"], "same_as_step": seen["step"]})
    return flags


def audit_suite(entries, base: Path | None = None, *, on_entry=None) -> dict:
    """Resolve, hash and audit every entry: ``{"checkpoints": [...], "flags": [...]}``."""
    records, flags = [], []
    for entry in entries:
        found = resolve_entry(entry, base)
        recs = [record(f, entry.tokens_per_step) for f in found]
        flags += audit_family(recs, found)
        records += recs
        if on_entry is not None:
            on_entry(entry.name)
    flags = mark_duplicates(records) + flags
    return {"schema_version": 1, "checkpoints": records, "flags": flags}
