"""Requests: a task's documents at k shots, turned into token ids the scorers read.

Text is tokenized as lm-evaluation-harness does (``_encode_pair``: trailing spaces of the context move
to the continuation, the continuation is ``encode(context + continuation)[len(encode(context)):]``),
so that log-likelihoods match it request for request. World tasks are token ids already.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emergelab.errors import UserError
from emergelab.evaluate import templates as T
from emergelab.evaluate.docs import TaskData
from emergelab.evaluate.fewshot import check_k, demo_indices, doc_key, text_context, token_context
from emergelab.evaluate.model import LanguageModel
from emergelab.evaluate.taskspec import TaskSpec


@dataclass
class Item:
    """One query at one k. ``context``/``target`` for causal scoring; ``left``/``right`` surround the
    answer for masked scoring; ``choices``/``gold`` for multiple choice; ``target_text`` for string
    exact match of a generation."""

    doc: int
    context: list[int]
    target: list[int]
    choices: list[list[int]] | None = None
    gold: int | None = None
    choice_chars: list[int] | None = None
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    target_text: str | None = None
    gen_context: list[int] = field(default_factory=list)


def resolve_output_type(spec: TaskSpec, lm: LanguageModel, has_choices: bool) -> str:
    """``auto`` → multiple_choice with choices, else generate (causal) or cloze (masked); an output type
    the model kind cannot serve is one line."""
    if spec.output_type == "auto":
        return lm.default_output_type(has_choices)
    lm.check_output_type(spec.output_type, spec.task)
    return spec.output_type


def encode_pair(lm: LanguageModel, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's ``_encode_pair``: trailing spaces of the context move to the continuation; an empty
    context is the model's empty-prompt tokens (the prefix token for causal models)."""
    if context == "":
        return lm.empty_context(), lm.encode(continuation)
    n = len(context) - len(context.rstrip())
    if n:
        continuation, context = context[-n:] + continuation, context[:-n]
    whole, ctx = lm.encode(context + continuation), lm.encode(context)
    return ctx, whole[len(ctx):]


def _answer_text(target, choices) -> str:
    if choices is not None and isinstance(target, int) and not isinstance(target, bool):
        return str(choices[target])
    if isinstance(target, list):
        return str(target[0])
    return str(target)


def build_items(spec: TaskSpec, data: TaskData, lm: LanguageModel, k: int, output_type: str) -> tuple[list[Item], int]:
    """The items of every document at ``k`` shots, and how many prompts had to be cut to fit."""
    token_task = spec.dataset_path == "world"
    if k > 0 and token_task and data.token_delimiter is None:
        raise UserError(f"task {spec.task} has no k-shot form (its world defines no few-shot delimiter); use k_shot [0]")
    check_k(k, len(data.fewshot_docs), data.same_split, spec.task)
    max_len = lm.max_length
    by_content: dict[str, list[int]] = {}
    for j, d in enumerate(data.fewshot_docs if k else []):
        by_content.setdefault(doc_key(d), []).append(j)
    first_n = (spec.fewshot_config or {}).get("sampler") == "first_n"
    items, cut = [], 0
    for i, doc in enumerate(data.docs):
        same = set(by_content.get(doc_key(doc), ())) if k else set()  # the query's content under any index
        try:
            chosen = demo_indices(len(data.fewshot_docs), k, i, spec.fewshot_seed, exclude_query=data.same_split,
                                  exclude=same, first_n=first_n)
        except ValueError:
            raise UserError(f"task {spec.task}: document {i} has too few other examples for {k}-shot (its content "
                            f"repeats {len(same)} times in the pool); lower k_shot") from None
        demos = [data.fewshot_docs[j] for j in chosen]
        q, target, choices = T.doc_to_text(spec, doc), T.doc_to_target(spec, doc), T.doc_to_choice(spec, doc)
        if output_type == "multiple_choice" and not choices:
            raise UserError(f"task {spec.task}: document {i} has no choices; multiple_choice needs doc_to_choice")
        gold = T.gold_index(spec, target, choices) if output_type == "multiple_choice" else None
        if token_task:
            shots = []
            for d in demos:
                dt, dc = T.doc_to_target(spec, d), T.doc_to_choice(spec, d)
                shots.append((T.doc_to_text(spec, d), dc[dt] if isinstance(dt, int) and dc else dt))
            context = token_context(q, shots, data.token_delimiter or [])
            answer = choices[gold] if gold is not None else list(target)
            item = Item(i, context, list(answer), choices=[list(c) for c in choices] if gold is not None else None,
                        gold=gold, gen_context=context)
            item.left, item.right = lm.around(list(context), []) if lm.wrap_world else (list(context), [])
        else:
            shots = [(str(T.doc_to_text(spec, d)), _answer_text(T.doc_to_target(spec, d), T.doc_to_choice(spec, d))) for d in demos]
            text = text_context(str(q), shots, description=spec.description, target_delimiter=spec.target_delimiter,
                                fewshot_delimiter=spec.fewshot_delimiter)
            if output_type == "multiple_choice":
                pairs = [encode_pair(lm, text, spec.target_delimiter + str(c)) for c in choices]
                item = Item(i, pairs[0][0], pairs[gold][1], choices=[p[1] for p in pairs], gold=gold,
                            choice_chars=[len(str(c)) for c in choices])
            elif output_type == "loglikelihood":
                ctx, cont = encode_pair(lm, text, str(target))
                item = Item(i, ctx, cont, target_text=str(target))
            else:  # generate, cloze: the answer follows the target delimiter, as in the demonstrations
                answer = _answer_text(target, choices)
                ctx, cont = encode_pair(lm, text, spec.target_delimiter + answer)
                item = Item(i, ctx, cont, target_text=answer, gen_context=lm.encode(text) if text else ctx)
            suffix = lm.encode(T.render(spec.doc_to_suffix, doc, task=spec.task, what="doc_to_suffix")) if spec.doc_to_suffix else []
            item.left, item.right = lm.around(list(item.context) if text else [], suffix)
        if not item.target and not item.choices:
            raise UserError(f"task {spec.task}: document {i} has an empty answer; fix doc_to_target")
        longest = max(len(c) for c in item.choices) if item.choices else len(item.target)
        # room for a generation (lm-eval: max_length − max_gen_toks), but never less than half the context
        gen_room = max(max_len - (len(item.target) if token_task else spec.max_gen_toks()), max_len // 2, 1)
        cut += int(lm.fit(item, longest=longest, gen_room=gen_room if output_type == "generate" else None))
        items.append(item)
    return items, cut
