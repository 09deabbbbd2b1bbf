"""emergelab vs lm-evaluation-harness: the same checkpoint, the same task YAMLs, request by request.

Builds (once, under --work) a small GPT-2 saved with save_pretrained, a byte-level BPE tokenizer
trained on the Python standard library's docstrings, and two local tasks over JSONL written in
lm-eval's task vocabulary: ``bench_mc`` (multiple_choice, 4 choices) and ``bench_ll``
(loglikelihood). lm-eval (installed in a separate venv, --lmeval-python) builds its requests from
the YAMLs and scores them with ``HFLM.loglikelihood``; emergelab loads the *same* YAMLs and scores
its requests. Prints the largest per-request |Δ log-likelihood|, the is-greedy agreement, and
requests per CPU-second and per wall-second of both at the same batch size and thread count (model
loading and request building are not timed; each side gets one warm-up call). With one thread, CPU
time is what a request costs on an idle core, and it is little disturbed by other processes on a
shared machine; wall time is printed too.

    python3 -m venv /tmp/lmeval-venv
    /tmp/lmeval-venv/bin/pip install torch==2.13.0 transformers==5.24.0 lm-eval==0.4.13
    .venv/bin/python bench/eval_vs_lm_eval.py --batch-size 32 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

LMEVAL_SIDE = textwrap.dedent('''
    import json, sys, time
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict
    model_dir, task_dir, bs, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(threads)
    lm = HFLM(pretrained=model_dir, batch_size=bs, device="cpu", dtype="float32")
    names = json.load(open(task_dir + "/names.json"))
    tasks = get_task_dict(names, TaskManager(include_path=task_dir))
    res = {}
    for name, task in tasks.items():
        task.build_all_requests(rank=0, world_size=1)
        reqs = list(task.instances)
        res[name] = {"requests": [{"doc": r.doc_id, "idx": r.idx, "context": r.args[0], "continuation": r.args[1]} for r in reqs]}
        for cache in (True, False):  # lm-eval's default shares logits of requests equal up to their last token
            lm.logits_cache = cache
            lm.loglikelihood(reqs[:bs], disable_tqdm=True)  # warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            outs = lm.loglikelihood(reqs, disable_tqdm=True)
            key = "cache" if cache else "nocache"
            res[name][key + "_seconds"] = time.perf_counter() - t0
            res[name][key + "_cpu"] = time.process_time() - c0
            for d, o in zip(res[name]["requests"], outs):
                d[key] = [o[0], bool(o[1])]
    json.dump(res, open(out, "w"))
''')

MC_YAML = """task: bench_mc
dataset_path: json
dataset_kwargs:
  data_files: {test: DATA/mc.jsonl}
test_split: test
output_type: multiple_choice
doc_to_text: "{{context}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{label}}"
metric_list:
  - {metric: acc, aggregation: mean, higher_is_better: true}
metadata: {version: 1.0}
"""
#: few-shot variants: an instruction and the first K demonstrations of a separate split (lm-eval's
#: ``first_n`` sampler, as MMLU uses), so every request of the task begins with the same prompt
FEWSHOT = """description: "Finish each passage from the standard library's documentation with its own words.\\n\\n"
num_fewshot: K
fewshot_split: train
fewshot_config: {sampler: first_n}
"""
LL_YAML = """task: bench_ll
dataset_path: json
dataset_kwargs:
  data_files: {test: DATA/ll.jsonl}
test_split: test
output_type: loglikelihood
doc_to_text: "{{context}}"
doc_to_target: "{{continuation}}"
metric_list:
  - {metric: acc, aggregation: mean, higher_is_better: true}
