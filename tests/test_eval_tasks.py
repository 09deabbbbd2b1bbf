"""Task specs (lm-eval vocabulary), templates, few-shot prompts and requests."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emergelab.corpus.tokenizer import symbol_tokenizer
from emergelab.errors import UserError
from emergelab.evaluate import templates as T
from emergelab.evaluate.docs import TaskData, load_task_data
from emergelab.evaluate.fewshot import demo_indices, text_context, token_context
from emergelab.evaluate.model import FAMILIES
from emergelab.evaluate.requests import build_items
from emergelab.evaluate.taskspec import TaskSpec, load_task_file, task_from_dict

WORDS = ["Q:", "A:", "is", "the", "cat", "dog", "red", "blue", "yes", "no"] + [f"w{i}" for i in range(20)]


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _docs(n=5):
    return [{"q": f"w{i}", "a": f"w{10 + i}", "choices": ["yes", "no"], "label": i % 2} for i in range(n)]


def _lm(kind="causal", max_length=512):
    return FAMILIES[kind](model=None, tokenizer=symbol_tokenizer(WORDS), max_length=max_length, name="tiny")


def test_lm_eval_yaml_loads_unchanged(tmp_path):
    _write(tmp_path, "d.jsonl", "".join(json.dumps(d) + "\n" for d in _docs()))
    y = _write(tmp_path, "t.yaml", """
