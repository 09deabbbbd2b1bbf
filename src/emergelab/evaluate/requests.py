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
from emergelab.evaluate.fewshot import check_k, demo_indices, text_context, token_context
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
    ot = spec.output_type
    if ot == "auto":
        return "multiple_choice" if has_choices else ("generate" if lm.kind == "causal" else "cloze")
    if ot == "cloze" and lm.kind == "causal":
        raise UserError(f"task {spec.task} is a cloze task, which needs a masked model (BERT-like), but {lm.name} is causal; "
                        "use output_type loglikelihood, generate or multiple_choice")
    if ot in ("loglikelihood", "generate") and lm.kind == "masked":
        raise UserError(f"task {spec.task} has output_type {ot}, which needs a causal model, but {lm.name} is masked; "
                        "use output_type cloze or multiple_choice")
    return ot


class Encoder:
    """Text -> token ids for one model, as lm-eval encodes (causal) or without special tokens (masked)."""

    def __init__(self, lm: LanguageModel):
        self.lm = lm
        tok = lm.tokenizer
        self.wrap = lm.kind == "masked" and tok.cls_token_id is not None and tok.sep_token_id is not None

    def encode(self, text: str) -> list[int]:
        if self.lm.kind == "masked":
            return list(self.lm.tokenizer.encode(text, add_special_tokens=False))
        return list(self.lm.tokenizer.encode(text))

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's ``_encode_pair`` (an empty context is the prefix token for causal models)."""
        if context == "":
            prefix = [] if self.lm.kind == "masked" else [self.lm.prefix_id] if self.lm.prefix_id is not None else None
            if prefix is None:
                raise UserError(f"{self.lm.name}'s tokenizer has neither BOS nor EOS to stand for an empty prompt; give the task a doc_to_text")
            return prefix, self.encode(continuation)
        n = len(context) - len(context.rstrip())
        if n:
            continuation, context = context[-n:] + continuation, context[:-n]
        whole, ctx = self.encode(context + continuation), self.encode(context)
        return ctx, whole[len(ctx):]

    def around(self, left: list[int], right: list[int]) -> tuple[list[int], list[int]]:
        if not self.wrap:
            return left, right
        tok = self.lm.tokenizer
        return [tok.cls_token_id] + left, right + [tok.sep_token_id]


def _answer_text(target, choices) -> str:
    if choices is not None and isinstance(target, int) and not isinstance(target, bool):
        return str(choices[target])
    if isinstance(target, list):
        return str(target[0])
    return str(target)


def _fit_left(ctx: list[int], room: int, keep_first: int = 0) -> tuple[list[int], bool]:
    """Drop the oldest context tokens so that at most ``room`` remain (keeping ``keep_first``, e.g. [CLS])."""
    if len(ctx) <= room:
        return ctx, False
    if room <= keep_first:
        raise UserError(f"an answer leaves no room for the prompt within the model's context ({room} tokens); shorten the task's answers")
    return ctx[:keep_first] + ctx[len(ctx) - (room - keep_first):], True


def build_items(spec: TaskSpec, data: TaskData, lm: LanguageModel, k: int, output_type: str) -> tuple[list[Item], int]:
    """The items of every document at ``k`` shots, and how many prompts had to be cut to fit."""
    token_task = spec.dataset_path == "world"
    if k > 0 and token_task and data.token_delimiter is None:
        raise UserError(f"task {spec.task} has no k-shot form (its world defines no few-shot delimiter); use k_shot [0]")
    check_k(k, len(data.fewshot_docs), data.same_split, spec.task)
    enc = Encoder(lm)
    max_len = lm.max_length
    items, cut = [], 0
    for i, doc in enumerate(data.docs):
        demos = [data.fewshot_docs[j] for j in demo_indices(len(data.fewshot_docs), k, i, spec.fewshot_seed,
                                                             exclude_query=data.same_split)]
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
            item.left, item.right = enc.around(list(context), []) if lm.wrap_world else (list(context), [])
        else:
            shots = [(str(T.doc_to_text(spec, d)), _answer_text(T.doc_to_target(spec, d), T.doc_to_choice(spec, d))) for d in demos]
            text = text_context(str(q), shots, description=spec.description, target_delimiter=spec.target_delimiter,
                                fewshot_delimiter=spec.fewshot_delimiter)
            if output_type == "multiple_choice":
                pairs = [enc.pair(text, spec.target_delimiter + str(c)) for c in choices]
                item = Item(i, pairs[0][0], pairs[gold][1], choices=[p[1] for p in pairs], gold=gold,
                            choice_chars=[len(str(c)) for c in choices])
            elif output_type == "loglikelihood":
                ctx, cont = enc.pair(text, str(target))
                item = Item(i, ctx, cont, target_text=str(target))
            else:  # generate, cloze: the answer follows the target delimiter, as in the demonstrations
                answer = _answer_text(target, choices)
                ctx, cont = enc.pair(text, spec.target_delimiter + answer)
                item = Item(i, ctx, cont, target_text=answer, gen_context=enc.encode(text) if text else ctx)
            suffix = enc.encode(T.render(spec.doc_to_suffix, doc, task=spec.task, what="doc_to_suffix")) if spec.doc_to_suffix else []
            item.left, item.right = enc.around(list(item.context) if text else [], suffix)
        if not item.target and not item.choices:
            raise UserError(f"task {spec.task}: document {i} has an empty answer; fix doc_to_target")
        longest = max(len(c) for c in item.choices) if item.choices else len(item.target)
        if lm.kind == "causal":
            item.context, c1 = _fit_left(item.context, max_len + 1 - longest)
            # room for the generation (lm-eval: max_length − max_gen_toks), but never less than half the context
            gen_room = max(max_len - (len(item.target) if token_task else spec.max_gen_toks()), max_len // 2, 1)
            item.gen_context, c2 = _fit_left(item.gen_context, gen_room) if output_type == "generate" else (item.gen_context, False)
        else:
            keep = 1 if enc.wrap and item.left[:1] == [lm.tokenizer.cls_token_id] else 0
            item.left, c1 = _fit_left(item.left, max_len - longest - len(item.right), keep)
            c2 = False
        cut += int(c1 or c2)
        items.append(item)
    return items, cut