metadata: {version: 1.0}
"""


def corpus_sentences() -> list[str]:
    """English sentences from standard-library docstrings (on every Python install)."""
    import argparse as a, collections, email, http.client, json as j, logging, pathlib, subprocess as s, tarfile, threading, unittest, urllib.request, zipfile  # noqa: E401,I001
    mods = [a, collections, email, http.client, j, logging, pathlib, s, tarfile, threading, unittest, urllib.request, zipfile]
    seen, out = set(), []
    for m in mods:
        for obj in [m, *vars(m).values()]:
            for o in [obj, *(vars(obj).values() if isinstance(obj, type) else [])]:
                doc = getattr(o, "__doc__", None)
                if not isinstance(doc, str) or id(doc) in seen:
                    continue
                seen.add(id(doc))
                for sent in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                    if re.fullmatch(r"[A-Za-z ,'()-]+[.]", sent) and 8 <= len(sent.split()) <= 40:
                        out.append(sent)
    return sorted(set(out))


def task_names(shots: int) -> list[str]:
    return ["bench_mc", "bench_ll"] + ([f"bench_mc_{shots}shot", f"bench_ll_{shots}shot"] if shots else [])


def build_assets(work: Path, n_docs: int, d_model: int, n_layer: int, shots: int = 0, n_fewshot_docs: int = 0) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    sents = corpus_sentences()
    rng = random.Random(0)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(sents, trainers.BpeTrainer(vocab_size=8192, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", model_max_length=512)
    torch.manual_seed(0)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    # GPT-2's vocabulary size (50,257); the BPE trained here uses the first 8,192 ids
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_positions=512, n_embd=d_model, n_layer=n_layer, n_head=d_model // 64,
                                       bos_token_id=eot, eos_token_id=eot))
    model.save_pretrained(work / "model", safe_serialization=True)
    tok.save_pretrained(work / "model")
    (work / "data").mkdir(parents=True, exist_ok=True)

    def passage() -> tuple[str, list[str]]:
        """Two to four sentences, then the first words of one more: a paragraph-length context."""
        lead = " ".join(rng.choice(sents) for _ in range(rng.randint(2, 4)))
        words = rng.choice(sents).split()
        cut = rng.randint(3, len(words) - 2)
        return lead + " " + " ".join(words[:cut]), words[cut:]

    def docs(n: int) -> tuple[list[dict], list[dict]]:
        mc, ll = [], []
        for _ in range(n):
            context, rest = passage()
            ans = " ".join(rest[:rng.randint(1, 3)])
            choices = [" ".join(rng.choice(sents).split()[:rng.randint(1, 3)]) for _ in range(3)]
            label = rng.randint(0, 3)
            choices.insert(label, ans)
            mc.append({"context": context, "choices": choices, "label": label})
            context, rest = passage()
            ll.append({"context": context, "continuation": " " + " ".join(rest[:rng.randint(1, 5)])})
        return mc, ll

    mc, ll = docs(n_docs)
    rows = {"mc": mc, "ll": ll}
    if shots:  # the first documents are the queries, a separate split the demonstrations
        rows["mc_fs"], rows["ll_fs"] = mc[:n_fewshot_docs], ll[:n_fewshot_docs]
        rows["mc_train"], rows["ll_train"] = docs(shots)
    for name, r in rows.items():
        (work / "data" / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in r))
    tasks = work / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "bench_mc.yaml").write_text(MC_YAML.replace("DATA", str(work / "data")))
    (tasks / "bench_ll.yaml").write_text(LL_YAML.replace("DATA", str(work / "data")))
    for kind, yaml in (("mc", MC_YAML), ("ll", LL_YAML)) if shots else ():
        name = f"bench_{kind}_{shots}shot"
        text = (yaml.replace(f"task: bench_{kind}", f"task: {name}")
                .replace(f"{{test: DATA/{kind}.jsonl}}", f"{{test: DATA/{kind}_fs.jsonl, train: DATA/{kind}_train.jsonl}}")
                .replace("DATA", str(work / "data")))
        (tasks / f"{name}.yaml").write_text(text + FEWSHOT.replace("K", str(shots)))
    (tasks / "names.json").write_text(json.dumps(task_names(shots)))


def run_lmeval(python: str, work: Path, bs: int, threads: int) -> dict:
    script = work / "lmeval_side.py"
    script.write_text(LMEVAL_SIDE)
    out = work / "lmeval.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([python, str(script), str(work / "model"), str(work / "tasks"), str(bs), str(threads), str(out)],
                   check=True, env=env)
    return json.loads(out.read_text())


def run_emergelab(work: Path, bs: int, dtype: str = "float32", names: list[str] = ("bench_mc", "bench_ll")) -> dict:
    """Per-request log-likelihoods and timings: each (context, continuation) pair on its own (as lm-eval
    decomposes), and as the evaluate stage scores them, every prefix the requests share run once."""
    from emergelab.evaluate.docs import load_task_data
    from emergelab.evaluate.model import load_model_dir
    from emergelab.evaluate.runner import plan_task
    from emergelab.evaluate.scoring import score_choices, score_continuations
    from emergelab.evaluate.taskspec import load_task_file

    lm = load_model_dir(work / "model", dtype=dtype)
    res = {}
    for name in names:
        spec = load_task_file(work / "tasks" / f"{name}.yaml")
        data = load_task_data(spec)
        _, built = plan_task(lm, spec, data, spec.shots())
        items = next(iter(built.values()))[0]
        pairs, keys = [], []
        for it in items:
            for c, cont in enumerate(it.choices or [it.target]):
                pairs.append((it.context, cont))
                keys.append((it.doc, c))
        score_continuations(lm.model, pairs[:bs], batch_size=bs, pad_id=lm.pad_id)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        scored = score_continuations(lm.model, pairs, batch_size=bs, pad_id=lm.pad_id, share_prefixes=False)
        entry = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "n": len(pairs),
                 "requests": {k: (float(s.logp.sum()), bool(s.greedy.all())) for k, s in zip(keys, scored)}}
        # what the evaluate stage runs: multiple choice through score_choices, the rest through
        # score_continuations, both sharing every common prefix (a question's context, a few-shot prompt)
        t0, c0 = time.perf_counter(), time.process_time()
        if items[0].choices:
            shared = [s for ss in score_choices(lm.model, [(it.context, it.choices) for it in items], batch_size=bs,
                                                pad_id=lm.pad_id) for s in ss]
        else:
            shared = score_continuations(lm.model, pairs, batch_size=bs, pad_id=lm.pad_id)
        entry["shared_seconds"], entry["shared_cpu"] = time.perf_counter() - t0, time.process_time() - c0
        entry["shared"] = {k: float(s.logp.sum()) for k, s in zip(keys, shared)}
        entry["context_tokens"] = sum(len(c) for c, _ in pairs) / len(pairs)
        res[name] = entry
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/emergelab-bench-eval"))
    ap.add_argument("--lmeval-python", default="/tmp/lmeval-venv/bin/python")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-docs", type=int, default=200)
    ap.add_argument("--d-model", type=int, default=256, help="GPT-2 width (GPT-2 small: 768)")
    ap.add_argument("--n-layer", type=int, default=4, help="GPT-2 depth (GPT-2 small: 12)")
    ap.add_argument("--shots", type=int, default=3, help="few-shot variants of both tasks (0: none): a shared "
                    "instruction and the first SHOTS demonstrations of a separate split (lm-eval's first_n sampler)")
    ap.add_argument("--n-fewshot-docs", type=int, default=20, help="queries of each few-shot task (the first documents)")
    ap.add_argument("--bf16", action="store_true", help="also time emergelab in bfloat16 (slow on CPUs without bf16 units)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.work = args.work / f"d{args.d_model}-l{args.n_layer}-n{args.n_docs}-k{args.shots}x{args.n_fewshot_docs}"
    if not (args.work / "model" / "model.safetensors").exists():
        build_assets(args.work, args.n_docs, args.d_model, args.n_layer, args.shots, min(args.n_fewshot_docs, args.n_docs))
    names = task_names(args.shots)
    load = os.getloadavg()[0]
    ours = run_emergelab(args.work, args.batch_size, names=names)
    bf16 = run_emergelab(args.work, args.batch_size, "bfloat16", names=names) if args.bf16 else None
    if not Path(args.lmeval_python).exists():
        sys.exit(f"lm-eval's python {args.lmeval_python} not found; install lm-eval into a separate venv (see the docstring)")
    theirs = run_lmeval(args.lmeval_python, args.work, args.batch_size, args.threads)
    load = max(load, os.getloadavg()[0])
    print(f"\nGPT-2 d_model {args.d_model}, {args.n_layer} layers, vocabulary 50,257; batch size {args.batch_size}, "
          f"{args.threads} thread(s), fp32; load average up to {load:.2f} on {os.cpu_count()} cores")
    print("Requests per CPU-second (1 thread: robust to other processes on a shared machine), then per wall-second.")
    print("lm-eval: HFLM.loglikelihood, default (logits cache on) and no-cache; emergelab: each pair on its own, and")
    print("shared: as the evaluate stage scores, every prefix the requests share (a question's context, a few-shot")
    print("prompt) run once from cached keys/values. |Δll|: per-request difference (both emergelab paths vs no-cache).")
    head = (f"{'task':15} {'ctx tok':>7} {'requests':>8} {'clock':>5} {'lm-eval':>8} {'no-cache':>8} {'emergelab':>9} {'ratio':>6} {'shared':>7} "
            f"{'ratio':>6} {'max|Δll| no-cache':>17} {'max|Δll| default':>16} {'>1e-4':>5} {'greedy agree':>12}")
    if bf16:
        head += f" {'bf16':>7} {'bf16 shared':>11} {'ratio':>6} {'bf16 max|Δll|':>13}"
    print(head)
    summary = {}
    for name in names:
        t, o = theirs[name], ours[name]
        reqs = t["requests"]
        n = len(reqs)
        assert n == o["n"], f"{name}: lm-eval built {n} requests, emergelab {o['n']}"
        d_nc, d_c, agree = [], [], 0
        for r in reqs:
            lls = [o["requests"][(r["doc"], r["idx"])][0]] + ([o["shared"][(r["doc"], r["idx"])]] if "shared" in o else [])
            d_nc += [abs(x - r["nocache"][0]) for x in lls]
            d_c += [abs(lls[0] - r["cache"][0])]
            agree += o["requests"][(r["doc"], r["idx"])][1] == r["nocache"][1]
        for clock, suffix in (("cpu", "_cpu"), ("wall", "_seconds")):
            rate = {"lm-eval": n / t["cache" + suffix], "no-cache": n / t["nocache" + suffix],
                    "emergelab": n / o["cpu" if clock == "cpu" else "seconds"]}
            if "shared_cpu" in o:
                rate["shared"] = n / o["shared" + suffix]
            shared = f"{rate['shared']:7.3g} {rate['shared'] / rate['lm-eval']:6.2f}" if "shared" in rate else f"{'—':>7} {'—':>6}"
            line = (f"{name:15} {o['context_tokens']:7.0f} {n:8d} {clock:>5} {rate['lm-eval']:8.3g} {rate['no-cache']:8.3g} {rate['emergelab']:9.3g} "
                    f"{rate['emergelab'] / rate['lm-eval']:6.2f} {shared} {max(d_nc):17.2e} {max(d_c):16.2e} "
                    f"{sum(x > 1e-4 for x in d_c):5d} {agree:>5d}/{n:<6d}")
            if bf16:
                b = bf16[name]
                b_shared = n / b["shared" + suffix]
                b_diff = max(abs(x - r["nocache"][0]) for r in reqs
                             for x in (b["requests"][(r["doc"], r["idx"])][0], b["shared"][(r["doc"], r["idx"])]))
                line += (f" {n / b['cpu' if clock == 'cpu' else 'seconds']:7.3g} {b_shared:11.3g} "
                         f"{b_shared / rate['lm-eval']:6.2f} {b_diff:13.2e}")
                rate["bf16_shared"] = b_shared
            print(line)
            summary[f"{name}/{clock}"] = rate
        summary[f"{name}/max_abs_diff"] = max(d_nc)
        if bf16:
            summary[f"{name}/bf16_max_abs_diff"] = b_diff
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
