"""The prepare stage: materialise a world into ``data/`` (tokenizer, training order, tasks, latents)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from emergelab.io import atomic_dir, atomic_write_bytes, atomic_write_json, read_json, sha256_bytes
from emergelab.spec import StudySpec
from emergelab.worlds import world_for_spec



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
            **({"tokenizer": spec.tokenizer.model_dump(), "causal": spec.causal} if spec.world == "text" else {})}


def is_prepared(data_dir: Path, spec: StudySpec) -> bool:
    m = data_dir / "manifest.json"
    return m.exists() and read_json(m).get("fingerprint") == json.loads(json.dumps(data_fingerprint(spec)))


def prepare(spec: StudySpec, data_dir: Path) -> dict:
    """Write ``data_dir`` atomically (the whole directory appears at once) and return its manifest."""
    world = world_for_spec(spec)  # text: reads the corpus, prints its summary line
    t = spec.train
    fp = data_fingerprint(spec)
    OFFSET = world.id_offset  # noqa: N806 — symbol id s ↦ token id s + OFFSET
    with atomic_dir(data_dir) as tmp:
        tok = world_tokenizer(world)
        tok.save_pretrained(str(tmp / "tokenizer"))
        pairs = nsp_rows(world, tok, fp["n_blocks"], t.seq_len, spec.seed) if "nsp" in spec.objectives else {}
        train = pairs.pop("input_ids") if pairs else (world.train_blocks(fp["n_blocks"], t.seq_len) + OFFSET).astype(np.int32)
        atomic_write_bytes(tmp / "train.npy", _npy_bytes(train))
        if pairs:  # NSP: the training rows are sentence pairs; their segments and labels sit beside them
            atomic_write_bytes(tmp / "train_pairs.npz", _npz_bytes(pairs))
        heldout_world = world.heldout_world()  # same structure, its held-out stream (text: validation documents)
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
                    "train_sha256": sha256_bytes(train.tobytes() + b"".join(v.tobytes() for v in pairs.values())), "n_train_blocks": int(train.shape[0]),
                    "tasks": tasks, "latents": latents, "summary": world.describe()}
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


def world_tokenizer(world):
    """The world's own tokenizer if it trains one (real text), else a symbol tokenizer."""
    build = getattr(world, "build_tokenizer", None)
    if build is not None:
        return build()
    from emergelab.corpus.tokenizer import symbol_tokenizer

    return symbol_tokenizer(world.symbols)


def nsp_rows(world, tok, n_pairs: int, seq_len: int, seed: int) -> dict[str, np.ndarray]:
    """Sentence pairs for NSP from the world's documents (see objectives/nsp.py), in token ids.

    A world that does not define ``documents()`` gets one-sentence documents of ``seq_len`` − 3 tokens
    from its training stream, so that its pairs fill the sequence without padding.
    """
    from emergelab.errors import UserError
    from emergelab.objectives.nsp import make_pairs
    from emergelab.worlds.base import World, rng_for

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


def load_train(data_dir: Path) -> dict[str, np.ndarray]:
    """The training rows: ``input_ids`` [N, T], plus NSP's ``token_type_ids`` and ``next_sentence_label``."""
    rows = {"input_ids": load_blocks(data_dir)}
    pairs = data_dir / "train_pairs.npz"
    if pairs.exists():
        with np.load(pairs, allow_pickle=False) as z:
            rows.update({k: z[k] for k in ("token_type_ids", "next_sentence_label")})
    return rows


def load_blocks(data_dir: Path, name: str = "train") -> np.ndarray:
    return np.load(data_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False)


def load_task(data_dir: Path, name: str) -> list[dict]:
    with open(data_dir / "tasks" / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_latent(data_dir: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(data_dir / "latents" / f"{name}.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
