"""The preflight of an external suite: its checkpoints, their sizes and the memory one of them needs.

A suite study trains nothing, so its cost is its checkpoints: each is loaded on its own (one in memory at
a time), evaluated, probed and fine-tuned. Before anything is written this lists every entry's
checkpoints with their steps, reads each one's parameter count — from its safetensors headers when the
folder is local or cached, else from its ``config.json`` alone (the config is all a dry run fetches of a
Hub checkpoint not yet cached) — and estimates the peak memory of the largest: parameters × the entry's
dtype bytes, plus gradients and AdamW's moments when ``finetune.methods`` has ``full``, plus a worker's
base. A checkpoint that cannot fit is refused in one line with the numbers and the fix; so is a Hub
download that the cache's disk cannot hold.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from emergelab.errors import UserError
from emergelab.preflight.estimate import BASE_RSS, available_memory, fmt_bytes, free_disk
from emergelab.spec import StudySpec

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: fine-tuning every weight keeps fp32 gradients and AdamW's two moments beside the weights
FULL_FINETUNE_BYTES = 12


@dataclass
class Checkpoint:
    """One checkpoint as the preflight sees it, before it is fetched or hashed."""

    entry: str
    label: str
    step: int
    n_params: int
    stored_bytes: int  # on disk (downloaded if not cached)
    cached: bool  # a local folder, or a Hub revision whose weights are in the cache


@dataclass
class SuitePlan:
    checkpoints: list[Checkpoint]
    peak_memory: int
    peak_what: str
    download_bytes: int
    available_memory: int
    free_cache_disk: int
    stage_units: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        by_entry: dict[str, list[Checkpoint]] = {}
        for c in self.checkpoints:
            by_entry.setdefault(c.entry, []).append(c)
        for name, cks in by_entry.items():
            steps = ", ".join(f"{c.label} (step {c.step})" for c in cks)
            out.append(f"preflight: suite entry {name}: {len(cks)} checkpoint(s), {cks[0].n_params:,} parameters: {steps}")
        units = ", ".join(f"{k} {v}" for k, v in self.stage_units.items())
        out.append(f"preflight: units of work: {units} (at most; a duplicated checkpoint is analysed once)")
        out.append(f"preflight: peak memory {fmt_bytes(self.peak_memory)} ({self.peak_what}; one checkpoint in memory at a time) "
                   f"of {fmt_bytes(self.available_memory)} available")
        n_new = sum(not c.cached for c in self.checkpoints)
        if n_new:
            out.append(f"preflight: to download into the Hub cache: {fmt_bytes(self.download_bytes)} ({n_new} checkpoint(s) "
                       f"not cached) of {fmt_bytes(self.free_cache_disk)} free")
        return out


def params_from_config(config: dict) -> int:
    """Parameters of a decoder or encoder from its config, in closed form (embeddings, attention, MLP,
    untied head), for a Hub checkpoint whose weights are not downloaded yet."""
    get = lambda *keys, default=0: next((int(config[k]) for k in keys if isinstance(config.get(k), int)), default)  # noqa: E731
    d = get("hidden_size", "n_embd", "d_model")
    n_layer = get("num_hidden_layers", "n_layer", "num_layers")
    vocab = get("vocab_size")
    ff = get("intermediate_size", "n_inner", "ffn_dim", default=4 * d)
    heads = get("num_attention_heads", "n_head", default=1)
    kv = get("num_key_value_heads", default=heads)
    attn = d * d * 2 + 2 * d * (d * kv // max(1, heads))
    gated = 3 if config.get("hidden_act") in ("silu", "swiglu") or "llama" in str(config.get("model_type", "")) else 2
    tied = config.get("tie_word_embeddings", True) is not False
    return vocab * d * (1 if tied else 2) + n_layer * (attn + gated * d * ff)


def _stored_bytes(config: dict, n_params: int) -> int:
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32").replace("torch.", "")
    return n_params * DTYPE_BYTES.get(dtype, 4)


def _hub_config(src) -> tuple[dict, Path | None]:
    """A Hub checkpoint's config (fetched alone if not cached) and its cached snapshot with weights, if any."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    from emergelab.models.hub import hub_error

    try:
        cfg = Path(hf_hub_download(src.ref, "config.json", revision=src.revision))
    except Exception as exc:  # noqa: BLE001 — huggingface_hub raises many types; the user needs one line
        raise hub_error(src, exc) from None
    weights = try_to_load_from_cache(src.ref, "model.safetensors", revision=src.revision)
    index = try_to_load_from_cache(src.ref, "model.safetensors.index.json", revision=src.revision)
    cached = isinstance(weights, str) or isinstance(index, str)
    return json.loads(cfg.read_text(encoding="utf-8")), cfg.parent if cached else None


