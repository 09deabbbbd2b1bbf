"""Fine-tuning methods on a tiny BERT: each learns while training only its own parameters; saved runs
reload exactly; merged LoRA equals unmerged; AdaLoRA reallocates ranks; sweeps resume."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from emergelab.corpus.labelled import LabelledData
from emergelab.errors import UserError
from emergelab.finetune import FinetuneConfig, export_merged, finetune, finetune_sweep, load_finetuned, summarize
from emergelab.finetune.encode import IGNORE, encode
from emergelab.finetune.evaluate import macro_f1
from emergelab.finetune.methods import wrap_model
from emergelab.finetune.model_dir import check_model_dir, load_task_model
from emergelab.finetune.sampling import check_label_counts, holdout_split, label_subset
from emergelab.finetune.saved import Finetuned

torch.set_num_threads(1)
N_GROUPS, PER_GROUP = 4, 5  # words w0..w19 in 4 groups of 5
METHOD_LR = {"full": 1e-3, "lora": 1e-2, "adalora": 1e-2, "ia3": 3e-2, "adapter": 1e-2}


def sentences(n: int, seed: int) -> list[tuple[list[str], int]]:
    """Sentences of 3-7 words all drawn from one of 4 word groups; the group is the latent class."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        g = rng.randrange(N_GROUPS)
        out.append(([f"w{PER_GROUP * g + rng.randrange(PER_GROUP)}" for _ in range(rng.randint(3, 7))], g))
    return out


def toy_classify(n: int = 300, seed: int = 2) -> LabelledData:
    """Binary task: groups 0-1 are 'neg', 2-3 are 'pos' (a separable task)."""
    s = sentences(n, seed)
    return LabelledData.from_texts([" ".join(w) for w, _ in s], ["pos" if g >= 2 else "neg" for _, g in s], source="toy.csv")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A tiny BERT (2 layers, d=32) 'pretrained' for a few steps to tell the 4 word groups apart.

    A random frozen BERT passes almost nothing from the words to [CLS], so parameter-efficient
    methods would have nothing to adapt; brief pretraining makes it a realistic base.
    """
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    d = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(N_GROUPS * PER_GROUP)] + ["##s"]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32, num_labels=N_GROUPS)
    model = BertForSequenceClassification(cfg)
    data = sentences(512, 1)
    enc = tok([" ".join(w) for w, _ in data], padding=True, return_tensors="pt")
    y = torch.tensor([g for _, g in data])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(100):
        i = torch.randint(0, len(data), (32,))
        model(input_ids=enc["input_ids"][i], attention_mask=enc["attention_mask"][i], labels=y[i]).loss.backward()
        opt.step()
        opt.zero_grad()
    model.bert.save_pretrained(d)  # the backbone only, like a pretrained encoder without a head
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def runs(base_dir, tmp_path_factory) -> dict[str, dict]:
    """One saved run per method (30 steps), with the trained model kept in memory."""
    out = {}
    data = toy_classify()
    for method, lr in METHOD_LR.items():
        run_dir = tmp_path_factory.mktemp(f"run-{method}")
        rec = finetune(base_dir, data, config=FinetuneConfig(method=method, steps=30, lr=lr), eval_size=100,
                       out_dir=run_dir, seed=0)
        out[method] = {**rec, "dir": run_dir}
    return out


def backbone_changes(model, base_dir: Path) -> list[str]:
    """Names of base-model weights whose values differ from the base directory's safetensors."""
    from safetensors.torch import load_file

    saved = load_file(str(base_dir / "model.safetensors"))
    current = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        current[name.removeprefix("bert.")] = t
    assert set(saved) <= set(current), set(saved) - set(current)
    return [n for n, t in saved.items() if not torch.equal(t, current[n].detach().cpu())]


@pytest.mark.parametrize("method", list(METHOD_LR))
def test_each_method_learns_training_only_its_parameters(runs, base_dir, method):
    rec = runs[method]
    assert rec["eval"]["accuracy"] >= 0.9 > rec["eval"]["majority_baseline"] + 0.2
    assert rec["eval"]["n"] == 100 and rec["k_shot"] == 200
    changed = backbone_changes(rec["model"], base_dir)
    if method == "full":
        assert len(changed) > 20 and rec["trainable_fraction"] == 1.0
    else:
        assert changed == []  # the frozen base is bit-for-bit the base directory's weights
        assert 0 < rec["trainable_fraction"] < 0.25
        own = {"lora": "lora_", "adalora": "lora_", "ia3": "ia3_", "adapter": "bottleneck_adapters."}[method]
        trainable = [n for n, p in rec["model"].named_parameters() if p.requires_grad]
        assert trainable and all(own in n or "classifier" in n for n in trainable)


