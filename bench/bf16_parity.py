"""Loss parity fp32 vs bf16 autocast: the first 50 steps of the smoke ladder, trained twice on the same data.

Reports, per rung, the largest and the mean absolute gap between the two training-loss curves and the
gap at the last step (the numbers docs/benchmarks.md quotes). Not a test: bf16 rounds, so the curves
are close, not equal.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bf16_parity.py [--steps 50]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def curve(root: Path, rung: str) -> dict[int, float]:
    rows = [json.loads(l) for l in (root / "runs" / rung / "logs" / "train.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()

    from emergelab.models.precision import cpu_bf16_units
    from emergelab.study import read_spec, run_stages, run_study

    sets = [f"train.steps={args.steps}", "train.log_every=1", f"train.checkpoint_every={args.steps}", "train.workers=1",
            "train.trackers=[]"]
    print(f"CPU bf16 units: {', '.join(cpu_bf16_units()) or 'none'}; load average {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for bf16 in (False, True):
            root = Path(tmp) / f"bf16-{bf16}"
            spec = read_spec(preset="smoke", overrides=[*sets, f"train.bf16={str(bf16).lower()}"])
            run_study(spec, root, ["prepare"], preflight=False)  # seeded: the same rows in the same order twice
            t0 = time.perf_counter()
            run_stages(root, ["train"], preflight=False)
            roots[bf16] = root
            print(f"train.bf16={str(bf16).lower()}: {time.perf_counter() - t0:.1f} s")
        print(f"| rung | max |fp32 − bf16| over steps 0–{args.steps - 1} | mean | at step {args.steps - 1} | fp32 loss there |")
        print("|---|---:|---:|---:|---:|")
        for rung in read_spec(preset="smoke").ladder:
            a, b = curve(roots[False], rung.name), curve(roots[True], rung.name)
            gaps = [abs(a[s] - b[s]) for s in sorted(a)]
            last = max(a)
            print(f"| {rung.name} | {max(gaps):.2e} | {sum(gaps) / len(gaps):.2e} | {gaps[-1]:.2e} | {a[last]:.4f} |")


if __name__ == "__main__":
    main()
