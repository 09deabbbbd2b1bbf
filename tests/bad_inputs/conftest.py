"""Fixtures for the bad-input catalogue: tiny model directories and data files, built once."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    """A folder of good and bad inputs: tiny GPT-2 and BERT directories, corpora, labelled data, tasks."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    from emergelab.corpus.tokenizer import symbol_tokenizer

    root = tmp_path_factory.mktemp("bad_inputs")
    torch.manual_seed(0)
    words = ["good", "bad", "fine", "awful", "movie", "film", "is", "was", "the", "a"]
    tok = symbol_tokenizer(words)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2))
    gpt.save_pretrained(root / "gpt")
    tok.save_pretrained(root / "gpt")
    bert = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=64))
    bert.save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    (root / "no_tokenizer").mkdir()
    gpt.save_pretrained(root / "no_tokenizer")
    (root / "pickle_only").mkdir()
    (root / "pickle_only" / "config.json").write_text((root / "gpt" / "config.json").read_text())
    (root / "pickle_only" / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    tok.save_pretrained(root / "pickle_only")
    (root / "corrupt").mkdir()
    for f in (root / "gpt").iterdir():
        (root / "corrupt" / f.name).write_bytes(f.read_bytes())
    w = root / "corrupt" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    (root / "empty_dir").mkdir()

    (root / "empty.txt").write_text("")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 20)
    (root / "no_text_col.csv").write_text("title,score\nhello,1\nworld,2\n")
    rows = [("the film was good", "pos"), ("a good movie", "pos"), ("the film was awful", "neg"), ("a bad movie", "neg")] * 4
    (root / "ok.csv").write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
    (root / "one_class.csv").write_text("text,label\n" + "".join(f"{t},pos\n" for t, _ in rows))
    (root / "no_label.csv").write_text("text,sentiment\n" + "".join(f"{t},{l}\n" for t, l in rows))
    (root / "empty.csv").write_text("")
    (root / "tags.txt").write_text("the/DET film/NOUN was/VERB good/ADJ\n" * 8)
    (root / "tags_missing.txt").write_text("the/DET film was/VERB good/ADJ\n")

    docs = [{"question": f"the film was {w}", "answer": w} for w in ("good", "bad", "fine")]
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))

    def task(name: str, **fields) -> None:
        import yaml

        base = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(root / "docs.jsonl")}},
                "test_split": "test", "output_type": "loglikelihood", "doc_to_text": "{{question}}",
                "doc_to_target": " {{answer}}"}
        base.update(fields)
        (root / f"{name}.yaml").write_text(yaml.safe_dump({k: v for k, v in base.items() if v is not None}))

    task("ok")
    task("unknown_field", colour="red")
    task("missing_field", output_type=None, doc_to_text=None)
    task("bad_template", doc_to_text="{{no_such_column}}")
    task("cloze", output_type="cloze")
    (root / "not_yaml.yaml").write_text("task: [unclosed\n")
    (root / "spec_list.yaml").write_text("- just\n- a list\n")
    (root / "spec_dup.yaml").write_text("preset: smoke\nladder:\n  - {name: a, n_layer: 1, d_model: 8, n_head: 2}\n"
                                        "  - {name: a, n_layer: 1, d_model: 16, n_head: 2}\n")
    # external suites (issue 19): specs whose ladder points at models
    gpt_dir = root / "gpt"
    (root / "arch-step1").mkdir()
    for f in gpt_dir.iterdir():
        (root / "arch-step1" / f.name).write_bytes(f.read_bytes())
    (root / "arch-step2").mkdir()
    for f in (root / "bert").iterdir():
        (root / "arch-step2" / f.name).write_bytes(f.read_bytes())

    def suite(name: str, entry: dict) -> None:
        import yaml

        spec = {"name": name, "ladder": [{"name": "m", **entry}], "eval": {"task_files": [str(root / "ok.yaml")]}}
        (root / f"{name}.yaml").write_text(yaml.safe_dump(spec))

    suite("suite_glob_empty", {"models": str(root / "nothing-*")})
    suite("suite_mixed_arch", {"models": str(root / "arch-step*")})
    suite("suite_pickle", {"model": str(root / "pickle_only"), "steps": [0]})
    suite("suite_no_step", {"model": str(gpt_dir)})
    suite("suite_missing_revision", {"model": "emergelab-tests/nothing", "revisions": ["step9"]})
    (root / "suite_mixed_ladder.yaml").write_text(
        "name: mixed\nladder:\n  - {name: a, n_layer: 1, d_model: 8, n_head: 2}\n  - {name: b, model: EleutherAI/pythia-70m}\n")
    (root / "not_a_study").mkdir()
    (root / "not_a_study" / "precious.txt").write_text("keep me")
    return root
