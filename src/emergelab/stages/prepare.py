"""The prepare stage: materialise a world into ``data/`` (tokenizer, training order, tasks, latents).

One unit, the data directory; it is current when its manifest records the fingerprint of the spec's
data settings. ``resolve`` checks the world's name and parameters (filling their defaults, which the
spec hash covers).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from emergelab.errors import UserError
from emergelab.io import atomic_dir, atomic_write_bytes, atomic_write_json, read_json, sha256_bytes
from emergelab.layout import DataDir, Layout
from emergelab.objectives.nsp import make_pairs
from emergelab.spec import StudySpec, first_error
from emergelab.stages.base import Stage, Unit
from emergelab.worlds import WORLDS, World, rng_for, world_for_spec, world_tokenizer


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def data_fingerprint(spec: StudySpec) -> dict:
    """What the data depends on; a change re-prepares it."""
    t = spec.train
    return {"world": spec.world, "world_args": spec.world_args, "corpus": spec.corpus, "seed": spec.seed,
            "n_blocks": t.steps * t.batch_size * t.grad_accum, "seq_len": t.seq_len,
            "n_examples": spec.eval.n_examples, "heldout": spec.eval.heldout_sequences,
            "probe_sequences": spec.probe.n_sequences,
            **({"nsp_pairs": True} if "nsp" in spec.objectives else {}),
            **({"seeds": spec.seeds} if spec.seeds else {}),
            **({"tokenizer": spec.tokenizer.model_dump(), "causal": spec.causal} if spec.world == "text" else {})}


def is_prepared(data_dir: Path, spec: StudySpec) -> bool:
    m = data_dir / "manifest.json"
    return m.exists() and read_json(m).get("fingerprint") == json.loads(json.dumps(data_fingerprint(spec)))


def prepare(spec: StudySpec, data_dir: Path) -> dict:
    """Write ``data_dir`` atomically (the whole directory appears at once) and return its manifest."""
    world = world_for_spec(spec)  # text: reads the corpus, prints its summary line
    t = spec.train
    fp = data_fingerprint(spec)
    with atomic_dir(data_dir) as tmp:
        tok = world_tokenizer(world)
        tok.save_pretrained(str(tmp / "tokenizer"))
        shas = {seed: _write_train(tmp, world, tok, spec, seed) for seed in spec.replicate_seeds()}
        heldout_world = world.heldout_world()  # same structure, its held-out stream (text: validation documents)
        heldout = (heldout_world.train_blocks(spec.eval.heldout_sequences, t.seq_len) + world.id_offset).astype(np.int32)
        atomic_write_bytes(tmp / "heldout.npy", _npy_bytes(heldout))
        manifest = {"fingerprint": fp, "world": world.name, "vocab_size": len(tok), "seq_len": t.seq_len,
                    "train_sha256": shas[spec.seed] if spec.seed in shas else "", "n_train_blocks": fp["n_blocks"],
                    **({"replicate_train_sha256": {str(k): v for k, v in shas.items()}} if spec.seeds else {}),
                    "tasks": _write_tasks(tmp, world, spec), "latents": _write_latents(tmp, world, spec),
                    "mechanisms": [x.as_dict() for x in world.mechanisms()] + [m.model_dump() for m in spec.mechanisms or []],
                    "summary": world.describe()}
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


def _write_train(tmp: Path, world, tok, spec: StudySpec, seed: int) -> str:
    """One replicate's training rows (the study's own seed: ``train.npy``); returns their sha256."""
    t, offset = spec.train, world.id_offset  # symbol id s ↦ token id s + offset
    replica = None if seed == spec.seed else seed
    stream = world.with_replica(replica)
    n_blocks = t.steps * t.batch_size * t.grad_accum
    pairs = nsp_rows(stream, tok, n_blocks, t.seq_len, seed) if "nsp" in spec.objectives else {}
    train = pairs.pop("input_ids") if pairs else (stream.train_blocks(n_blocks, t.seq_len) + offset).astype(np.int32)
    suffix = DataDir.replica_suffix(replica)
    atomic_write_bytes(tmp / f"train{suffix}.npy", _npy_bytes(train))
    if pairs:  # NSP: the training rows are sentence pairs; their segments and labels sit beside them
        atomic_write_bytes(tmp / f"train_pairs{suffix}.npz", _npz_bytes(pairs))
    return sha256_bytes(train.tobytes() + b"".join(v.tobytes() for v in pairs.values()))


def _write_tasks(tmp: Path, world, spec: StudySpec) -> dict:
    offset, tasks = world.id_offset, {}
    for ts in world.tasks(spec.eval.n_examples):
        lines = [json.dumps({"prompt": [x + offset for x in e.prompt], "target": [x + offset for x in e.target],
                             **({"choices": [[x + offset for x in c] for c in e.choices]} if e.choices else {})})
                 for e in ts.examples]
        atomic_write_bytes(tmp / "tasks" / f"{ts.name}.jsonl", ("\n".join(lines) + "\n").encode())
        tasks[ts.name] = {"description": ts.description, "chance": ts.chance, "answer_length": ts.answer_length,
                          "n": len(ts.examples),
                          "fewshot_delimiter": None if ts.fewshot_delimiter is None else [x + offset for x in ts.fewshot_delimiter]}
    return tasks


def _write_latents(tmp: Path, world, spec: StudySpec) -> dict:
    offset, latents = world.id_offset, {}
    for ls in world.latents(spec.probe.n_sequences, spec.train.seq_len):
        buf = io.BytesIO()
        np.savez(buf, input_ids=(ls.input_ids + offset).astype(np.int32), labels=ls.labels.astype(np.int64))
        atomic_write_bytes(tmp / "latents" / f"{ls.name}.npz", buf.getvalue())
        latents[ls.name] = {"description": ls.description, "label_names": ls.label_names, "level": ls.level}
    return latents


def nsp_rows(world, tok, n_pairs: int, seq_len: int, seed: int) -> dict[str, np.ndarray]:
    """Sentence pairs for NSP from the world's documents (see objectives/nsp.py), in token ids.

    A world that does not define ``documents()`` gets one-sentence documents of ``seq_len`` − 3 tokens
    from its training stream, so that its pairs fill the sequence without padding.
    """
    if tok.cls_token_id is None or tok.sep_token_id is None or tok.pad_token_id is None:
        raise UserError("objectives [mlm, nsp] need a tokenizer with [CLS], [SEP] and [PAD] tokens; use objectives [mlm]")
    if type(world).documents is World.documents:
        docs = [[b] for b in world.train_blocks(n_pairs, seq_len - 3)]
    else:
        docs = world.documents(n_pairs)
    off = world.id_offset
    docs = [[np.asarray(s, dtype=np.int64) + off for s in d] for d in docs]
    try:
        return make_pairs(docs, n_pairs, seq_len, cls_id=tok.cls_token_id, sep_id=tok.sep_token_id,
                          pad_id=tok.pad_token_id, rng=rng_for(seed, "nsp/pairs"))
    except ValueError as exc:
        raise UserError(f"world {world.name}: {exc}; use objectives [mlm]") from None


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ------------------------------------------------------------------ the stage contract

def resolve(spec: StudySpec) -> StudySpec:
    """The world must exist; its parameters are checked and their defaults filled in (a suite may have none)."""
    if spec.world is None:
        return spec
    if spec.world not in WORLDS:
        raise UserError(f"world: unknown world {spec.world!r}; allowed: {', '.join(sorted(WORLDS))}")
    try:
        params = WORLDS[spec.world].Params(**spec.world_args)
    except ValidationError as exc:
        raise UserError(f"world_args.{first_error(exc, WORLDS[spec.world].Params)}") from None
    _check_loss_after(spec, params)
    return spec.model_copy(update={"world_args": params.model_dump()})


def _check_loss_after(spec: StudySpec, params) -> None:
    """``train.loss_after`` names one of the world's symbols (a text world's tokens are not known here)."""
    after = spec.train.loss_after
    if after is None:
        return
    if spec.world == "text":
        raise UserError("train.loss_after: a text world's tokens are learned from its corpus; the option takes a "
                        "symbol of a synthetic world (e.g. '=' of modular)")
    symbols = WORLDS[spec.world](params, spec.seed).symbols
    if after not in symbols:
        shown = ", ".join(repr(s) for s in symbols[:12]) + (", …" if len(symbols) > 12 else "")
        raise UserError(f"train.loss_after: {after!r} is not a symbol of world {spec.world}; its symbols: {shown}")


def todo(spec: StudySpec, lay: Layout) -> list[Unit]:
    if spec.world is None:  # a suite scored on task files and labelled data: no world to prepare
        return []
    return [] if is_prepared(lay.data, spec) else [Unit("prepare", ("data",))]


def run(spec: StudySpec, lay: Layout, units: list[Unit], progress=None) -> int:
    prepare(spec, lay.data)
    return 1


STAGE = Stage("prepare", todo, run, resolve=resolve, status="preparing data")