def entry_checkpoints(entry, base: Path | None = None) -> list[Checkpoint]:
    """Every checkpoint of one ladder entry with its step and size, without fetching any weights; one line
    for an empty glob, a missing revision or a step that cannot be told."""
    from emergelab.models import audit
    from emergelab.models.hub import entry_sources
    from emergelab.models.local import check_model_dir
    from emergelab.models.suite import step_of

    out = []
    for i, src in enumerate(entry_sources(entry, base)):
        if src.local:
            path = check_model_dir(src.ref)
            config, n = audit.read_config(path), audit.param_counts(path)[0]
        else:
            config, path = _hub_config(src)
            n = audit.param_counts(path)[0] if path is not None else params_from_config(config)
        out.append(Checkpoint(entry.name, src.label, step_of(entry, i, src, path), n, _stored_bytes(config, n), path is not None))
    return out


def suite_plan(spec: StudySpec, checkpoints: list[Checkpoint] | None = None) -> SuitePlan:
    """The suite's checkpoints and the memory its largest needs; a one-line UserError when it cannot fit."""
    from huggingface_hub import constants

    cks = checkpoints if checkpoints is not None else [c for e in spec.ladder for c in entry_checkpoints(e)]
    dtype = {e.name: e.dtype for e in spec.ladder}
    full = spec.finetune is not None and spec.finetune.enabled and "full" in spec.finetune.methods
    per_param = {e: DTYPE_BYTES[d] + (FULL_FINETUNE_BYTES if full else 0) for e, d in dtype.items()}
    need = lambda c: BASE_RSS + c.n_params * per_param[c.entry]  # noqa: E731
    largest = max(cks, key=need)
    what = f"{largest.label} in {dtype[largest.entry]}{', fine-tuned in full' if full else ''}"
    download = sum(c.stored_bytes for c in cks if not c.cached)
    plan = SuitePlan(cks, need(largest), what, download, available_memory(), free_disk(Path(constants.HF_HUB_CACHE)),
                     {"suite": 1, "evaluate": len(cks), "probe": len(cks)})
    if plan.peak_memory > plan.available_memory:
        hint = "set dtype: bfloat16 in its ladder entry, " if dtype[largest.entry] == "float32" else ""
        raise UserError(f"checkpoint {largest.label} ({largest.n_params / 1e6:,.0f}M parameters) needs about "
                        f"{fmt_bytes(plan.peak_memory)} of memory in {what.split(' in ', 1)[1]} but {fmt_bytes(plan.available_memory)} "
                        f"is available; {hint}{'drop full from finetune.methods, ' if full else ''}or drop the entry {largest.entry}")
    if download > plan.free_cache_disk:
        raise UserError(f"the suite's {sum(not c.cached for c in cks)} uncached checkpoint(s) need about {fmt_bytes(download)} "
                        f"in the Hub cache ({constants.HF_HUB_CACHE}) but it has {fmt_bytes(plan.free_cache_disk)} free; "
                        "point HF_HOME at a larger disk or list fewer revisions")
    return plan