task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files: {test: d.jsonl}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{q}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{label}}"
num_fewshot: 2
should_decontaminate: false
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""")
    spec = load_task_file(y)
    assert spec.output_type == "multiple_choice" and spec.shots() == [2] and spec.shots([0, 4]) == [0, 4]
    data = load_task_data(spec)
    assert len(data.docs) == 5 and data.same_split
    doc = data.docs[1]
    assert T.doc_to_text(spec, doc) == "Q: w1" and T.doc_to_choice(spec, doc) == ["yes", "no"]
    assert T.doc_to_target(spec, doc) == 1  # a digit string with choices is an index, as in lm-eval


def test_generate_until_alias_and_include(tmp_path):
    _write(tmp_path, "base.yaml", "dataset_path: json\ndataset_kwargs: {data_files: d.jsonl}\ndoc_to_text: q\ndoc_to_target: a\n")
    y = _write(tmp_path, "t.yaml", "include: base.yaml\ntask: g\noutput_type: generate_until\ngeneration_kwargs: {until: [\"\\n\"], max_gen_toks: 5}\n")
    spec = load_task_file(y)
    assert spec.output_type == "generate" and spec.until() == ["\n"] and spec.max_gen_toks() == 5


@pytest.mark.parametrize("body, fragment", [
    ("task: t\ndataset_path: json\ndoc_to_text: q\ndoc_to_target: a\ncolour: red\n", "unknown field 'colour'"),
    ("task: t\ndoc_to_text: q\ndoc_to_target: a\n", "missing required field 'dataset_path'"),
    ("task: t\ndataset_path: json\ndoc_to_target: a\n", "doc_to_text is required"),
    ("task: t\ndataset_path: json\ndoc_to_text: q\ndoc_to_target: a\noutput_type: sample\n", "output_type"),
    ("task: t\ndataset_path: json\ndoc_to_text: q\ndoc_to_target: a\nmetric_list: [{metric: bleu}]\n", "unknown metric 'bleu'"),
    ("task: t\ndataset_path: json\ndoc_to_text: q\ndoc_to_target: a\nprocess_docs: !function utils.f\n", "process_docs"),
    ("task: t\ndataset_path: json\ndoc_to_text: !function utils.f\ndoc_to_target: a\n", "never runs code"),
    ("task: t\ndataset_path: json\ndoc_to_text: q\ndoc_to_target: a\noutput_type: multiple_choice\n", "needs doc_to_choice"),
    ("- a list\n", "must be a YAML mapping"),
    ("task: [unclosed\n", "not valid YAML"),
])
def test_bad_task_files_are_one_line(tmp_path, body, fragment):
    y = _write(tmp_path, "bad.yaml", body)
    with pytest.raises(UserError) as e:
        load_task_file(y)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_template_with_missing_column_names_it():
    spec = task_from_dict({"task": "t", "dataset_path": "json", "doc_to_text": "{{question}} ?", "doc_to_target": "a"}, "t")
    with pytest.raises(UserError, match="refers to column 'question', which the data lacks \\(columns: a, q\\)"):
        T.doc_to_text(spec, {"q": "x", "a": "y"})


def test_missing_data_file_is_one_line(tmp_path):
    spec = task_from_dict({"task": "t", "dataset_path": "json", "dataset_kwargs": {"data_files": "nope.jsonl"},
                           "doc_to_text": "q", "doc_to_target": "a"}, "t", base_dir=tmp_path)
    with pytest.raises(UserError, match="data file nope.jsonl not found"):
        load_task_data(spec)


def test_demos_never_include_the_query_and_are_nested():
    for q in range(7):
        every_other = demo_indices(7, 6, q, seed=1, exclude_query=True)
        assert sorted(every_other) == [j for j in range(7) if j != q]
        for k in range(7):
            assert demo_indices(7, k, q, seed=1, exclude_query=True) == every_other[:k]
    for q in range(200):
        assert q not in demo_indices(50_000, 8, q, seed=2, exclude_query=True)  # the rejection sampler too
    # documented rule: the first k of default_rng([seed, q]).permutation(n) without q
    perm = [int(j) for j in np.random.default_rng([9, 3]).permutation(10) if j != 3]
    assert demo_indices(10, 4, 3, seed=9, exclude_query=True) == perm[:4]
    assert demo_indices(10, 4, 3, seed=9, exclude_query=True) != demo_indices(10, 4, 3, seed=10, exclude_query=True)


def test_text_prompt_is_built_exactly_as_lm_eval():
    got = text_context("Q: w0", [("Q: w3", "w13"), ("Q: w1", "w11")], description="the dog\n",
                       target_delimiter=" A: ", fewshot_delimiter="\n\n")
    assert got == "the dog\nQ: w3 A: w13\n\nQ: w1 A: w11\n\nQ: w0"
    assert token_context([1, 2], [([3], [4, 5]), ([6], [7])], [0]) == [3, 4, 5, 0, 6, 7, 0, 1, 2]


def _text_spec(**kw):
    base = {"task": "t", "dataset_path": "json", "doc_to_text": "Q: {{q}}", "doc_to_target": "{{a}}", "fewshot_seed": 5}
    return task_from_dict({**base, **kw}, "t")


def test_k_shot_requests_are_the_specified_prompt():
    docs = _docs()
    spec = _text_spec(description="the cat\n", target_delimiter=" A: ")
    data = TaskData(docs=docs, fewshot_docs=docs, same_split=True)
    lm = _lm()
    tok = lm.tokenizer
    items, cut = build_items(spec, data, lm, 2, "generate")
    assert cut == 0
    for i, it in enumerate(items):
        demos = demo_indices(5, 2, i, 5, exclude_query=True)
        assert i not in demos
        text = "the cat\n" + "".join(f"Q: w{j} A: w{10 + j}\n\n" for j in demos) + f"Q: w{i}"
        assert it.gen_context == tok.encode(text) and it.context == tok.encode(text)
        assert it.target == tok.encode(f"A: w{10 + i}")  # target_delimiter + target, as in the demonstrations


def test_loglikelihood_scores_the_target_as_written():
    """lm-eval's loglikelihood requests are (context, doc_to_target): no delimiter is added."""
    docs = _docs()
    spec = _text_spec(doc_to_target="{{' ' + a}}")
    items, _ = build_items(spec, TaskData(docs, docs, True), _lm(), 0, "loglikelihood")
    tok = _lm().tokenizer
    assert items[2].context == tok.encode("Q: w2") and items[2].target == tok.encode("w12")
    with pytest.raises(UserError, match="empty answer"):  # "Q: w2" + "w12" is one unknown word
        build_items(_text_spec(), TaskData(docs, docs, True), _lm(), 0, "loglikelihood")


def test_multiple_choice_requests_and_gold():
    docs = _docs()
    spec = _text_spec(doc_to_choice="{{choices}}", doc_to_target="{{label}}")
    items, _ = build_items(spec, TaskData(docs, docs, True), _lm(), 0, "multiple_choice")
    tok = _lm().tokenizer
    assert items[1].choices == [tok.encode("yes"), tok.encode("no")] and items[1].gold == 1
    assert items[1].context == tok.encode("Q: w1") and items[1].target == tok.encode("no")


def test_k_larger_than_available_is_an_input_error():
    docs = _docs(3)
    with pytest.raises(UserError, match="3-shot needs 3 demonstrations but only 2 examples are available"):
        build_items(_text_spec(), TaskData(docs, docs, True), _lm(), 3, "generate")
    other = [{**d, "q": f"w{20 + i}"} for i, d in enumerate(_docs(3))]
    items, _ = build_items(_text_spec(), TaskData(docs, other, False), _lm(), 3, "generate")
    assert len(items) == 3  # a separate few-shot split can give all its documents
    with pytest.raises(UserError, match="too few other examples for 3-shot"):  # … but never the query's own copy
        build_items(_text_spec(), TaskData(docs, _docs(3), False), _lm(), 3, "generate")


