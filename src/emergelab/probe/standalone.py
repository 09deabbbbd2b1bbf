"""Probing any local Hugging Face model on labelled data: word tags (first sub-token) or sequence classes (pooled)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from emergelab.errors import UserError
from emergelab.models.local import check_model_dir, load_config_and_tokenizer, load_pretrained
from emergelab.probe.activations import extract_hidden, pool, resolve_layers
from emergelab.probe.baselines import probe_baseline_rows, probe_baselines
from emergelab.probe.linear import probe_layer, probe_rows, split_by_sequence

__all__ = ["load_local_model", "Features", "tag_features", "classify_features", "probe_features", "features_baselines",
           "probe_labelled", "resolve_sites"]

def load_local_model(model_dir: str | Path, *, trust_remote_code: bool = False):
    """``(model, tokenizer)`` from a local directory: safetensors weights only, eval mode.

    ``AutoModel`` gives the transformer body (an LM head, if saved, is not needed for activations).
    """
    import torch
    from transformers import AutoModel

    path = check_model_dir(model_dir)
    _, tokenizer = load_config_and_tokenizer(path, trust_remote_code=trust_remote_code)
    model = load_pretrained(AutoModel, path, trust_remote_code=trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    if tokenizer.pad_token is None:  # GPT-2 / Llama tokenizers ship without one; padded positions are masked anyway
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
    tokenizer.padding_side = "right"  # real tokens first: causal positions never see padding
    return model, tokenizer


@dataclass
class Features:
    """Probe inputs: activations ``X [n_sites, N, d_model]`` for the sites ``layers``, and one row per example."""

    layers: list[int]
    X: np.ndarray  # [n_sites, N, d_model] float16
    y: np.ndarray  # [N] labels
    groups: np.ndarray  # [N] sequence of each row
    token_types: np.ndarray  # [N] what the control task keys on
    n_dropped: int = 0  # labelled words lost to truncation or to producing no sub-token
    words: np.ndarray | None = None  # [N] the word of each row (tagging): the word-lookup baseline keys on it


def _encode(tokenizer, batch, *, max_length: int, split_words: bool):
    return tokenizer(batch, is_split_into_words=split_words, truncation=True, max_length=max_length,
                     padding=True, return_tensors="pt")


def _hidden(model, enc, layers, batch_size):
    return extract_hidden(model, enc["input_ids"], enc["attention_mask"], token_type_ids=enc.get("token_type_ids"),
                          layers=layers, batch_size=batch_size)  # [n_sites, b, T, d_model]


def _n_sites(model) -> int:
    config = model.config
    n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if n_layers is None:
        raise UserError(f"cannot tell how many layers {type(model).__name__} has (no num_hidden_layers in its config)")
    return int(n_layers) + 1


def _resolve(layers: Sequence[int] | None, n_sites: int) -> list[int]:
    try:
        return sorted(set(resolve_layers(layers, n_sites)))
    except ValueError:
        bad = [i for i in layers if not -n_sites <= i < n_sites]
        raise UserError(f"--layers {bad} out of range: this model has layers 0..{n_sites - 1} (0 = embeddings)") from None


def resolve_sites(model, layers: Sequence[int] | None) -> list[int]:
    """The hidden-state indices ``layers`` names for ``model`` (all by default); out of range is a UserError."""
    return _resolve(layers, _n_sites(model))


def tag_features(model, tokenizer, tokens: Sequence[Sequence[str]], labels: Sequence[Sequence[Any]], *,
                 layers: Sequence[int] | None = None, max_length: int = 128, batch_size: int = 32) -> Features:
    """One row per word: the activation of its first sub-token; control type = that sub-token's id."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("tagging needs a fast tokenizer (tokenizer.json) to align words with sub-tokens")
    sites = _resolve(layers, _n_sites(model))
    X_parts, y, groups, types, row_words = [], [], [], [], []
    n_dropped = 0
    for lo in range(0, len(tokens), batch_size):
        words = [list(w) for w in tokens[lo:lo + batch_size]]
        tags = labels[lo:lo + batch_size]
        enc = _encode(tokenizer, words, max_length=max_length, split_words=True)
        ids = enc["input_ids"].numpy()
        rows_b, rows_t = [], []
        for b, (ws, ts) in enumerate(zip(words, tags)):
            if len(ws) != len(ts):
                raise UserError(f"sentence {lo + b} has {len(ws)} words but {len(ts)} labels")
            first: dict[int, int] = {}
            for t, w in enumerate(enc.word_ids(b)):
                if w is not None and w not in first:
                    first[w] = t
            n_dropped += len(ws) - len(first)
            for w, t in sorted(first.items()):
                rows_b.append(b)
                rows_t.append(t)
                y.append(ts[w])
                row_words.append(ws[w])
                groups.append(lo + b)
                types.append(int(ids[b, t]))
        if rows_b:
            hidden = _hidden(model, enc, sites, batch_size)
            X_parts.append(hidden[:, rows_b, rows_t])  # [n_sites, rows, d_model]
    if not X_parts:
        raise UserError("no labelled word survived tokenisation; check the data file and --max-length")
    return Features(sites, np.concatenate(X_parts, axis=1), np.asarray(y), np.asarray(groups), np.asarray(types), n_dropped,
                    np.asarray(row_words, dtype=object).astype(str))