@pytest.mark.parametrize("method", list(METHOD_LR))
def test_saved_run_reloads_and_reproduces_predictions(runs, method):
    rec, texts = runs[method], toy_classify(40, seed=9).texts
    expected = torch.stack(Finetuned(rec["model"], rec["tokenizer"], rec).logits(texts))
    reloaded = load_finetuned(rec["dir"])
    assert torch.allclose(torch.stack(reloaded.logits(texts)), expected, atol=1e-5)
    assert reloaded.predict(texts[:3]) == [reloaded.label_names[int(l.argmax())] for l in expected[:3]]


@pytest.mark.parametrize("method", ["lora", "adalora", "ia3"])
def test_merged_export_gives_the_same_logits(runs, tmp_path, method):
    from transformers import AutoModelForSequenceClassification

    rec = runs[method]
    adapter_weights = [p for n, p in rec["model"].named_parameters() if "lora_B" in n or "ia3_" in n]
    assert any(float(p.detach().abs().max()) > 0 and not torch.all(p == 1) for p in adapter_weights)  # non-trivial adapter
    ft = load_finetuned(rec["dir"])
    texts = toy_classify(40, seed=9).texts
    export_merged(rec["dir"], tmp_path / "merged")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged", use_safetensors=True).eval()
    assert not any("lora" in k or "ia3" in k for k in plain.state_dict())
    assert plain.config.id2label == {0: "neg", 1: "pos"}
    merged = Finetuned(plain, ft.tokenizer, ft.record).logits(texts)
    assert torch.allclose(torch.stack(merged), torch.stack(ft.logits(texts)), atol=1e-5)


def test_adapter_runs_cannot_be_merged(runs, tmp_path):
    with pytest.raises(UserError, match="cannot be merged"):
        export_merged(runs["adapter"]["dir"], tmp_path / "x")


def test_adalora_reallocates_ranks(runs):
    rec = runs["adalora"]
    ranks = rec["adalora_ranks"]
    cfg = FinetuneConfig()
    assert len(ranks) == 4 and rec["adalora_initial_rank"] == cfg.adalora_init_r
    assert sum(ranks.values()) == cfg.adalora_target_r * len(ranks)  # the final budget
    assert len(set(ranks.values())) > 1  # unequal: the budget went where it mattered


