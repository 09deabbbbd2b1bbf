"""The prepare stage: materialise a world into ``data/`` (tokenizer, training order, tasks, latents)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from emergelab.io import atomic_dir, atomic_write_bytes, atomic_write_json, read_json, sha256_bytes
from emergelab.spec import StudySpec
from emergelab.worlds import make_world



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
            "probe_sequences": spec.probe.n_sequences}


def is_prepared(data_dir: Path, spec: StudySpec) -> bool:
    m = data_dir / "manifest.json"
    return m.exists() and read_json(m).get("fingerprint") == json.loads(json.dumps(data_fingerprint(spec)))


def prepare(spec: StudySpec, data_dir: Path) -> dict:
    """Write ``data_dir`` atomically (the whole directory appears at once) and return its manifest."""
    world = make_world(spec.world, spec.world_args, spec.seed)
    t = spec.train
    fp = data_fingerprint(spec)
    OFFSET = world.id_offset  # noqa: N806 — symbol id s ↦ token id s + OFFSET
    with atomic_dir(data_dir) as tmp:
        tok = world_tokenizer(world)
        tok.save_pretrained(str(tmp / "tokenizer"))
        train = (world.train_blocks(fp["n_blocks"], t.seq_len) + OFFSET).astype(np.int32)
        atomic_write_bytes(tmp / "train.npy", _npy_bytes(train))
        heldout_world = make_world(spec.world, spec.world_args, spec.seed + 1_000_003)
        heldout = (heldout_world.train_blocks(spec.eval.heldout_sequences, t.seq_len) + OFFSET).astype(np.int32)
        atomic_write_bytes(tmp / "heldout.npy", _npy_bytes(heldout))
        tasks = {}
        for ts in world.tasks(spec.eval.n_examples):
            lines = [json.dumps({"prompt": [x + OFFSET for x in e.prompt], "target": [x + OFFSET for x in e.target],
                                 **({"choices": [[x + OFFSET for x in c] for c in e.choices]} if e.choices else {})})
                     for e in ts.examples]
            atomic_write_bytes(tmp / "tasks" / f"{ts.name}.jsonl", ("\n".join(lines) + "\n").encode())
            tasks[ts.name] = {"description": ts.description, "chance": ts.chance, "answer_length": ts.answer_length,
                              "n": len(ts.examples),
                              "fewshot_delimiter": None if ts.fewshot_delimiter is None else [x + OFFSET for x in ts.fewshot_delimiter]}
        latents = {}
        for ls in world.latents(spec.probe.n_sequences, t.seq_len):
            buf = io.BytesIO()
            np.savez(buf, input_ids=(ls.input_ids + OFFSET).astype(np.int32), labels=ls.labels.astype(np.int64))
            atomic_write_bytes(tmp / "latents" / f"{ls.name}.npz", buf.getvalue())
            latents[ls.name] = {"description": ls.description, "label_names": ls.label_names, "level": ls.level}
        manifest = {"fingerprint": fp, "world": world.name, "vocab_size": len(tok), "seq_len": t.seq_len,
                    "train_sha256": sha256_bytes(train.tobytes()), "n_train_blocks": int(train.shape[0]),
                    "tasks": tasks, "latents": latents}
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


def world_tokenizer(world):
    """The world's own tokenizer if it trains one (real text), else a symbol tokenizer."""
    build = getattr(world, "build_tokenizer", None)
    if build is not None:
        return build()
    from emergelab.corpus.tokenizer import symbol_tokenizer

    return symbol_tokenizer(world.symbols)


def load_blocks(data_dir: Path, name: str = "train") -> np.ndarray:
    return np.load(data_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False)


def load_task(data_dir: Path, name: str) -> list[dict]:
    with open(data_dir / "tasks" / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_latent(data_dir: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(data_dir / "latents" / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
