"""Activation files: per-token hidden states of chosen sites, with token ids and character offsets, as safetensors or Parquet.

What ``last_hidden_state`` examples do by hand, made reusable: every real token (padding dropped) of
every text is one row, in text order. Tensors (safetensors) or columns (Parquet):

- ``input_ids [n_tokens]``, ``sequence [n_tokens]`` (index of the text), ``position [n_tokens]``,
  ``offsets [n_tokens, 2]`` (character span in the text; ``(0, 0)`` for special tokens);
- ``hidden_states.<layer> [n_tokens, d_model]`` per site (see ``probe.sites``; 0 = embeddings),
  float16 in safetensors, float32 in Parquet (one fixed-size list column per site).

The metadata (safetensors header, Parquet schema metadata) holds ``schema_version``, ``model``,
``layers`` and ``sites`` (JSON), so a file describes itself.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from emergelab.errors import UserError
from emergelab.io import atomic_write_bytes
from emergelab.probe.activations import extract_hidden
from emergelab.probe.sites import site_name

__all__ = ["Activations", "collect_activations", "write_activations", "read_activations", "FORMATS"]

SCHEMA_VERSION = 1
FORMATS = {".safetensors": "safetensors", ".parquet": "parquet"}
_INDEX = ("input_ids", "sequence", "position")


@dataclass
class Activations:
    """Per-token activations of ``layers`` (one row per real token, texts in order)."""

    layers: list[int]
    hidden: np.ndarray  # [n_sites, n_tokens, d_model]
    input_ids: np.ndarray  # [n_tokens] int64
    sequence: np.ndarray  # [n_tokens] int64: which text
    position: np.ndarray  # [n_tokens] int64: position in the text's token sequence
    offsets: np.ndarray  # [n_tokens, 2] int64: character span in the text
    metadata: dict = field(default_factory=dict)

    def site(self, layer: int) -> np.ndarray:
        """``[n_tokens, d_model]`` of one site."""
        return self.hidden[self.layers.index(layer)]


def collect_activations(model, tokenizer, texts: Sequence[str], *, layers: Sequence[int], max_length: int = 128,
                        batch_size: int = 32) -> Activations:
    """Hidden states of ``layers`` (resolved indices) for every real token of ``texts``."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("activation files need a fast tokenizer (tokenizer.json) for character offsets")
    parts, ids, seq, pos, offs = [], [], [], [], []
    for lo in range(0, len(texts), batch_size):
        batch = list(texts[lo:lo + batch_size])
        enc = tokenizer(batch, truncation=True, max_length=max_length, padding=True, return_tensors="pt",
                        return_offsets_mapping=True)
        offsets = enc.pop("offset_mapping").numpy()  # [b, T, 2]
        mask = enc["attention_mask"].numpy().astype(bool)  # [b, T]
        hidden = extract_hidden(model, enc["input_ids"], enc["attention_mask"], token_type_ids=enc.get("token_type_ids"),
                                layers=layers, batch_size=batch_size)  # [n_sites, b, T, d_model]
        b, t = np.nonzero(mask)
        parts.append(hidden[:, b, t])
        ids.append(enc["input_ids"].numpy()[b, t])
        seq.append(b + lo)
        pos.append(t)
        offs.append(offsets[b, t])
    if not parts:
        raise UserError("no texts to read activations of; the data file has no non-empty text")
    return Activations(list(layers), np.concatenate(parts, axis=1), *(np.concatenate(x).astype(np.int64) for x in (ids, seq, pos)),
                       np.concatenate(offs).astype(np.int64))


def _metadata(acts: Activations) -> dict[str, str]:
    meta = {"schema_version": str(SCHEMA_VERSION), "layers": json.dumps(acts.layers),
            "sites": json.dumps([site_name(i) for i in acts.layers])}
    return {**{k: str(v) for k, v in acts.metadata.items()}, **meta}


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"--out {path}: give a .safetensors or .parquet file name")
    return FORMATS[suffix]


def write_activations(path: str | Path, acts: Activations) -> None:
    """Write ``acts`` atomically, as safetensors or Parquet by the file's suffix."""
    kind = format_of(path)
    meta = _metadata(acts)
    if kind == "safetensors":
        from safetensors.numpy import save

        tensors = {"input_ids": acts.input_ids, "sequence": acts.sequence, "position": acts.position, "offsets": acts.offsets}
        tensors.update({site_name(i): np.ascontiguousarray(acts.hidden[k], dtype=np.float16) for k, i in enumerate(acts.layers)})
        atomic_write_bytes(path, save(tensors, metadata=meta))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    d_model = acts.hidden.shape[-1]
    columns = {name: pa.array(getattr(acts, name)) for name in _INDEX}
    columns["start"], columns["end"] = pa.array(acts.offsets[:, 0]), pa.array(acts.offsets[:, 1])
    for k, i in enumerate(acts.layers):
        flat = pa.array(np.ascontiguousarray(acts.hidden[k], dtype=np.float32).reshape(-1))
        columns[site_name(i)] = pa.FixedSizeListArray.from_arrays(flat, d_model)
    table = pa.table(columns).replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_activations(path: str | Path) -> Activations:
    """Read a file ``write_activations`` wrote (either format); a foreign file is a UserError."""
    kind = format_of(path)
    try:
        if kind == "safetensors":
            from safetensors import safe_open
            from safetensors.numpy import load_file

            with safe_open(str(path), framework="numpy") as f:
                meta = dict(f.metadata() or {})
            t = load_file(str(path))
            layers = json.loads(meta["layers"])
            hidden = np.stack([t[site_name(i)] for i in layers])
            return Activations(layers, hidden, t["input_ids"], t["sequence"], t["position"], t["offsets"], meta)
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        layers = json.loads(meta["layers"])
        hidden = np.stack([np.stack(table.column(site_name(i)).to_numpy(zero_copy_only=False)) for i in layers])
        offsets = np.stack([table.column("start").to_numpy(), table.column("end").to_numpy()], axis=1)
        return Activations(layers, hidden, *(table.column(n).to_numpy() for n in _INDEX), offsets, meta)
    except Exception as exc:  # safetensors, pyarrow and json each raise their own kind on a foreign file
        raise UserError(f"{path} is not an emergelab activations file ({type(exc).__name__}: {str(exc)[:80]}); "
                        "write one with `emergelab activations`") from None