def test_houlsby_adapters_and_causal_tagging(tmp_path):
    """GPT-2 (Conv1D layers, no pad token): Houlsby adapters on classification, LoRA on word tags."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    words = [f"w{i}" for i in range(N_GROUPS * PER_GROUP)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator([" ".join(words)] * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    merges = [tuple(m) for m in json.loads(bpe.to_str())["model"]["merges"]]
    tok = GPT2Tokenizer(vocab=bpe.get_vocab(), merges=merges)
    torch.manual_seed(0)
    eos = tok.eos_token_id
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                               bos_token_id=eos, eos_token_id=eos)).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    s = sentences(200, 3)
    cls = finetune(tmp_path / "gpt2", toy_classify(200), eval_size=50, out_dir=tmp_path / "cls",
                   config=FinetuneConfig(method="adapter", adapter_kind="houlsby", steps=60, lr=3e-2))
    assert cls["eval"]["accuracy"] >= 0.75  # a random GPT-2 is a weak base: ~0.85 here, chance 0.5
    assert sum("bottleneck_adapters" in n for n, _ in cls["model"].named_parameters()) == 2 * 2 * 4  # 2 sites x 2 layers
    tags = LabelledData.from_tagged([w for w, _ in s], [[f"G{int(x[1:]) // PER_GROUP}" for x in w] for w, _ in s])
    rec = finetune(tmp_path / "gpt2", tags, eval_size=50, out_dir=tmp_path / "tag",
                   config=FinetuneConfig(method="lora", steps=40, lr=1e-2))
    assert rec["task"] == "tag" and rec["label_subtoken"] == "last" and rec["eval"]["accuracy"] >= 0.8
    held_out = tags.subset(holdout_split(len(tags), 50)[1])
    assert rec["eval"]["n"] == sum(len(t) for t in held_out.tokens)  # every word scored once
    ft = load_finetuned(tmp_path / "tag")
    pred = ft.predict([["w0", "w19", "w7"]])
    assert len(pred[0]) == 3 and all(p in ft.label_names for p in pred[0])


def test_word_labels_go_on_first_subtoken(base_dir):
    from emergelab.finetune.model_dir import load_tokenizer

    tok = load_tokenizer(base_dir, task="tag")
    data = LabelledData.from_tagged([["w1s", "w2"]], [["A", "B"]])  # w1s -> w1 ##s
    enc = encode(tok, data, max_length=16)
    assert tok.convert_ids_to_tokens(enc.input_ids[0]) == ["[CLS]", "w1", "##s", "w2", "[SEP]"]
    assert enc.labels[0] == [IGNORE, 0, IGNORE, 1, IGNORE] and enc.n_scored() == 2
    last = encode(tok, data, max_length=16, subtoken="last")  # for causal models
    assert last.labels[0] == [IGNORE, IGNORE, 0, 1, IGNORE]
    cut = encode(tok, LabelledData.from_tagged([["w1", "w2", "w3", "w4"]], [["A", "B", "A", "B"]]), max_length=4)
    assert cut.labels[0] == [IGNORE, 0, 1, IGNORE] and cut.n_scored() == 2  # w3, w4 truncated: not scored


def test_macro_f1_known_answer():
    import numpy as np

    gold, pred = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    # F1: class 0 = 2*1/(2+1+1) = 0.5, class 1 = 2*2/(4+1+0) = 0.8, class 2 = 0
    assert macro_f1(pred, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(gold, gold) == 1.0


def test_label_subsets_are_nested_and_cover_every_class():
    data = toy_classify(200)
    small, large = label_subset(data, 4, seed=1), label_subset(data, 32, seed=1)
    assert set(small.texts) <= set(large.texts) and len(set(small.labels)) == 2
    assert label_subset(data, 4, seed=2).texts != small.texts
    pool, ev = holdout_split(200, 50)
    assert len(set(pool) | set(ev)) == 200 and not set(pool) & set(ev)
    assert (holdout_split(200, 50)[1] == ev).all()  # the same evaluation examples for every run
    with pytest.raises(UserError, match="more than the 150 labelled examples"):
        check_label_counts([16, 151], data.subset(pool), held_out=50)
    with pytest.raises(UserError, match="cannot cover the 2 classes"):
        check_label_counts([1], data.subset(pool), held_out=50)


def test_sweep_rows_summary_and_resume(base_dir, tmp_path):
    data, done = toy_classify(), []
    kw = dict(methods=["lora"], label_counts=[8, None], seeds=[0, 1], eval_size=100, out_dir=tmp_path,
              config=FinetuneConfig(steps=5, lr=1e-2), on_run=done.append)
    rows = finetune_sweep(base_dir, data, **kw)
    runs = [r for r in rows if r["source"] == "finetune"]
    # per run: 3 rows of its own, and 2 (accuracy, macro-F1) for each of the 3 baselines
    assert len(runs) == 2 * 2 * 3 and len(rows) == 2 * 2 * (3 + 3 * 2)
    assert {r["k_shot"] for r in rows} == {8, 200} and {r["task"] for r in runs} == {"finetune/toy/lora"}
    assert {r["task"] for r in rows if r["source"] == "baseline"} == {
        "finetune/toy/majority", "finetune/toy/frozen-logreg", "finetune/toy/tfidf-logreg"}
    summary = summarize(rows)
    assert list(summary["k_shot"]) == [8] * 4 + [200] * 4 and (summary["seeds"] == 2).all()
    assert list(summary["source"]) == ["finetune"] + ["baseline"] * 3 + ["finetune"] + ["baseline"] * 3
    assert summary["macro_f1_std"].notna().all()
    from emergelab.measurements import read_table

    assert len(read_table(tmp_path)) == len(rows) and (tmp_path / "summary.csv").exists()
    again = finetune_sweep(base_dir, data, **kw)
    assert again == rows and all(r["skipped"] for r in done[4:]) and not any(r["skipped"] for r in done[:4])
    with pytest.raises(UserError, match="other settings"):
        finetune_sweep(base_dir, data, **{**kw, "config": FinetuneConfig(steps=6, lr=1e-2)})


def test_from_scratch_starts_from_random_weights(base_dir, tmp_path):
    rec = finetune(base_dir, toy_classify(100), eval_size=20, out_dir=tmp_path,
                   config=FinetuneConfig(method="lora", steps=3, from_scratch=True))
    assert rec["task_name"] == "finetune/toy/lora-scratch" and (tmp_path / "base" / "model.safetensors").exists()
    assert len(backbone_changes(rec["model"], base_dir)) > 20
    texts = toy_classify(10, seed=5).texts
    expected = torch.stack(Finetuned(rec["model"], rec["tokenizer"], rec).logits(texts))
    assert torch.allclose(torch.stack(load_finetuned(tmp_path).logits(texts)), expected, atol=1e-5)


def test_bad_inputs_are_one_line_errors(base_dir, tmp_path):
    data = toy_classify(100)
    unseen = LabelledData.from_texts(["w1 w2", "w3"], ["neg", "meh"], source="eval.csv")
    with pytest.raises(UserError, match="'meh' that never occur"):
        finetune(base_dir, data, eval_data=unseen, config=FinetuneConfig(steps=1))
    with pytest.raises(UserError, match="target module.*nope.*do not exist"):
        finetune(base_dir, data, config=FinetuneConfig(steps=1, target_modules=("nope",)))
    model, _ = load_task_model(base_dir, task="classify", label_names=["a", "b"], pad_token_id=0)
    model.config.model_type = "mystery"
    for method in ("lora", "ia3", "adapter"):
        with pytest.raises(UserError, match="mystery"):
            wrap_model(model, FinetuneConfig(method=method), task="classify", total_steps=10)
    with pytest.raises(UserError, match="does not exist"):
        check_model_dir(tmp_path / "missing")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text("{}")
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UserError, match="only pickle weights"):
        check_model_dir(tmp_path / "bin")
    (tmp_path / "notok").mkdir()
    for f in ("config.json", "model.safetensors"):
        (tmp_path / "notok" / f).write_bytes((base_dir / f).read_bytes())
    with pytest.raises(UserError, match="no tokenizer"):
        check_model_dir(tmp_path / "notok")
    with pytest.raises(UserError, match="unknown fine-tuning method"):
        FinetuneConfig(method="prefix")


def test_batches_cover_each_epoch_once_and_group_lengths():
    from emergelab.finetune.train import batch_order

    lengths = [random.Random(i).randint(1, 60) for i in range(200)]
    for grouped in (None, lengths):
        g = torch.Generator().manual_seed(0)
        batches = list(batch_order(200, batch_size=16, steps=26, generator=g, lengths=grouped))
        assert len(batches) == 26 and sorted(i for b in batches[:13] for i in b) == list(range(200))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert max(spread) < 15  # grouped: similar lengths share a batch (random batches span ~55)


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_weights_missing_from_the_checkpoint_train_with_the_head(base_dir, tmp_path, method):
    """An MLM-only BERT has no pooler: it starts random, so it must be trained and saved, not frozen."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(20)]
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=32)).save_pretrained(tmp_path / "mlm")
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(tmp_path / "mlm")
    rec = finetune(tmp_path / "mlm", toy_classify(60), eval_size=20, out_dir=tmp_path / "run", seed=3,
                   config=FinetuneConfig(method=method, steps=3, lr=1e-2))
    assert rec["new_modules"] == ["bert.pooler.dense"]
    trainable = [n for n, p in rec["model"].named_parameters() if p.requires_grad]
    assert any("pooler" in n for n in trainable)
    texts = toy_classify(10, seed=5).texts
    expected = torch.stack(Finetuned(rec["model"], rec["tokenizer"], rec).logits(texts))
    assert torch.allclose(torch.stack(load_finetuned(tmp_path / "run").logits(texts)), expected, atol=1e-5)


def test_the_registry_covers_exactly_the_spec_s_method_names():
    from emergelab.finetune.config import DEFAULT_LR
    from emergelab.finetune.methods import METHODS
    from emergelab.spec import METHOD_NAMES

    assert set(METHODS) == set(METHOD_NAMES) == set(DEFAULT_LR)