def classify_features(model, tokenizer, texts: Sequence[str], labels: Sequence[Any], *,
                      layers: Sequence[int] | None = None, how: str = "mean", max_length: int = 128,
                      batch_size: int = 32) -> Features:
    """One row per text: its pooled activation; control type = the text itself (duplicates share a label)."""
    if len(texts) != len(labels):
        raise UserError(f"{len(texts)} texts but {len(labels)} labels")
    sites = _resolve(layers, _n_sites(model))
    X_parts = []
    for lo in range(0, len(texts), batch_size):
        enc = _encode(tokenizer, list(texts[lo:lo + batch_size]), max_length=max_length, split_words=False)
        hidden = _hidden(model, enc, sites, batch_size)
        X_parts.append(pool(hidden, enc["attention_mask"].numpy(), how).astype(np.float16))  # [n_sites, b, d_model]
    _, types = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    return Features(sites, np.concatenate(X_parts, axis=1), np.asarray(labels), np.arange(len(texts)), types)


def _layer_results(features: Features, seed: int, test_size: float, workers: int):
    """``probe_layer`` of every site, in order; sites fitted ``workers`` at a time in separate processes
    (one BLAS thread each: every fit is independent, so the results do not depend on ``workers``)."""
    jobs = ((features.X[k].astype(np.float32), features.y) for k in range(len(features.layers)))
    kw = dict(groups=features.groups, token_types=features.token_types, seed=seed, test_size=test_size)
    n_jobs = max(1, min(workers, len(features.layers)))
    if n_jobs == 1:
        yield from (probe_layer(X, y, **kw) for X, y in jobs)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", n_jobs=n_jobs, inner_max_num_threads=1):
        yield from Parallel(return_as="generator")(delayed(probe_layer)(X, y, **kw) for X, y in jobs)


def probe_features(features: Features, *, task: str, seed: int = 0, test_size: float = 0.3, workers: int = 1,
                   on_layer: Callable[[int, dict], None] | None = None, **fields: Any) -> list[dict[str, Any]]:
    """Probe every site of ``features`` (``workers`` sites at a time); measurement rows for all of them
    (``on_layer`` sees each result, in site order), then the baselines' rows (majority; word lookup for
    tags) on the probes' own split."""
    rows = []
    for layer, result in zip(features.layers, _layer_results(features, seed, test_size, workers)):
        if on_layer is not None:
            on_layer(layer, result)
        rows += probe_rows(result, task=task, layer=layer, seed=seed, **fields)
    return rows + probe_baseline_rows(features_baselines(features, seed=seed, test_size=test_size), task=task,
                                      seed=seed, **fields)


def features_baselines(features: Features, *, seed: int = 0, test_size: float = 0.3) -> dict[str, Any]:
    """The baselines of ``features`` on the split ``probe_layer`` uses (same seed, same test rows)."""
    train, test = split_by_sequence(features.groups, test_size=test_size, seed=seed)
    return probe_baselines(features.y, train, test, token_types=features.words)


def _subset(n: int, max_examples: int | None, seed: int) -> np.ndarray:
    if max_examples is None or n <= max_examples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_examples, replace=False))


def _checkpoint_fields(model_dir: Path, model) -> dict[str, Any]:
    """Row columns naming the model: its directory as rung, and step/tokens from an emergelab manifest if any."""
    fields = {"rung": model_dir.resolve().name, "n_params": int(model.num_parameters())}
    manifest = model_dir / "checkpoint.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            fields.update(step=int(m.get("step", 0)), tokens=int(m.get("tokens_seen", 0)), flops=float(m.get("flops", 0.0)))
        except (ValueError, TypeError, OSError):
            pass  # a foreign or damaged manifest only loses the step column
    return fields


def probe_labelled(model_dir: str | Path, data, *, task: str, layers: Sequence[int] | None = None,
                   max_examples: int | None = 2000, seed: int = 0, max_length: int = 128, batch_size: int = 32,
                   how: str = "mean", on_layer: Callable[[int, dict], None] | None = None,
                   trust_remote_code: bool = False, workers: int = 1) -> tuple[list[dict], Features]:
    """Load ``model_dir``, featurise ``data`` (a ``LabelledData``) and probe every layer; ``(rows, features)``."""
    model_dir = Path(model_dir)
    model, tokenizer = load_local_model(model_dir, trust_remote_code=trust_remote_code)
    if data.task == "tag":
        if data.tokens is None:
            raise UserError("tag data has no word tokens")
        keep = _subset(len(data.tokens), max_examples, seed)
        features = tag_features(model, tokenizer, [data.tokens[i] for i in keep], [data.labels[i] for i in keep],
                                layers=layers, max_length=max_length, batch_size=batch_size)
    elif data.task == "classify":
        if data.texts is None:
            raise UserError("classification data has no texts")
        keep = _subset(len(data.texts), max_examples, seed)
        features = classify_features(model, tokenizer, [data.texts[i] for i in keep], [data.labels[i] for i in keep],
                                     layers=layers, how=how, max_length=max_length, batch_size=batch_size)
    else:
        raise UserError(f"unknown task {data.task!r}; expected tag or classify")
    rows = probe_features(features, task=task, seed=seed, on_layer=on_layer, workers=workers,
                          **_checkpoint_fields(model_dir, model))
    return rows, features
