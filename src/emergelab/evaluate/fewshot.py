"""Few-shot demonstrations: seeded, nested across k, and never the query document itself.

For query document ``i`` the demonstrations are the first ``k`` of one seeded sequence of distinct
pool indices drawn with ``numpy.random.default_rng([seed, i])``, skipping every pool document whose
*content* equals the query's (a world task sampled with replacement can hold the same example twice, and
a separate few-shot split can contain the query), so the 2-shot demonstrations are the first two of the
4-shot ones, and a query's prompt does not depend on which other documents or k values are evaluated.
"""
from __future__ import annotations

import json

import numpy as np

from emergelab.errors import UserError

#: pools up to this size are permuted; larger ones are sampled by rejection (k is then tiny)
_PERMUTE_UP_TO = 20_000


def check_k(k: int, n_pool: int, same_split: bool, task: str) -> None:
    """A k larger than the documents available for demonstrations is an input error."""
    available = n_pool - (1 if same_split else 0)
    if k > available:
        raise UserError(f"task {task}: {k}-shot needs {k} demonstrations but only {available} examples are available "
                        f"(the query itself is never one); lower --k-shot/k_shot to ≤ {available}")


def doc_key(doc) -> str:
    """A document's content, for recognising the same example under two indices."""
    return json.dumps(doc, sort_keys=True, default=str)


def same_content(pool: list, query_doc) -> set[int]:
    """Indices of the pool documents equal to ``query_doc``."""
    key = doc_key(query_doc)
    return {j for j, d in enumerate(pool) if doc_key(d) == key}


def demo_indices(n_pool: int, k: int, query: int, seed: int, *, exclude_query: bool,
                 exclude: set[int] | frozenset = frozenset(), first_n: bool = False) -> list[int]:
    """Indices of ``k`` distinct pool documents for query ``query``: never ``query`` itself if
    ``exclude_query`` (the pool is the evaluation split), nor any index in ``exclude`` (the query's content).
    ``first_n`` (lm-eval's ``fewshot_config: {sampler: first_n}``, MMLU's canonical demonstrations): the
    first ``k`` of the pool in order, so every query shares one prompt prefix."""
    if k == 0:
        return []
    seen = ({query} if exclude_query else set()) | set(exclude)
    available = n_pool - len(seen)
    if k > available:
        raise ValueError(f"{k} demonstrations requested, {available} available")
    if first_n:
        return [j for j in range(n_pool) if j not in seen][:k]
    rng = np.random.default_rng([seed, query])
    if n_pool <= _PERMUTE_UP_TO:  # the method depends on the pool only, so demos stay nested across k
        return [j for j in (int(x) for x in rng.permutation(n_pool)) if j not in seen][:k]
    out: list[int] = []
    while len(out) < k:
        j = int(rng.integers(n_pool))
        if j not in seen:
            seen.add(j)
            out.append(j)
    return out


def text_context(query: str, demos: list[tuple[str, str]], *, description: str = "",
                 target_delimiter: str = " ", fewshot_delimiter: str = "\n\n") -> str:
    """lm-eval's plain-text prompt: description, then ``q + target_delimiter + a + fewshot_delimiter``
    per demonstration, then the query ``q`` (its answer, and the delimiter before it, are the
    continuation)."""
    return description + "".join(q + target_delimiter + a + fewshot_delimiter for q, a in demos) + query


def token_context(query: list[int], demos: list[tuple[list[int], list[int]]], delimiter: list[int]) -> list[int]:
    """A world task's prompt in token ids: ``prompt + target + delimiter`` per demonstration, then the query."""
    out: list[int] = []
    for p, t in demos:
        out += list(p) + list(t) + list(delimiter)
    return out + list(query)