def test_world_task_k_shot_in_token_ids():
    docs = [{"prompt": [10 + i, 20 + i], "target": [30 + i]} for i in range(4)]
    spec = TaskSpec(task="w", dataset_path="world", output_type="auto", fewshot_seed=0)
    items, _ = build_items(spec, TaskData(docs, docs, True, token_delimiter=[6]), _lm(), 2, "generate")
    for i, it in enumerate(items):
        demos = demo_indices(4, 2, i, 0, exclude_query=True)
        want = [t for j in demos for t in [10 + j, 20 + j, 30 + j, 6]] + [10 + i, 20 + i]
        assert it.context == want and it.target == [30 + i]
    with pytest.raises(UserError, match="no k-shot form"):
        build_items(spec, TaskData(docs, docs, True, token_delimiter=None), _lm(), 1, "generate")


def test_long_prompts_are_cut_from_the_left():
    docs = [{"prompt": list(range(7, 27)), "target": [8, 9]}]
    spec = TaskSpec(task="w", dataset_path="world")
    items, cut = build_items(spec, TaskData(docs, docs, True), _lm(max_length=10), 0, "generate")
    assert cut == 1 and items[0].context == list(range(18, 27)) and items[0].gen_context == list(range(19, 27))
    items, cut = build_items(spec, TaskData(docs, docs, True), _lm("masked", max_length=10), 0, "cloze")
    assert cut == 1 and items[0].left == list(range(19, 27))


def test_cloze_text_is_wrapped_in_cls_and_sep():
    docs = [{"q": "the cat is", "a": "red", "s": "no"}]
    spec = _text_spec(doc_to_text="{{q}}", output_type="cloze", doc_to_suffix="{{s}}")
    lm = _lm("masked")
    tok = lm.tokenizer
    it = build_items(spec, TaskData(docs, docs, True), lm, 0, "cloze")[0][0]
    assert it.left == [tok.cls_token_id] + tok.encode("the cat is", add_special_tokens=False)
    assert it.target == tok.encode("red", add_special_tokens=False) and it.right == tok.encode("no", add_special_tokens=False) + [tok.sep_token_id]


def test_cloze_with_candidates_scores_them_as_choices():
    from emergelab.evaluate.runner import plan_task

    docs = [{"q": "the cat is", "a": "red", "c": ["red", "blue"]}]
    spec = _text_spec(doc_to_text="{{q}}", output_type="cloze", doc_to_choice="c")
    output_type, built = plan_task(_lm("masked"), spec, TaskData(docs, docs, True), [0])
    item = built[0][0][0]
    assert output_type == "multiple_choice" and item.gold == 0 and len(item.choices) == 2
    with pytest.raises(UserError, match="needs a masked model"):
        plan_task(_lm("causal"), spec, TaskData(docs, docs, True), [0])


def test_few_shot_demonstrations_exclude_the_query_by_content_not_index():
    from emergelab.evaluate.fewshot import demo_indices, same_content

    pool = [{"q": "a"}, {"q": "b"}, {"q": "a"}, {"q": "c"}, {"q": "a"}, {"q": "d"}]  # 'a' sampled three times
    same = same_content(pool, pool[0])
    assert same == {0, 2, 4}
    for seed in range(20):
        demos = demo_indices(len(pool), 3, 0, seed, exclude_query=True, exclude=same)
        assert len(demos) == 3 and not set(demos) & same  # never the query's content, under any index
        assert demos[:2] == demo_indices(len(pool), 2, 0, seed, exclude_query=True, exclude=same)  # still nested
    with pytest.raises(ValueError):
        demo_indices(len(pool), 4, 0, 0, exclude_query=True, exclude=same)


def test_causal_text_is_encoded_without_special_tokens_as_lm_eval_does():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from emergelab.evaluate.model import CausalLM

    core = Tokenizer(models.WordLevel(vocab={"<s>": 0, "a": 1, "b": 2, "<unk>": 3}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", unk_token="<unk>")
    assert tok.encode("a b") == [0, 1, 2]  # a Llama-style tokenizer adds BOS by default
    lm = CausalLM(model=None, tokenizer=tok, max_length=16)
    assert lm.encode("a b") == [1, 2] and lm.empty_context() == [0]
