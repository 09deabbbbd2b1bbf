"""This machine's speed for a study's rungs: a few timed training steps and forward passes, cached.

The measurements run in a spawned process (so that its peak RSS is a worker's, and the driver stays
free of torch); the cache (``$EMERGELAB_CACHE`` or ``~/.cache/emergelab/calibration.json``) is keyed by
the machine (CPU model, cores, torch build) and by everything of the spec a step's time depends on.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from emergelab.io import atomic_write_json, read_json
from emergelab.spec import Rung, StudySpec

CACHE_VERSION = 2  # 2: train.bf16 auto means bf16 on CPUs with bf16 units


def cache_path() -> Path:
    root = os.environ.get("EMERGELAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emergelab")
    return Path(root) / "calibration.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What a step's time depends on besides the spec."""
    from importlib.metadata import version

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(), "torch": version("torch"),
            "cache": CACHE_VERSION}


def rung_key(spec: StudySpec, rung: Rung, vocab_size: int) -> str:
    t = spec.train
    facts = {"rung": rung.model_dump(exclude={"name"}), "vocab": vocab_size, "objectives": spec.objectives,
             "batch": t.batch_size, "accum": t.grad_accum, "seq_len": t.seq_len, "threads": t.threads,
             "bf16": str(t.bf16), "device": t.device, "compile": t.compile, "eval_batch": spec.eval.batch_size}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _measure(spec: StudySpec, rungs: list[Rung], vocab_size: int) -> dict[str, dict]:
    """In a fresh process: each rung timed, largest first (so the first peak RSS is the largest unit's)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from emergelab.train.calibrate import time_rung  # torch: in the calibration process only

    out = {}
    for rung in rungs:
        out[rung.name] = time_rung(spec, rung, vocab_size)
    return out


def calibrate(spec: StudySpec, vocab_size: int, *, use_cache: bool = True) -> tuple[dict[str, dict], str, float]:
    """(per-rung timings, "cached" | "measured", seconds the measurement took)."""
    path = cache_path()
    mkey = hashlib.sha256(json.dumps(machine(), sort_keys=True).encode()).hexdigest()[:16]
    cache = {}
    if use_cache and path.exists():
        try:
            cache = read_json(path)
        except (OSError, ValueError):
            cache = {}
    known = cache.get(mkey, {})
    keys = {r.name: rung_key(spec, r, vocab_size) for r in spec.ladder}
    todo = [r for r in spec.rungs_by_size() if keys[r.name] not in known]
    t0 = time.perf_counter()
    if todo:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            measured = pool.submit(_measure, spec, todo, vocab_size).result()
        for name, res in measured.items():
            known[keys[name]] = res
        cache[mkey] = known
        try:
            atomic_write_json(path, cache)
        except OSError:  # a read-only home: the numbers are still used for this run
            pass
    return {r.name: known[keys[r.name]] for r in spec.ladder}, ("measured" if todo else "cached"), time.perf_counter() - t0
